"""The package's folders are its architecture: imports run one way, held here over the real import graph.

A module imports from its own layer or the layers below it. Type-only imports count too: they are a dependency a
reader must know. ``pytest_dumont._moved`` (old import paths) and the folders' ``__getattr__`` are left out: they
exist for users' old imports, not for the package's own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pytest_dumont

PACKAGE = Path(pytest_dumont.__file__).parent

# Lowest first. A prefix names a folder or a module; the longest matching prefix places a module.
LAYERS: list[tuple[str, ...]] = [
    ("pytest_dumont", "pytest_dumont.errors", "pytest_dumont.clock", "pytest_dumont.statefile",
     "pytest_dumont.hookspecs", "pytest_dumont.secrets.redact", "pytest_dumont._moved", "pytest_dumont.waiting"),
    ("pytest_dumont.vast", "pytest_dumont.secrets.scrub", "pytest_dumont.secrets.guard"),
    ("pytest_dumont.ssh",),
    ("pytest_dumont.provisioning",),
    ("pytest_dumont.session.settings", "pytest_dumont.session.state"),
    ("pytest_dumont.safety",),
    ("pytest_dumont.cassettes",),
    ("pytest_dumont.reporting", "pytest_dumont.secrets.check"),
    ("pytest_dumont.session",),
    ("pytest_dumont.fixtures", "pytest_dumont.plugin", "pytest_dumont.cli", "pytest_dumont.commands",
     "pytest_dumont.scenarios"),
]  # fmt: skip
EMULATOR = "pytest_dumont.emulator"
# The only runtime doors into the emulator: the resource that starts emulator mode, and ``dumont emulator``.
EMULATOR_DOORS = ("pytest_dumont.session.resources", "pytest_dumont.commands.emulator")
# Reporting reads records; it never drives provisioning.
DRIVERS = (
    "pytest_dumont.provisioning.provisioner",
    "pytest_dumont.provisioning.pool",
    "pytest_dumont.provisioning.factory",
)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layer_of(module: str) -> int:
    best, layer = "", -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if _within(module, prefix) and len(prefix) > len(best):
                best, layer = prefix, index
    return layer


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_folder_getattr(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return True
    return False


def imports() -> list[tuple[str, str, int]]:
    """(importer, imported, line) for every import of a pytest_dumont module inside the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = _module_name(path)
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if _is_folder_getattr(node, parents):
                continue
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "pytest_dumont":
                    names = [f"pytest_dumont.{alias.name}" for alias in node.names if alias.name != "__version__"]
                    found += [(importer, name, node.lineno) for name in names]
                elif node.module.startswith("pytest_dumont."):
                    found.append((importer, node.module, node.lineno))
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = importer.rsplit(".", node.level - (path.name == "__init__.py"))[0]
                found.append((importer, f"{base}.{node.module}" if node.module else base, node.lineno))
            elif isinstance(node, ast.Import):
                found += [(importer, a.name, node.lineno) for a in node.names if a.name.startswith("pytest_dumont.")]
    return found


IMPORTS = imports()


def test_every_module_has_a_layer():
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    unplaced = sorted(m for m in modules if not _within(m, EMULATOR) and layer_of(m) < 0)
    assert unplaced == []


def test_imports_run_from_a_layer_to_its_own_or_lower_ones():
    upward = [
        f"{importer}:{line} imports {imported} (layer {layer_of(imported)} above {layer_of(importer)})"
        for importer, imported, line in IMPORTS
        if not _within(importer, EMULATOR) and not _within(imported, EMULATOR)
        and layer_of(imported) > layer_of(importer)
    ]  # fmt: skip
    assert upward == []


@pytest.mark.parametrize("lower", ["pytest_dumont.session", "pytest_dumont.safety", "pytest_dumont.reporting"])
def test_provisioning_imports_nothing_of_the_session_safety_or_reporting(lower):
    assert [(i, m) for i, m, _ in IMPORTS if _within(i, "pytest_dumont.provisioning") and _within(m, lower)] == []


def test_reporting_never_drives_provisioning():
    driving = [(i, m) for i, m, _ in IMPORTS if _within(i, "pytest_dumont.reporting") and m.startswith(DRIVERS)]
    assert driving == []


def test_only_the_emulator_mode_resource_and_its_command_import_the_emulator():
    doors = {i for i, m, _ in IMPORTS if _within(m, EMULATOR) and not _within(i, EMULATOR)}
    assert doors <= set(EMULATOR_DOORS)
    assert doors  # the graph is read at all: emulator mode does import it


def test_the_emulator_imports_nothing_of_the_runtime():
    assert [(i, m) for i, m, _ in IMPORTS if _within(i, EMULATOR) and not _within(m, EMULATOR)] == []


def test_the_layer_check_sees_an_upward_import():
    # The rule can fail: provisioning reaching up into the session is placed above its own layer.
    assert layer_of("pytest_dumont.session.resources") > layer_of("pytest_dumont.provisioning.provisioner")
    assert layer_of("pytest_dumont.secrets.check") > layer_of("pytest_dumont.secrets.redact")
