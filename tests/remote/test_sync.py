"""The tree's sync to an emulated instance: only what changed is sent, deletions follow, the rest is untouched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_dumont.clock import SystemClock
from pytest_dumont.provisioning.provisioner import Deadlines, Provisioner, ProvisionRequest
from pytest_dumont.provisioning.records import Ledger
from pytest_dumont.remote import sync, tree
from pytest_dumont.ssh.keys import SessionKey
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters


@pytest.fixture
def instance(vast_emulator, tmp_path: Path):
    key = SessionKey.generate(tmp_path / "key", "dumont-sync-test")
    provisioner = Provisioner(
        VastClient(vast_emulator.url, vast_emulator.api_key),
        clock=SystemClock(),
        ledger=Ledger(),
        session_id="synctest",
        ssh_key=key,
        known_hosts=tmp_path / "known_hosts",
        deadlines=Deadlines(boot=30, ssh=30, poll_max=0.2),
    )
    ready = provisioner.provision(ProvisionRequest(filters=OfferFilters(), image="sync"))
    yield ready, vast_emulator.world.host(ready.id).sandbox.workspace
    provisioner.destroy(ready.record, ready.connection)
    key.remove()


def sync_now(ready, root: Path, cache: Path) -> sync.SyncResult:
    manifest = tree.build_manifest(root, tree.list_tree(root), 10, tree.HashCache(cache))
    return sync.sync_tree(ready.connection, root, manifest, "dumont-remote/proj")


def test_a_resync_sends_what_changed_and_deletes_what_is_gone(instance, tmp_path: Path):
    ready, workspace = instance
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("A = 1\n")
    (root / "pkg" / "b.py").write_text("B = 1\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    cache = tmp_path / "hashes.json"
    remote = workspace / "dumont-remote" / "proj"

    first = sync_now(ready, root, cache)
    assert (first.files_sent, first.deleted) == (3, 0)
    assert first.remote_dir == "/workspace/dumont-remote/proj"
    assert (remote / "pkg" / "a.py").read_text() == "A = 1\n"
    assert (remote / "run.sh").stat().st_mode & 0o777 == 0o755

    assert sync_now(ready, root, cache).files_sent == 0  # nothing changed: nothing sent

    (root / "pkg" / "a.py").write_text("A = 2  # changed\n")
    (root / "pkg" / "b.py").unlink()
    (remote / "output.log").write_text("a test wrote this on the instance\n")
    again = sync_now(ready, root, cache)
    assert (again.files_sent, again.deleted, again.unchanged) == (1, 1, 1)
    assert (remote / "pkg" / "a.py").read_text() == "A = 2  # changed\n"
    assert not (remote / "pkg" / "b.py").exists()
    assert (remote / "output.log").exists()  # never sent, never touched

    (remote / "run.sh").write_text("tampered on the instance\n")  # changed there: sent again
    assert sync_now(ready, root, cache).files_sent == 1
    assert (remote / "run.sh").read_text() == "#!/bin/sh\necho hi\n"


def test_git_decides_what_is_sent(tmp_path: Path):
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("*.ckpt\nlocal/\n")
    (root / "model.ckpt").write_bytes(b"weights")
    (root / "local").mkdir()
    (root / "local" / "notes.txt").write_text("mine")
    (root / "tracked.py").write_text("x = 1\n")
    (root / "untracked.py").write_text("y = 1\n")
    subprocess.run(["git", "-C", str(root), "add", "tracked.py", ".gitignore"], check=True)
    (root / ".pytest_cache" / "v" / "cache").mkdir(parents=True)
    (root / ".pytest_cache" / "v" / "cache" / "lastfailed").write_text("{}")
    assert sorted(tree.list_tree(root)) == [
        ".gitignore",
        ".pytest_cache/v/cache/lastfailed",
        "tracked.py",
        "untracked.py",
    ]


def test_without_git_the_documented_excludes_apply(tmp_path: Path):
    root = tmp_path / "plain"
    for name in ["src/mod.py", ".venv/bin/python", "src/__pycache__/mod.pyc", "pkg.egg-info/PKG-INFO", "README"]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    assert sorted(tree.list_tree(root)) == ["README", "src/mod.py"]


def test_the_cap_is_checked_before_hashing(tmp_path: Path):
    (tmp_path / "big.bin").write_bytes(bytes(2_000_000))
    with pytest.raises(tree.TreeTooLarge, match=r"2\.0 MB in 1 files, over --dumont-remote-max-mb=1; nothing was sent"):
        tree.build_manifest(tmp_path, ["big.bin"], 1)
