"""The cassette file format (``dumont_format: 1``): reading with errors that say what to do, writing atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_dumont import statefile
from pytest_dumont.errors import CassetteError as CassetteError

FORMAT = 1


def load(path: Path, kind: str, how_to_fix: str) -> dict[str, Any]:
    """Read one dumont cassette of ``kind``; any problem is a CassetteError naming the file and the fix."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CassetteError(f"cassette {path} does not exist: record it with {how_to_fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CassetteError(f"cannot read cassette {path} ({exc}): record it again with {how_to_fix}") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506  # safe loaders only; libyaml 10x faster
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise CassetteError(
            f"cassette {path} is corrupted (not valid YAML{line}): delete it and record it again with {how_to_fix}"
        ) from None
    if not isinstance(data, dict) or "dumont_format" not in data:
        raise CassetteError(
            f"cassette {path} is not a pytest-dumont cassette (no dumont_format field; an older format or another "
            f"tool's file): delete it and record it again with {how_to_fix}"
        )
    found = data["dumont_format"]
    if found != FORMAT:
        age = "an older" if isinstance(found, int) and found < FORMAT else "a newer or unknown"
        raise CassetteError(
            f"cassette {path} has dumont_format {found!r}, {age} format than this pytest-dumont reads ({FORMAT}): "
            f"record it again with {how_to_fix}" + (" or upgrade pytest-dumont" if age.startswith("a newer") else "")
        )
    if data.get("kind") != kind:
        raise CassetteError(
            f"cassette {path} holds {data.get('kind')!r}, not {kind!r}: delete it and record it again with {how_to_fix}"
        )
    return data


def dump(document: dict[str, Any]) -> str:
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return str(yaml.dump(document, Dumper=dumper, sort_keys=False, allow_unicode=True, width=120))


def write_atomic(path: Path, text: str) -> None:
    """Write a cassette so that a crash leaves the old file or the new one; cassettes are shared files (0644)."""
    statefile.write_atomic(path, text, mode=0o644)
