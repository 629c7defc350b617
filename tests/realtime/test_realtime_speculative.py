"""Speculative finals on the real CPU engine (Whisper tiny.en), espeak-ng speech.

The final call of a turn starts when the VAD hears speech pause, so `completed` follows
`speech_stopped` at once; speech that resumes before the turn closes leaves one turn; a call
whose audio a newer call covers is cancelled. Timing claims are made only once the client has
seen the mechanism happen (the speculative call answered before the turn closed), so a busy
machine makes these tests slower, never wrong.
"""

from __future__ import annotations

import asyncio
import collections
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jiwer
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.fixtures.gateway import engine_settings
from tests.realtime.conftest import pcm16_chunks, read_clip, realtime_url
from voxtral_gateway.realtime.protocol import Transcription
from voxtral_gateway.realtime.transcriber import COMPLETED, FAILED, EngineTranscriber
from voxtral_gateway.runtime import open_runtime

pytestmark = pytest.mark.engine

SILENCE_MS = 1500
"""Silence that closes a turn: far longer than any pause inside the test's speech."""


def _words(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


class _Listener:
    """Every server event of one session, with its arrival time on the client's clock, read by
    a thread of its own so that arrival times do not wait for the test's sends."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self._events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.seen: list[tuple[float, dict[str, Any]]] = []
        self._returned: set[int] = set()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for message in self.connection:
                self._events.put((time.monotonic(), json.loads(message)))
        except ConnectionClosed:
            pass

    def wait_for(self, event_type: str, timeout_s: float = 120) -> tuple[float, dict[str, Any]]:
        """The first event of `event_type` not returned before, already read or still to come
        (a `completed` may arrive before the event the test waited for first)."""
        for arrived, event in self.seen:
            if event["type"] == event_type and id(event) not in self._returned:
                self._returned.add(id(event))
                return arrived, event
        deadline = time.monotonic() + timeout_s
        while True:
            arrived, event = self._events.get(timeout=max(deadline - time.monotonic(), 0))
            self.seen.append((arrived, event))
            assert event["type"] not in ("error", FAILED), (event, self.kinds())
            if event["type"] == event_type:
                self._returned.add(id(event))
                return arrived, event

    def kinds(self) -> list[str]:
        """Types of every event received so far."""
        while not self._events.empty():
            self.seen.append(self._events.get())
        return [event["type"] for _, event in self.seen]


def _open(base_url: str) -> _Listener:
    listener = _Listener(connect(realtime_url(base_url), max_size=None))
    listener.wait_for("session.created")
    listener.connection.send(
        json.dumps(
            {
                "type": "session.update",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "transcription": {"language": "en"},
                            "turn_detection": {
                                "type": "server_vad",
                                "silence_duration_ms": SILENCE_MS,
                            },
                        }
                    },
                },
            }
        )
    )
    listener.wait_for("session.updated")
    return listener


def _append(listener: _Listener, samples: np.ndarray, chunk_ms: int = 100) -> None:
    for chunk in pcm16_chunks(samples, chunk_ms):
        listener.connection.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))


def _metrics(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{base_url}/metrics", timeout=30, trust_env=False).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _engine_calls(base_url: str, kind: str, outcome: str) -> float:
    key = (
        "voxtral_realtime_engine_calls_total",
        (("kind", kind), ("outcome", outcome)),
    )
    return _metrics(base_url).get(key, 0.0)


def _engine_answers(base_url: str) -> float:
    """Engine calls answered so far (the gateway's engine-latency histogram count)."""
    return _metrics(base_url).get(("voxtral_upstream_seconds_count", ()), 0.0)


def _wait_until(condition: Callable[[], bool], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(round(16000 * seconds), np.float32)


def test_completed_follows_speech_stopped_at_once(gateway_factory, whisper_engine, sentence_clips):
    # Interims off: the one engine call is the speculative final, made when speech paused.
    gateway = gateway_factory(engine=whisper_engine, realtime={"interim_interval_s": 0})
    clip = sentence_clips[1]
    listener = _open(gateway.base_url)
    answered_before = _engine_answers(gateway.base_url)
    # The sentence and 0.5 s more silence (0.8 s in all): a pause, not yet the end of the turn.
    _append(listener, np.concatenate([read_clip(clip.path), _silence(0.5)]))
    _wait_until(lambda: _engine_answers(gateway.base_url) == answered_before + 1)
    # The final has answered while the turn is still open: no turn was closed to ask for it.
    assert "input_audio_buffer.speech_stopped" not in listener.kinds()
    assert _engine_calls(gateway.base_url, "speculative_final", "used") == 0

    _append(listener, _silence(SILENCE_MS / 1000), chunk_ms=SILENCE_MS)  # closes the turn
    stopped_at, stopped = listener.wait_for("input_audio_buffer.speech_stopped")
    completed_at, completed = listener.wait_for(COMPLETED)
    assert completed["item_id"] == stopped["item_id"]
    assert completed_at - stopped_at <= 0.1
    assert jiwer.wer(_words(clip.text), _words(completed["transcript"])) <= 0.2
    assert _engine_calls(gateway.base_url, "speculative_final", "used") == 1
    assert _engine_calls(gateway.base_url, "final", "used") == 0
    assert _engine_answers(gateway.base_url) == answered_before + 1  # nothing asked twice


def test_speech_resumed_before_the_turn_closed_is_one_turn(
    gateway_factory, whisper_engine, audio_factory
):
    texts = ("Please call the office before noon tomorrow.", "The train leaves in the morning.")
    gateway = gateway_factory(engine=whisper_engine)
    listener = _open(gateway.base_url)
    # A 0.6 s pause between the sentences (under the 1.5 s that closes a turn), then the close.
    _append(
        listener,
        np.concatenate(
            [
                _silence(0.4),
                audio_factory.voice(texts[0]),
                _silence(0.6),
                audio_factory.voice(texts[1]),
                _silence(0.3 + SILENCE_MS / 1000),
            ]
        ),
    )
    # Events follow client events in order: once this update is answered, every turn event of
    # the audio before it has been sent.
    listener.connection.send(json.dumps({"type": "session.update", "session": {}}))
    listener.wait_for("session.updated")
    turn_events = collections.Counter(listener.kinds())
    assert turn_events["input_audio_buffer.speech_started"] == 1
    assert turn_events["input_audio_buffer.speech_stopped"] == 1
    assert turn_events["input_audio_buffer.committed"] == 1
    _, completed = listener.wait_for(COMPLETED)
    assert jiwer.wer(_words(" ".join(texts)), _words(completed["transcript"])) <= 0.25
    # The final made in the pause was dropped when speech resumed (cancelled, or discarded if
    # it had answered), and the one made at the end of speech was the turn's final.
    superseded = _engine_calls(gateway.base_url, "speculative_final", "cancelled")
    superseded += _engine_calls(gateway.base_url, "speculative_final", "discarded")
    assert superseded >= 1
    assert _engine_calls(gateway.base_url, "speculative_final", "used") == 1
    assert _engine_calls(gateway.base_url, "final", "used") == 0


@pytest.mark.parametrize("newer_call", ["speculative_final", "final"])
def test_an_interim_call_is_cancelled_when_a_newer_call_covers_its_audio(
    whisper_engine, sentence_clips, newer_call
):
    # In the gateway's own event loop: once the interim is inside its engine call, nothing else
    # runs until the newer call (made at a pause, or at the commit) has cancelled it.
    settings = engine_settings(
        whisper_engine, realtime={"interim_interval_s": 0.05, "min_interim_audio_s": 0.1}
    )
    samples = read_clip(sentence_clips[2].path)

    async def run() -> tuple[list[dict[str, Any]], collections.Counter[tuple[str, str]]]:
        events: list[dict[str, Any]] = []
        calls: collections.Counter[tuple[str, str]] = collections.Counter()

        async def emit(event: dict[str, Any]) -> None:
            events.append(event)

        async with open_runtime(settings) as runtime:
            transcriber = EngineTranscriber(
                runtime,
                emit,
                lambda: Transcription(language="en"),
                asyncio.Semaphore(1),
                lambda kind, outcome: calls.update([(kind, outcome)]),
            )
            await transcriber.begin("item_1", samples)
            engine = runtime.upstream.engines[0]
            async with asyncio.timeout(120):
                while engine.outstanding == 0:
                    await asyncio.sleep(0.005)
            if newer_call == "speculative_final":
                await transcriber.pause()
            await transcriber.end()
            await transcriber.wait_idle()
            assert engine.outstanding == 0
        return events, calls

    events, calls = asyncio.run(run())
    assert calls[("interim", "cancelled")] == 1
    assert calls[("interim", "used")] == 0
    assert calls[(newer_call, "used")] == 1
    assert sum(calls.values()) == 2
    (completed,) = [e for e in events if e["type"] == COMPLETED]
    assert jiwer.wer(_words(sentence_clips[2].text), _words(completed["transcript"])) <= 0.2
