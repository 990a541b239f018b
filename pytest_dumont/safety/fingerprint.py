"""What a session asked for, as ``--dumont-reuse`` compares it: a session adopts only an instance parked for the same.

The fingerprint is a hash (API, filters, image, onstart, env names and values), so the ledger file never holds an env
value; ``describe`` says the same for people, without the values.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_dumont.provisioning.provisioner import ProvisionRequest


def fingerprint(request: ProvisionRequest, api_url: str) -> str:
    """What was asked, hashed: a session adopts only an instance parked for exactly the same request on the same API."""
    data = {
        "version": 1,
        "api_url": api_url.rstrip("/"),
        "filters": request.filters.key_fields(),
        "image": request.image,
        "onstart": request.onstart,
        "env": sorted(request.env),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def describe(request: ProvisionRequest) -> str:
    """What was asked, for people (``dumont parked``): no env values, they may be secret."""
    env = f", env {', '.join(sorted(k for k, _ in request.env))}" if request.env else ""
    onstart = ", with onstart" if request.onstart else ""
    return f"{request.image} on {request.filters.describe()}, {request.filters.disk_gb:g} GB{env}{onstart}"
