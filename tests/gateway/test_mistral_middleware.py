"""Mistral's routes get the gateway's guards (auth, per-key rate limits) with Mistral's error
shape. No engine: every answer here comes before an upstream call."""

from __future__ import annotations

import json

import pytest
from mistralai.client import Mistral, errors

from voxtral_gateway.settings import RateLimitSettings


@pytest.fixture
def guarded_gateway(gateway_factory):
    return gateway_factory(
        upstream_urls=["http://127.0.0.1:9"],  # never reached
        api_keys=["good-key"],
        rate_limits=RateLimitSettings(requests_per_minute=1),
    )


def _complete(gateway, api_key: str) -> errors.SDKError:
    client = Mistral(api_key=api_key, server_url=f"{gateway.base_url}/mistral")
    with pytest.raises(errors.SDKError) as failure:
        client.audio.transcriptions.complete(model="m")  # no audio: a 400 once admitted
    return failure.value


def test_unknown_key_is_a_401_in_mistral_shape(guarded_gateway) -> None:
    failure = _complete(guarded_gateway, "wrong-key")
    assert failure.status_code == 401
    body = json.loads(failure.body)
    assert body["object"] == "error" and body["type"] == "authentication_error"


def test_mistral_route_spends_the_keys_rate_limit(guarded_gateway) -> None:
    first = _complete(guarded_gateway, "good-key")
    assert first.status_code == 400 and json.loads(first.body)["param"] == "file"
    second = _complete(guarded_gateway, "good-key")
    assert second.status_code == 429
    assert json.loads(second.body)["type"] == "rate_limit_error"
    assert "retry-after" in second.headers
