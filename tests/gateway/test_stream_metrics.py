"""A streamed response is counted when its stream ends, with the status its events carried.

The engines are fakes (`fake_upstream_stall` holds a segment until released, so the stream is
observably open; `fake_upstream_500` fails one after the 200 has gone out): a real vLLM cannot
be held mid-answer or made to fail on demand.
"""

from __future__ import annotations

import subprocess
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "The quick brown fox."], check=True)
    return path.read_bytes()


def _samples(http: httpx.Client, base_url: str) -> dict[tuple[str, tuple], float]:
    text = http.get(f"{base_url}/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _requests(samples: dict, status: str) -> float:
    key = ("voxtral_requests_total", (("format", "stream"), ("status", status)))
    return samples.get(key, 0.0)


def _stream(base_url: str, audio: bytes, events: list[str], opened: threading.Event) -> None:
    with (
        httpx.Client(timeout=60, trust_env=False) as client,
        client.stream(
            "POST",
            f"{base_url}/v1/audio/transcriptions",
            files={"file": ("a.wav", audio, "audio/wav")},
            data={"stream": "true"},
        ) as response,
    ):
        assert response.status_code == 200
        opened.set()
        events.extend(line for line in response.iter_lines() if line)


def test_open_stream_is_in_flight_and_counted_200_only_when_it_ends(
    gateway_factory, http, speech_wav, fake_upstream_stall
) -> None:
    gateway = gateway_factory(upstream_urls=[fake_upstream_stall.base_url])
    events: list[str] = []
    opened = threading.Event()
    client = threading.Thread(target=_stream, args=(gateway.base_url, speech_wav, events, opened))
    client.start()
    assert opened.wait(30)
    deadline = time.monotonic() + 30
    while not fake_upstream_stall.calls:  # the segment is with the engine, the stream open
        assert time.monotonic() < deadline
        time.sleep(0.02)

    during = _samples(http, gateway.base_url)
    assert during[("voxtral_in_flight_requests", ())] == 1
    assert _requests(during, "200") == 0
    assert during[("voxtral_request_seconds_count", ())] == 0

    fake_upstream_stall.release.set()
    client.join(timeout=30)
    assert events[-1] == "data: [DONE]"
    after = _samples(http, gateway.base_url)
    assert after[("voxtral_in_flight_requests", ())] == 0
    assert _requests(after, "200") == 1
    assert after[("voxtral_request_seconds_count", ())] == 1


def test_stream_that_fails_after_the_200_is_counted_with_its_error_status(
    gateway_factory, http, speech_wav, fake_upstream_500
) -> None:
    gateway = gateway_factory(upstream_urls=[fake_upstream_500.base_url])
    events: list[str] = []
    _stream(gateway.base_url, speech_wav, events, threading.Event())
    assert '"type": "error"' in events[0]
    samples = _samples(http, gateway.base_url)
    assert _requests(samples, "502") == 1
    assert _requests(samples, "200") == 0
    assert samples[("voxtral_in_flight_requests", ())] == 0
