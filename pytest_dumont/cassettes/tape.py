"""The one replay rule, for HTTP tapes and SSH transcripts alike: each recorded answer plays once, in order.

A request (or an SSH operation) is answered by the first recorded item that matches it and has not been played yet,
which is how vcrpy plays identical polls (``allow_playback_repeats`` never). When nothing matches, ``miss`` says what
was asked, the nearest thing recorded, and whether it was recorded but already played.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class PlayOnce(Generic[T]):
    """Recorded items, each handed out once, first match first."""

    def __init__(self, items: Sequence[T], describe: Callable[[T], str]) -> None:
        self.items = items  # not copied: a transcript being recorded grows under it
        self.describe = describe
        self.played: set[int] = set()

    def take(self, matches: Callable[[T], bool]) -> T | None:
        """The first unplayed item ``matches`` accepts, now played; None when there is none."""
        for index, item in enumerate(self.items):
            if index not in self.played and matches(item):
                self.played.add(index)
                return item
        return None

    def miss(self, wanted: str) -> str:
        """Why ``wanted`` found no answer: recorded but used up, or the nearest recorded item."""
        recorded = [self.describe(item) for item in self.items]
        played = f"{len(self.played)} of {len(recorded)} played"
        if wanted in recorded:
            return f"every recorded answer to it was already played ({played})"
        nearest = difflib.get_close_matches(wanted, recorded, n=1, cutoff=0.0)
        return f"nearest recorded: {nearest[0]} ({played})" if nearest else "the cassette records nothing"
