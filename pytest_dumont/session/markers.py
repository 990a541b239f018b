"""The plugin's markers, registered in code, with their arguments checked in one place.

``real_gpu``: the test rents a GPU. Added automatically to every test that uses ``vast_gpu`` or ``ssh_session``,
so that ``pytest -m real_gpu`` selects them (and ``-m "not real_gpu"`` leaves them out).

``dumont_offer(**filters)``: what this test, class or module needs instead of the session's defaults. The closest
marker wins per argument (function > class > module), over the command line, over the ini file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_dumont.session.settings import (
    OPTIONS_BY_NAME,
    Settings,
    parse_fraction,
    parse_gpu_list,
    parse_positive_float,
    parse_positive_int,
    parse_text,
)

if TYPE_CHECKING:
    from pytest_dumont.provisioning.contracts import ProvisionRequest

GPU_FIXTURES = frozenset({"vast_gpu", "ssh_session", "dumont_instance_factory"})
# The fixtures that use the session's shared instance (the factory rents instances of its own).
SHARED_INSTANCE_FIXTURES = frozenset({"vast_gpu", "ssh_session"})


def uses_shared_instance(item: pytest.Item) -> bool:
    return not SHARED_INSTANCE_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


MARKERS = {
    "real_gpu": "real_gpu: the test rents a Vast.ai GPU (added to every test using vast_gpu/ssh_session); a plain "
    "run replays it from cassettes/, no network; run it live (needs VAST_API_KEY): select with -m real_gpu",
    "dumont_offer": "dumont_offer(gpu=, max_dph=, min_disk=, min_reliability=, disk=, num_gpus=, verified=, image=, "
    "onstart=, env=, bid=): offer filters and image for this test, class or module",
}


def _gpu(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return parse_gpu_list(value)
    if isinstance(value, Iterable):
        return parse_gpu_list(",".join(str(v) for v in value))
    raise ValueError("must be a GPU name or a list of names")


def _number(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError("must be a number")
        return parse(str(value))

    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be True or False")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return parse_text(value)


def _bid(value: Any) -> float | None:
    if value is None:
        return None  # on-demand, whatever --dumont-bid says
    return cast("float", _number(parse_positive_float)(value))


def _env(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("must be a dict of str to str")
    return tuple(sorted(value.items()))


# argument -> (converter, field of OfferFilters or of ProvisionRequest)
OFFER_ARGUMENTS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "gpu": (_gpu, "filters.gpu_names"),
    "max_dph": (_number(parse_positive_float), "filters.max_dph"),
    "min_disk": (_number(parse_positive_float), "filters.min_disk_gb"),
    "min_reliability": (_number(parse_fraction), "filters.min_reliability"),
    "disk": (_number(parse_positive_float), "filters.disk_gb"),
    "num_gpus": (_number(parse_positive_int), "filters.num_gpus"),
    "verified": (_bool, "filters.verified"),
    "image": (_text, "image"),
    "onstart": (_text, "onstart"),
    "env": (_env, "env"),
    "bid": (_bid, "filters.bid"),
}
# What each argument is for, said in an error about its value (the options' own help where there is a twin).
OFFER_ARGUMENT_HELP: dict[str, str] = {
    "gpu": OPTIONS_BY_NAME["gpu"].help,
    "max_dph": OPTIONS_BY_NAME["max-dph"].help,
    "min_disk": OPTIONS_BY_NAME["min-disk"].help,
    "min_reliability": OPTIONS_BY_NAME["min-reliability"].help,
    "disk": OPTIONS_BY_NAME["disk"].help,
    "num_gpus": "GPUs on the one machine",
    "verified": "only hosts Vast.ai verified",
    "image": OPTIONS_BY_NAME["image"].help,
    "onstart": "a shell script the instance runs when it starts",
    "env": "environment variables of the instance",
    "bid": OPTIONS_BY_NAME["bid"].help + "; None rents on-demand",
}


def register(config: pytest.Config) -> None:
    for line in MARKERS.values():
        config.addinivalue_line("markers", line)


def check_offer_marker(mark: pytest.Mark, where: str) -> dict[str, Any]:
    """The converted arguments of one ``dumont_offer`` marker; UsageError naming the test for anything wrong."""
    if mark.args:
        raise pytest.UsageError(f"{where}: @pytest.mark.dumont_offer takes keyword arguments only, got {mark.args!r}")
    converted: dict[str, Any] = {}
    for name, value in mark.kwargs.items():
        if name not in OFFER_ARGUMENTS:
            known = ", ".join(sorted(OFFER_ARGUMENTS))
            import difflib  # only for a typo: collection without one does not load it

            close = difflib.get_close_matches(name, OFFER_ARGUMENTS, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise pytest.UsageError(f"{where}: unknown dumont_offer argument {name!r}{guess}; known arguments: {known}")
        convert, _field = OFFER_ARGUMENTS[name]
        try:
            converted[name] = convert(value)
        except (ValueError, TypeError) as exc:
            raise pytest.UsageError(
                f"{where}: dumont_offer({name}={value!r}): {name} {exc} ({OFFER_ARGUMENT_HELP[name]})"
            ) from None
    return converted


def provision_request(item: pytest.Item, settings: Settings) -> ProvisionRequest:
    """The request for ``item``: session settings overridden by its markers, closest marker last."""
    from pytest_dumont.provisioning.contracts import (
        ProvisionRequest,  # imported once a GPU test needs it, not at collection
    )

    request = ProvisionRequest(filters=settings.filters, image=settings.image)
    for mark in reversed(list(item.iter_markers("dumont_offer"))):
        for name, value in check_offer_marker(mark, item.nodeid).items():
            request = _apply(request, OFFER_ARGUMENTS[name][1], value)
    return request


def _apply(request: ProvisionRequest, field: str, value: Any) -> ProvisionRequest:
    if field.startswith("filters."):
        return replace(request, filters=replace(request.filters, **{field.removeprefix("filters."): value}))
    return replace(request, **{field: value})


def mark_gpu_items(items: list[pytest.Item], check: bool = True) -> tuple[bool, bool]:
    """Add ``real_gpu`` to GPU tests and check every ``dumont_offer`` marker before anything runs; return whether
    there is a GPU test (only then are cassettes worth opening) and whether one uses the session's shared instance
    (only then is prewarming worth a look). ``check=False`` when nothing will run (``--fixtures``, ``--co``): a
    marker typo must not stop a listing.

    Collection of a large suite must stay as fast with the plugin as without it, so the loop does little per test:
    each collector's own markers are checked once (a module's marker is not re-read for each of its tests), and the
    fixture names are matched in one set operation.
    """
    seen: set[int] = set()
    gpu = shared = False
    for item in items:
        if check and item.own_markers:
            _check_own_markers(item)
        node: Any = item.parent  # its Collectors up to the Session (pytest has no public Node type)
        while check and node is not None and id(node) not in seen:
            seen.add(id(node))
            if node.own_markers:
                _check_own_markers(node)
            node = node.parent
        names = getattr(item, "fixturenames", ())
        if not GPU_FIXTURES.isdisjoint(names):
            item.add_marker(pytest.mark.real_gpu)
            gpu = True
            shared = shared or not SHARED_INSTANCE_FIXTURES.isdisjoint(names)
    return gpu, shared


def _check_own_markers(node: Any) -> None:
    for mark in node.own_markers:
        if mark.name == "dumont_offer":
            check_offer_marker(mark, node.nodeid)
