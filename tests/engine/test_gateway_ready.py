"""`/ready` on the real engine: a burst of concurrent probes costs the engine one inference.

The engine's own counter tells: vLLM's `request_params_max_tokens` histogram puts the gateway's
one-token probes alone in its `le="1.0"` bucket (transcriptions ask for at least
VOXTRAL_MIN_OUTPUT_TOKENS).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.engine

BURST = 16


def _one_token_requests(engine_url: str) -> float:
    text = httpx.get(f"{engine_url}/metrics", trust_env=False).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vllm:request_params_max_tokens_bucket"
        and sample.labels.get("le") == "1.0"
    )


async def _burst(base_url: str) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
        return await asyncio.gather(*(client.get(f"{base_url}/ready") for _ in range(BURST)))


def test_a_burst_of_ready_probes_costs_one_inference(gateway_factory, voxtral_engine) -> None:
    gateway = gateway_factory(engine=voxtral_engine)
    before = _one_token_requests(voxtral_engine.base_url)
    responses = asyncio.run(_burst(gateway.base_url))
    assert [r.status_code for r in responses] == [200] * BURST
    assert {r.json()["engines"][voxtral_engine.base_url] for r in responses} == {True}
    assert _one_token_requests(voxtral_engine.base_url) - before == 1
