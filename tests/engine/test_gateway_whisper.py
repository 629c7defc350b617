"""Real transcripts: Whisper tiny.en on vLLM, through the gateway and directly."""

from __future__ import annotations

import json
import re
import time

import httpx
import openai
import pytest
import srt

from bench.accuracy import wer

pytestmark = pytest.mark.engine

# Measured on espeak-ng speech (tests/fixtures/audio.py): ~0.0-0.05 through both paths.
MAX_WER = 0.15


def test_gateway_wer_is_low_and_no_worse_than_direct(
    whisper_gateway, whisper_engine, speech_60s
) -> None:
    gateway = openai.OpenAI(base_url=f"{whisper_gateway.base_url}/v1", api_key="x", max_retries=0)
    direct = openai.OpenAI(base_url=whisper_engine.openai_base_url, api_key="x", max_retries=0)
    through = gateway.audio.transcriptions.create(model="w", file=speech_60s.path.open("rb"))
    straight = direct.audio.transcriptions.create(
        model=whisper_engine.model, file=speech_60s.path.open("rb")
    )
    gateway_wer = wer(speech_60s.text, through.text)
    direct_wer = wer(speech_60s.text, straight.text)
    print(f"WER 60 s clip: gateway {gateway_wer:.3f}, direct {direct_wer:.3f}")
    assert gateway_wer <= MAX_WER
    assert gateway_wer <= direct_wer + 0.05


def test_srt_cues_carry_the_sentences_spoken_in_them(whisper_gateway, speech_60s) -> None:
    gateway = openai.OpenAI(base_url=f"{whisper_gateway.base_url}/v1", api_key="x", max_retries=0)
    body = gateway.audio.transcriptions.create(
        model="w", file=speech_60s.path.open("rb"), response_format="srt"
    )
    cues = list(srt.parse(body))
    assert cues
    for sentence in speech_60s.sentences:
        # The cues spoken during the sentence (subtitle cues are <= 7 s, so a long sentence
        # spans two) transcribe (most of) that sentence.
        during = [
            c.content.replace("\n", " ")
            for c in cues
            if c.start.total_seconds() < sentence.end_s and c.end.total_seconds() > sentence.start_s
        ]
        assert during, f"no cue during {sentence.text!r}"
        assert wer(sentence.text, _best_window(" ".join(during), sentence.text)) <= 0.3


def _best_window(text: str, reference: str) -> str:
    """The run of words in `text` about as long as `reference` (one word more or fewer: the
    engine may split or join a word, "news paper") that matches it best."""
    words = text.split()
    count = len(reference.split())
    windows = [
        " ".join(words[i : i + size])
        for size in (count - 1, count, count + 1)
        for i in range(max(1, len(words) - size + 1))
    ]
    return min(windows, key=lambda w: wer(reference, w))


def _engine_busy(http: httpx.Client, engine_url: str) -> float:
    metrics = http.get(f"{engine_url}/metrics").text
    found = re.findall(r"^vllm:num_requests_(?:running|waiting)\{[^}]*\} (\S+)", metrics, re.M)
    assert found, "engine metrics changed name"
    return sum(float(v) for v in found)


def _wait_until(condition, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_client_disconnect_cancels_upstream_work(
    whisper_gateway, whisper_engine, speech_10min
) -> None:
    """A client that leaves mid-stream: the engine stops working on its segments in seconds."""
    url = f"{whisper_gateway.base_url}/v1/audio/transcriptions"
    with httpx.Client(timeout=120, trust_env=False) as http:
        with http.stream(
            "POST",
            url,
            files={"file": ("long.wav", speech_10min.read_bytes())},
            data={"model": "w", "stream": "true"},
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data: ") and "transcript.text.delta" in line:
                    break  # leave after the first segment, ~20 segments still to go
            # The engine's gauges read 0 for a moment between two batches (the next windows are
            # still being uploaded and featurized), so wait to see it at work before leaving.
            _wait_until(lambda: _engine_busy(http, whisper_engine.base_url) > 0, seconds=10)
        # Without cancellation the engine would keep transcribing the rest for tens of seconds;
        # idle once could be a gap between batches, so it must stay idle for a while.
        idle = lambda: _engine_busy(http, whisper_engine.base_url) == 0  # noqa: E731
        _wait_until(idle, seconds=15)  # vLLM aborts at once; slack for a busy 2-core box
        quiet_until = time.monotonic() + 2
        while time.monotonic() < quiet_until:
            assert idle(), "engine took up more work after the client left"
            time.sleep(0.1)

        def nothing_pending() -> bool:
            metrics = http.get(f"{whisper_gateway.base_url}/metrics").text
            return re.search(r"^voxtral_pending_segments 0\.0$", metrics, re.M) is not None

        _wait_until(nothing_pending, seconds=5)


def test_stream_forwards_the_engines_token_deltas(whisper_gateway, speech_60s) -> None:
    """stream=true: the engine's own deltas, in segment order, adding up to the done text."""
    events = []
    with (
        httpx.Client(timeout=120, trust_env=False) as http,
        http.stream(
            "POST",
            f"{whisper_gateway.base_url}/v1/audio/transcriptions",
            files={"file": ("a.wav", speech_60s.path.read_bytes())},
            data={"model": "w", "stream": "true"},
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[len("data: ") :]))
    deltas = [e for e in events if e["type"] == "transcript.text.delta"]
    done = events[-1]
    assert done["type"] == "transcript.text.done"
    assert "".join(d["delta"] for d in deltas) == done["text"]
    indices = [d["segment"]["index"] for d in deltas]
    assert indices == sorted(indices)
    # Token by token: several deltas per segment, not one per segment.
    assert len(deltas) > 3 * len(set(indices))
    assert wer(speech_60s.text, done["text"]) <= MAX_WER
