"""Fixtures shared by the emulator's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from pytest_dumont.emulator.sandbox import GpuFacts, Sandbox


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A fresh instance sandbox with the default GPU, cleaned up (processes, namespace, files) after the test."""
    box = Sandbox(tmp_path / "instance", GpuFacts(), {"CONTAINER_ID": "4242"})
    yield box
    box.cleanup()


# -- the HTTP API ------------------------------------------------------------------------------------------------------

SEED_OFFER = 29292839  # the default market's copy of the seed run's RTX 4090


class Api:
    """A ``requests`` session bound to one emulator: paths are relative, the Bearer key is sent."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.url = emulator.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {emulator.api_key}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, json={}, **kwargs)

    def create(self, offer_id: int = SEED_OFFER, **fields: Any) -> int:
        """Create the way CLI 1.9.1 does (every key present) and return the new instance id."""
        body = {
            "client_id": "me",
            "image": "nvidia/cuda:12.1.0-base-ubuntu22.04",
            "env": {},
            "price": None,
            "disk": 20.0,
            "label": "dumont-test",
            "extra": None,
            "onstart": None,
            "image_login": None,
            "python_utf8": False,
            "lang_utf8": False,
            "use_jupyter_lab": False,
            "jupyter_dir": None,
            "force": False,
            "cancel_unavail": False,
            "template_hash_id": None,
            "user": None,
            "runtype": "ssh_direc ssh_proxy",
            **fields,
        }
        response = self.put(f"/api/v0/asks/{offer_id}/", json=body)
        assert response.status_code == 200, response.text
        return int(response.json()["new_contract"])

    def row(self, instance_id: int) -> Any:
        return self.get(f"/api/v0/instances/{instance_id}/", params={"owner": "me"}).json()["instances"]

    def advance(self, instance_id: int, times: int = 1) -> None:
        for _ in range(times):
            response = self.post(f"/_emulator/instances/{instance_id}/advance")
            assert response.status_code == 200, response.text


@pytest.fixture
def emulator(make_emulator: Callable[..., Any]) -> Any:
    """A manual-profile emulator without SSH servers: nothing moves until a test advances it."""
    return make_emulator(profile="manual", ssh=False)


@pytest.fixture
def make_api() -> Iterator[Callable[[Any], Api]]:
    """``make_api(emulator)``: an ``Api`` for any emulator a test started itself."""
    made: list[Api] = []

    def make(emulator: Any) -> Api:
        made.append(Api(emulator))
        return made[-1]

    yield make
    for client in made:
        client.session.close()


@pytest.fixture
def api(emulator: Any, make_api: Callable[[Any], Api]) -> Api:
    """The HTTP API of the ``emulator`` fixture."""
    return make_api(emulator)
