"""Options resolved one way: command line > ini > environment > default, and a bad value named with its source."""

from __future__ import annotations

import pytest

from pytest_dumont.errors import ConfigurationError
from pytest_dumont.session.settings import (
    OPTIONS_BY_NAME,
    option_value,
    parse_mode,
    parse_profile,
    parse_record_mode,
    parse_xdist_mode,
)

JSON = OPTIONS_BY_NAME["json"]  # env DUMONT_JSON, no default
MAX_DPH = OPTIONS_BY_NAME["max-dph"]  # no env, default 0.50


def test_the_command_line_wins_then_the_ini_file_then_the_environment_then_the_default():
    env = {"DUMONT_JSON": "env.json"}
    assert option_value(JSON, "cli.json", "ini.json", env) == ("cli.json", "command line")
    assert option_value(JSON, None, "ini.json", env) == ("ini.json", "ini")
    assert option_value(JSON, None, None, env) == ("env.json", "environment")
    assert option_value(JSON, None, None, {}) == (None, "default")
    assert option_value(MAX_DPH, None, "", {}) == (0.5, "default")


@pytest.mark.parametrize(
    ("cli", "ini", "env", "said"),
    [
        ("-1", None, {}, "--dumont-max-dph='-1': must be a number above 0 (highest price accepted"),
        (None, "abc", {}, "ini option dumont_max_dph='abc': must be a number above 0"),
    ],
)
def test_a_bad_value_is_a_configuration_error_naming_where_it_came_from(cli, ini, env, said):
    with pytest.raises(ConfigurationError) as info:
        option_value(MAX_DPH, cli, ini, env)
    assert info.value.message.startswith(said)


def test_choices_are_case_blind_and_list_what_they_take():
    assert (parse_mode(" LIVE "), parse_profile("Seed"), parse_record_mode("new")) == ("live", "seed", "new")
    assert parse_xdist_mode("Per_Worker") == "per-worker"
    with pytest.raises(ValueError, match=r"^must be one of shared, per-worker$"):
        parse_xdist_mode("each")
