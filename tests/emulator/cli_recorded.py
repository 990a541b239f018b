"""The search body the official CLI 1.9.1 sent for a typical query (vast-api.md section 2), shared by the tests."""

from __future__ import annotations

from typing import Any


def cli_recorded_query(limit: int) -> dict[str, Any]:
    """``search offers 'gpu_name=RTX_4090 num_gpus=1 reliability>0.98 gpu_ram>=20 geolocation in [US,CA]'``."""
    return {
        "verified": {"eq": True},
        "external": {"eq": False},
        "rentable": {"eq": True},
        "gpu_name": {"eq": "RTX 4090"},
        "num_gpus": {"eq": "1"},
        "reliability": {"gt": "0.98"},
        "gpu_ram": {"gte": 20000.0},
        "geolocation": {"in": ["US", "CA"]},
        "order": [["dph_total", "asc"]],
        "type": "on-demand",
        "limit": limit,
        "allocated_storage": 5.0,
    }
