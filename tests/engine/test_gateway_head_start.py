"""The head start on real Whisper tiny.en: a short clip goes to vLLM before VAD is done, and
the answer is the one the VAD path gives; where VAD disagrees, its segments win."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

from bench.accuracy import wer
from tests.engine.test_gateway_whisper import _engine_busy
from tests.fixtures.audio import SAMPLE_RATE_HZ, SENTENCES, write_wav

pytestmark = pytest.mark.engine


def _head_starts(http, gateway) -> dict[str, float]:
    metrics = http.get(f"{gateway.base_url}/metrics").text
    found = re.findall(r'^voxtral_head_start_calls_total\{outcome="(\w+)"\} (\S+)$', metrics, re.M)
    return {outcome: float(count) for outcome, count in found}


def _transcribe(http, gateway, path) -> dict:
    response = http.post(
        f"{gateway.base_url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        data={"model": "w", "response_format": "verbose_json"},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def edge_to_edge(audio_factory, tmp_path_factory):
    """Two sentences, speech from the first sample to the last: VAD keeps all of it."""
    gap = np.zeros(round(0.15 * SAMPLE_RATE_HZ), np.float32)
    samples = np.concatenate(
        [audio_factory.voice(SENTENCES[1]), gap, audio_factory.voice(SENTENCES[2])]
    )
    path = write_wav(tmp_path_factory.mktemp("head-start") / "edge.wav", samples)
    return path, f"{SENTENCES[1]} {SENTENCES[2]}"


def test_head_start_gives_the_vad_paths_answer(
    whisper_engine, gateway_factory, http, edge_to_edge, sentence_clips
) -> None:
    # Off in the CPU profile (its gateway_env): turned on here, to be tested.
    ahead = gateway_factory(engine=whisper_engine, head_start={"enabled": True})
    after_vad = gateway_factory(engine=whisper_engine, head_start={"enabled": False})
    path, text = edge_to_edge
    early, late = _transcribe(http, ahead, path), _transcribe(http, after_vad, path)
    # The same samples reach the engine either way, so the same words come back.
    assert early["text"] == late["text"]
    # Log probabilities are the engine's float sums: equal only to rounding across batches.
    logprobs = [[s.pop("avg_logprob") for s in r["segments"]] for r in (early, late)]
    assert logprobs[0] == pytest.approx(logprobs[1], abs=1e-3)
    assert early["segments"] == late["segments"]
    assert wer(text, early["text"]) <= 0.15
    # 0.3 s of silence each side: VAD leaves out 0.2 s in all, within max_trim_s.
    for clip in sentence_clips[1:3]:
        assert wer(clip.text, _transcribe(http, ahead, clip.path)["text"]) <= 0.15
    assert _head_starts(http, ahead) == {"used": 3.0}
    assert _head_starts(http, after_vad) == {}


def test_leading_silence_cancels_the_head_start_and_vad_segments_win(
    whisper_engine, gateway_factory, http, audio_factory, tmp_path
) -> None:
    gateway = gateway_factory(engine=whisper_engine, head_start={"enabled": True})
    lead = np.zeros(3 * SAMPLE_RATE_HZ, np.float32)
    path = write_wav(
        tmp_path / "late.wav", np.concatenate([lead, audio_factory.voice(SENTENCES[2])])
    )
    result = _transcribe(http, gateway, path)
    assert _head_starts(http, gateway) == {"cancelled": 1.0}
    assert len(result["segments"]) == 1
    assert result["segments"][0]["start"] == pytest.approx(2.8, abs=0.3)  # VAD's cut, not 0
    assert wer(SENTENCES[2], result["text"]) <= 0.15
    # The cancelled call left no work behind on the engine.
    deadline = time.monotonic() + 15  # vLLM aborts at once; slack for a busy 2-core box
    while _engine_busy(http, whisper_engine.base_url) > 0:
        assert time.monotonic() < deadline, "engine still busy after the head start was dropped"
        time.sleep(0.1)


def test_noise_without_speech_cancels_the_head_start_and_returns_no_text(
    whisper_engine, gateway_factory, http, tmp_path
) -> None:
    gateway = gateway_factory(engine=whisper_engine, head_start={"enabled": True})
    noise = (np.random.default_rng(3).standard_normal(4 * SAMPLE_RATE_HZ) * 0.01).astype(np.float32)
    result = _transcribe(http, gateway, write_wav(tmp_path / "noise.wav", noise))
    assert _head_starts(http, gateway) == {"cancelled": 1.0}
    assert result["text"] == "" and result["segments"] == []


def test_a_streamed_head_start_forwards_its_token_deltas(
    whisper_engine, gateway_factory, http, edge_to_edge
) -> None:
    """stream=true on a short clip: the head-start call streams, and its deltas are sent."""
    gateway = gateway_factory(upstream_urls=[whisper_engine.base_url])
    path, text = edge_to_edge
    events = []
    with http.stream(
        "POST",
        f"{gateway.base_url}/v1/audio/transcriptions",
        files={"file": (path.name, path.read_bytes())},
        data={"model": "w", "stream": "true"},
    ) as response:
        assert response.status_code == 200
        events = [json.loads(line[6:]) for line in response.iter_lines() if line[6:7] == "{"]
    deltas = [e["delta"] for e in events if e["type"] == "transcript.text.delta"]
    assert events[-1]["type"] == "transcript.text.done"
    assert "".join(deltas) == events[-1]["text"]
    assert len(deltas) > 3  # token by token
    assert wer(text, events[-1]["text"]) <= 0.15
    assert _head_starts(http, gateway) == {"used": 1.0}
