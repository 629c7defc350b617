"""Mistral's routes get the gateway's guards (auth, per-key rate limits) and report failures
in Mistral's error shape, before and after the stream's 200. No real engine: these answers come
before an upstream call, or from an engine fault a real one cannot show on demand."""

from __future__ import annotations

import json

import pytest
from mistralai.client import Mistral, errors

from tests.fixtures.audio import AudioClip
from tests.fixtures.fake_upstream import FakeUpstream
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


def test_engine_failure_is_a_502_or_an_error_event_after_the_200(
    gateway_factory, fake_upstream_500: FakeUpstream, speech_5s: AudioClip
) -> None:
    gateway = gateway_factory(upstream_urls=[fake_upstream_500.base_url])
    client = Mistral(api_key="x", server_url=f"{gateway.base_url}/mistral")
    audio = {"file_name": "a.wav", "content": speech_5s.read_bytes()}
    with pytest.raises(errors.SDKError) as failure:
        client.audio.transcriptions.complete(model="m", file=audio)
    assert failure.value.status_code == 502
    assert json.loads(failure.value.body)["type"] == "upstream_error"
    events = list(client.audio.transcriptions.stream(model="m", file=audio))
    assert [e.event for e in events] == ["error"]
    assert events[0].data.raw["error"]["code"] == "bad_gateway"
