"""Pass-through to a vLLM Voxtral Realtime engine's `/v1/realtime`, against the real CPU engine.

`voxtral_realtime_engine` is vLLM serving a random-weight Voxtral Realtime of the
Voxtral-Mini-4B-Realtime-2602 architecture (profile cpu-tiny-voxtral-realtime): its deltas are
gibberish, so these tests check the protocol, not text: events in order, deltas while the audio
is open, `completed` only after the turn ends, engine errors mapped to OpenAI's shape, and a
client that leaves ends its engine session. A fake upstream remains only for what a healthy
engine cannot be made to do on demand: drop the connection in the middle of a generation.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.server import ServerConnection, serve

from tests.fixtures.engines import RunningEngine
from tests.fixtures.gateway import free_port
from tests.realtime.conftest import RawSession, pcm16_chunks, read_clip

CHUNK_S = 0.1  # pcm16_chunks' default append size
EVENT_TIMEOUT_S = 120.0  # one engine step on a busy 2-core machine


def _bridge_gateway(gateway_factory, engine: RunningEngine, **realtime: Any):
    """A gateway set up as the engine's profile says, bridging sessions to its /v1/realtime."""
    return gateway_factory(
        engine=engine,
        realtime={"passthrough_url": engine.websocket_base_url, "max_ahead_s": 60, **realtime},
    )


def _configure(session: RawSession, turn_detection: dict[str, Any] | None) -> None:
    session.send(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {"input": {"turn_detection": turn_detection}},
            },
        }
    )


def _send_audio(session: RawSession, samples: np.ndarray) -> None:
    for chunk in pcm16_chunks(samples):
        session.send({"type": "input_audio_buffer.append", "audio": chunk})


def _recv_until(
    session: RawSession, is_last: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not is_last(events):
        events.append(session.recv(timeout_s=EVENT_TIMEOUT_S))
    return events


def _count(kind: str) -> Callable[[list[dict[str, Any]]], int]:
    return lambda events: sum(e["type"].endswith(kind) for e in events)


def _engine_sessions(engine: RunningEngine) -> float:
    """Requests the engine holds (running, or waiting for a session's next audio)."""
    metrics = httpx.get(f"{engine.base_url}/metrics", timeout=10, trust_env=False).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(("vllm:num_requests_running{", "vllm:num_requests_waiting{"))
    )


def _wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.engine
def test_each_vad_turn_streams_as_one_engine_generation(
    gateway_factory, raw_session, voxtral_realtime_engine, two_sentences
):
    gateway = _bridge_gateway(gateway_factory, voxtral_realtime_engine)
    path, _, spans = two_sentences
    session = raw_session(gateway.base_url)
    _configure(session, {"type": "server_vad"})
    _send_audio(session, read_clip(path))
    events = _recv_until(session, lambda seen: _count("transcription.completed")(seen) == 2)

    started = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    completed = [e for e in events if e["type"].endswith("transcription.completed")]
    assert [c["item_id"] for c in completed] == [s["item_id"] for s in started]
    for (start_s, end_s), item in zip(spans, completed, strict=True):
        own = [e for e in events if e.get("item_id") == item["item_id"]]
        kinds = [e["type"] for e in own]
        assert kinds[0] == "input_audio_buffer.speech_started"
        assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index(
            "input_audio_buffer.committed"
        )
        assert kinds[-1].endswith("transcription.completed")
        assert kinds.count(item["type"]) == 1
        deltas = [e["delta"] for e in own if e["type"].endswith("transcription.delta")]
        assert deltas, "the engine streamed no delta for this turn"
        assert item["transcript"] == "".join(deltas).strip()
        # The engine got the turn's audio: speech, 300 ms of prefix, the 500 ms of silence
        # that ended it (give or take a frame and a chunk).
        assert end_s - start_s + 0.5 <= item["usage"]["seconds"] <= end_s - start_s + 1.1


@pytest.mark.engine
def test_deltas_stream_while_audio_is_open_and_completed_follows_the_commit(
    gateway_factory, raw_session, voxtral_realtime_engine, two_sentences
):
    gateway = _bridge_gateway(gateway_factory, voxtral_realtime_engine)
    samples = read_clip(two_sentences[0])[: 16_000 * 3]
    first, rest = samples[:16_000], samples[16_000:]
    session = raw_session(gateway.base_url)
    _configure(session, None)
    _send_audio(session, first)
    events = _recv_until(session, lambda seen: _count("transcription.delta")(seen) >= 1)
    deltas_before_more_audio = _count("transcription.delta")(events)
    _send_audio(session, rest)
    events += _recv_until(
        session, lambda seen: _count("transcription.delta")(seen) > deltas_before_more_audio
    )
    assert not _count("transcription.completed")(events), "completed before the commit"

    session.send({"type": "input_audio_buffer.commit"})
    events += _recv_until(session, lambda seen: _count("transcription.completed")(seen) == 1)
    kinds = [e["type"] for e in events]
    assert kinds.index("input_audio_buffer.committed") < len(kinds) - 1
    completed = events[-1]
    deltas = [e for e in events if e["type"].endswith("transcription.delta")]
    assert {e["item_id"] for e in deltas} == {completed["item_id"]}
    assert completed["transcript"] == "".join(e["delta"] for e in deltas).strip()
    assert completed["usage"]["seconds"] == pytest.approx(3.0, abs=CHUNK_S)


@pytest.mark.engine
def test_engine_error_is_an_openai_shaped_event(
    gateway_factory, raw_session, voxtral_realtime_engine, two_sentences
):
    gateway = _bridge_gateway(
        gateway_factory, voxtral_realtime_engine, passthrough_model="no-such-model"
    )
    session = raw_session(gateway.base_url)
    _configure(session, None)
    _send_audio(session, read_clip(two_sentences[0])[:16_000])

    def _engine_refused(events: list[dict[str, Any]]) -> bool:
        error = events[-1].get("error") if events else None
        return bool(error) and "no-such-model" in error["message"]

    # The refusal is `error` if it arrives before the utterance reaches the bridge, else the
    # utterance's `...transcription.failed`; both carry the same OpenAI error object.
    error = _recv_until(session, _engine_refused)[-1]["error"]
    assert error["type"] == "server_error"
    assert error["code"] == "upstream_error"
    assert error["message"] == "The model `no-such-model` does not exist."


@pytest.mark.engine
def test_bridge_presents_the_engine_key_the_engine_requires(
    gateway_factory, raw_session, voxtral_realtime_engine, two_sentences
):
    """Every other bridge test passes only because the gateway sends VOXTRAL_UPSTREAM_API_KEY
    on the WebSocket handshake; without it, vLLM refuses the session."""
    engine = voxtral_realtime_engine
    if engine.api_key is None:
        pytest.skip("the external engine given to this run requires no key")
    gateway = gateway_factory(
        engine=engine,
        upstream_api_key="not-the-engine-key",
        realtime={"passthrough_url": engine.websocket_base_url, "max_ahead_s": 60},
    )
    session = raw_session(gateway.base_url)
    _configure(session, None)
    _send_audio(session, read_clip(two_sentences[0])[:16_000])
    session.send({"type": "input_audio_buffer.commit"})
    refused = _recv_until(session, lambda seen: _count("error")(seen) + _count("failed")(seen) > 0)
    assert refused[-1]["error"]["code"] in ("upstream_unavailable", "upstream_error")


@pytest.mark.engine
def test_client_disconnect_ends_the_engine_session(
    gateway_factory, raw_session, voxtral_realtime_engine, two_sentences
):
    engine = voxtral_realtime_engine
    gateway = _bridge_gateway(gateway_factory, engine)
    _wait_for(lambda: _engine_sessions(engine) == 0, 60, "earlier sessions to end")
    session = raw_session(gateway.base_url)
    _configure(session, None)
    _send_audio(session, read_clip(two_sentences[0])[:16_000])
    _recv_until(session, lambda seen: _count("transcription.delta")(seen) >= 1)
    # Without a final commit the engine keeps the session, waiting for more audio.
    _wait_for(lambda: _engine_sessions(engine) >= 1, 30, "the engine to hold the session")

    session.connection.close()
    _wait_for(lambda: _engine_sessions(engine) == 0, 30, "the engine to drop the session")


def test_unreachable_passthrough_engine_is_an_error_event(
    gateway_factory, raw_session, two_sentences
):
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        realtime={"passthrough_url": f"ws://127.0.0.1:{free_port()}", "max_ahead_s": 60},
    )
    session = raw_session(gateway.base_url)
    _send_audio(session, read_clip(two_sentences[0]))
    events = session.recv_until("error", timeout_s=30)
    assert events[-1]["error"]["code"] == "upstream_unavailable"
    assert events[-1]["error"]["type"] == "server_error"


@pytest.fixture
def fake_upstream_drops_connection() -> Iterator[str]:
    """vLLM's realtime greeting and a delta, then the connection drops while the generation
    finishes (after the final commit, when the bridge has nothing more to send): an engine
    that dies mid-session, which the shared real engine must not be made to do."""
    port = free_port()
    ready = threading.Event()
    stop: asyncio.Future[None] | None = None
    loop = asyncio.new_event_loop()

    async def _handle(connection: ServerConnection) -> None:
        await connection.send(json.dumps({"type": "session.created", "id": "sess-fake"}))
        async for raw in connection:
            event = json.loads(raw)
            if event["type"] == "input_audio_buffer.commit" and event.get("final"):
                await connection.send(json.dumps({"type": "transcription.delta", "delta": "x"}))
                await connection.close()

    async def _main() -> None:
        nonlocal stop
        stop = loop.create_future()
        async with serve(_handle, "127.0.0.1", port):
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(_main(),), daemon=True)
    thread.start()
    ready.wait(10)
    yield f"ws://127.0.0.1:{port}"
    loop.call_soon_threadsafe(stop.set_result, None)  # type: ignore[union-attr]
    thread.join(10)


def test_engine_dropping_mid_generation_is_an_error_event(
    gateway_factory, raw_session, fake_upstream_drops_connection, two_sentences
):
    gateway = gateway_factory(
        upstream_urls=[f"http://127.0.0.1:{free_port()}"],
        realtime={"passthrough_url": fake_upstream_drops_connection, "max_ahead_s": 60},
    )
    session = raw_session(gateway.base_url)
    _configure(session, None)
    _send_audio(session, read_clip(two_sentences[0])[:16_000])
    session.send({"type": "input_audio_buffer.commit"})
    events = session.recv_until("error", timeout_s=30)
    assert events[-1]["error"]["code"] == "upstream_unavailable"
