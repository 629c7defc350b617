"""Pass-through to a vLLM Voxtral Realtime engine's `/v1/realtime`, against a protocol double.

No engine here can show this path: vLLM's realtime route needs a Voxtral Realtime model, which
does not run on this CPU machine. So `fake_upstream_realtime` speaks vLLM's protocol (from
vllm/entrypoints/speech_to_text/realtime/) faithfully and "transcribes" by reporting what it
received, which lets the test check the bridge end to end: turns, resampling to 16 kHz,
one generation per utterance, deltas and completions mapped back to OpenAI's events.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.fixtures.gateway import free_port
from tests.realtime.conftest import pcm16_chunks, read_clip


@dataclass
class FakeRealtimeEngine:
    url: str
    models: list[str | None] = field(default_factory=list)
    generations: list[int] = field(default_factory=list)
    """Samples (16 kHz) received per generation, in order."""


@pytest.fixture
def fake_upstream_realtime() -> Iterator[FakeRealtimeEngine]:
    port = free_port()
    engine = FakeRealtimeEngine(f"ws://127.0.0.1:{port}")
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    loop = asyncio.new_event_loop()

    async def _handle(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "session.created", "id": "sess-fake"}))
        received: int | None = None
        async for raw in connection:
            event = json.loads(raw)
            if event["type"] == "session.update":
                engine.models.append(event.get("model"))
            elif event["type"] == "input_audio_buffer.commit" and not event.get("final"):
                received = 0
            elif event["type"] == "input_audio_buffer.append" and received is not None:
                received += len(base64.b64decode(event["audio"])) // 2
            elif event["type"] == "input_audio_buffer.commit" and received is not None:
                engine.generations.append(received)
                await connection.send(json.dumps({"type": "transcription.delta", "delta": "heard"}))
                await connection.send(
                    json.dumps({"type": "transcription.delta", "delta": f" {received} samples"})
                )
                await connection.send(
                    json.dumps({"type": "transcription.done", "text": f"heard {received} samples"})
                )
                received = None

    async def _main() -> None:
        nonlocal stop
        stop = loop.create_future()
        async with serve(_handle, "127.0.0.1", port):
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(_main(),), daemon=True)
    thread.start()
    ready.wait(10)
    yield engine
    loop.call_soon_threadsafe(stop.set_result, None)  # type: ignore[union-attr]
    thread.join(10)


def _stream(session, samples: np.ndarray) -> list[dict]:
    session.send(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
            },
        }
    )
    for chunk in pcm16_chunks(samples):
        session.send({"type": "input_audio_buffer.append", "audio": chunk})
    events = []
    while sum(e["type"].endswith("transcription.completed") for e in events) < 2:
        events.append(session.recv(timeout_s=30))
    return events


def test_bridge_maps_each_turn_to_one_engine_generation(
    gateway_factory, raw_session, fake_upstream_realtime, two_sentences
):
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        realtime={
            "passthrough_url": fake_upstream_realtime.url,
            "passthrough_model": "voxtral-rt",
            "max_ahead_s": 60,
        },
    )
    path, _, spans = two_sentences
    events = _stream(raw_session(gateway.base_url), read_clip(path))

    assert fake_upstream_realtime.models == ["voxtral-rt"]
    started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    completed = [e for e in events if e["type"].endswith("transcription.completed")]
    assert [c["item_id"] for c in completed] == [s["item_id"] for s in started]
    # Each generation got its turn's audio at 16 kHz: the speech, 300 ms of prefix, the
    # 500 ms of silence that ended the turn (give or take a frame and a chunk).
    assert len(fake_upstream_realtime.generations) == 2
    for (start_s, end_s), samples, item in zip(
        spans, fake_upstream_realtime.generations, completed, strict=True
    ):
        assert (end_s - start_s + 0.5) * 16000 <= samples <= (end_s - start_s + 1.1) * 16000
        assert item["transcript"] == f"heard {samples} samples"
        deltas = [
            e["delta"]
            for e in events
            if e["type"].endswith("transcription.delta") and e["item_id"] == item["item_id"]
        ]
        assert deltas == ["heard", f" {samples} samples"]


def test_unreachable_passthrough_engine_is_an_error_event(
    gateway_factory, raw_session, two_sentences
):
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        realtime={"passthrough_url": f"ws://127.0.0.1:{free_port()}", "max_ahead_s": 60},
    )
    session = raw_session(gateway.base_url)
    for chunk in pcm16_chunks(read_clip(two_sentences[0])):
        session.send({"type": "input_audio_buffer.append", "audio": chunk})
    events = session.recv_until("error", timeout_s=30)
    assert events[-1]["error"]["code"] == "upstream_unavailable"
    assert events[-1]["error"]["type"] == "server_error"
