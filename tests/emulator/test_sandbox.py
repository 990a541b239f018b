"""The instance sandbox: private /workspace, the fake nvidia-smi, and killing everything a sandbox started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sandbox_waits import is_gone, wait_until

from pytest_dumont.emulator.sandbox import (
    MOUNT_NAMESPACE,
    NO_ISOLATION,
    USER_NAMESPACE,
    GpuFacts,
    Sandbox,
    isolation_works,
)

SEED_QUERY = "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader"
NAMESPACES = [
    pytest.param(mode, marks=pytest.mark.skipif(not isolation_works(mode), reason=f"{mode} is not available here"))
    for mode in (MOUNT_NAMESPACE, USER_NAMESPACE)
]


def run(box: Sandbox, command: str | None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run a command in the sandbox the way the SSH server does."""
    return subprocess.run(
        box.command_argv(command), env=box.environment(), input=stdin, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Callable[..., Sandbox]]:
    """Build more sandboxes in one test; all are cleaned up after it."""
    made: list[Sandbox] = []

    def make(name: str, gpu: GpuFacts | None = None, isolation: str | None = None) -> Sandbox:
        made.append(Sandbox(tmp_path / name, gpu or GpuFacts(), isolation=isolation))
        return made[-1]

    yield make
    for box in made:
        box.cleanup()


def test_the_seed_query_prints_the_exact_line(sandbox: Sandbox) -> None:
    done = run(sandbox, SEED_QUERY)
    assert (done.returncode, done.stdout, done.stderr) == (0, "NVIDIA GeForce RTX 4090, 580.95.05, 24564 MiB\n", "")


def test_query_with_header_and_units(sandbox: Sandbox) -> None:
    fields = "name,memory.used,memory.free,utilization.gpu,temperature.gpu,count,uuid,pci.bus_id"
    header, row = run(sandbox, f"nvidia-smi --query-gpu={fields} --format=csv").stdout.splitlines()
    assert header == (
        "name, memory.used [MiB], memory.free [MiB], utilization.gpu [%], temperature.gpu, count, uuid, pci.bus_id"
    )
    name, used, free, utilization, temperature, count, uuid, bus_id = row.split(", ")
    assert name == "NVIDIA GeForce RTX 4090"
    assert int(used.removesuffix(" MiB")) + int(free.removesuffix(" MiB")) == 24564
    assert (utilization, count, bus_id) == ("0 %", "1", "00000000:01:00.0")
    assert temperature.isdigit()
    assert uuid.startswith("GPU-")


def test_utilization_follows_set_gpu_utilization(sandbox: Sandbox) -> None:
    query = "nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader"
    assert run(sandbox, query).stdout == "0 %\n"
    sandbox.set_gpu_utilization(73.4)
    assert run(sandbox, query).stdout == "73 %\n"
    assert run(sandbox, query + ",nounits").stdout == "73\n"
    assert "73%" in run(sandbox, "nvidia-smi").stdout


def test_utilization_outside_a_percentage_is_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="percentage"):
        sandbox.set_gpu_utilization(101)


def test_bare_nvidia_smi_prints_a_table(sandbox: Sandbox) -> None:
    done = run(sandbox, "nvidia-smi")
    assert done.returncode == 0
    for expected in ("NVIDIA GeForce RTX 4090", "Driver Version: 580.95.05", "1MiB /  24564MiB", " 0%      Default"):
        assert expected in done.stdout


def test_one_line_per_gpu(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox("quad", GpuFacts(name="NVIDIA A100-SXM4-80GB", memory_total_mib=81920, count=4))
    rows = run(box, "nvidia-smi --query-gpu=index,name,memory.total,count --format=csv,noheader,nounits").stdout
    assert rows.splitlines() == [f"{i}, NVIDIA A100-SXM4-80GB, 81920, 4" for i in range(4)]
    listed = run(box, "nvidia-smi -L").stdout.splitlines()
    assert [line.split(" (UUID: ")[0] for line in listed] == [f"GPU {i}: NVIDIA A100-SXM4-80GB" for i in range(4)]
    assert len({line.split("UUID: ")[1] for line in listed}) == 4
    assert run(box, "nvidia-smi -L -i 2").stdout.startswith("GPU 2: ")


def test_list_gpus(sandbox: Sandbox) -> None:
    done = run(sandbox, "nvidia-smi -L")
    assert done.returncode == 0
    assert done.stdout.startswith("GPU 0: NVIDIA GeForce RTX 4090 (UUID: GPU-")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("--no-such-flag", "Invalid combination of input arguments"),
        ("--query-gpu=name,no.such.field --format=csv", 'Field "no.such.field" is not a valid field'),
        ("--query-gpu=name", "--format=csv"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(sandbox: Sandbox, arguments: str, message: str) -> None:
    done = run(sandbox, f"nvidia-smi {arguments}")
    assert (done.returncode, done.stdout) == (2, "")
    assert message in done.stderr


def test_environment_has_home_path_and_the_instance_variables(sandbox: Sandbox) -> None:
    lines = run(sandbox, 'echo "$HOME"; echo "$CONTAINER_ID"; command -v nvidia-smi').stdout.splitlines()
    expected_home = "/root" if sandbox.isolation != NO_ISOLATION else str(sandbox.root / "root")
    assert lines[:2] == [expected_home, "4242"]
    assert lines[2].endswith("/nvidia-smi")


def test_commands_start_in_the_workspace_and_df_works(sandbox: Sandbox) -> None:
    done = run(sandbox, "pwd; touch made-here; df -P . | tail -n 1")
    assert done.returncode == 0, done.stderr
    assert (sandbox.workspace / "made-here").exists()
    assert done.stdout.split("\n")[1].split()[1].isdigit()  # df's 1024-blocks column


def test_a_shell_without_a_command_reads_stdin(sandbox: Sandbox) -> None:
    done = run(sandbox, None, stdin="echo from-stdin\nexit 7\n")
    assert (done.returncode, done.stdout) == (7, "from-stdin\n")


@pytest.mark.parametrize("isolation", NAMESPACES)
def test_workspace_root_and_tmp_are_private_per_sandbox(make_sandbox: Callable[..., Sandbox], isolation: str) -> None:
    first, second = make_sandbox("first", isolation=isolation), make_sandbox("second", isolation=isolation)
    same = f"dumont-{uuid.uuid4().hex}.txt"
    for box, word in ((first, "one"), (second, "two")):
        written = run(box, f"for d in /workspace /root /tmp; do echo {word} > $d/{same}; done")
        assert written.returncode == 0, written.stderr
    for box, word in ((first, "one"), (second, "two")):
        assert run(box, f"cat /workspace/{same} /root/{same} /tmp/{same}").stdout == f"{word}\n" * 3
        for directory in ("workspace", "root", "tmp"):
            assert (box.root / directory / same).read_text() == f"{word}\n"
    for host_directory in ("/workspace", "/root", "/tmp"):
        assert not Path(host_directory, same).exists()
    assert run(first, SEED_QUERY).stdout.startswith("NVIDIA GeForce RTX 4090")  # bin/ still reachable


@pytest.mark.parametrize("isolation", [*NAMESPACES, NO_ISOLATION])
def test_kill_all_kills_daemons_and_keeps_the_sandbox_usable(
    make_sandbox: Callable[..., Sandbox], isolation: str
) -> None:
    box = make_sandbox("daemons", isolation=isolation)
    started = run(box, "setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $!; nohup sleep 1000 >/dev/null 2>&1 &")
    daemon = int(started.stdout)
    assert not is_gone(daemon)
    bystander = subprocess.Popen(["sleep", "1000"])  # the same user's process outside the sandbox
    try:
        box.kill_all()
        assert wait_until(lambda: is_gone(daemon))
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert run(box, "echo still usable").stdout == "still usable\n"


def test_without_isolation_commands_use_the_sandbox_directories(make_sandbox: Callable[..., Sandbox]) -> None:
    box = make_sandbox("plain", isolation=NO_ISOLATION)
    done = run(box, 'pwd; echo "$HOME"; echo "$TMPDIR"')
    assert done.stdout.splitlines() == [str(box.workspace), str(box.root / "root"), str(box.root / "tmp")]


@pytest.mark.parametrize("isolation", [*NAMESPACES, NO_ISOLATION])
def test_cleanup_removes_root_and_the_holder(make_sandbox: Callable[..., Sandbox], isolation: str) -> None:
    box = make_sandbox("doomed", isolation=isolation)
    daemon = int(run(box, "setsid sleep 1000 >/dev/null 2>&1 </dev/null & echo $!").stdout)
    holder = box.holder_pid
    assert (holder is None) == (isolation == NO_ISOLATION)
    box.cleanup()
    box.cleanup()  # idempotent
    assert not box.root.exists()
    assert is_gone(daemon)
    assert holder is None or is_gone(holder)
    with pytest.raises(RuntimeError, match="cleaned up"):
        box.command_argv("true")


@pytest.mark.skipif(
    not isolation_works(MOUNT_NAMESPACE) and not isolation_works(USER_NAMESPACE), reason="no namespaces"
)
def test_the_holder_dies_with_the_emulator_process(tmp_path: Path) -> None:
    program = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from pytest_dumont.emulator.sandbox import GpuFacts, Sandbox
        box = Sandbox(Path({str(tmp_path / "orphan")!r}), GpuFacts())
        print(box.holder_pid, flush=True)
        sys.stdin.read()
    """)
    emulator = subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert emulator.stdout is not None
    holder = int(emulator.stdout.readline())
    assert not is_gone(holder)
    emulator.send_signal(signal.SIGKILL)  # no cleanup runs
    emulator.wait()
    assert wait_until(lambda: is_gone(holder))


def test_an_unknown_isolation_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="isolation"):
        Sandbox(tmp_path / "x", GpuFacts(), isolation="chroot")


def test_gpu_facts_must_describe_a_gpu() -> None:
    with pytest.raises(ValueError, match="count"):
        GpuFacts(count=0)


def test_sandbox_processes_do_not_see_the_emulator_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUMONT_TEST_SECRET", "leak")
    assert "DUMONT_TEST_SECRET" not in run(sandbox, "env").stdout
    assert os.environ["DUMONT_TEST_SECRET"] == "leak"


def test_kill_all_finds_a_process_in_the_middle_of_an_exec(make_sandbox: Callable[..., Sandbox]) -> None:
    """Without a namespace a member is known by its environment, which reads empty while the process execs.

    A daemon that re-executes itself for ever spends a few percent of its time inside ``execve``: a scan landing
    there found no member, ``kill_all`` returned, and the daemon lived on (the orphan ``sleep 1000`` of a cleanup
    whose ``setsid`` was still exec-ing it).
    """
    box = make_sandbox("execs", isolation=NO_ISOLATION)
    (box.workspace / "reexec.sh").write_text('exec /bin/sh "$0"\n')
    survivors: list[int] = []
    try:
        for _ in range(60):  # a miss in about one in fifteen before the fix
            daemon = int(run(box, "setsid /bin/sh reexec.sh >/dev/null 2>&1 </dev/null & echo $!").stdout)
            box.kill_all()  # returns once what it killed has exited: a daemon still running was never found
            if not is_gone(daemon):
                survivors.append(daemon)
    finally:
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
    assert survivors == []
