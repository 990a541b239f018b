"""Passes only on the rented instance: an NVIDIA GPU answers there, and the tree is the one pytest-dumont synced."""

import shutil
import subprocess
from pathlib import Path

# Written beside the tree by the sync on the instance, never on the runner: proof the test runs in the synced copy.
SYNC_MANIFEST = Path(__file__).resolve().parent.parent / ".dumont-sync.json"


def test_sees_the_gpu() -> None:
    assert shutil.which("nvidia-smi"), "no nvidia-smi here: this test must run on the instance"
    names = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, check=True
    ).stdout
    assert names.strip(), "nvidia-smi listed no GPU"


def test_runs_in_the_synced_tree() -> None:
    assert SYNC_MANIFEST.is_file(), f"{SYNC_MANIFEST} is missing: this test must run on the instance"
