"""`dumont offers` against the emulator: the plugin's flags, env and defaults; a table, JSON, exit codes."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from pytest_dumont.session.settings import OPTIONS_BY_NAME
from pytest_dumont.vast.client import VastClient
from pytest_dumont.vast.offers import OfferFilters, find_offers


@pytest.fixture
def emulator(make_emulator):
    return make_emulator(ssh=False)


def test_the_table_lists_what_a_session_would_rent_cheapest_first(emulator, run_dumont):
    done = run_dumont("offers", env=emulator.environ())
    assert done.returncode == 0, done.stderr
    expected = find_offers(VastClient(emulator.url, emulator.api_key), OfferFilters())
    rows = [line.split()[0] for line in done.stdout.splitlines()[1:-1]]
    assert rows == [str(o.id) for o in expected]
    assert f"{len(expected)} offer(s) match 1x RTX 4090, at most $0.5/h" in done.stdout


def test_json_has_the_projection_for_the_given_minutes_and_the_limit(emulator, run_dumont):
    done = run_dumont("offers", "--json", "--minutes", "30", "--limit", "2", env=emulator.environ())
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["minutes"] == 30 and len(doc["offers"]) == 2 and doc["matching"] >= 2
    first, second = doc["offers"]
    assert first["dph_total"] <= second["dph_total"]
    projected = first["projected"]
    assert projected["simple_usd"] == pytest.approx(first["dph_total"] / 2)
    assert projected["gpu_usd"] == pytest.approx(first["dph_base"] / 2)
    assert projected["billed_usd"] == pytest.approx(projected["gpu_usd"] + projected["storage_usd"])
    assert emulator.api_key not in done.stdout + done.stderr


def test_the_plugins_flags_filter_as_they_do_in_pytest(emulator, run_dumont):
    done = run_dumont(
        "offers", "--json", "--dumont-gpu", "RTX_3090,RTX 4090", "--dumont-min-reliability", "0.98",
        env=emulator.environ(),
    )  # fmt: skip
    offers = json.loads(done.stdout)["offers"]
    assert offers and all(o["reliability"] >= 0.98 for o in offers)
    assert {o["gpu_name"] for o in offers} == {"RTX 3090", "RTX 4090"}
    assert offers[0]["gpu_name"] == "RTX 3090"  # the first GPU named is preferred, as in a session
    stricter = run_dumont("offers", "--json", "--dumont-min-reliability", "0.99", env=emulator.environ())
    assert all(o["reliability"] >= 0.99 for o in json.loads(stricter.stdout)["offers"])
    assert len(json.loads(stricter.stdout)["offers"]) < len(offers)


def test_a_bid_lists_interruptible_offers_as_a_session_would_rent_them(emulator, run_dumont):
    done = run_dumont("offers", "--json", "--limit", "100", "--dumont-bid", "0.12", env=emulator.environ())
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    expected = find_offers(VastClient(emulator.url, emulator.api_key), OfferFilters(bid=0.12))
    assert [o["id"] for o in doc["offers"]] == [o.id for o in expected]
    on_demand = find_offers(VastClient(emulator.url, emulator.api_key), OfferFilters())
    assert {o.id for o in expected} != {o.id for o in on_demand}  # the bid leaves out offers asking more
    assert "interruptible at a bid of $0.12/h" in doc["filters"]


def test_the_url_comes_from_the_flag_over_vast_url(emulator, run_dumont):
    env = {**emulator.environ(), "VAST_URL": "http://127.0.0.1:9"}  # nothing listens there
    done = run_dumont("offers", "--dumont-api-url", emulator.url, env=env)
    assert done.returncode == 0, done.stderr


def test_no_offer_matching_is_exit_1_with_the_reasons(emulator, run_dumont):
    done = run_dumont("offers", "--dumont-max-dph", "0.01", env=emulator.environ())
    assert done.returncode == 1
    assert "no Vast.ai offer matches 1x RTX 4090, at most $0.01/h" in done.stderr
    assert "costs more than $0.01/h (cheapest is $" in done.stderr


def test_no_match_in_json_mode_is_still_json(emulator, run_dumont):
    done = run_dumont("offers", "--json", "--dumont-gpu", "H200", env=emulator.environ())
    assert done.returncode == 1
    doc = json.loads(done.stdout)
    assert doc["offers"] == [] and "there is no rentable H200 offer at all" in doc["error"]


def test_without_a_key_it_is_the_plugins_usage_error(emulator, run_dumont):
    done = run_dumont("offers", env={"VAST_URL": emulator.url})
    assert done.returncode == 2
    assert "needs a Vast.ai API key: set the environment variable VAST_API_KEY" in done.stderr
    assert "--dumont-mode" not in done.stderr  # a pytest option: this command would reject it as unrecognised
    assert "run `dumont emulator` in another shell" in done.stderr


def test_the_key_file_flag_is_read(emulator, run_dumont, tmp_path):
    (tmp_path / "key").write_text(emulator.api_key + "\n")
    done = run_dumont("offers", "--dumont-api-key-file", str(tmp_path / "key"), env={"VAST_URL": emulator.url})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dumont-max-dph", "-1"], "--dumont-max-dph='-1': must be a number above 0"),
        (["--dumont-min-reliability", "95"], "--dumont-min-reliability='95': must be a number between 0 and 1"),
        (["--minutes", "0"], "--minutes='0': must be a number above 0"),
        (["--dumont-mode", "live"], "unrecognized arguments: --dumont-mode"),
    ],
)
def test_bad_values_are_usage_errors(run_dumont, args, message):
    done = run_dumont("offers", *args, env={"VAST_API_KEY": "k"})
    assert done.returncode == 2
    assert message in done.stderr


def test_a_bad_vast_url_is_the_plugins_message(run_dumont):
    done = run_dumont("offers", env={"VAST_API_KEY": "k", "VAST_URL": "ftp://x"})
    assert done.returncode == 2
    assert "$VAST_URL='ftp://x': must be an http:// or https:// URL" in done.stderr


def test_defaults_are_the_plugins(run_dumont):
    done = run_dumont("offers", "--help")
    for name in ("gpu", "max-dph", "min-disk", "min-reliability", "disk"):
        spec = OPTIONS_BY_NAME[name]
        assert spec.flag in done.stdout
        assert f"(default: {spec.default})" in " ".join(done.stdout.split())


def test_progress_shows_on_a_terminal_only(emulator, dumont_env):
    env = {**dumont_env, **emulator.environ()}
    argv = [sys.executable, "-m", "pytest_dumont.cli", "offers"]
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert piped.returncode == 0 and piped.stderr == ""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=follower, env=env, timeout=120, check=False)
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert proc.returncode == 0
    assert b"searching offers for 1x RTX 4090" in shown


@pytest.mark.parametrize("command", [["offers"], ["reap", "--label-prefix", "dumont-"], ["release", "--all"]])
def test_every_command_that_calls_the_api_reads_its_url_and_key_file_as_the_plugin_does(run_dumont, tmp_path, command):
    bad_url = run_dumont(*command, env={"VAST_API_KEY": "k", "VAST_URL": "ftp://x"})
    assert bad_url.returncode == 2
    assert "$VAST_URL='ftp://x': must be an http:// or https:// URL" in bad_url.stderr
    missing = tmp_path / "no-such-key"
    no_key_file = run_dumont(*command, "--dumont-api-key-file", str(missing))
    assert no_key_file.returncode == 2
    assert f"--dumont-api-key-file: cannot read {missing}: No such file or directory" in no_key_file.stderr
