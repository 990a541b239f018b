"""A small, typed client for the Vast.ai REST API on ``requests``.

Only what the instance lifecycle needs, with the paths and shapes the official CLI 1.9.1 uses (see
docs/vast-api.md in the shared docs): v0 for everything but the instance list, which is v1 (v0's answers 410).
Every call has a timeout and runs under a retry policy; every error becomes one of ``pytest_dumont.errors``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from pytest_dumont import __version__
from pytest_dumont.errors import (
    AuthenticationFailed,
    CreateRefused,
    InstanceNotFound,
    OfferUnavailable,
    RateLimited,
    ServerError,
    VastApiError,
    VastConnectionError,
    redact,
    register_secret,
)
from pytest_dumont.vast import DEFAULT_API_URL as DEFAULT_API_URL
from pytest_dumont.vast.models import Instance, Offer
from pytest_dumont.vast.retry import DEFAULT_POLICY, RequestNotSent, RetryPolicy

LIST_PAGE_SIZE = 25  # the v1 list serves at most 25 rows a page


@dataclass(frozen=True)
class CreateRequest:
    """The body of ``PUT /api/v0/asks/{offer_id}/``: what to run on the rented machine."""

    image: str
    disk_gb: float
    label: str
    runtype: str = "ssh_direc ssh_proxy"  # SSH, direct port when the host has one, else the proxy
    onstart: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    price: float | None = None  # a bid in $/h for interruptible; None is on-demand

    def body(self) -> dict[str, Any]:
        # The CLI always sends every key; the API rejects nothing for it, and the emulator checks the same shape.
        return {
            "client_id": "me",
            "image": self.image,
            "disk": float(self.disk_gb),
            "label": self.label,
            "runtype": self.runtype,
            "onstart": self.onstart,
            "env": dict(self.env),
            "price": self.price,
            "args": None,
            "image_login": None,
            "cancel_unavail": False,
        }


@dataclass(frozen=True, repr=False)
class CreatedInstance:
    """What a successful create returns: the new instance id and its restricted per-instance key."""

    id: int
    instance_api_key: str | None = None

    def __repr__(self) -> str:
        return f"CreatedInstance(id={self.id})"


class VastClient:
    """Calls the Vast.ai API. Thread-safe for the one-call-at-a-time use the lifecycle makes of it."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        policy: RetryPolicy = DEFAULT_POLICY,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        register_secret(api_key)
        self.timeout = timeout
        self.policy = policy
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"pytest-dumont/{__version__}"

    def __repr__(self) -> str:
        return f"VastClient(base_url={self.base_url!r})"

    @property
    def teardown_policy(self) -> RetryPolicy:
        """What a destroy runs under: this client's policy, trying longer (a given-up destroy leaves money running)."""
        return self.policy.for_teardown()

    def close(self) -> None:
        self._session.close()

    # --- offers -------------------------------------------------------------------------------------------------

    def search_offers(self, query: Mapping[str, Any]) -> list[Offer]:
        """``POST /api/v0/bundles/``: offers matching ``query`` (the JSON the CLI builds)."""
        data = self._call("POST", "/api/v0/bundles/", body=dict(query))
        return [Offer.from_api(row) for row in (data.get("offers") or []) if isinstance(row, Mapping)]

    # --- instances ----------------------------------------------------------------------------------------------

    def create_instance(self, offer_id: int, request: CreateRequest) -> CreatedInstance:
        """``PUT /api/v0/asks/{id}/``. Not retried once sent: a retry could rent a second machine."""
        data = self._call("PUT", f"/api/v0/asks/{int(offer_id)}/", body=request.body(), idempotent=False)
        contract = data.get("new_contract")
        if contract is None:
            raise VastApiError(
                200,
                data.get("error"),
                "create answered without new_contract",
                method="PUT",
                path=f"/api/v0/asks/{int(offer_id)}/",
            )
        key = data.get("instance_api_key")
        register_secret(key if isinstance(key, str) else None)
        return CreatedInstance(id=int(contract), instance_api_key=key if isinstance(key, str) else None)

    def show_instance(self, instance_id: int) -> Instance | None:
        """``GET /api/v0/instances/{id}/?owner=me``; None once the instance is gone (the API says null)."""
        data = self._call("GET", f"/api/v0/instances/{int(instance_id)}/", params={"owner": "me"})
        row = data.get("instances")
        return Instance.from_api(row) if isinstance(row, Mapping) else None

    def list_instances(self, select_filters: Mapping[str, Any] | None = None) -> Iterator[Instance]:
        """``GET /api/v1/instances/``, every page (v0's list answers 410 since mid-2026)."""
        token: str | None = None
        while True:
            params = {
                "select_filters": json.dumps(dict(select_filters or {})),
                "order_by": json.dumps([{"col": "id", "dir": "asc"}]),
                "limit": str(LIST_PAGE_SIZE),
            }
            if token:
                params["after_token"] = token
            data = self._call("GET", "/api/v1/instances/", params=params)
            for row in data.get("instances") or []:
                if isinstance(row, Mapping):
                    yield Instance.from_api(row)
            token = data.get("next_token")
            if not token:
                return

    def destroy_instance(self, instance_id: int) -> None:
        """``DELETE /api/v0/instances/{id}/``. Raises InstanceNotFound when it is already gone."""
        path = f"/api/v0/instances/{int(instance_id)}/"
        self._call("DELETE", path, body={}, policy=self.teardown_policy)

    def set_state(self, instance_id: int, state: str) -> None:
        """Stop (``"stopped"``) or start (``"running"``) an instance."""
        if state not in ("stopped", "running"):
            raise ValueError(f"state must be 'stopped' or 'running', not {state!r}")
        self._call("PUT", f"/api/v0/instances/{int(instance_id)}/", body={"state": state})

    def reboot_instance(self, instance_id: int) -> None:
        """``PUT /api/v0/instances/reboot/{id}/``: restart the container (SSH drops; no GPU billing meanwhile)."""
        self._call("PUT", f"/api/v0/instances/reboot/{int(instance_id)}/", body={})

    def set_label(self, instance_id: int, label: str) -> None:
        self._call("PUT", f"/api/v0/instances/{int(instance_id)}/", body={"label": label})

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        """``POST /api/v0/instances/{id}/ssh/``: let ``public_key`` log in as root."""
        if not public_key.startswith("ssh-"):
            raise ValueError("attach_ssh_key takes an OpenSSH public key ('ssh-ed25519 AAAA...')")
        self._call("POST", f"/api/v0/instances/{int(instance_id)}/ssh/", body={"ssh_key": public_key})

    def current_user(self) -> dict[str, Any]:
        """``GET /api/v0/users/current``: the account (credit, balance), without its key."""
        data = self._call("GET", "/api/v0/users/current")
        data.pop("api_key", None)
        return data

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        idempotent: bool = True,
        policy: RetryPolicy | None = None,
    ) -> dict[str, Any]:
        policy = policy or self.policy
        return policy.call(lambda: self._request(method, path, params, body), idempotent=idempotent)

    def _request(
        self, method: str, path: str, params: Mapping[str, str] | None, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        url = self.base_url + path
        if params:
            url += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            response = self._session.request(
                method,
                url,
                json=body if body is not None else None,
                headers=headers,
                timeout=(min(10.0, self.timeout), self.timeout),
            )
        except (requests.ConnectTimeout, requests.exceptions.SSLError) as exc:
            raise RequestNotSent(
                f"{method} {path}: could not connect to {self.base_url} ({type(exc).__name__})"
            ) from None
        except requests.ConnectionError as exc:
            if _never_sent(exc):
                raise RequestNotSent(
                    f"{method} {path}: could not connect to {self.base_url} ({_reason(exc)})"
                ) from None
            raise VastConnectionError(
                f"{method} {path}: connection to {self.base_url} failed ({_reason(exc)})"
            ) from None
        except requests.Timeout:
            raise VastConnectionError(f"{method} {path}: no answer within {self.timeout:g} s") from None
        return _decode(response, method, path)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the TCP connection itself failed, so the server cannot have acted on the request."""
    text = repr(exc)
    return any(
        s in text
        for s in (
            "NewConnectionError",
            "Connection refused",
            "Name or service not known",
            "Failed to resolve",
            "nodename nor servname",
        )
    )


def _reason(exc: BaseException) -> str:
    return redact(str(exc).splitlines()[0])[:300] if str(exc) else type(exc).__name__


def _decode(response: requests.Response, method: str, path: str) -> dict[str, Any]:
    """Turn a response into its JSON object, or into the error it means."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    data: dict[str, Any] = payload if isinstance(payload, dict) else {}
    status = response.status_code
    if status < 400 and data.get("success") is not False:
        if payload is not None and not isinstance(payload, dict):
            raise VastApiError(status, None, "expected a JSON object", method=method, path=path)
        return data
    error = data.get("error") if isinstance(data.get("error"), str) else None
    msg = data.get("msg") or data.get("message") or data.get("detail")
    if not isinstance(msg, str):
        msg = response.text[:300] if payload is None and response.text else None
    text = f"{error or ''} {msg or ''}".lower()
    kwargs: dict[str, Any] = {"method": method, "path": path}
    contract = data.get("new_contract")
    if path.startswith("/api/v0/asks/") and isinstance(contract, int) and not isinstance(contract, bool):
        # Refused, yet rented (Vast makes an underbid instance stopped): whoever called must destroy it.
        key = data.get("instance_api_key")
        register_secret(key if isinstance(key, str) else None)
        raise CreateRefused(status, error, msg, contract=contract, **kwargs)
    if status in (401, 403) or error == "auth_error":
        raise AuthenticationFailed(status, error, msg, **kwargs)
    if status == 429:
        raise RateLimited(status, error, msg, retry_after=_retry_after(response), **kwargs)
    if status >= 500:
        raise ServerError(status, error, msg, **kwargs)
    if "no_such_ask" in text or (path.startswith("/api/v0/asks/") and "not available" in text):
        raise OfferUnavailable(status, error or "no_such_ask", msg, **kwargs)
    if status == 404 and ("no_such_instance" in text or error == "not_found") and "/instances/" in path:
        raise InstanceNotFound(status, error, msg, **kwargs)
    raise VastApiError(status, error, msg, **kwargs)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: treat as absent and back off on our own schedule
