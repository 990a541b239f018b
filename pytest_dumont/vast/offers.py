"""Offer filters: what a test asks for, the search query that asks Vast for it, and why nothing matched.

The query is the JSON the official CLI sends to ``POST /api/v0/bundles/``: ``{"field": {"op": value}}`` plus
``order``, ``type``, ``limit`` and ``allocated_storage``. GPU names travel with spaces (``RTX 4090``); users may
write them with underscores as the CLI accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_dumont.errors import NoMatchingOffer
from pytest_dumont.vast.models import Offer

SEARCH_LIMIT = 64  # the API returns at most 64 offers a search, whatever limit says


def normalise_gpu_name(name: str) -> str:
    """``RTX_4090`` -> ``RTX 4090``: the API stores names with spaces."""
    return " ".join(name.replace("_", " ").split())


@dataclass(frozen=True)
class OfferFilters:
    """What kind of machine a test wants. Hashable: instances are shared between tests that ask the same."""

    gpu_names: tuple[str, ...] = ("RTX 4090",)
    max_dph: float = 0.50
    min_disk_gb: float = 20.0
    min_reliability: float = 0.90
    num_gpus: int = 1
    verified: bool = True
    disk_gb: float = 20.0  # what we rent; prices storage into dph_total
    # Interruptible: the bid for the GPU in $/h, sent as the create's price; None rents on-demand. The search then
    # prices offers at their min_bid (type "bid"), and an offer whose min_bid is above the bid is left out.
    bid: float | None = None

    def describe(self) -> str:
        gpus = " or ".join(self.gpu_names)
        return (
            f"{self.num_gpus}x {gpus}, at most ${self.max_dph:g}/h, at least {self.min_disk_gb:g} GB disk, "
            f"reliability >= {self.min_reliability:g}"
            + (", verified" if self.verified else "")
            + (f", interruptible at a bid of ${self.bid:g}/h" if self.bid is not None else "")
        )

    def key_fields(self) -> dict[str, Any]:
        """The fields as a dict, for keys that name a request (cassettes, parking). An on-demand request leaves
        ``bid`` out, so it keeps the key it had before bids existed and recorded cassettes still match it."""
        fields = dataclasses.asdict(self)
        if fields["bid"] is None:
            del fields["bid"]
        return fields

    def query(self) -> dict[str, Any]:
        """The search body, cheapest first."""
        q: dict[str, Any] = self._base_query()
        q["dph_total"] = {"lte": self.max_dph}
        q["disk_space"] = {"gte": self.min_disk_gb}
        q["reliability"] = {"gte": self.min_reliability}
        return q

    def _base_query(self) -> dict[str, Any]:
        names = [normalise_gpu_name(n) for n in self.gpu_names]
        q: dict[str, Any] = {
            "rentable": {"eq": True},
            "rented": {"eq": False},
            "external": {"eq": False},
            "num_gpus": {"eq": self.num_gpus},
            "gpu_name": {"eq": names[0]} if len(names) == 1 else {"in": names},
            "order": [["dph_total", "asc"]],
            "type": "on-demand" if self.bid is None else "bid",
            "limit": SEARCH_LIMIT,
            "allocated_storage": self.disk_gb,
        }
        if self.verified:
            q["verified"] = {"eq": True}
        return q

    def preference(self, offer: Offer) -> int:
        """0 for the first GPU type asked for, 1 for the second...; offers of other types sort last."""
        wanted = [normalise_gpu_name(n).lower() for n in self.gpu_names]
        name = normalise_gpu_name(offer.gpu_name).lower()
        return wanted.index(name) if name in wanted else len(wanted)

    def matches(self, offer: Offer) -> bool:
        """Check an offer client-side too: a filter the server ignored must not rent the wrong machine."""
        return not self.rejections(offer)

    def rejections(self, offer: Offer) -> list[str]:
        """The names of the filters ``offer`` fails."""
        return [name for name, (passes, _) in self._checks().items() if not passes(offer)]

    def _checks(self) -> dict[str, tuple[Callable[[Offer], bool], str]]:
        names = {normalise_gpu_name(n).lower() for n in self.gpu_names}
        return {
            "gpu": (lambda o: normalise_gpu_name(o.gpu_name).lower() in names, "is another GPU"),
            "num_gpus": (lambda o: o.num_gpus == self.num_gpus, f"has not exactly {self.num_gpus} GPU(s)"),
            "max_dph": (lambda o: o.dph_total <= self.max_dph + 1e-12, f"costs more than ${self.max_dph:g}/h"),
            "min_disk": (lambda o: o.disk_space >= self.min_disk_gb, f"has less than {self.min_disk_gb:g} GB disk"),
            "min_reliability": (
                lambda o: o.reliability >= self.min_reliability,
                f"has reliability below {self.min_reliability:g}",
            ),
            "verified": (lambda o: o.verified or not self.verified, "is not verified"),
            "bid": (
                lambda o: self.bid is None or o.min_bid is None or o.min_bid <= self.bid + 1e-12,
                f"asks a minimum bid above your ${self.bid or 0.0:g}/h",
            ),
        }

    def explain(self, candidates: Sequence[Offer], gpus_on_offer: Sequence[str] = ()) -> list[str]:
        """Say which filters ruled out ``candidates`` (offers found with only the GPU filter applied)."""
        if not candidates:
            reasons = [f"there is no rentable {' or '.join(self.gpu_names)} offer at all"]
            if gpus_on_offer:
                reasons.append("GPUs on offer now: " + ", ".join(sorted(set(gpus_on_offer))))
            return reasons
        reasons = [f"{len(candidates)} {' or '.join(self.gpu_names)} offer(s) exist, but:"]
        for name, (passes, why) in self._checks().items():
            if name == "gpu":
                continue
            failing = [o for o in candidates if not passes(o)]
            if failing:
                detail = ""
                if name == "max_dph":
                    detail = f" (cheapest is ${min(o.dph_total for o in candidates):.4f}/h)"
                elif name == "min_disk":
                    detail = f" (largest has {max(o.disk_space for o in candidates):g} GB)"
                elif name == "min_reliability":
                    detail = f" (best is {max(o.reliability for o in candidates):.3f})"
                elif name == "bid":
                    detail = f" (lowest is ${min(o.min_bid or 0.0 for o in failing):.4f}/h)"
                reasons.append(f"{len(failing)} {why}{detail}")
        return reasons

    def relaxed_query(self) -> dict[str, Any]:
        """The same search with only the GPU and rentability filters, used to explain an empty result."""
        q = self._base_query()
        q.pop("verified", None)
        q.pop("num_gpus", None)
        return q


class OfferSource(Protocol):
    """Where offers come from: ``VastClient.search_offers``."""

    def search_offers(self, query: Mapping[str, Any]) -> list[Offer]: ...


def find_offers(source: OfferSource, filters: OfferFilters) -> list[Offer]:
    """Matching offers, best first; ``NoMatchingOffer`` saying which filters ruled offers out when there is none.

    Shared by the Provisioner and ``dumont offers``, so the command shows exactly what a session would try to rent.
    """
    offers = [o for o in source.search_offers(filters.query()) if filters.matches(o)]
    # GPU types in the order the user preferred them, then cheapest first, then the more reliable host.
    offers.sort(key=lambda o: (filters.preference(o), o.dph_total, -o.reliability))
    if offers:
        return offers
    candidates = source.search_offers(filters.relaxed_query())
    candidates = [o for o in candidates if not {"gpu"} & set(filters.rejections(o))]
    on_offer: list[str] = []
    if not candidates:
        on_offer = [o.gpu_name for o in source.search_offers({"rentable": {"eq": True}, "limit": SEARCH_LIMIT})]
    raise NoMatchingOffer(filters.describe(), filters.explain(candidates, on_offer))
