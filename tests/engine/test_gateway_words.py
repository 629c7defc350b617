"""Word timestamps and word-timed subtitles through the gateway: real Whisper tiny.en on vLLM
for the text, the real aligner (Whisper base, CTranslate2) for the timing, espeak-ng speech
whose sentences sit at known offsets. The 60 s clip is decoded in two chunks (chunk_s 30)."""

from __future__ import annotations

import io

import httpx
import openai
import pytest
import srt
import webvtt

pytestmark = pytest.mark.engine

TOLERANCE_S = 0.2


@pytest.fixture(scope="module")
def client(whisper_gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{whisper_gateway.base_url}/v1", api_key="x", max_retries=0)


def _seconds(vtt_time: str) -> float:
    hours, minutes, seconds = vtt_time.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _inside_speech(start_s: float, end_s: float, clip) -> bool:
    return any(
        s.start_s - TOLERANCE_S <= start_s and end_s <= s.end_s + TOLERANCE_S
        for s in clip.sentences
    )


def test_word_granularity_through_the_openai_sdk(client, speech_60s) -> None:
    raw = client.audio.transcriptions.with_raw_response.create(
        model="w",
        file=speech_60s.path.open("rb"),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    result = raw.parse()
    assert "align;dur=" in raw.headers["server-timing"]
    words = result.words
    assert len(words) > 50
    assert " ".join(w.word for w in words) == result.text
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))
    assert all(w.start <= w.end for w in words)
    for segment in result.segments:
        inside = [w for w in words if segment.start <= w.start < segment.end]
        assert " ".join(w.word for w in inside) == segment.text
        assert all(w.end <= segment.end for w in inside)
    # Every word is said where espeak-ng put speech (pauses hold no words).
    outside = [w for w in words if not _inside_speech(w.start, w.end, speech_60s)]
    assert len(outside) <= len(words) * 0.05, outside


def test_srt_and_vtt_cues_are_subtitle_sized_and_follow_the_speech(client, speech_60s) -> None:
    body = client.audio.transcriptions.create(
        model="w", file=speech_60s.path.open("rb"), response_format="srt"
    )
    cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(body)]
    vtt = client.audio.transcriptions.create(
        model="w", file=speech_60s.path.open("rb"), response_format="vtt"
    )
    captions = webvtt.from_buffer(io.StringIO(vtt))
    cues += [(_seconds(c.start), _seconds(c.end), c.text) for c in captions]
    assert len(captions) >= len(speech_60s.sentences)
    for start_s, end_s, text in cues:
        assert 0 < end_s - start_s <= 7.0
        lines = text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), text
        assert _inside_speech(start_s, end_s, speech_60s), (start_s, end_s, text)
    # Every sentence is covered: a cue starts within 0.2 s of it.
    for sentence in speech_60s.sentences:
        assert any(abs(start_s - sentence.start_s) <= TOLERANCE_S for start_s, _, _ in cues)


def test_silence_gives_no_words(whisper_gateway, silence_5s) -> None:
    response = httpx.post(
        f"{whisper_gateway.base_url}/v1/audio/transcriptions",
        files={"file": ("silence.wav", silence_5s.read_bytes())},
        data={"response_format": "verbose_json", "timestamp_granularities[]": "word"},
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json()["words"] == []
    metrics = httpx.get(f"{whisper_gateway.base_url}/metrics", timeout=10).text
    assert "voxtral_align_seconds_count" in metrics
