"""Inference throughput (an Ollama-style model server): start a model server on the instance, send prompts, report
tokens per second and time to first token.

Live: Ollama with ``qwen3:0.6b`` (it downloads Ollama and the model, so it needs the internet: not runnable offline).
Against the emulator: a small token server doing real hashing work per token, same protocol, same meter.
"""

from __future__ import annotations

from pytest_dumont.provisioning.factory import InstanceFactory
from pytest_dumont.scenarios.conftest import Figures
from pytest_dumont.scenarios.throughput import OLLAMA_QWEN, local_token_server, measure_throughput

PROMPTS = [
    "Why is the sky blue? Answer in one sentence.",
    "Write a haiku about GPUs.",
    "What is 17 times 23?",
]


def test_inference_throughput(dumont_instance_factory: InstanceFactory, scenario_figures: Figures) -> None:
    factory = dumont_instance_factory
    gpu = factory()
    server = local_token_server() if gpu.emulated else OLLAMA_QWEN
    max_tokens = 32 if gpu.emulated else 128
    with factory.phase(gpu, f"inference ({server.name})"):
        result = measure_throughput(gpu.connection, server, PROMPTS, max_tokens=max_tokens, clock=factory.clock)

    assert len(result.prompts) == len(PROMPTS)
    assert all(p.tokens > 1 for p in result.prompts)
    if gpu.emulated:  # the stand-in answers exactly num_predict tokens
        assert result.tokens == len(PROMPTS) * max_tokens
    assert result.tokens_per_s > 0 and result.ttft_s > 0

    scenario_figures(f"model {result.model}", result.tokens, "tokens")
    scenario_figures("tokens per second", result.tokens_per_s, "tok/s")
    scenario_figures("time to first token (median)", result.ttft_s, "s")
