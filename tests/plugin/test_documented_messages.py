"""Every usage error docs/troubleshooting.md shows is the message a real run prints, word for word.

The page's table says what was run or written (a command line, a variable, an ini line, a marker) and the message;
each row is replayed here as a real pytest run in a fresh directory holding ``test_gpu.py``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md"
SECTION = "## Usage errors (nothing was spent)"
ROW = re.compile(r"^\| `(?P<what>[^`]+)`(?P<rest>[^|]*) \| `(?P<message>[^`]+)` \|")


def documented_rows() -> list[tuple[str, str, str]]:
    """(what was run or written, the words around it, the documented message) of the usage-error table."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    rows = [(m["what"], m["rest"].strip(), m["message"]) for m in map(ROW.match, section.splitlines()) if m]
    return rows


ROWS = documented_rows()


def test_the_page_has_its_table():
    assert len(ROWS) >= 10
    assert any(what.startswith("pytest --dumont-") for what, _, _ in ROWS)  # a flag
    assert any(re.match(r"[A-Z_]+=", what) for what, _, _ in ROWS)  # an environment variable
    assert any(words == "in the ini file" for _, words, _ in ROWS)
    assert any(what.startswith("@pytest.mark.dumont_offer(") for what, _, _ in ROWS)


@pytest.mark.parametrize(("what", "words", "message"), ROWS, ids=[row[0] for row in ROWS])
def test_the_documented_message_is_the_real_one(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, what: str, words: str, message: str
):
    args: list[str] = []
    if what.startswith("@pytest.mark."):
        pytester.makepyfile(test_gpu=f"import pytest\n\n{what}\ndef test_gpu(vast_gpu):\n    pass\n")
    else:
        pytester.makepyfile(test_gpu="def test_gpu(vast_gpu):\n    pass\n")
        if words == "in the ini file":
            name, _, value = what.partition(" = ")
            pytester.makeini(f"[pytest]\n{name} = {value}\n")
        else:
            argv = shlex.split(what)
            while argv and "=" in argv[0]:  # VARIABLE=value before the command
                name, _, value = argv.pop(0).partition("=")
                monkeypatch.setenv(name, value)
            assert argv[0] == "pytest", what
            args = argv[1:]
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.lines, f"{what}: documented {message!r}, printed:\n{result.stderr.str()}"
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
