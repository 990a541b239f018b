"""vcrpy for a test body's own HTTP: ``<module>/<test>.yaml``, as pytest-recording users know them, with our
matchers, scrubbing hooks and atomic saves. Imported only around a test that has such a cassette or records one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import vcr
from vcr.persisters.filesystem import FilesystemPersister
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

from pytest_dumont.cassettes.format import CassetteError, write_atomic
from pytest_dumont.cassettes.http import MATCH_ON, VcrRequest, request_hook, response_hook, sent_by_tape
from pytest_dumont.secrets.scrub import Scrubber

MATCHER_NAMES = ("dumont_method", "dumont_path", "dumont_query", "dumont_body")


class AtomicPersister(FilesystemPersister):  # type: ignore[misc]  # vcrpy is untyped
    """vcrpy's file persister, but a corrupted file is an error (not a silent re-record) and saves are atomic."""

    @classmethod
    def load_cassette(cls, cassette_path: str, serializer: Any) -> Any:
        try:
            return super().load_cassette(cassette_path, serializer)
        except (FileNotFoundError, OSError):
            raise
        except Exception as exc:
            raise CassetteError(
                f"HTTP cassette {cassette_path} is corrupted ({type(exc).__name__}): delete it and record the test "
                "again"
            ) from None

    @staticmethod
    def save_cassette(cassette_path: str, cassette_dict: Any, serializer: Any) -> None:
        write_atomic(Path(cassette_path), serialize(cassette_dict, serializer))


def vcr_for_tests(scrubber: Scrubber) -> vcr.VCR:
    """The vcrpy configuration for a test's own HTTP: our matchers, scrubbing, decoded bodies, atomic saves.

    The provisioning client's calls (an instance rented inside the test) are on their own tape: vcrpy ignores them.
    """
    scrub = request_hook(scrubber)

    def before_record_request(request: VcrRequest) -> VcrRequest | None:
        return None if sent_by_tape() else scrub(request)

    config = vcr.VCR(
        serializer="yaml",
        match_on=MATCHER_NAMES,
        before_record_request=before_record_request,
        before_record_response=response_hook(scrubber),
        decode_compressed_response=True,
        record_on_exception=False,
    )
    for name, matcher in zip(MATCHER_NAMES, MATCH_ON, strict=True):
        config.register_matcher(name, matcher)
    config.register_persister(AtomicPersister)
    config.register_serializer("yaml", yamlserializer)
    return config
