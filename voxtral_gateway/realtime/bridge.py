"""Pass-through to a vLLM Voxtral Realtime engine's own `/v1/realtime` WebSocket.

vLLM's protocol (vllm/entrypoints/speech_to_text/realtime/): `session.created` on connect;
the client sends `session.update {model}`, then `input_audio_buffer.commit` to start a
generation, `input_audio_buffer.append` with base64 PCM16 at 16 kHz, and
`input_audio_buffer.commit {final: true}` when the audio ends; the engine streams
`transcription.delta {delta}` and ends with `transcription.done {text}`. One generation runs
per connection at a time, so utterances are sent one after another: the next one's audio
waits (in order) until the previous `transcription.done`.

Our session keeps deciding turns (streaming VAD or client commits); this module maps each
utterance to one generation and the engine's events back to OpenAI's item events.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections import deque
from typing import Any, Literal

import numpy as np
import websockets

from voxtral_gateway.pipeline.pcm16 import to_pcm16
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.realtime.protocol import error_event, server_event
from voxtral_gateway.realtime.transcriber import COMPLETED, DELTA, FAILED, Emit

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 10.0
_END = object()


def _pcm16_b64(samples: np.ndarray) -> str:
    return base64.b64encode(to_pcm16(samples).tobytes()).decode("ascii")


class BridgeTranscriber:
    """Each utterance becomes one generation on a long-lived engine WebSocket."""

    mode: Literal["turns", "streaming"] = "streaming"

    def __init__(
        self, base_url: str, model: str | None, emit: Emit, api_key: str | None = None
    ) -> None:
        self._url = base_url.rstrip("/") + "/v1/realtime"
        # vLLM guards /v1/realtime with its --api-key as it does the HTTP routes.
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._model = model
        self._emit = emit
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._items: deque[str] = deque()
        self._generation_done = asyncio.Event()
        self._text: dict[str, str] = {}
        self._samples: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def begin(self, item_id: str, samples: np.ndarray) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._pump())
        await self._outbox.put(("begin", item_id))
        await self.extend(samples)

    async def extend(self, samples: np.ndarray) -> None:
        if len(samples):
            await self._outbox.put(samples)

    async def end(self) -> None:
        await self._outbox.put(_END)

    async def forget(self) -> None:
        # The engine cannot abort one generation; finish it and discard its text.
        await self._outbox.put(("forget", None))
        await self._outbox.put(_END)

    @property
    def pending(self) -> int:
        """Utterances sent to the engine whose `completed` has not come back yet."""
        return len(self._items)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _pump(self) -> None:
        try:
            async with websockets.connect(
                self._url,
                open_timeout=_CONNECT_TIMEOUT_S,
                max_size=None,
                additional_headers=self._headers,
            ) as engine:
                created = json.loads(await engine.recv())
                if created.get("type") != "session.created":
                    raise ConnectionError(f"engine sent {created.get('type')!r} first")
                await engine.send(json.dumps({"type": "session.update", "model": self._model}))
                reader = asyncio.ensure_future(self._read(engine))
                writer = asyncio.ensure_future(self._write(engine))
                try:
                    # The writer never returns; the reader returns when the engine closes,
                    # which may be while the writer waits for a `done` that will not come.
                    done, _ = await asyncio.wait(
                        {reader, writer}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    reader.cancel()
                    writer.cancel()
                for task in done:
                    task.result()
                raise ConnectionError("the engine closed the connection")
        except (OSError, websockets.WebSocketException, ConnectionError, ValueError) as exc:
            logger.warning("realtime passthrough to %s failed: %s", self._url, exc)
            self._items.clear()  # nothing more will complete: the session is not waiting
            await self._emit(
                error_event(
                    "The realtime speech engine cannot be reached.",
                    "server_error",
                    code="upstream_unavailable",
                )
            )

    async def _write(self, engine: websockets.ClientConnection) -> None:
        discard = False
        while True:
            message = await self._outbox.get()
            if isinstance(message, tuple):
                kind, item_id = message
                if kind == "begin":
                    discard = False
                    self._generation_done.clear()
                    self._items.append(item_id)
                    self._text[item_id] = ""
                    self._samples[item_id] = 0
                    await engine.send(json.dumps({"type": "input_audio_buffer.commit"}))
                elif kind == "forget" and self._items:
                    self._text.pop(self._items[-1], None)
                    discard = True
            elif message is _END:
                await engine.send(json.dumps({"type": "input_audio_buffer.commit", "final": True}))
                # vLLM ignores a new commit while a generation runs: wait for its `done`.
                await self._generation_done.wait()
            else:
                if self._items and not discard:
                    self._samples[self._items[-1]] += len(message)
                await engine.send(
                    json.dumps({"type": "input_audio_buffer.append", "audio": _pcm16_b64(message)})
                )

    async def _read(self, engine: websockets.ClientConnection) -> None:
        async for raw in engine:
            event = json.loads(raw)
            kind = event.get("type")
            item_id = self._items[0] if self._items else None
            if kind == "transcription.delta" and item_id in self._text:
                delta = str(event.get("delta", ""))
                self._text[item_id] += delta
                await self._emit(server_event(DELTA, item_id=item_id, content_index=0, delta=delta))
            elif kind == "transcription.done" and item_id is not None:
                self._items.popleft()
                self._generation_done.set()
                if item_id in self._text:
                    seconds = self._samples.pop(item_id, 0) / SAMPLE_RATE_HZ
                    text = str(event.get("text", self._text.pop(item_id))).strip()
                    await self._emit(
                        server_event(
                            COMPLETED,
                            item_id=item_id,
                            content_index=0,
                            transcript=text,
                            usage={"type": "duration", "seconds": round(seconds, 3)},
                        )
                    )
            elif kind == "error":
                message = str(event.get("error", "engine error"))[:500]
                body = error_event(message, "server_error", code="upstream_error")
                if item_id is not None:
                    await self._emit(
                        server_event(FAILED, item_id=item_id, content_index=0, error=body["error"])
                    )
                else:
                    await self._emit(body)
