"""Realtime sessions against the real CPU engine (Whisper tiny.en), driven by the openai SDK.

Audio is streamed at real-time pace in 100 ms appends of 24 kHz PCM16, as a microphone would.
Transcripts are compared with the batch route's transcript of the same audio and with the
words espeak-ng was asked to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from openai import AsyncOpenAI, OpenAI

from tests.realtime.conftest import pcm16_chunks, read_clip

pytestmark = pytest.mark.engine

CHUNK_MS = 100


def _words(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


def _session(turn_detection: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"language": "en"},
                "turn_detection": turn_detection,
            }
        },
    }


async def _stream_and_collect(
    base_url: str, samples: np.ndarray, *, expected_completed: int, api_key: str = "unused"
) -> list[tuple[float, Any]]:
    """Stream at real time with server VAD; (arrival time, event) until enough completions."""
    client = AsyncOpenAI(api_key=api_key, base_url=f"{base_url}/v1")
    events: list[tuple[float, Any]] = []
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        await connection.session.update(
            session=_session(
                {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                }
            )
        )

        async def _send() -> None:
            # Like a microphone, keep streaming (silence) after the clip until the results are
            # in: a client that goes quiet meets the idle timeout (30 s) if a loaded engine
            # takes that long, a timing assumption the test does not mean to make.
            chunks = pcm16_chunks(samples, CHUNK_MS)
            silence = pcm16_chunks(np.zeros(16000 * CHUNK_MS // 1000, np.float32), CHUNK_MS)[0]
            started = time.monotonic()
            for index in itertools.count():
                await asyncio.sleep(max(0.0, started + index * CHUNK_MS / 1000 - time.monotonic()))
                chunk = chunks[index] if index < len(chunks) else silence
                await connection.input_audio_buffer.append(audio=chunk)

        sender = asyncio.create_task(_send())
        completed = 0
        async with asyncio.timeout(len(samples) / 16000 + 120):
            async for event in connection:
                events.append((time.monotonic(), event))
                if event.type == "error":
                    pytest.fail(f"error event: {event.error} after {[e.type for _, e in events]}")
                if event.type == "conversation.item.input_audio_transcription.completed":
                    completed += 1
                    if completed == expected_completed:
                        break
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return events


def _batch_text(base_url: str, path: Path) -> str:
    client = OpenAI(api_key="unused", base_url=f"{base_url}/v1")
    with path.open("rb") as audio:
        return client.audio.transcriptions.create(model="whisper", file=audio, language="en").text


def test_sdk_stream_gets_turn_events_and_the_batch_routes_words(whisper_gateway, two_sentences):
    path, texts, spans = two_sentences
    samples = read_clip(path)
    events = asyncio.run(
        _stream_and_collect(whisper_gateway.base_url, samples, expected_completed=2)
    )
    kinds = [e.type for _, e in events]
    assert kinds[0] == "session.created"
    assert kinds.count("input_audio_buffer.speech_started") == 2
    assert kinds.count("input_audio_buffer.speech_stopped") == 2
    assert kinds.count("input_audio_buffer.committed") == 2

    started = [e for _, e in events if e.type == "input_audio_buffer.speech_started"]
    stopped = [e for _, e in events if e.type == "input_audio_buffer.speech_stopped"]
    # Turn boundaries where the sentences are; a start includes 300 ms of prefix padding.
    for (start_s, end_s), begin, end in zip(spans, started, stopped, strict=True):
        assert begin.item_id == end.item_id
        assert start_s * 1000 - 400 <= begin.audio_start_ms <= start_s * 1000 + 100
        assert end_s * 1000 - 300 <= end.audio_end_ms <= end_s * 1000 + 300

    completed = [e for _, e in events if e.type.endswith("transcription.completed")]
    assert [c.item_id for c in completed] == [s.item_id for s in started]
    realtime_text = " ".join(c.transcript for c in completed)
    batch_text = _batch_text(whisper_gateway.base_url, path)
    # Not identical: the batch route merges both sentences into one 30 s window, while each
    # realtime turn goes up alone; Whisper tiny.en then differs on a word or two.
    assert jiwer.wer(_words(batch_text), _words(realtime_text)) <= 0.2
    assert jiwer.wer(_words(" ".join(texts)), _words(realtime_text)) <= 0.2

    # Every item's deltas come before its completion and spell (nearly) the start of the
    # final text: an interim may hear a word the final hears differently, never more.
    for item in completed:
        position = {id(e): n for n, (_, e) in enumerate(events)}
        deltas = [
            e
            for _, e in events
            if e.type.endswith("transcription.delta") and e.item_id == item.item_id
        ]
        assert deltas, "every completed item had at least one delta"
        assert max(position[id(d)] for d in deltas) < position[id(item)]
        spelled = _words("".join(d.delta for d in deltas)).split()
        final_start = _words(item.transcript).split()[: len(spelled)]
        assert jiwer.wer(" ".join(final_start), " ".join(spelled)) <= 0.34


def test_interim_deltas_arrive_while_the_person_is_still_speaking(whisper_gateway, audio_factory):
    # One long utterance (three sentences, short pauses under the 500 ms turn end).
    voices = [
        audio_factory.voice(t)
        for t in (
            "The train leaves the station in the morning.",
            "She opened the window to let the fresh air in.",
            "The children played football in the park.",
        )
    ]
    pause = np.zeros(round(0.25 * 16000), np.float32)
    samples = np.concatenate(
        [
            np.zeros(6400, np.float32),
            voices[0],
            pause,
            voices[1],
            pause,
            voices[2],
            np.zeros(24000, np.float32),
        ]
    )
    events = asyncio.run(
        _stream_and_collect(whisper_gateway.base_url, samples, expected_completed=1)
    )
    stopped_at = next(t for t, e in events if e.type == "input_audio_buffer.speech_stopped")
    early_deltas = [
        e for t, e in events if e.type.endswith("transcription.delta") and t < stopped_at
    ]
    assert early_deltas, "no interim delta before the end of speech"


def test_manual_commit_transcribes_the_buffer(whisper_gateway, sentence_clips):
    clip = sentence_clips[1]
    samples = read_clip(clip.path)

    async def _run() -> list[Any]:
        client = AsyncOpenAI(api_key="unused", base_url=f"{whisper_gateway.base_url}/v1")
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as connection:
            await connection.session.update(session=_session(None))
            for chunk in pcm16_chunks(samples, 500):  # faster than real time, within max_ahead_s
                await connection.input_audio_buffer.append(audio=chunk)
            await connection.input_audio_buffer.commit()
            seen = []
            async with asyncio.timeout(60):
                async for event in connection:
                    seen.append(event)
                    if event.type.endswith("transcription.completed"):
                        return seen
        return seen

    events = asyncio.run(_run())
    kinds = [e.type for e in events]
    assert "input_audio_buffer.speech_started" not in kinds
    committed = next(e for e in events if e.type == "input_audio_buffer.committed")
    completed = events[-1]
    assert completed.item_id == committed.item_id
    assert jiwer.wer(_words(clip.text), _words(completed.transcript)) <= 0.2
    batch_text = _batch_text(whisper_gateway.base_url, clip.path)
    assert jiwer.wer(_words(batch_text), _words(completed.transcript)) <= 0.1
    assert completed.usage.seconds == pytest.approx(clip.duration_s, abs=0.1)


def test_sdk_bearer_key_is_accepted(gateway_factory, whisper_engine, sentence_clips):
    gateway = gateway_factory(engine=whisper_engine, api_keys=["sk-live"])
    samples = read_clip(sentence_clips[1].path)
    padded = np.concatenate([samples, np.zeros(16000, np.float32)])
    events = asyncio.run(
        _stream_and_collect(gateway.base_url, padded, expected_completed=1, api_key="sk-live")
    )
    completed = events[-1][1]
    assert "office" in completed.transcript.lower()
