"""The modes users see (docs/architecture.md), checked as real pytest runs: nothing here touches a network."""

from __future__ import annotations

import pytest

GPU_TEST = """
def test_gpu(vast_gpu):
    assert vast_gpu.id

def test_cpu():
    assert True
"""


def test_plain_run_replays_and_skips_gpu_tests_without_a_cassette(pytester: pytest.Pytester):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*dumont: mode replay (default)*",
            "*no cassette for test_plain_run*::test_gpu (*cassettes/test_plain_run*/test_gpu.ssh.yaml): record it "
            "with `pytest --dumont-mode=emulator --dumont-record-mode=rewrite *::test_gpu` (the bundled emulator) or "
            "`VAST_API_KEY=... pytest --dumont-mode=record *::test_gpu` (a real instance)*",
        ]
    )


def test_a_key_alone_never_spends_money(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VAST_API_KEY", "a-key-that-is-set-but-must-not-be-used")
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*mode replay (default)*"])
    assert "a-key-that-is-set" not in result.stdout.str()


@pytest.mark.parametrize("args", [["-m", "real_gpu"], ["--dumont-mode=live"]])
def test_spending_without_a_key_is_a_usage_error_before_any_request(pytester: pytest.Pytester, args):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*live mode needs a Vast.ai API key: set the environment variable VAST_API_KEY*"])


def test_m_real_gpu_with_a_key_means_live(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VAST_API_KEY", "k" * 20)
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("-m", "real_gpu", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*::test_gpu", "*1/2 tests collected (1 deselected)*"])
    header = pytester.runpytest("-m", "real_gpu", "--collect-only")
    header.stdout.fnmatch_lines(["*dumont: mode live (-m real_gpu)*"])


@pytest.mark.parametrize("listing", [["--collect-only", "-q"], ["--fixtures-per-test"]])
def test_listing_gpu_tests_rents_nothing(pytester: pytest.Pytester, monkeypatch, make_emulator, listing: list[str]):
    # A listing runs no test, so the prewarm that would boot an instance during collection must not start either.
    emulator = make_emulator(ssh=False)
    searches: list[object] = []  # the emulator's offer searches, seen over HTTP: renting starts with one
    search = emulator.world.search
    monkeypatch.setattr(emulator.world, "search", lambda query: searches.append(query) or search(query))
    monkeypatch.setenv("VAST_API_KEY", emulator.api_key)
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("--dumont-mode=emulator", f"--dumont-api-url={emulator.url}", *listing)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_gpu*"])
    assert searches == []
    assert emulator.world.history() == []


def test_not_real_gpu_deselects_gpu_tests_and_stays_in_replay(pytester: pytest.Pytester):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("-m", "not real_gpu")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*mode replay*"])


def test_ssh_session_users_are_marked_real_gpu_too(pytester: pytest.Pytester):
    pytester.makepyfile("def test_ssh(ssh_session):\n    pass\n")
    result = pytester.runpytest("-m", "real_gpu", "--dumont-mode=replay", "-rs")
    result.assert_outcomes(skipped=1)


def test_explicit_mode_beats_ini_beats_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    pytester.makepyfile(GPU_TEST)
    monkeypatch.setenv("DUMONT_MODE", "bogus-from-env")
    bad_env = pytester.runpytest()
    assert bad_env.ret == pytest.ExitCode.USAGE_ERROR
    bad_env.stderr.fnmatch_lines(["*$DUMONT_MODE='bogus-from-env': must be one of replay, live, record, emulator*"])
    pytester.makeini("[pytest]\ndumont_mode = replay\n")
    from_ini = pytester.runpytest("--collect-only")
    from_ini.stdout.fnmatch_lines(["*mode replay (ini)*"])
    from_cli = pytester.runpytest("--collect-only", "--dumont-mode=emulator")
    from_cli.stdout.fnmatch_lines(["*mode emulator (command line)*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dumont-mode=bogus"], "*--dumont-mode='bogus': must be one of replay, live, record, emulator*"),
        (["--dumont-max-dph=cheap"], "*--dumont-max-dph='cheap': must be a number above 0 (highest price*"),
        (["--dumont-max-dph=-1"], "*--dumont-max-dph='-1': must be a number above 0*"),
        (["--dumont-min-reliability=99"], "*--dumont-min-reliability='99': must be a number between 0 and 1*"),
        (["--dumont-gpu=,"], "*--dumont-gpu=',': must name at least one GPU*"),
        (["--dumont-api-url=console.vast.ai"], "*--dumont-api-url='console.vast.ai': must be an http:// or https://*"),
        (["--dumont-offer-attempts=0"], "*--dumont-offer-attempts='0': must be a whole number of at least 1*"),
    ],
)
def test_bad_option_values_are_usage_errors(pytester: pytest.Pytester, args, message):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_bad_ini_value_names_the_ini_option(pytester: pytest.Pytester):
    pytester.makeini("[pytest]\ndumont_min_disk = lots\n")
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option dumont_min_disk='lots'*"])


def test_api_key_file_is_read_when_the_variable_is_unset(pytester: pytest.Pytester):
    key_file = pytester.path / "vast_key"
    key_file.write_text("key-from-file-123456\n")
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("--dumont-mode=live", f"--dumont-api-key-file={key_file}", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    missing = pytester.runpytest("--dumont-mode=live", "--dumont-api-key-file=/nonexistent/key")
    assert missing.ret == pytest.ExitCode.USAGE_ERROR
    missing.stderr.fnmatch_lines(["*--dumont-api-key-file: cannot read /nonexistent/key*"])


def test_record_mode_is_live_and_rewrites_cassettes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VAST_API_KEY", "k" * 20)
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("--dumont-mode=record", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*dumont: mode record (command line)*"])


def test_record_mode_without_a_key_is_a_usage_error(pytester: pytest.Pytester):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("--dumont-mode=record")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*live mode needs a Vast.ai API key*[mode record from command line]*"])


def test_recording_needs_a_run_that_reaches_an_api(pytester: pytest.Pytester):
    pytester.makepyfile(GPU_TEST)
    result = pytester.runpytest("--dumont-record-mode=rewrite")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--dumont-record-mode=rewrite needs a run that reaches an API*"])
    bad = pytester.runpytest("--dumont-mode=emulator", "--dumont-record-mode=always")
    bad.stderr.fnmatch_lines(["*--dumont-record-mode='always': must be one of none, new, rewrite*"])
