"""Errors carry context and never a secret."""

from __future__ import annotations

from pytest_dumont.errors import AuthenticationFailed, NoMatchingOffer, VastApiError
from pytest_dumont.secrets.redact import redact, register_secret
from pytest_dumont.session.settings import Secret


def test_registered_secrets_are_redacted_from_messages():
    register_secret("sk-unit-test-0123456789")
    error = VastApiError(400, "invalid_args", "bad key sk-unit-test-0123456789 in body", method="PUT", path="/x")
    assert "sk-unit-test-0123456789" not in str(error)
    assert error.status == 400 and error.error == "invalid_args"


def test_secret_shapes_are_redacted_without_registration():
    text = (
        "Authorization: Bearer abcdefghijklmnop url?api_key=zzzzzzzz&x=1 "
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    )
    cleaned = redact(text)
    assert "abcdefghijklmnop" not in cleaned and "zzzzzzzz" not in cleaned and "AAAA" not in cleaned


def test_auth_failure_names_the_variable_not_the_value():
    secret = Secret("vast-key-that-must-not-show-42")
    error = AuthenticationFailed(401, "auth_error", f"Invalid user key {secret.reveal()}")
    assert "VAST_API_KEY" in str(error)
    assert secret.reveal() not in str(error)
    assert repr(secret) == "Secret('***')"


def test_no_matching_offer_lists_reasons_and_what_to_relax():
    error = NoMatchingOffer("1x RTX 4090, at most $0.1/h", ["3 cost more than $0.1/h"])
    assert "3 cost more than $0.1/h" in str(error)
    assert "--dumont-max-dph" in str(error)
