"""Old import paths of modules that moved into folders keep working for one release, with a DeprecationWarning.

``import pytest_dumont.instances`` finds ``pytest_dumont.provisioning.factory`` and warns once; the old name is the
new module itself (so a ``monkeypatch`` through either name changes the same object). Remove in 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec

REMOVED_IN = "0.3"

MOVED: dict[str, str] = {
    "backstops": "safety.signals",
    "budget": "safety.budget",
    "deadman": "safety.deadman",
    "failed_machines": "provisioning.failed_machines",
    "instances": "provisioning.factory",
    "ledger": "provisioning.records",
    "lifecycle": "provisioning.provisioner",
    "lifecycle_api": "provisioning.contracts",
    "markers": "session.markers",
    "models": "vast.models",
    "pool": "provisioning.pool",
    "prewarm": "session.prewarm",
    "reaper": "safety.ledger_file",
    "resources": "session.resources",
    "secret_check": "secrets.check",
    "settings": "session.settings",
    "sharing": "session.xdist",
    "sshkeys": "ssh.keys",
    "streams": "ssh.streams",
    "timing": "provisioning.timing",
    "watchdog": "safety.watchdog",
    "webhook": "reporting.webhook",
    "cassettes.guard": "secrets.guard",
    "cassettes.scrub": "secrets.scrub",
}
# Names that left a moved module for another one: looked up there too.
ALSO: dict[str, Sequence[str]] = {
    "models": ("provisioning.records",),  # PhaseTiming
    "reaper": ("safety.reap",),  # reap, destroy_confirmed, ReapReport
}
# ``pytest_dumont.ssh``, ``.session`` and ``.safety`` are folders now: their old modules' names are read there.
FOLDER_WAS_MODULE: dict[str, str] = {
    "ssh": "ssh.connect",
    "session": "session.state",
    "safety": "safety.arming",
}

_PREFIX = "pytest_dumont."


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{_PREFIX}{old} moved to {_PREFIX}{new}; the old path goes in {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=4,
    )


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old dotted names and hands out the new modules under them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith(_PREFIX) or fullname[len(_PREFIX) :] not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        old = spec.name[len(_PREFIX) :]
        new = MOVED[old]
        _warn(old, new)
        module = importlib.import_module(_PREFIX + new)
        extra = [importlib.import_module(_PREFIX + name) for name in ALSO.get(old, ())]
        if not extra:
            return module
        merged = types.ModuleType(spec.name, module.__doc__)
        for source in (*reversed(extra), module):
            merged.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("__")})
        return merged

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module was imported under its new name."""


def folder_attribute(folder: str, name: str) -> object:
    """``from pytest_dumont.session import SESSION_KEY`` (the old module's names, read on its folder)."""
    new = FOLDER_WAS_MODULE[folder]
    if name.startswith("__"):
        raise AttributeError(name)
    module = importlib.import_module(_PREFIX + new)
    try:
        value = getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {_PREFIX}{folder!r} has no attribute {name!r}") from None
    _warn(f"{folder}.{name}", f"{new}.{name}")
    setattr(sys.modules[_PREFIX + folder], name, value)  # warned once; later reads find it on the folder
    return value


def install() -> None:
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
