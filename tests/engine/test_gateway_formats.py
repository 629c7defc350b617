"""The gateway in front of real vLLM (tiny random Voxtral), driven by the OpenAI SDK.

The tiny Voxtral's text is gibberish and it never emits end-of-sequence: these tests check
shapes, order, timing and segmentation, and that the per-segment token budget keeps it fast.
"""

from __future__ import annotations

import io
import json
import re

import httpx
import openai
import pytest
import srt
import webvtt

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def client(voxtral_gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{voxtral_gateway.base_url}/v1", api_key="unused", max_retries=0)


def test_json_and_text_formats(client, speech_5s) -> None:
    result = client.audio.transcriptions.create(model="voxtral", file=speech_5s.path.open("rb"))
    assert isinstance(result.text, str) and result.text
    assert result.usage.type == "duration" and result.usage.seconds == 5
    text = client.audio.transcriptions.create(
        model="voxtral", file=speech_5s.path.open("rb"), response_format="text"
    )
    assert isinstance(text, str) and text.strip()


def test_verbose_json_segments_follow_the_speech(client, speech_60s) -> None:
    result = client.audio.transcriptions.create(
        model="voxtral",
        file=speech_60s.path.open("rb"),
        response_format="verbose_json",
        timestamp_granularities=["segment"],
    )
    assert result.duration == pytest.approx(60.0, abs=0.01)
    assert len(result.segments) >= 2  # 60 s cannot fit one 30 s window
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts)
    for segment in result.segments:
        assert segment.end - segment.start <= 30.0 + 1e-6
        assert segment.text
    first_speech = speech_60s.sentences[0].start_s
    # Leading silence is skipped: the first segment starts near the first word, padding aside.
    assert result.segments[0].start == pytest.approx(first_speech, abs=0.5)


def test_srt_and_vtt_parse_and_match_verbose_segments(client, speech_60s) -> None:
    verbose = client.audio.transcriptions.create(
        model="voxtral", file=speech_60s.path.open("rb"), response_format="verbose_json"
    )
    body = client.audio.transcriptions.create(
        model="voxtral", file=speech_60s.path.open("rb"), response_format="srt"
    )
    cues = list(srt.parse(body))
    assert [round(c.start.total_seconds(), 2) for c in cues] == [
        round(s.start, 2) for s in verbose.segments
    ]
    vtt = client.audio.transcriptions.create(
        model="voxtral", file=speech_60s.path.open("rb"), response_format="vtt"
    )
    captions = webvtt.from_buffer(io.StringIO(vtt))
    assert len(captions) == len(cues)


def test_stream_deltas_arrive_in_order_and_add_up_to_done(client, speech_60s) -> None:
    events = list(
        client.audio.transcriptions.create(
            model="voxtral", file=speech_60s.path.open("rb"), stream=True
        )
    )
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 2 and len(done) == 1 and events[-1].type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done[0].text
    indexes = [d.segment["index"] for d in deltas]
    assert indexes == sorted(indexes)


def test_with_streaming_response_reads_raw_body(client, speech_5s) -> None:
    with client.audio.transcriptions.with_streaming_response.create(
        model="voxtral", file=speech_5s.path.open("rb"), response_format="json"
    ) as response:
        assert response.http_request.url.path == "/v1/audio/transcriptions"
        body = json.loads(response.read())
    assert set(body) == {"text", "usage"}


def test_vad_off_cuts_fixed_windows(client, speech_60s) -> None:
    result = client.audio.transcriptions.create(
        model="voxtral",
        file=speech_60s.path.open("rb"),
        response_format="verbose_json",
        extra_body={"vad_filter": "false"},
    )
    assert [(s.start, s.end) for s in result.segments] == [(0.0, 30.0), (30.0, 60.0)]


def test_server_vad_chunking_strategy_changes_segmentation(client, speech_60s) -> None:
    default = client.audio.transcriptions.create(
        model="voxtral", file=speech_60s.path.open("rb"), response_format="verbose_json"
    )
    strict = client.audio.transcriptions.create(
        model="voxtral",
        file=speech_60s.path.open("rb"),
        response_format="verbose_json",
        chunking_strategy={"type": "server_vad", "threshold": 0.99, "silence_duration_ms": 100},
    )

    # A near-1 threshold keeps less audio as speech than the default.
    def speech_s(result):
        return sum(s.end - s.start for s in result.segments)

    assert speech_s(strict) < speech_s(default)


def test_silence_gives_empty_text(client, silence_5s) -> None:
    result = client.audio.transcriptions.create(
        model="voxtral", file=silence_5s.path.open("rb"), response_format="verbose_json"
    )
    assert result.text == "" and result.segments == []


@pytest.mark.parametrize("fixture", ["speech_8khz", "speech_stereo", "very_short_clip"])
def test_edge_inputs_are_accepted(client, request, fixture) -> None:
    clip = request.getfixturevalue(fixture)
    result = client.audio.transcriptions.create(
        model="voxtral", file=clip.path.open("rb"), response_format="verbose_json"
    )
    assert result.duration == pytest.approx(clip.duration_s, abs=0.05)


def test_ten_minutes_through_the_gateway(voxtral_gateway, speech_10min) -> None:
    """Past vLLM's window: VAD segments fan out and come back in order."""
    with httpx.Client(timeout=600, trust_env=False) as http:
        response = http.post(
            f"{voxtral_gateway.base_url}/v1/audio/transcriptions",
            files={"file": ("long.wav", speech_10min.read_bytes())},
            data={"model": "voxtral", "response_format": "verbose_json"},
        )
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    assert len(segments) >= 20
    assert all(a["end"] <= b["start"] + 1e-6 for a, b in zip(segments, segments[1:], strict=False))
    assert segments[-1]["end"] <= 600.0


def test_models_and_ready(voxtral_gateway, voxtral_engine) -> None:
    with httpx.Client(timeout=60, trust_env=False) as http:
        models = http.get(f"{voxtral_gateway.base_url}/v1/models").json()
        assert [m["id"] for m in models["data"]] == [voxtral_engine.model]
        ready = http.get(f"{voxtral_gateway.base_url}/ready")
        assert ready.status_code == 200, ready.text
        metrics = http.get(f"{voxtral_gateway.base_url}/metrics").text
        assert "voxtral_segments_total" in metrics

        # Every engine call is one model window: the segments, plus head starts the engine
        # had before VAD cancelled them.
        def total(name: str) -> float:
            return sum(
                float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", metrics, re.M)
            )

        cancelled = re.search(
            r'^voxtral_head_start_calls_total{outcome="cancelled"} (\S+)$', metrics, re.M
        )
        windows = total("voxtral_engine_windows_total")
        segments = total("voxtral_segments_total")
        assert windows == segments + (float(cancelled.group(1)) if cancelled else 0.0)
        # Every segment call of the tests above was timed.
        calls = re.search(r"^voxtral_upstream_seconds_count (\S+)$", metrics, re.M)
        assert calls and float(calls.group(1)) > 0


def test_server_timing_splits_the_request(voxtral_gateway, speech_5s) -> None:
    response = httpx.post(
        f"{voxtral_gateway.base_url}/v1/audio/transcriptions",
        files={"file": ("a.wav", speech_5s.path.read_bytes(), "audio/wav")},
        data={"model": "voxtral"},
        timeout=60,
    )
    assert response.status_code == 200
    phases = {
        name: float(duration)
        for name, duration in re.findall(r"(\w+);dur=([0-9.]+)", response.headers["server-timing"])
    }
    assert list(phases) == ["read", "decode", "vad", "engine", "total"]
    assert phases["vad"] > 0 and phases["engine"] > 0
    assert phases["total"] >= phases["read"] + phases["decode"] + phases["vad"] + phases["engine"]
