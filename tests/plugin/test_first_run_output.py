"""What a newcomer sees: one clear message instead of a traceback, a header that says which emulator a run uses,
listings that work with a marker typo, ``--help`` that says each default once."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

TWO_GPU_TESTS = """
    def test_a(vast_gpu):
        pass

    def test_b(ssh_session):
        pass
"""


def _output(result: pytest.RunResult) -> str:
    return result.stdout.str() + "\n" + result.stderr.str()


def test_a_failed_rental_is_its_message_without_a_traceback(pytester: pytest.Pytester):
    pytester.makepyfile(test_gpu=TWO_GPU_TESTS)
    result = pytester.runpytest("--dumont-mode=emulator", "--dumont-gpu=nonsense")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_a*",
            "NoMatchingOffer: no Vast.ai offer matches 1x nonsense, *",
            "  - there is no rentable nonsense offer at all",
            "  - GPUs on offer now: *RTX 4090*",
            "Relax a filter (--dumont-max-dph, *",
            "(pytest-dumont: --tb=long or -v shows the traceback)",
            "*ERROR at setup of test_b*",
            "NoMatchingOffer: no Vast.ai offer matches 1x nonsense, *",
            "(the same error as test_gpu.py::test_a, shown in full there)",
            "*short test summary info*",
            "ERROR test_gpu.py::test_a - *",
        ]
    )
    text = _output(result)
    for noise in ("Traceback", "provisioner.py", "prewarm.py", "plugin.py", "def find_offers", "\nE   "):
        assert noise not in text, noise
    assert text.count("there is no rentable nonsense offer") == 1  # in full once, named the second time


@pytest.mark.parametrize("flag", ["--tb=long", "-v"])
def test_the_traceback_is_there_when_asked_for(pytester: pytest.Pytester, flag: str):
    pytester.makepyfile(test_gpu=TWO_GPU_TESTS)
    result = pytester.runpytest("--dumont-mode=emulator", "--dumont-gpu=nonsense", flag)
    result.assert_outcomes(errors=2)
    text = _output(result)
    assert "offers.py:" in text and "raise NoMatchingOffer" in text
    assert "(pytest-dumont: --tb=long or -v shows the traceback)" not in text


def test_a_refused_key_is_its_message_without_a_traceback(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, vast_emulator
):
    pytester.makepyfile(test_gpu=TWO_GPU_TESTS)
    monkeypatch.setenv("VAST_API_KEY", "not-the-emulators-key")
    result = pytester.runpytest("-m", "real_gpu", f"--dumont-api-url={vast_emulator.url}")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "AuthenticationFailed: POST /api/v0/bundles/: HTTP 401 *The Vast.ai API rejected the key in VAST_API_KEY*",
            "(pytest-dumont: --tb=long or -v shows the traceback)",
        ]
    )
    text = _output(result)
    assert "client.py" not in text and "Traceback" not in text
    assert "not-the-emulators-key" not in text
    assert vast_emulator.world.history() == []  # nothing was rented


def test_an_error_raised_in_a_test_names_the_test_line(pytester: pytest.Pytester):
    pytester.makepyfile(
        test_own="""
        from pytest_dumont.errors import ConfigurationError

        def helper():
            raise ConfigurationError("the model path is not set: export MODEL_PATH")

        def test_mine():
            helper()
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "ConfigurationError: the model path is not set: export MODEL_PATH",
            "raised from test_own.py:4",
            "(pytest-dumont: --tb=long or -v shows the traceback)",
        ]
    )


def test_other_errors_keep_pytests_traceback(pytester: pytest.Pytester):
    pytester.makepyfile("""
        def test_mine():
            assert 1 + 1 == 3
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    assert "pytest-dumont" not in result.stdout.str()
    result.stdout.fnmatch_lines(["E       assert (1 + 1) == 3"])


# --- a marker typo -------------------------------------------------------------------------------------------------

TYPO = """
    import pytest

    pytestmark = pytest.mark.dumont_offer(max_dhp=0.5)

    def test_gpu(vast_gpu):
        pass
"""


@pytest.mark.parametrize("listing", [["--fixtures"], ["--fixtures-per-test"], ["--markers"], ["--collect-only", "-q"]])
def test_a_marker_typo_does_not_stop_a_listing(pytester: pytest.Pytester, listing: list[str]):
    pytester.makepyfile(TYPO)
    result = pytester.runpytest(*listing)
    assert result.ret == pytest.ExitCode.OK, _output(result)
    assert "max_dhp" not in _output(result)


def test_a_marker_typo_is_an_error_when_tests_run(pytester: pytest.Pytester):
    pytester.makepyfile(TYPO)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *: unknown dumont_offer argument 'max_dhp' (did you mean 'max_dph'?)*"])


# --- the header ----------------------------------------------------------------------------------------------------


def test_the_header_says_a_private_emulator_is_started_and_vast_url_is_not_used(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    pytester.makepyfile("def test_plain(): pass")
    monkeypatch.setenv("VAST_URL", "http://127.0.0.1:9")
    result = pytester.runpytest("--dumont-mode=emulator")
    result.stdout.fnmatch_lines(
        [
            "dumont: emulator: a private one, started for this run and stopped at its end; "
            "$VAST_URL=http://127.0.0.1:9 is not used (--dumont-api-url=http://127.0.0.1:9 would use it)"
        ]
    )


def test_the_header_names_an_emulator_given_by_url(pytester: pytest.Pytester):
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("--dumont-mode=emulator", "--dumont-api-url=http://127.0.0.1:9")
    result.stdout.fnmatch_lines(["dumont: emulator at http://127.0.0.1:9 (--dumont-api-url), key from $VAST_API_KEY"])
    assert "a private one" not in result.stdout.str()


def test_the_header_says_nothing_of_an_emulator_in_replay(pytester: pytest.Pytester):
    pytester.makepyfile("def test_plain(): pass")
    assert "emulator" not in "\n".join(x for x in pytester.runpytest().stdout.lines if x.startswith("dumont:"))


# --- pytest --help ---------------------------------------------------------------------------------------------------


def test_help_says_each_options_default_once(pytester: pytest.Pytester):
    result = pytester.runpytest("--help")
    group = result.stdout.str().split("GPU integration tests on Vast.ai (pytest-dumont):", 1)[1].split("\n\n", 1)[0]
    entries = re.split(r"\n  (?=--dumont-)", group)
    assert len(entries) > 25
    for entry in entries:
        text = " ".join(entry.split())
        assert text.count("(default:") <= 1, text
    ledger = next(" ".join(e.split()) for e in entries if e.lstrip().startswith("--dumont-ledger"))
    assert "(default: $XDG_STATE_HOME/pytest-dumont/ledger.json) [env DUMONT_LEDGER]" in ledger
    api_url = next(" ".join(e.split()) for e in entries if e.lstrip().startswith("--dumont-api-url"))
    assert api_url.count("VAST_URL") == 1 and api_url.endswith("[env VAST_URL]")
    assert "--dumont-json=PATH" in group


# --- a corrupt cassette --------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def test_a_corrupt_provisioning_cassette_says_how_to_record_it_again(pytester: pytest.Pytester):
    shutil.copytree(ROOT / "cassettes", pytester.path / "cassettes")
    shutil.copy(ROOT / "examples" / "seed_journey" / "test_seed_journey.py", pytester.path)
    (cassette,) = (pytester.path / "cassettes" / "_provisioning").glob("*.yaml")
    cassette.write_text("{{{ not yaml\n")
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(
        [
            f"CassetteError: cassette {cassette} is corrupted (not valid YAML at line *): delete it and record it "
            "again with `pytest --dumont-mode=emulator --dumont-record-mode=rewrite` (the bundled emulator) or "
            "`VAST_API_KEY=... pytest --dumont-mode=record` (a real instance)",
        ]
    )
    text = _output(result)
    assert "VAST_API_KEY=***" not in text  # the placeholder is not a secret
    assert "skip reason" not in text  # its tests error: there is no skip reason to read


# --- a tiny budget -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "text"), [(1.0, "$1"), (0.25, "$0.25"), (0.000001, "$0.000001"), (0.0046, "$0.0046"), (1e-9, "$1.00e-09")]
)
def test_a_budget_is_written_as_it_would_be_typed(usd: float, text: str):
    from pytest_dumont.safety.budget import budget_text

    assert budget_text(usd) == text


def test_a_tiny_budget_refuses_the_rental_in_plain_dollars(pytester: pytest.Pytester):
    pytester.makepyfile(test_gpu="def test_gpu(vast_gpu):\n    pass\n")
    result = pytester.runpytest("--dumont-mode=emulator", "--dumont-budget=0.000001")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["BudgetExceeded: *over --dumont-budget=$0.000001. Raise the budget*"])
    assert "e-06" not in result.stdout.str()
