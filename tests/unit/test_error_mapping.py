"""Every answer the API is known to give maps onto one error of the tree (vast-api.md sections 3, 5 and 10)."""

from __future__ import annotations

import json

import pytest
import requests

from pytest_dumont.errors import (
    AuthenticationFailed,
    InstanceNotFound,
    OfferUnavailable,
    RateLimited,
    ServerError,
    VastApiError,
)
from pytest_dumont.vast.client import _decode


def answer(status: int, body: object, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    response.headers.update(headers or {"Content-Type": "application/json"})
    return response


@pytest.mark.parametrize(
    ("status", "body", "path", "expected"),
    [
        (
            401,
            {"success": False, "error": "auth_error", "msg": "Invalid user key"},
            "/api/v0/bundles/",
            AuthenticationFailed,
        ),
        (403, {"detail": "This action requires login."}, "/api/v0/bundles/", AuthenticationFailed),
        (
            404,
            {"success": False, "error": "auth_error", "msg": "Invalid user key"},
            "/api/v0/bundles/",
            AuthenticationFailed,
        ),
        (400, {"error": "no_such_ask"}, "/api/v0/asks/7/", OfferUnavailable),
        (400, {"success": False, "msg": "no_such_ask"}, "/api/v0/asks/7/", OfferUnavailable),
        (
            404,
            {
                "success": False,
                "error": "invalid_args",
                "msg": "error 404/3603: no_such_ask Instance type by id 7 is not available.",
            },
            "/api/v0/asks/7/",
            OfferUnavailable,
        ),
        (
            410,
            {"success": False, "error": "no_such_ask", "msg": "Instance type 7 is no longer available."},
            "/api/v0/asks/7/",
            OfferUnavailable,
        ),
        (
            404,
            {"success": False, "error": "no_such_instance", "msg": "Instance not found."},
            "/api/v0/instances/9/",
            InstanceNotFound,
        ),
        (
            404,
            {"success": False, "error": "not_found", "msg": "Instance not found."},
            "/api/v0/instances/9/",
            InstanceNotFound,
        ),
        (429, "API requests too frequent endpoint threshold=4.5", "/api/v0/asks/7/", RateLimited),
        (502, "<html>Bad Gateway</html>", "/api/v0/bundles/", ServerError),
        (
            400,
            {"success": False, "error": "invalid_args", "msg": "error 400/3467: Invalid args"},
            "/api/v0/asks/7/",
            VastApiError,
        ),
        (
            200,
            {"success": False, "msg": "Required resources are currently unavailable"},
            "/api/v0/instances/9/",
            VastApiError,
        ),
    ],
)
def test_answers_map_to_the_error_tree(status, body, path, expected):
    with pytest.raises(expected) as info:
        _decode(answer(status, body), "PUT", path)
    assert type(info.value) is expected
    assert info.value.status == status
    assert path in str(info.value)


def test_rate_limit_keeps_retry_after_and_a_plain_text_message():
    with pytest.raises(RateLimited) as info:
        _decode(answer(429, "API requests too frequent", {"Retry-After": "2"}), "GET", "/api/v0/instances/1/")
    assert info.value.retry_after == 2.0
    assert "API requests too frequent" in str(info.value)


def test_success_returns_the_json_object():
    assert _decode(answer(200, {"success": True, "new_contract": 5}), "PUT", "/api/v0/asks/1/") == {
        "success": True,
        "new_contract": 5,
    }
