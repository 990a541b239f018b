"""This project's own pytest options and fixtures, built on pytest-dumont's ``ssh_session``."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--model-name", default=None, help="the model the GPU tests load (default: ini model_name)")
    parser.addini("model_name", default="tiny-llm", help="the model the GPU tests load")


@pytest.fixture(scope="session")
def model_name(pytestconfig: pytest.Config) -> str:
    """The command line wins over the ini file."""
    return str(pytestconfig.getoption("--model-name") or pytestconfig.getini("model_name"))


@pytest.fixture
def model_dir(ssh_session, model_name: str) -> str:
    """A directory on the rented machine holding the model's (here: fake) weights."""
    path = f"/workspace/models/{model_name}"
    ssh_session.run(f"mkdir -p {path} && echo weights > {path}/weights.bin", hide=True)
    return path
