"""Every pytest-dumont option, declared once and resolved once into a frozen ``Settings``.

Precedence, for each option: command line > ini file (``dumont_*``) > environment variable > default
(``option_value``; the ``dumont`` commands resolve their share of the options through it too, without an ini file).
A bad value is a ``ConfigurationError`` naming the option, where its value came from and what it expects; the plugin
shows it as pytest's usage error, a command exits 2 with it. The mode has one more rule, from docs/architecture.md:
when ``--dumont-mode`` is not on the command line, a ``-m`` expression that selects ``real_gpu`` tests means live
mode. The API key is read only from ``VAST_API_KEY`` or from the file ``--dumont-api-key-file`` names, never from a
flag that would land in shell history.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_dumont.errors import ConfigurationError
from pytest_dumont.secrets.redact import register_secret
from pytest_dumont.vast import DEFAULT_API_URL as DEFAULT_API_URL
from pytest_dumont.vast.offers import OfferFilters, normalise_gpu_name

MODES = ("replay", "live", "record", "emulator")
SPENDING_MODES = frozenset({"live", "record"})
EMULATOR_PROFILES = ("fast", "seed", "manual")
RECORD_MODES = ("none", "new", "rewrite")
XDIST_MODES = ("shared", "per-worker")
DEFAULT_IMAGE = "nvidia/cuda:12.1.0-base-ubuntu22.04"


class Secret:
    """A string that never shows itself in a ``repr``, a log line or a report."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --- parsers: each turns one raw text into a value or raises ValueError saying what it expects ------------------
# (``option_value`` turns that into a ConfigurationError naming the option and where its value came from).


def _float(text: str, expects: str) -> float:
    """A finite number, or ValueError saying what was expected (not Python's "could not convert string")."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(expects) from None
    if not math.isfinite(value):
        raise ValueError(expects)
    return value


def _int(text: str, expects: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(expects) from None


def choice(values: tuple[str, ...], normalise: Callable[[str], str] | None = None) -> Callable[[str], str]:
    """A parser accepting one of ``values``, case-insensitively (after ``normalise``, given one)."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        value = normalise(value) if normalise is not None else value
        if value not in values:
            raise ValueError(f"must be one of {', '.join(values)}")
        return value

    return parse


parse_mode = choice(MODES)
parse_profile = choice(EMULATOR_PROFILES)
parse_record_mode = choice(RECORD_MODES)
parse_xdist_mode = choice(XDIST_MODES, normalise=lambda value: value.replace("_", "-"))


def _http_url(text: str, expects: str) -> str:
    """An http:// or https:// URL with a host, or ValueError saying ``expects``."""
    value = text.strip()
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(expects)
    return value


def parse_positive_float(text: str) -> float:
    expects = "must be a number above 0"
    value = _float(text, expects)
    if not value > 0:
        raise ValueError(expects)
    return value


def parse_fraction(text: str) -> float:
    expects = "must be a number between 0 and 1, e.g. 0.9 for 90%"
    value = _float(text, expects)
    if not 0.0 <= value <= 1.0:
        raise ValueError(expects)
    return value


def parse_positive_int(text: str) -> int:
    expects = "must be a whole number of at least 1"
    value = _int(text, expects)
    if value < 1:
        raise ValueError(expects)
    return value


def parse_gpu_list(text: str) -> tuple[str, ...]:
    names = tuple(normalise_gpu_name(part) for part in text.split(",") if part.strip())
    if not names:
        raise ValueError("must name at least one GPU, e.g. 'RTX 4090' or 'RTX 4090,RTX 3090'")
    return names


def parse_url(text: str) -> str:
    return _http_url(text.strip().rstrip("/"), f"must be an http:// or https:// URL, e.g. {DEFAULT_API_URL}")


def parse_regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"is not a regular expression ({exc})") from None
    return text


def parse_non_negative_float(text: str) -> float:
    expects = "must be a number, 0 or more (0 turns it off)"
    value = _float(text, expects)
    if not value >= 0:
        raise ValueError(expects)
    return value


def parse_switch(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("1", "0", "yes", "no", "true", "false", "on", "off"):
        raise ValueError("must be yes or no")
    return value in ("1", "yes", "true", "on")


REUSE_DEFAULT_MIN = 15.0  # --dumont-reuse with no value


def parse_reuse(text: str) -> float:
    """Minutes a parked instance waits for the next session; ``yes`` means the default, ``no`` or 0 turns it off."""
    value = text.strip().lower()
    if value in ("yes", "on", "true"):
        return REUSE_DEFAULT_MIN
    if value in ("no", "off", "false", ""):
        return 0.0
    try:
        minutes = float(value)
    except ValueError:
        raise ValueError("must be a number of minutes (e.g. 15), yes (15 minutes) or no") from None
    if not 0 <= minutes <= 24 * 60:
        raise ValueError("must be between 0 (off) and 1440 minutes (a day)")
    return minutes


def parse_reference_prices(text: str) -> str:
    """A reference-prices file, checked now (before anything is rented); the path is kept, the report reads it."""
    from pytest_dumont.data.prices import load

    load(text.strip())  # ReferencePricesError is a ValueError naming the file and the entry
    return text.strip()


def parse_webhook_url(text: str) -> str:
    return _http_url(text, "must be an http:// or https:// URL the session's events are POSTed to")


def parse_text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


@dataclass(frozen=True)
class OptionSpec:
    """One option: its flag, ini twin, environment variable, parser, default and one line of help."""

    name: str  # e.g. "max-dph" -> --dumont-max-dph, ini dumont_max_dph, dest dumont_max_dph
    parse: Callable[[str], Any]
    default: str
    help: str
    env: str | None = None
    metavar: str = "VALUE"
    switch: bool = False  # a flag without a value on the command line (``yes``/``no`` in ini and environment)
    default_help: str = ""  # what the default is, in words, when ``default`` alone does not say it
    const: str | None = None  # the flag's value may be left out (``--dumont-reuse``): then it is this

    @property
    def help_line(self) -> str:
        """The help ``pytest --help`` (and ``dumont offers --help``) shows: what it does, its default, its variable."""
        env = f" [env {self.env}]" if self.env else ""
        return f"{self.help} (default: {self.default_help or self.default or 'none'}){env}"

    @property
    def flag(self) -> str:
        return f"--dumont-{self.name}"

    @property
    def dest(self) -> str:
        return "dumont_" + self.name.replace("-", "_")


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "mode",
        parse_mode,
        "replay",
        "replay (cassettes, no network), live (rent real GPUs, needs VAST_API_KEY), "
        "record (live, rewriting cassettes) or emulator (the bundled Vast.ai emulator)",
        env="DUMONT_MODE",
        metavar="MODE",
    ),
    OptionSpec(
        "gpu",
        parse_gpu_list,
        "RTX 4090",
        "GPU type(s) to rent, comma-separated in order of preference",
        metavar="NAMES",
    ),
    OptionSpec("max-dph", parse_positive_float, "0.50", "highest price accepted, in $/h (dph_total)", metavar="USD"),
    OptionSpec("min-disk", parse_positive_float, "20", "least disk space the offer must have, in GB", metavar="GB"),
    OptionSpec("min-reliability", parse_fraction, "0.90", "least host reliability, 0 to 1", metavar="R"),
    OptionSpec("image", parse_text, DEFAULT_IMAGE, "docker image the instance runs", metavar="IMAGE"),
    OptionSpec("disk", parse_positive_float, "20", "disk to rent with the instance, in GB", metavar="GB"),
    OptionSpec(
        "bid",
        parse_positive_float,
        "",
        "rent interruptible instances, bidding this for the GPU in $/h: cheaper, but a higher bid stops them",
        metavar="USD",
        default_help="none: on-demand",
    ),
    OptionSpec("api-url", parse_url, DEFAULT_API_URL, "Vast.ai API base URL", env="VAST_URL", metavar="URL"),
    OptionSpec(
        "api-key-file", parse_text, "", "file holding the API key, when $VAST_API_KEY is not set", metavar="PATH"
    ),
    OptionSpec(
        "boot-timeout", parse_positive_float, "900", "seconds an instance may take to reach running", metavar="S"
    ),
    OptionSpec("ssh-timeout", parse_positive_float, "180", "seconds SSH may take to answer once running", metavar="S"),
    OptionSpec(
        "offer-attempts", parse_positive_int, "3", "offers to try before giving up on provisioning", metavar="N"
    ),
    OptionSpec(
        "poll-max", parse_positive_float, "2", "longest pause between two status polls, in seconds", metavar="S"
    ),
    OptionSpec(
        "emulator-profile",
        parse_profile,
        "fast",
        "boot timeline of emulated instances: fast, seed, manual",
        metavar="NAME",
    ),
    OptionSpec(
        "emulator-time-factor",
        parse_positive_float,
        "1",
        "scale the emulator's boot timeline (0.1: 10x faster)",
        metavar="X",
    ),
    OptionSpec(
        "cassette-dir",
        parse_text,
        "cassettes",
        "where cassettes are read and written, relative to the rootdir",
        metavar="PATH",
    ),
    OptionSpec(
        "record-mode",
        parse_record_mode,
        "",
        "none (write nothing), new (record GPU tests that have no cassette) or rewrite (record every GPU test "
        "run); with --dumont-mode=emulator it records there",
        metavar="MODE",
        default_help="rewrite in record mode, none otherwise",
    ),
    OptionSpec(
        "secret-pattern",
        parse_regex,
        "",
        "a regular expression for further secrets to scrub from cassettes and to fail dumont check-secrets on",
        env="DUMONT_SECRET_PATTERN",
        metavar="REGEX",
    ),
    OptionSpec(
        "budget",
        parse_positive_float,
        "1.00",
        "USD the session may spend: a rental whose projected cost would pass it is refused, and the session's "
        "instances are destroyed before the spend reaches it",
        env="DUMONT_BUDGET",
        metavar="USD",
    ),
    OptionSpec(
        "max-minutes",
        parse_positive_float,
        "30",
        "minutes a GPU test may run: past it the test is stopped, its instance destroyed, and it fails",
        metavar="MIN",
    ),
    OptionSpec(
        "keep-on-failure",
        parse_switch,
        "no",
        "keep the instance of a failed test running for debugging (loud warning; the watchdog spares it)",
        switch=True,
    ),
    OptionSpec(
        "ledger",
        parse_text,
        "",
        "ledger file of this machine's live instances, read by `dumont reap`",
        env="DUMONT_LEDGER",
        metavar="PATH",
        default_help="$XDG_STATE_HOME/pytest-dumont/ledger.json",
    ),
    OptionSpec(
        "deadman-ttl",
        parse_non_negative_float,
        "60",
        "minutes an instance lives without the session renewing its on-instance dead-man switch, after which it "
        "destroys itself (0: no switch)",
        metavar="MIN",
    ),
    OptionSpec(
        "avoid-failed-hours",
        parse_non_negative_float,
        "24",
        "hours a machine that failed to boot is skipped by later sessions on this machine (0: this session only)",
        metavar="H",
    ),
    OptionSpec(
        "api-retry-seconds",
        parse_positive_float,
        "120",
        "longest time one API call is retried (429, 5xx, connection errors) before it fails",
        metavar="S",
    ),
    OptionSpec(
        "teardown-retry-seconds",
        parse_positive_float,
        "300",
        "longest time one destroy is retried before the instance is reported as not destroyed (then the watchdog "
        "and `dumont reap` try again): longer than other calls, as a destroy that gives up leaves an instance billing",
        env="DUMONT_TEARDOWN_RETRY_SECONDS",
        metavar="S",
    ),
    OptionSpec(
        "xdist",
        parse_xdist_mode,
        "shared",
        "under pytest-xdist: shared (one instance for the whole run, owned by the controller) or per-worker "
        "(each worker rents its own)",
        metavar="MODE",
    ),
    OptionSpec(
        "prewarm",
        parse_switch,
        "on",
        "start provisioning in the background when GPU tests are collected, so the instance boots while the "
        "other tests run (on or off)",
        metavar="on|off",
    ),
    OptionSpec(
        "check-secrets",
        parse_switch,
        "off",
        "at the end of the run, scan the cassettes and the reports it wrote for this session's keys, private keys "
        "and --dumont-secret-pattern; a hit fails the run (on or off)",
        env="DUMONT_CHECK_SECRETS",
        metavar="on|off",
    ),
    OptionSpec(
        "reference-prices",
        parse_reference_prices,
        "",
        "JSON file of other clouds' prices the report compares this run with (format in docs/reporting.md)",
        metavar="FILE",
        default_help="the list pytest-dumont ships, each price with its page, region and date",
    ),
    OptionSpec(
        "runs-per-day",
        parse_positive_float,
        "10",
        "how many times a day this suite runs, for the report's projection of its cost per day and per month",
        metavar="N",
    ),
    OptionSpec(
        "webhook",
        parse_webhook_url,
        "",
        "POST the session's events (instance created/destroyed, phases, cost, leak, budget hit) as JSON to URL; "
        "delivery never fails or holds up the run",
        env="DUMONT_WEBHOOK",
        metavar="URL",
    ),
    OptionSpec(
        "json",
        parse_text,
        "",
        "write the run's JSON report (phases, cost; schema in docs/reporting.md) to PATH",
        env="DUMONT_JSON",
        metavar="PATH",
    ),
    OptionSpec(
        "remote",
        parse_switch,
        "no",
        "run the selected tests on a rented instance through pytest-xdist's SSH gateway: the working tree is "
        "synced there and an environment set up first (docs/remote.md)",
        env="DUMONT_REMOTE",
        switch=True,
    ),
    OptionSpec(
        "remote-max-mb",
        parse_positive_float,
        "200",
        "largest working tree --dumont-remote sends, in MB: a larger one is refused before anything is sent",
        metavar="MB",
    ),
    OptionSpec(
        "remote-setup",
        parse_text,
        "",
        "shell command that prepares the instance's environment in the synced tree, instead of the default "
        "(a venv with the project, pytest and pytest-xdist)",
        metavar="CMD",
    ),
    OptionSpec(
        "remote-python",
        parse_text,
        "",
        "the interpreter the remote workers run, relative to the synced tree or absolute",
        metavar="PATH",
        default_help=".dumont-venv/bin/python, which the default setup makes",
    ),
    OptionSpec("remote-workers", parse_positive_int, "1", "pytest-xdist worker processes on the instance", metavar="N"),
    OptionSpec(
        "remote-instances",
        parse_positive_int,
        "1",
        "instances --dumont-remote rents at once, each synced and set up, the tests spread over all of them",
        env="DUMONT_REMOTE_INSTANCES",
        metavar="N",
    ),
    OptionSpec(
        "reuse",
        parse_reuse,
        "no",
        "park the session's instances at its end instead of destroying them, for the next session asking the "
        "same to adopt; MINUTES (default 15) later they destroy themselves. `dumont parked` lists them, "
        "`dumont release` destroys them (docs/reuse.md)",
        env="DUMONT_REUSE",
        metavar="MINUTES",
        const="yes",
    ),
    OptionSpec(
        "reuse-clean",
        parse_switch,
        "no",
        "empty /workspace of an adopted instance before its first test",
        env="DUMONT_REUSE_CLEAN",
        switch=True,
    ),
    OptionSpec(
        "reuse-in-ci",
        parse_switch,
        "no",
        "park instances even when CI=true (refused otherwise: the next job may never come to adopt them)",
        env="DUMONT_REUSE_IN_CI",
        switch=True,
    ),
)
OPTIONS_BY_NAME = {spec.name: spec for spec in OPTIONS}


def add_options(parser: pytest.Parser) -> None:
    """Register every option with its ini twin in one ``dumont`` group."""
    group = parser.getgroup("dumont", "GPU integration tests on Vast.ai (pytest-dumont)")
    for spec in OPTIONS:
        if spec.switch:
            group.addoption(spec.flag, dest=spec.dest, action="store_const", const="yes", default=None, help=spec.help)
            parser.addini(spec.dest, help=f"{spec.help} (see {spec.flag})", default=None)
            continue
        group.addoption(
            spec.flag,
            dest=spec.dest,
            metavar=spec.metavar,
            default=None,
            **({"nargs": "?", "const": spec.const} if spec.const is not None else {}),
            help=spec.help_line,
        )
        parser.addini(spec.dest, help=f"{spec.help} (see {spec.flag})", default=None)


@dataclass(frozen=True)
class Settings:
    """Everything pytest-dumont was told, resolved once per session."""

    mode: str
    mode_source: str  # "command line", "-m real_gpu", "ini", "environment" or "default"
    api_url: str
    api_url_explicit: bool  # given on the command line or in the ini file (not just $VAST_URL)
    api_key: Secret | None
    filters: OfferFilters
    image: str
    boot_timeout: float
    ssh_timeout: float
    offer_attempts: int
    poll_max: float
    emulator_profile: str
    emulator_time_factor: float
    cassette_dir: str = "cassettes"
    record_mode: str = "none"  # none | new | rewrite: whether this live or emulator run writes cassettes
    secret_pattern: str | None = None
    budget_usd: float = 1.0
    max_minutes: float = 30.0
    keep_on_failure: bool = False
    ledger_path: str | None = None  # None: the default under $XDG_STATE_HOME
    xdist_mode: str = "shared"  # shared | per-worker
    prewarm: bool = True
    deadman_ttl_min: float = 60.0  # 0: no dead-man switch
    avoid_failed_hours: float = 24.0  # 0: failed machines are remembered for this session only
    api_retry_s: float = 120.0
    teardown_retry_s: float = 300.0
    check_secrets: bool = False
    webhook_url: str | None = None  # None: no events are sent
    json_path: str | None = None  # --dumont-json: where the run's JSON report goes; None: nowhere
    remote: bool = False  # --dumont-remote: the tests themselves run on the instance
    remote_max_mb: float = 200.0
    remote_setup: str | None = None  # None: the default setup (a venv with the project, pytest, pytest-xdist)
    remote_python: str | None = None  # None: the default setup's venv
    remote_workers: int = 1  # per instance
    remote_instances: int = 1
    reuse_min: float = 0.0  # 0: instances are destroyed at the end; else parked this many minutes
    reuse_clean: bool = False
    reuse_in_ci: bool = False
    reference_prices: str | None = None  # None: the package's list
    runs_per_day: float = 10.0

    @property
    def spends_money(self) -> bool:
        return self.mode in SPENDING_MODES

    @property
    def uses_cassettes(self) -> bool:
        """Replay reads cassettes; a run with a record mode other than none writes them."""
        return self.mode == "replay" or self.record_mode != "none"

    def with_filters(self, **changes: Any) -> Settings:
        return replace(self, filters=replace(self.filters, **changes))


def emulator_in_use(settings: Settings) -> str:
    """Which emulator an emulator-mode run talks to, for the header: ``$VAST_URL`` alone does not choose it."""
    if settings.api_url_explicit:
        return f"emulator at {settings.api_url} (--dumont-api-url), key from $VAST_API_KEY"
    line = "emulator: a private one, started for this run and stopped at its end"
    if settings.api_url != DEFAULT_API_URL:  # $VAST_URL is set: say why it is not the one used
        line += f"; $VAST_URL={settings.api_url} is not used (--dumont-api-url={settings.api_url} would use it)"
    return line


def _raw(spec: OptionSpec, cli: object, ini: object, environ: Mapping[str, str]) -> tuple[str, str]:
    """The raw text of one option and where it came from (CLI > ini > env > default)."""
    if cli is not None:
        return str(cli), "command line"
    if ini not in (None, "", []):
        return str(ini), "ini"
    if spec.env and environ.get(spec.env):
        return environ[spec.env], "environment"
    return spec.default, "default"


def option_value(spec: OptionSpec, cli: object, ini: object, environ: Mapping[str, str]) -> tuple[Any, str]:
    """One option's value and where it came from; None when nothing sets it and it has no default.

    ``cli``: the command line's text (None when absent); ``ini``: the ini file's (None for a ``dumont`` command,
    which reads no ini file). A bad value raises ``ConfigurationError``.
    """
    text, source = _raw(spec, cli, ini, environ)
    if source == "default" and text == "":
        return None, source
    try:
        return spec.parse(text), source
    except ValueError as exc:
        raise ConfigurationError(option_error(spec, source, text, exc)) from None


def _value(config: pytest.Config, name: str, environ: Mapping[str, str]) -> tuple[Any, str]:
    spec = OPTIONS_BY_NAME[name]
    return option_value(spec, config.getoption(spec.dest, default=None), config.getini(spec.dest), environ)


def option_error(spec: OptionSpec, source: str, text: str, problem: Exception) -> str:
    """``--dumont-max-dph='abc': must be a number above 0 (highest price accepted, in $/h (dph_total))``: where the
    value came from, the value, what the option expects and what it is for."""
    where = {"command line": spec.flag, "ini": f"ini option {spec.dest}", "environment": f"${spec.env}"}
    said = str(problem)
    if not said.startswith("must be one of"):  # a list of choices says it all; otherwise, what the option is for
        said += f" ({spec.help.split(': ')[0]})"
    return f"{where.get(source, spec.flag)}={text!r}: {said}"


def selects_real_gpu(markexpr: str) -> bool:
    """Whether ``-m markexpr`` picks real_gpu tests and not unmarked ones (``-m real_gpu``, not ``-m 'not slow'``)."""
    if not markexpr or "real_gpu" not in markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression  # pytest's own parser: the same meaning as -m

        def only_real_gpu(name: str, /, **kwargs: object) -> bool:
            return name == "real_gpu"

        def no_marks(name: str, /, **kwargs: object) -> bool:
            return False

        expr = Expression.compile(markexpr)
        return bool(expr.evaluate(only_real_gpu)) and not expr.evaluate(no_marks)
    except Exception:  # a private API that moved: fall back to a plain reading
        return re.search(r"(?<!not )\breal_gpu\b", markexpr) is not None


def read_api_key(key_file: str | None, environ: Mapping[str, str]) -> Secret | None:
    """The key from $VAST_API_KEY, else from the key file; None when neither is set."""
    value = environ.get("VAST_API_KEY", "").strip()
    if not value and key_file:
        path = Path(key_file).expanduser()
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"--dumont-api-key-file: cannot read {path}: {exc.strerror}") from None
    return Secret(value) if value else None


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the session's ``Settings``; raises ``ConfigurationError`` for any bad value, before anything is spent."""
    env = os.environ if environ is None else environ
    values = {spec.name: _value(config, spec.name, env) for spec in OPTIONS}
    mode, mode_source = values["mode"]
    if mode_source != "command line" and selects_real_gpu(str(config.getoption("markexpr", "") or "")):
        mode, mode_source = "live", "-m real_gpu"
    api_key = read_api_key(values["api-key-file"][0], env)
    filters = OfferFilters(
        gpu_names=values["gpu"][0],
        max_dph=values["max-dph"][0],
        min_disk_gb=values["min-disk"][0],
        min_reliability=values["min-reliability"][0],
        disk_gb=values["disk"][0],
        bid=values["bid"][0],
    )
    return Settings(
        mode=mode,
        mode_source=mode_source,
        api_url=values["api-url"][0],
        api_url_explicit=values["api-url"][1] in ("command line", "ini"),
        api_key=api_key,
        filters=filters,
        image=values["image"][0],
        boot_timeout=values["boot-timeout"][0],
        ssh_timeout=values["ssh-timeout"][0],
        offer_attempts=values["offer-attempts"][0],
        poll_max=values["poll-max"][0],
        emulator_profile=values["emulator-profile"][0],
        emulator_time_factor=values["emulator-time-factor"][0],
        cassette_dir=values["cassette-dir"][0],
        record_mode=_record_mode(mode, values["record-mode"][0]),
        secret_pattern=values["secret-pattern"][0],
        budget_usd=values["budget"][0],
        max_minutes=values["max-minutes"][0],
        keep_on_failure=values["keep-on-failure"][0],
        ledger_path=values["ledger"][0],
        xdist_mode=values["xdist"][0],
        prewarm=values["prewarm"][0],
        deadman_ttl_min=values["deadman-ttl"][0],
        avoid_failed_hours=values["avoid-failed-hours"][0],
        api_retry_s=values["api-retry-seconds"][0],
        teardown_retry_s=values["teardown-retry-seconds"][0],
        check_secrets=values["check-secrets"][0],
        webhook_url=values["webhook"][0],
        json_path=values["json"][0],
        remote=values["remote"][0],
        remote_max_mb=values["remote-max-mb"][0],
        remote_setup=values["remote-setup"][0],
        remote_python=values["remote-python"][0],
        remote_workers=values["remote-workers"][0],
        remote_instances=values["remote-instances"][0],
        reuse_min=values["reuse"][0],
        reuse_clean=values["reuse-clean"][0],
        reuse_in_ci=values["reuse-in-ci"][0],
        reference_prices=values["reference-prices"][0],
        runs_per_day=values["runs-per-day"][0],
    )


def _record_mode(mode: str, value: str | None) -> str:
    """Record mode writes cassettes unless told otherwise; replay never does (it has nothing to record)."""
    if value is None:
        return "rewrite" if mode == "record" else "none"
    if mode == "replay" and value != "none":
        raise ConfigurationError(
            f"--dumont-record-mode={value} needs a run that reaches an API: add --dumont-mode=emulator "
            "(the bundled emulator, no key) or use --dumont-mode=record (real instances, needs VAST_API_KEY)"
        )
    return value
