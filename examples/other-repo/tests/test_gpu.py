"""GPU tests of this project: they rent a machine through pytest-dumont (or replay, or use its emulator)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.dumont_offer(gpu="RTX 4090", max_dph=0.50)


def test_the_rented_gpu_is_the_one_asked_for(vast_gpu, ssh_session):
    assert vast_gpu.gpu_name == "RTX 4090"
    name = ssh_session.run("nvidia-smi --query-gpu=name --format=csv,noheader", hide=True).stdout
    assert "RTX 4090" in name


def test_the_model_is_on_the_machine(ssh_session, model_dir, model_name):
    assert model_dir.endswith(model_name)
    assert ssh_session.run(f"cat {model_dir}/weights.bin", hide=True).stdout.strip() == "weights"


def test_cpu_only_code_needs_no_gpu():
    assert sum(range(4)) == 6
