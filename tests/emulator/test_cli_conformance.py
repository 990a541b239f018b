"""The official ``vastai`` CLI 1.9.1 against the emulator: every lifecycle command, output and state checked.

The CLI exits 0 even when the API answered an error, so these tests read what it printed and what the emulator
recorded, never its exit code alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from api_waits import wait_for

from pytest_dumont.emulator import Faults

pytestmark = pytest.mark.conformance

VASTAI = shutil.which("vastai")
if VASTAI is None and not os.environ.get("CI"):
    pytest.skip(
        "the official vastai CLI is not installed (pip install 'pytest-dumont[conformance]')", allow_module_level=True
    )

SEED_OFFER = 29292839
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKkfMBYi85kA9IJerArG28WB5BEOqEaRuhx8C0Li6r+u cli@test"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Cli:
    """Runs ``vastai`` pointed at one emulator, with a throwaway home so nothing of the developer's is read."""

    def __init__(self, emulator: Any, home: Path) -> None:
        self.emulator = emulator
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAST_", "VASTAI_"))}
        env.update(
            emulator.environ(),
            VASTAI_NO_UPDATE_CHECK="1",
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_CACHE_HOME=str(home / ".cache"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
            XDG_DATA_HOME=str(home / ".local" / "share"),
            COLUMNS="250",
            LINES="10000",  # no pager
        )
        self.env = env
        # The CLI makes these at import with exists-then-makedirs, which races when commands run together.
        for directory in (".config/vastai", ".cache/vastai", ".local/state/vastai"):
            (home / directory).mkdir(parents=True, exist_ok=True)

    def __call__(self, *args: str, check_clean: bool = True, rc: int = 0) -> subprocess.CompletedProcess[str]:
        if VASTAI is None:
            pytest.fail("the vastai CLI must be installed in CI (the 'conformance' extra)")
        done = subprocess.run(
            [VASTAI, *args], env=self.env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
        )
        done.stdout = ANSI.sub("", done.stdout)
        assert done.returncode == rc, done.stderr
        if check_clean:
            assert "Failed with error" not in done.stderr, done.stderr
            assert "Traceback" not in done.stderr, done.stderr
        return done

    def raw(self, *args: str) -> Any:
        return json.loads(self("--raw", *args).stdout)

    @staticmethod
    def together(*calls: Callable[[], Any]) -> list[Any]:
        """Run independent commands at once: each start of the CLI costs about half a second of imports."""
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return [f.result() for f in [pool.submit(call) for call in calls]]


@pytest.fixture
def cli_for(tmp_path: Path) -> Callable[[Any], Cli]:
    def make(emulator: Any) -> Cli:
        return Cli(emulator, tmp_path / "home")

    return make


@pytest.fixture
def cli(make_emulator: Callable[..., Any], cli_for: Callable[[Any], Cli]) -> Cli:
    return cli_for(make_emulator(profile="fast", ssh=False))


def entry(cli: Cli, instance_id: int) -> dict[str, Any]:
    return next(e for e in cli.emulator.world.history() if e["id"] == instance_id)


def test_search_offers_table_and_raw(cli):
    query = "gpu_name=RTX_4090 num_gpus=1 reliability>0.98 gpu_ram>=20 geolocation in [US,CA]"
    table, offers, newer = cli.together(
        lambda: cli("search", "offers", query, "-o", "dph_total", "--limit", "3").stdout,
        lambda: cli.raw("search", "offers", query, "-o", "dph_total", "--limit", "3"),
        lambda: cli.raw("search", "offers", "--new", "gpu_name=H100_SXM"),
    )
    assert "invalid return Content-Type" not in table
    assert str(SEED_OFFER) in table
    assert "RTX_4090" in table
    assert [o["id"] for o in offers] == [SEED_OFFER, 29305521, 29310044]
    assert [o["dph_total"] for o in offers] == sorted(o["dph_total"] for o in offers)
    assert all(o["gpu_name"] == "RTX 4090" and o["verified"] for o in offers)
    assert [o["gpu_name"] for o in newer] == ["H100 SXM"]


def test_the_whole_lifecycle_through_the_cli(cli):
    world = cli.emulator.world
    created = cli(
        "create", "instance", str(SEED_OFFER), "--image", "nvidia/cuda:12.1.0-base-ubuntu22.04", "--disk", "20",
        "--ssh", "--direct", "--label", "cli-run", "--env", "-e HF_HOME=/workspace/hf -p 8080:8080",
    )  # fmt: skip
    match = re.search(r"'new_contract': (\d+)", created.stdout)
    assert match, created.stdout
    assert "'success': True" in created.stdout
    instance_id = int(match.group(1))
    assert world.live_ids() == [instance_id]
    row = world.show(instance_id)
    assert row is not None
    assert (row["image_runtype"], row["label"], row["disk_space"]) == ("ssh_direc ssh_proxy", "cli-run", 20.0)
    assert row["extra_env"] == [["HF_HOME", "/workspace/hf"]]
    wait_for(lambda: entry(cli, instance_id)["status"] == "running", "running")

    some = str(instance_id)
    shown, table, listed, summary, attached = cli.together(
        lambda: cli.raw("show", "instance", some),
        lambda: cli("show", "instance", some).stdout,
        lambda: cli.raw("show", "instances"),
        lambda: cli("show", "instances").stdout,
        lambda: cli("attach", "ssh", some, PUBLIC_KEY).stdout,
    )
    assert (shown["id"], shown["actual_status"]) == (instance_id, "running")
    assert shown["extra_env"] == {"HF_HOME": "/workspace/hf"}, "the CLI turned the [k, v] pairs into a dict"
    assert shown["ports"]["22/tcp"][0]["HostPort"] != str(shown["ssh_port"]), "direct and proxy are distinct"
    assert some in table
    assert "running" in table
    assert [r["id"] for r in listed] == [instance_id]
    assert "Total: 1 instances" in summary
    assert "cli-run" in summary
    assert "'success': True" in attached
    assert PUBLIC_KEY in [k["public_key"] for k in world.instance_keys(instance_id)]

    assert f"stopping instance {some}." in cli("stop", "instance", some).stdout
    stopped = world.show(instance_id)
    assert stopped is not None
    assert (stopped["actual_status"], stopped["intended_status"]) == ("exited", "stopped")

    assert f"starting instance {some}." in cli("start", "instance", some).stdout
    wait_for(lambda: entry(cli, instance_id)["status"] == "running", "running again")

    assert f"destroying instance {some}." in cli("destroy", "instance", some, "-y").stdout
    assert world.live_ids() == []
    assert entry(cli, instance_id)["destroyed"] is True
    gone, null, again = cli.together(
        lambda: cli("show", "instance", some, rc=1),  # the one command that exits 1: a null row
        lambda: cli.raw("show", "instance", some),
        lambda: cli("destroy", "instance", some, "-y", check_clean=False),
    )
    assert f"Instance {some} not found or no longer exists." in gone.stderr
    assert null == {"instances": None}
    assert "Failed with error 404: Instance not found." in again.stderr


def test_cli_errors_come_from_the_emulator(make_emulator, cli_for):
    emulator = make_emulator(profile="manual", ssh=False, faults=Faults(create_faults=["offer_taken"], retry_after=0))
    cli = cli_for(emulator)
    taken, bad_key = cli.together(
        lambda: cli("create", "instance", str(SEED_OFFER), "--image", "img", check_clean=False),
        lambda: cli("--api-key", "not-the-key", "show", "user", check_clean=False),
    )
    assert "Failed with error 404: error 404/3603: no_such_ask" in taken.stderr
    assert "Failed with error 401: Invalid user key" in bad_key.stderr
    emulator.world.set_faults(Faults(rate_429=1.0, retry_after=0))
    limited = cli("show", "instances", "--raw", check_clean=False)
    assert "Failed with error 429" in limited.stderr or '"status_code": 429' in limited.stderr


def test_logs_snapshot_and_billing_through_the_cli(make_emulator, cli_for):
    cli = cli_for(make_emulator(profile="fast"))
    onstart = "echo cli-onstart-line"
    created = cli("create", "instance", str(SEED_OFFER), "--image", "img", "--ssh", "--onstart-cmd", onstart)
    match = re.search(r"'new_contract': (\d+)", created.stdout)
    assert match, created.stdout
    some = match.group(1)
    logs = wait_for(lambda: next((o for o in [cli("logs", some).stdout] if "cli-onstart" in o), None), "the logs")
    assert logs.strip() == "cli-onstart-line"
    snapshot_args = ("--repo", "me/snap", "--docker_login_user", "me", "--docker_login_pass", "pw-secret")
    daemon, snapshot, charges, table, invoices = cli.together(
        lambda: cli("logs", some, "--daemon-logs", "--filter", "running").stdout,
        lambda: cli("take", "snapshot", some, *snapshot_args).stdout,
        lambda: cli.raw("show", "invoices-v1", "--charges"),
        lambda: cli("show", "invoices-v1", "--charges", "--no-color").stdout,
        lambda: cli("show", "invoices-v1", "--invoices", "--no-color").stdout,
    )
    assert "running actual_status=running" in daemon
    assert "Snapshot request sent successfully" in snapshot
    assert [r["source"] for r in charges["results"]] == [f"instance-{some}"]
    assert f"Instance │ {some}" in table
    assert "Showing 1 of 1 results" in table
    assert "Credit" in invoices
    assert "$100.00" in invoices


def test_copy_between_two_instances_through_the_cli(make_emulator, cli_for):
    emulator = make_emulator(profile="fast")
    cli = cli_for(emulator)
    onstart = "mkdir -p /workspace/data && echo payload > /workspace/data/p.txt && echo written"
    creates = cli.together(
        *[
            lambda offer=offer: cli(
                "create", "instance", str(offer), "--image", "img", "--ssh", "--onstart-cmd", onstart
            )
            for offer in (SEED_OFFER, 29305521)
        ]
    )
    matches = [re.search(r"'new_contract': (\d+)", created.stdout) for created in creates]
    assert all(matches), [created.stdout for created in creates]
    src, dst = (match.group(1) for match in matches if match)
    log = emulator.world.host(int(src)).sandbox.root / "onstart.log"
    wait_for(lambda: log.exists() and "written" in log.read_text(), "the source's files")
    wait_for(lambda: entry(cli, int(dst))["status"] == "running", "the destination running")
    copied = cli("copy", f"C.{src}:/workspace/data", f"C.{dst}:/workspace/incoming/")
    assert "Remote to Remote copy initiated" in copied.stdout
    root = emulator.world.host(int(dst)).sandbox.root
    assert (root / "workspace" / "incoming" / "data" / "p.txt").read_text() == "payload\n"


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (.ci/run installs it)")
def test_copy_between_a_local_path_and_an_instance_through_the_cli(make_emulator, cli_for, tmp_path):
    """``vastai copy`` asks the API where to connect, then runs rsync in daemon mode over SSH as vastai_kaalia."""
    emulator = make_emulator(profile="fast")
    cli = cli_for(emulator)
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    created = cli("create", "instance", str(SEED_OFFER), "--image", "img", "--ssh")
    match = re.search(r"'new_contract': (\d+)", created.stdout)
    assert match, created.stdout
    instance = int(match.group(1))
    cli("attach", "ssh", str(instance), key.with_suffix(".pub").read_text().strip())
    wait_for(lambda: entry(cli, instance)["status"] == "running", "the instance running")
    upload = tmp_path / "up"
    (upload / "sub").mkdir(parents=True)
    (upload / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    # `local:path` goes through copy_direct, a bare path through commands/rsync: the CLI sends both shapes.
    sent = cli("copy", "-i", str(key), f"local:{upload}", f"C.{instance}:/workspace/in/")
    assert f"vastai_kaalia@127.0.0.1::C.{instance}//workspace/in/" in sent.stdout
    root = emulator.world.host(instance).sandbox.root
    assert (root / "workspace" / "in" / "up" / "sub" / "weights.bin").read_bytes() == b"\x00\x01" * 5000
    (root / "workspace" / "out.txt").write_text("made on the instance\n")
    back = tmp_path / "down"
    cli("copy", "-i", str(key), f"C.{instance}:/workspace/out.txt", str(back))
    assert (back / "out.txt").read_text() == "made on the instance\n"
    # The copy account runs rsync's daemon and nothing else, and a path cannot leave the instance.
    login = ["ssh", "-i", str(key), "-p", str(emulator.world.host(instance).port), "-o", "StrictHostKeyChecking=no"]
    login += ["-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}", "vastai_kaalia@127.0.0.1"]
    shell = subprocess.run([*login, "id"], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert shell.returncode == 1 and "serves rsync in daemon mode only" in shell.stderr
    escape = tmp_path / "escape"
    subprocess.run(
        ["rsync", "-a", "-e", " ".join(login[:-1]), f"vastai_kaalia@127.0.0.1::C.{instance}/../", str(escape)],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert (escape / "workspace" / "out.txt").exists()  # `..` stopped at the instance's root,
    assert not (escape / f"C.{instance}").exists()  # and nothing above it came back
