"""What GPU teams test after a first rental, as ready-made scenarios, and their building blocks as public functions.

Run them as they are (``pytest --pyargs pytest_dumont.scenarios --dumont-mode=emulator``, or ``dumont test NAME``),
or import the blocks into your own tests: ``snapshot``/``restore``/``verify`` with a ``LocalStore`` or ``S3Store``,
the ``IdleWatcher`` and ``hibernate``, and ``measure_throughput``. docs/scenarios.md describes each scenario.
"""

from __future__ import annotations

from pytest_dumont.scenarios.idle import IdleTimeout, IdleVerdict, IdleWatcher, hibernate
from pytest_dumont.scenarios.snapshot import (
    FileDigest,
    LocalStore,
    Manifest,
    SnapshotStore,
    Transfer,
    load_manifest,
    restore,
    snapshot,
    store_from_environment,
    verify,
)
from pytest_dumont.scenarios.throughput import (
    OLLAMA_QWEN,
    ModelServer,
    Throughput,
    local_token_server,
    measure_throughput,
)

__all__ = [
    "OLLAMA_QWEN",
    "FileDigest",
    "IdleTimeout",
    "IdleVerdict",
    "IdleWatcher",
    "LocalStore",
    "Manifest",
    "ModelServer",
    "SnapshotStore",
    "Throughput",
    "Transfer",
    "hibernate",
    "load_manifest",
    "local_token_server",
    "measure_throughput",
    "restore",
    "snapshot",
    "store_from_environment",
    "verify",
]


def __getattr__(name: str) -> object:
    """``S3Store`` is imported on first use only: boto3 is an optional extra (``pytest-dumont[s3]``)."""
    if name == "S3Store":
        from pytest_dumont.scenarios.s3 import S3Store

        return S3Store
    raise AttributeError(name)
