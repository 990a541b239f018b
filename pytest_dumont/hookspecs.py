"""Hooks pytest-dumont calls, for users' conftest.py files. A hook that raises is reported, never fatal.

Each is called with keyword arguments; take only those you need (pluggy passes the ones you name). Example
``conftest.py`` lines are in each docstring; docs/reporting.md has them all.
"""

from __future__ import annotations

from typing import Any

import pytest

hookspec = pytest.hookspec


@hookspec
def pytest_dumont_phase_finished(phase: dict[str, Any], instance_id: int | None, config: pytest.Config) -> None:
    """A phase ended: ``phase`` has name, kind (provision|command|user), started, duration, outcome, cost_usd.

    Example::

        def pytest_dumont_phase_finished(phase):
            if phase["kind"] == "provision" and phase["duration"] > 120:
                print(f"slow {phase['name']}: {phase['duration']:.0f} s")
    """


@hookspec
def pytest_dumont_instance_created(instance: dict[str, Any], config: pytest.Config) -> None:
    """An instance was rented: ``instance`` has instance_id, label, offer (gpu_name, dph_total, geolocation...).

    Example::

        def pytest_dumont_instance_created(instance):
            print("rented", instance["instance_id"], instance["offer"]["gpu_name"])
    """


@hookspec
def pytest_dumont_instance_destroyed(instance: dict[str, Any], config: pytest.Config) -> None:
    """An instance is confirmed destroyed: ``instance`` is its full JSON report entry (phases, cost...).

    Example::

        def pytest_dumont_instance_destroyed(instance):
            requests.post(WEBHOOK, json={"id": instance["instance_id"], "usd": instance["cost"]["billed_usd"]})
    """


@hookspec
def pytest_dumont_session_cost(report: dict[str, Any], config: pytest.Config) -> None:
    """The session's report document (schema in docs/reporting.md), once, on the controller, at the end.

    Example::

        def pytest_dumont_session_cost(report):
            if report["totals"]["billed_usd"] > 0.10:
                print(f"this suite got expensive: ${report['totals']['billed_usd']:.2f}")
    """
