"""An hour of speech, six times vLLM's own 600 s limit, through a gateway process in front of
the real tiny Voxtral engine: it finishes with every segment in order, and the gateway's
memory stays bounded by the chunk it decodes, not by the file (decoded whole, the hour alone
is 230 MB of float32, on top of its 115 MB upload)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench.overload_client import GatewayProcess, RssSampler
from tests.fixtures.gateway import engine_settings_env, gateway_process

pytestmark = pytest.mark.engine

HOUR_S = 3600.0
SEGMENTS_IN_FLIGHT = 4
# What the gateway holds: the chunk (30 s) and up to two 30 s windows of unfinished speech as
# float32, ~8 MB, about twice over while a chunk is joined; VAD intermediates; and each segment
# in flight, 30 s as float32 + WAV + multipart body, ~4 MB. Measured: +26 MB for the 10 min
# file, +32 MB for the hour (RSS is sampled every 0.1 s, so a short request's peak is easily
# missed: hence the slack between the two).
MAX_RSS_GROWTH_MB = 90.0
MAX_GROWTH_10MIN_TO_1H_MB = 50.0  # decoded whole, the extra 50 minutes alone are 192 MB


def test_an_hour_streams_through_in_bounded_memory(
    voxtral_engine, audio_factory, speech_5s, speech_10min, tmp_path: Path
) -> None:
    hour = audio_factory.speech(HOUR_S, seed=7)
    env = engine_settings_env(voxtral_engine) | {
        "VOXTRAL_MAX_OUTPUT_TOKENS": "4",  # the random model never stops: keep each call short
        "VOXTRAL_MAX_SEGMENTS_IN_FLIGHT_PER_REQUEST": str(SEGMENTS_IN_FLIGHT),
        "VOXTRAL_LOG_LEVEL": "WARNING",
    }
    with (
        gateway_process(env, tmp_path / "gateway.log") as gateway,
        httpx.Client(timeout=1200, trust_env=False) as http,
    ):
        url = gateway.base_url + "/v1/audio/transcriptions"

        def transcribe(path: Path) -> tuple[httpx.Response, float]:
            """verbose_json of `path`, and the gateway's peak RSS (MB) meanwhile."""
            sampler = RssSampler(process)
            sampler.start()
            with path.open("rb") as upload:
                response = http.post(
                    url,
                    files={"file": (path.name, upload, "audio/wav")},
                    data={"response_format": "verbose_json"},
                )
            sampler.stop_event.set()
            sampler.join()
            assert response.status_code == 200, response.text
            return response, sampler.peak_mb

        # Warm up (VAD model, engine connection, first multipart parse) before the baseline.
        warm = http.post(url, files={"file": ("clip.wav", speech_5s.read_bytes())})
        assert warm.status_code == 200, warm.text
        process = GatewayProcess(gateway.process.pid)
        rss_before_mb = process.rss_mb()
        _, ten_minutes_peak_mb = transcribe(speech_10min.path)
        response, hour_peak_mb = transcribe(hour.path)

    body = response.json()
    assert body["duration"] == pytest.approx(HOUR_S, abs=0.01)
    segments = body["segments"]
    # ~1,500 sentences with pauses: 30 s segments all the way to the end, in order.
    assert len(segments) >= 110
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(segments, segments[1:], strict=False))
    assert segments[-1]["end"] > HOUR_S - 60
    print(
        f"\nLONG AUDIO 1 h: {len(segments)} segments; gateway RSS {rss_before_mb:.0f} MB before, "
        f"peak {ten_minutes_peak_mb:.0f} MB for 10 min, {hour_peak_mb:.0f} MB for 1 h"
    )
    assert hour_peak_mb - rss_before_mb < MAX_RSS_GROWTH_MB
    # Six times the audio, (almost) no more memory: it does not grow with the file.
    assert hour_peak_mb - ten_minutes_peak_mb < MAX_GROWTH_10MIN_TO_1H_MB
