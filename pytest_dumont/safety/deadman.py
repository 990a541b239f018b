"""The on-instance dead-man switch: an ``onstart`` script that destroys its own instance unless the session renews it.

It covers what no process on the runner can: the runner VM vanishing with its disk (no watchdog, no ledger file).
Vast hands each instance a restricted key that may destroy only that instance (the create reply's
``instance_api_key``, ``$CONTAINER_API_KEY`` inside the container). At boot the script writes a deadline (epoch
seconds, now + TTL) to ``$HOME/.dumont-deadline`` and backgrounds a loop that wakes every few seconds; once
``date +%s`` passes the deadline it calls ``DELETE {api}/api/v0/instances/$CONTAINER_ID/`` with that key, again on
every wake until the container is gone. The key is never in the script: the container's environment has it.

The HTTP client is whatever the image has, in this order: ``curl`` (the header is fed on stdin with ``--config -``,
so the key is in no argv), ``python3`` (reads the key from its environment), GNU ``wget`` (the key is in its argv,
visible only inside the container). With none of them the loop logs that it cannot act.
The header name is written in lower case (HTTP does not care): cassettes echo the script back, and the secret
checks flag ``Authorization`` wherever it appears.

The session renews every instance's deadline over SSH from a thread (``Renewer``) every third of the TTL, so a
single long test never outlives it and renewal does not depend on tests starting; it goes over a connection of its
own, never the test's (whose commands are timed, and recorded into cassettes).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_dumont.secrets.redact import redact
from pytest_dumont.vast import DEFAULT_API_URL

API_URL_ENV = "DUMONT_API_URL"  # set in the create's env only when the session's API is not Vast's own
DEADLINE_FILE = "${HOME:-/root}/.dumont-deadline"
BEGIN = "# >>> pytest-dumont dead-man switch"
END = "# <<< pytest-dumont dead-man switch"
ONSTART_LIMIT = 4048  # Vast's documented limit for onstart

_SCRIPT = """{begin} (docs/reliability.md): destroys this instance after {ttl} s without renewal
f="{deadline}"
echo $(( $(date +%s) + {ttl} )) > "$f"
(
  api="${{{api_env}:-{real_api}}}/api/v0/instances/$CONTAINER_ID/"
  while :; do
    d=$(cat "$f" 2>/dev/null)
    case "$d" in ''|*[!0-9]*) d=0 ;; esac
    if [ "$(date +%s)" -gt "$d" ]; then
      echo "$(date) deadline $d passed: destroying $CONTAINER_ID"
      if command -v curl >/dev/null 2>&1; then
        printf 'header = "authorization: Bearer %s"\\n' "$CONTAINER_API_KEY" |
          curl -sS -m 30 -X DELETE --config - "$api"
      elif command -v python3 >/dev/null 2>&1; then
        python3 -c 'import os,sys,urllib.request as u
r=u.Request(sys.argv[1],method="DELETE");r.add_header("authorization","Bearer "+os.environ["CONTAINER_API_KEY"])
u.urlopen(r,timeout=30)' "$api"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -O- -T 30 --method=DELETE --header="authorization: Bearer $CONTAINER_API_KEY" "$api"
      else
        echo "no curl, python3 or wget: cannot destroy myself"
      fi
    fi
    sleep {step}
  done
) >>"${{TMPDIR:-/tmp}}/dumont-deadman.log" 2>&1 &
{end}
"""


@dataclass(frozen=True)
class DeadmanSwitch:
    """The switch's settings: how long an instance may go unrenewed, and which API it calls to destroy itself."""

    ttl_s: float
    api_url: str = DEFAULT_API_URL

    @property
    def ttl_whole_s(self) -> int:
        return max(1, round(self.ttl_s))

    @property
    def step_s(self) -> float:
        """How often the on-instance loop wakes: at most 5 s late, and several times per TTL when the TTL is short."""
        return max(0.2, min(5.0, self.ttl_s / 5))

    @property
    def renew_every_s(self) -> float:
        """A third of the TTL: two renewals may fail (a slow SSH handshake, a blip) before the instance is lost."""
        return self.ttl_s / 3

    def script(self) -> str:
        return _SCRIPT.format(
            begin=BEGIN,
            end=END,
            ttl=self.ttl_whole_s,
            deadline=DEADLINE_FILE,
            api_env=API_URL_ENV,
            real_api=DEFAULT_API_URL,
            step=f"{self.step_s:g}",
        )

    def onstart(self, user_onstart: str | None) -> str:
        """The switch first (backgrounded at once), then the user's own onstart, if any."""
        combined = self.script() + (user_onstart or "")
        if len(combined) > ONSTART_LIMIT:
            raise ValueError(
                f"onstart is {len(combined)} characters with the dead-man switch, over Vast's {ONSTART_LIMIT}: "
                "shorten it, or turn the switch off with --dumont-deadman-ttl=0"
            )
        return combined

    def env(self) -> dict[str, str]:
        return {} if self.api_url.rstrip("/") == DEFAULT_API_URL else {API_URL_ENV: self.api_url.rstrip("/")}

    def renew_command(self) -> str:
        return f'echo $(( $(date +%s) + {self.ttl_whole_s} )) > "{DEADLINE_FILE}"'


_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.DOTALL)


def without_switch(body: Mapping[str, Any]) -> dict[str, Any]:
    """A create body with the switch taken out: cassettes match on what runs, not on the session's safety settings."""
    data = dict(body)
    onstart = data.get("onstart")
    if isinstance(onstart, str):
        data["onstart"] = _BLOCK.sub("", onstart) or None
    if isinstance(data.get("env"), Mapping):
        data["env"] = {k: v for k, v in data["env"].items() if k != API_URL_ENV}
    return data


class Renewer:
    """A thread that pushes every live instance's deadline forward over SSH, every ``renew_every_s``."""

    def __init__(
        self,
        switch: DeadmanSwitch,
        live: Callable[[], list[Any]],
        run: Callable[[Any, str], None],
    ) -> None:
        self.switch = switch
        self._live = live  # the session ledger's live records (each with ssh_address once SSH was up)
        self._run = run  # runs one command on a record's instance over a fresh connection; raises on failure
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.renewals = 0
        self.problems: list[str] = []

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dumont-deadman-renewer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(self.switch.renew_every_s):
            self.renew_all()

    def renew_all(self) -> None:
        """One round: renew each live instance that has SSH; a failure is noted, and retried next round."""
        command = self.switch.renew_command()
        for record in self._live():
            if self._stop.is_set() or record.ssh_address is None or not record.live:
                continue
            try:
                self._run(record, command)
                self.renewals += 1
            except Exception as exc:
                # Destroyed meanwhile is not a problem, nor is a destroy under way (its SSH goes first, and the
                # confirmation that ends the record may take a few polls).
                if record.live and getattr(record, "billing_ended_at", None) is None:
                    self.problems.append(
                        redact(f"could not renew the dead-man switch of instance {record.instance_id}: {exc}")
                    )


def ssh_runner(key: Any, known_hosts: Any, timeout: float = 10.0) -> Callable[[Any, str], None]:
    """Run a command on a record's instance over a new connection with the session key, then close it."""

    def run(record: Any, command: str) -> None:
        from pytest_dumont.ssh.connect import SSHTarget, connect, run_checked

        connection = connect(SSHTarget(*record.ssh_address), key, known_hosts, timeout=timeout)
        try:
            run_checked(connection, command, timeout=timeout)
        finally:
            connection.close()

    return run
