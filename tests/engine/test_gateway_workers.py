"""Several gateway workers in front of the real Whisper engine: /metrics totals all of them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.fixtures.gateway import engine_settings_env, gateway_process

pytestmark = pytest.mark.engine

_REQUESTS = 4


def _sample(metrics: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


def test_metrics_total_every_worker_whichever_answers(
    whisper_engine, speech_5s, tmp_path: Path
) -> None:
    env = {**engine_settings_env(whisper_engine), "VOXTRAL_WORKERS": "2"}
    audio = speech_5s.read_bytes()
    with gateway_process(env, tmp_path / "gateway.log") as gateway:
        for _ in range(_REQUESTS):  # a fresh connection each: the kernel spreads them
            with httpx.Client(timeout=120, trust_env=False) as fresh:
                response = fresh.post(
                    f"{gateway.base_url}/v1/audio/transcriptions",
                    files={"file": ("speech.wav", audio, "audio/wav")},
                    data={"model": "whisper"},
                )
            assert response.status_code == 200, response.text
        for _ in range(8):  # each scrape on a fresh connection, so both workers answer some
            with httpx.Client(timeout=30, trust_env=False) as fresh:
                metrics = fresh.get(f"{gateway.base_url}/metrics").text
            assert _sample(metrics, 'voxtral_requests_total{format="json",status="200"}') == (
                _REQUESTS
            )
            assert _sample(metrics, "voxtral_request_seconds_count") == _REQUESTS
            assert _sample(metrics, "voxtral_audio_seconds_total") == pytest.approx(
                _REQUESTS * speech_5s.duration_s, rel=0.01
            )
            assert _sample(metrics, "voxtral_in_flight_requests") == 0
