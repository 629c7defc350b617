"""The WebSocket side of a realtime session: admission, the read loop, limits, clean closes.

Every limit ends the same way: an OpenAI `error` event, then a close frame with a code that
names the reason (1008 policy, 1009 too big, 1013 try later, 1000 normal). Nothing a client
sends can touch another session: each has its own VAD state, resampler and tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from voxtral_gateway.errors import GatewayError
from voxtral_gateway.realtime.bridge import BridgeTranscriber
from voxtral_gateway.realtime.protocol import ClientEvent, error_event
from voxtral_gateway.realtime.session import RealtimeSession, SessionEnded
from voxtral_gateway.realtime.transcriber import EngineTranscriber, UtteranceTranscriber
from voxtral_gateway.runtime import Runtime

logger = logging.getLogger(__name__)

BROWSER_KEY_PROTOCOL = "openai-insecure-api-key."


@dataclass
class RealtimeHub:
    """Per-app realtime state: live-session count, interim slots, the engine-call counter.
    (VAD is the runtime's.)"""

    interim_slots: asyncio.Semaphore
    engine_calls: Counter
    live_sessions: int = 0


def _hub(websocket: WebSocket) -> RealtimeHub:
    state = websocket.app.state
    if getattr(state, "realtime_hub", None) is None:
        runtime: Runtime = state.runtime
        engine_calls = Counter(
            "voxtral_realtime_engine_calls",
            "Realtime engine calls by kind (interim, speculative_final, final) and outcome "
            "(used; cancelled or discarded because a newer call covered their audio, or the "
            "session ended mid-call; failed).",
            ["kind", "outcome"],
            registry=runtime.metrics.registry,
        )
        slots = runtime.settings.realtime.max_interims_in_flight
        state.realtime_hub = RealtimeHub(asyncio.Semaphore(slots), engine_calls)
    return state.realtime_hub


def _subprotocol(websocket: WebSocket) -> str | None:
    """Echo `realtime` (what browsers offer beside their key protocol), if offered."""
    offered = websocket.scope.get("subprotocols") or []
    return "realtime" if "realtime" in offered else None


class _Sender:
    """Serialises sends from the read loop and the transcription tasks."""

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._lock = asyncio.Lock()

    async def __call__(self, event: dict[str, Any]) -> None:
        async with self._lock:
            if self._websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                    await self._websocket.send_text(json.dumps(event))


async def serve_realtime(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    settings = runtime.settings.realtime
    hub = _hub(websocket)
    await websocket.accept(subprotocol=_subprotocol(websocket))
    send = _Sender(websocket)
    if hub.live_sessions >= settings.max_connections:
        await _close(
            websocket,
            send,
            error_event(
                f"Too many realtime sessions ({settings.max_connections}); retry later.",
                "rate_limit_error",
                code="too_many_connections",
            ),
            1013,
        )
        return
    hub.live_sessions += 1
    try:
        session = RealtimeSession(
            runtime.settings,
            send,
            runtime.detector,
            lambda s: _transcriber(runtime, hub, send, s),
            runtime.service.checked_language,
        )
        try:
            await _run(websocket, send, session, runtime)
        finally:
            await session.transcriber.aclose()
    finally:
        hub.live_sessions -= 1


def _transcriber(
    runtime: Runtime, hub: RealtimeHub, send: _Sender, session: RealtimeSession
) -> UtteranceTranscriber:
    settings = runtime.settings
    if settings.realtime.passthrough_url:
        key = settings.upstream_api_key
        return BridgeTranscriber(
            settings.realtime.passthrough_url,
            settings.realtime.passthrough_model or settings.upstream_model,
            send,
            api_key=key.get_secret_value() if key else None,
        )
    return EngineTranscriber(
        runtime,
        send,
        lambda: session.config.transcription,
        hub.interim_slots,
        lambda kind, outcome: hub.engine_calls.labels(kind, outcome).inc(),
    )


async def _run(
    websocket: WebSocket, send: _Sender, session: RealtimeSession, runtime: Runtime
) -> None:
    settings = runtime.settings.realtime
    started = time.monotonic()
    first_audio_at: float | None = None
    await session.start()
    while True:
        session_left_s = settings.max_session_s - (time.monotonic() - started)
        timeout_s = min(settings.idle_timeout_s, session_left_s)
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout=max(timeout_s, 0))
        except TimeoutError:
            if session_left_s > settings.idle_timeout_s and session.transcriber.pending:
                # The client is waiting for us (a busy engine), not idle.
                continue
            if session_left_s <= settings.idle_timeout_s:
                event = error_event(
                    f"The session reached its {settings.max_session_s:g} s limit.",
                    code="session_expired",
                )
            else:
                event = error_event(
                    f"No client event for {settings.idle_timeout_s:g} s; closing.",
                    code="idle_timeout",
                )
            await _close(websocket, send, event, 1000)
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await send(error_event("Send events as JSON text frames.", code="invalid_event"))
            continue
        if len(text) > settings.max_append_bytes:
            await _close(
                websocket,
                send,
                error_event(
                    f"Event of {len(text)} bytes exceeds the {settings.max_append_bytes} byte "
                    "limit; send smaller appends.",
                    code="event_too_large",
                ),
                1009,
            )
            return
        event = _parse(text)
        if isinstance(event, dict):
            await send(event)
            continue
        try:
            await session.handle(event)
        except GatewayError as exc:
            await send(
                error_event(
                    exc.message,
                    exc.error_type,
                    code=exc.code,
                    param=exc.param,
                    client_event_id=event.event_id,
                )
            )
        except SessionEnded as ended:
            await _close(websocket, send, ended.event, ended.close_code)
            return
        if event.type == "input_audio_buffer.append":
            # Backpressure: stop reading while the client is ahead of real time, so its
            # socket buffer fills and its sends block, instead of our memory.
            first_audio_at = first_audio_at or time.monotonic()
            ahead_s = session.received_s - (time.monotonic() - first_audio_at)
            if ahead_s > settings.max_ahead_s:
                await asyncio.sleep(ahead_s - settings.max_ahead_s)


def _parse(text: str) -> ClientEvent | dict[str, Any]:
    """The client event, or the `error` event to answer with."""
    try:
        data = json.loads(text)
    except ValueError:
        return error_event("The event is not valid JSON.", code="invalid_json")
    if not isinstance(data, dict):
        return error_event("An event must be a JSON object.", code="invalid_event")
    client_event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    try:
        return ClientEvent.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        return error_event(
            f"Invalid event: {message}",
            code="invalid_event",
            param=param,
            client_event_id=client_event_id,
        )


async def _close(websocket: WebSocket, send: _Sender, event: dict[str, Any], code: int) -> None:
    await send(event)
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.close(code=code, reason=event["error"].get("code") or "")
