"""The inference throughput meter: start a model server on the instance, stream prompts through its Ollama-style
``/api/generate`` with ``curl`` over SSH, and time every line as it reaches the runner.

Live default: Ollama with a small Qwen model (``OLLAMA_QWEN``: downloads Ollama and the model, so it cannot run
offline). Against the emulator, ``local_token_server()`` speaks the same protocol from a small Python program that
does real work per token, so the measuring code is the same in both.
"""

from __future__ import annotations

import io
import json
import shlex
import statistics
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pytest_dumont.clock import Clock, SystemClock
from pytest_dumont.errors import SSHCommandError


@dataclass(frozen=True)
class ModelServer:
    """How to bring up a model server on the instance and where it answers."""

    name: str
    model: str
    start: str  # run in the background with nohup; its output goes to LOG
    port: int | None = None  # a fixed port, or None: the server writes the port it chose to ``port_file``
    port_file: str | None = None
    setup: tuple[str, ...] = ()  # before the start (install)
    after_start: tuple[str, ...] = ()  # once it answers (pull the model)
    files: tuple[tuple[str, str], ...] = ()  # (remote path, content) uploaded over SFTP first
    ready_timeout_s: float = 120.0


OLLAMA_QWEN = ModelServer(
    name="ollama",
    model="qwen3:0.6b",
    setup=(
        "command -v ollama >/dev/null || { (command -v curl >/dev/null || "
        "(apt-get update -qq && apt-get install -y -qq curl)) && curl -fsSL https://ollama.com/install.sh | sh; }",
    ),
    start="ollama serve",
    port=11434,
    after_start=("ollama pull qwen3:0.6b",),
    ready_timeout_s=300.0,
)

LOG = "/root/dumont-model-server.log"


def local_token_server(work_per_token: int = 2000) -> ModelServer:
    """The emulator's stand-in for Ollama: ``python3`` on the instance, ``work_per_token`` SHA-256 rounds per token."""
    script = "/root/dumont-token-server.py"
    port_file = "/root/dumont-token-server.port"
    return ModelServer(
        name="local token server",
        model="dumont-tokens",
        start=f"python3 {script} {port_file} {int(work_per_token)}",
        port_file=port_file,
        setup=(f"rm -f {port_file}",),
        files=((script, (resources.files(__package__) / "token_server.py").read_text()),),
        ready_timeout_s=30.0,
    )


@dataclass(frozen=True)
class PromptTiming:
    """One prompt: tokens received, seconds to the first token, seconds from the first token to the last."""

    prompt: str
    tokens: int
    ttft_s: float
    decode_s: float

    @property
    def tokens_per_s(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else 0.0


@dataclass(frozen=True)
class Throughput:
    """The figures a model server is judged by: tokens per second and time to first token, over every prompt."""

    server: str
    model: str
    prompts: tuple[PromptTiming, ...]

    @property
    def tokens(self) -> int:
        return sum(p.tokens for p in self.prompts)

    @property
    def tokens_per_s(self) -> float:
        decode = sum(p.decode_s for p in self.prompts)
        return sum(max(0, p.tokens - 1) for p in self.prompts) / decode if decode > 0 else 0.0

    @property
    def ttft_s(self) -> float:
        """Median time to first token, as the runner saw it (so it includes one SSH round trip)."""
        return statistics.median(p.ttft_s for p in self.prompts)


class _LineTimes(io.TextIOBase):
    """An ``out_stream`` for fabric that notes when each complete line reached the runner."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lines: list[tuple[float, str]] = []
        self._partial = ""

    def write(self, text: str) -> int:
        now = self.clock.now()
        self._partial += text
        *complete, self._partial = self._partial.split("\n")
        self.lines.extend((now, line) for line in complete if line.strip())
        return len(text)


def _run(connection: Any, command: str, **kwargs: Any) -> Any:
    result = connection.run(command, hide=True, warn=True, **kwargs)
    if not result.ok:
        raise SSHCommandError(command, result.exited, result.stderr or result.stdout)
    return result


def start_server(connection: Any, server: ModelServer) -> tuple[str, int]:
    """Upload, set up and start ``server`` in the background; return (base URL, pid) once it answers."""
    for remote, content in server.files:
        connection.put(io.BytesIO(content.encode()), remote)
    for command in server.setup:
        _run(connection, command)
    pid = int(_run(connection, f"nohup {server.start} >{LOG} 2>&1 </dev/null & echo $!").stdout.strip())
    port = str(server.port) if server.port is not None else f"$(cat {shlex.quote(server.port_file or '')} 2>/dev/null)"
    tries = max(1, int(server.ready_timeout_s / 0.1))
    # Polled on the instance (one SSH round trip in all), with a deadline of ready_timeout_s.
    wait = (
        f'for i in $(seq {tries}); do p={port}; [ -n "$p" ] && curl -sf "http://127.0.0.1:$p/api/tags" >/dev/null '
        f'&& echo "$p" && exit 0; kill -0 {pid} 2>/dev/null || break; sleep 0.1; done; tail -n 20 {LOG} >&2; exit 1'
    )
    answered = connection.run(wait, hide=True, warn=True)
    if not answered.ok:
        raise SSHCommandError(f"{server.name} did not answer within {server.ready_timeout_s:g} s", 1, answered.stderr)
    url = f"http://127.0.0.1:{answered.stdout.strip()}"
    for command in server.after_start:
        _run(connection, command, timeout=3600)
    return url, pid


def generate(connection: Any, url: str, model: str, prompt: str, max_tokens: int, clock: Clock) -> PromptTiming:
    """Send one prompt, streamed; time the first and last token lines as they arrive on the runner."""
    body = json.dumps({"model": model, "prompt": prompt, "stream": True, "options": {"num_predict": max_tokens}})
    command = f"curl -sSN --fail {shlex.quote(url + '/api/generate')} -d {shlex.quote(body)}"
    times = _LineTimes(clock)
    started = clock.now()
    result = connection.run(command, hide=True, warn=True, out_stream=times)
    if not result.ok:
        raise SSHCommandError(command, result.exited, result.stderr)
    token_times = [at for at, line in times.lines if json.loads(line).get("response")]
    if not token_times:
        raise SSHCommandError(command, 0, f"no token in the answer: {result.stdout[-300:]!r}")
    return PromptTiming(prompt, len(token_times), token_times[0] - started, token_times[-1] - token_times[0])


def measure_throughput(
    connection: Any,
    server: ModelServer,
    prompts: list[str],
    *,
    max_tokens: int = 64,
    clock: Clock | None = None,
) -> Throughput:
    """Start ``server``, send each prompt in turn, stop it; tokens/s and time to first token over all prompts."""
    clock = clock or SystemClock()
    url, pid = start_server(connection, server)
    try:
        timings = tuple(generate(connection, url, server.model, p, max_tokens, clock) for p in prompts)
    finally:
        connection.run(f"kill {pid}", hide=True, warn=True)
    return Throughput(server.name, server.model, timings)
