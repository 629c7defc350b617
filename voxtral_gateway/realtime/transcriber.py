"""Utterances -> transcription events, over the gateway's own HTTP pipeline.

A session hands each utterance to an `UtteranceTranscriber`: `begin` when speech opens (with
the prefix audio), `extend` as audio arrives, `end` when it is committed. `EngineTranscriber`
re-transcribes the open utterance every `interim_interval_s` for interim deltas, and makes the
final call as soon as the VAD hears speech pause (`pause`), while the silence that will close the
turn is still running: if speech resumes (`resume`) that call is cancelled and interims go on,
else it is the final and `completed` follows the commit at once. A call whose audio a newer call
covers is cancelled (an interim when the final starts), so no call is made twice. Calls go
through the gateway's one transcription service
(`TranscriptionService.transcribe_utterance`: the same options, engine pool, token budget,
global segment slots, VAD segmentation for utterances longer than one segment, and
stitching as the HTTP route). The pass-through bridge (`bridge.py`) implements the same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from voxtral_gateway.errors import GatewayError
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.realtime.protocol import Transcription, error_event, server_event
from voxtral_gateway.runtime import Runtime

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"

_WORD_EDGES = re.compile(r"^\W+|\W+$")

CallKind = Literal["interim", "speculative_final", "final"]
CallOutcome = Literal["used", "cancelled", "discarded", "failed"]
CountCall = Callable[[CallKind, CallOutcome], None]
"""Counts one engine call by kind and outcome (`voxtral_realtime_calls` in /metrics)."""

_T = TypeVar("_T")


class UtteranceTranscriber(Protocol):
    """Receives one utterance at a time; emits delta/completed events for it."""

    mode: Literal["turns", "streaming"]
    """`turns`: each utterance is transcribed after it ends; `streaming`: a streaming model
    emits deltas while the audio arrives. `session.created` reports it (the page shows it)."""

    async def begin(self, item_id: str, samples: np.ndarray) -> None: ...
    async def extend(self, samples: np.ndarray) -> None: ...
    async def end(self) -> None:
        """Commit the open utterance; its `completed` event follows when the engine answers."""
        ...

    async def forget(self) -> None:
        """Forget the open utterance without transcribing it (buffer cleared)."""
        ...

    async def aclose(self) -> None: ...

    @property
    def pending(self) -> int:
        """Transcriptions the client is still owed; a session waiting on them is not idle."""
        ...


@runtime_checkable
class SpeculativeTranscriber(Protocol):
    """A transcriber that can start an utterance's final call before the turn is committed
    (the pass-through bridge cannot: its engine transcribes the stream itself)."""

    async def pause(self) -> None:
        """Speech paused: transcribe the open utterance as it is now, as its likely final."""
        ...

    async def resume(self) -> None:
        """Speech resumed before the turn closed: the speculative final no longer covers it."""
        ...


def _normalised(word: str) -> str:
    return _WORD_EDGES.sub("", word.lower())


def new_words(sent: list[str], hypothesis: str, *, is_final: bool) -> list[str]:
    """Words of `hypothesis` to send as a delta after the words already `sent`.

    An interim hypothesis ends where the audio does, often mid-word, so its last word is held
    back. Nothing is sent when the hypothesis revises a word already sent (compared without
    case or punctuation): deltas only ever append, and `completed` carries the final text.
    """
    words = hypothesis.split()
    candidate = words if is_final else words[:-1]
    if len(candidate) <= len(sent):
        return []
    if [_normalised(w) for w in candidate[: len(sent)]] != [_normalised(w) for w in sent]:
        return []
    return candidate[len(sent) :]


def delta_text(sent: list[str], words: list[str]) -> str:
    return (" " if sent else "") + " ".join(words)


@dataclass
class _Utterance:
    item_id: str
    chunks: list[np.ndarray]
    sent_words: list[str] = field(default_factory=list)
    interim_task: asyncio.Task[None] | None = None
    speculation: asyncio.Task[str] | None = None
    """The final call made when speech paused; used by `end` unless speech resumes."""

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)

    @property
    def duration_s(self) -> float:
        return sum(len(c) for c in self.chunks) / SAMPLE_RATE_HZ


class EngineTranscriber:
    """Utterances to the HTTP engines: interim re-transcriptions, then one final call (made
    speculatively when speech pauses)."""

    mode: Literal["turns", "streaming"] = "turns"

    def __init__(
        self,
        runtime: Runtime,
        emit: Emit,
        transcription: Callable[[], Transcription],
        interim_slots: asyncio.Semaphore,
        count_call: CountCall,
    ) -> None:
        self._service = runtime.service
        self._max_interim_s = runtime.settings.vad.segment_max_s
        self._interim_slots = interim_slots
        self._emit = emit
        self._transcription = transcription
        self._count_call = count_call
        self._settings = runtime.settings.realtime
        self._open: _Utterance | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def begin(self, item_id: str, samples: np.ndarray) -> None:
        self._open = _Utterance(item_id, [samples])
        self._start_interims(self._open)

    async def extend(self, samples: np.ndarray) -> None:
        if self._open is not None:
            self._open.chunks.append(samples)

    async def pause(self) -> None:
        utterance = self._open
        if utterance is None or utterance.speculation is not None:
            return
        self._stop_interims(utterance)  # the final covers all their audio
        utterance.speculation = self._spawn(self._call("speculative_final", utterance.samples()))

    async def resume(self) -> None:
        utterance = self._open
        if utterance is None or utterance.speculation is None:
            return
        self._drop_speculation(utterance)
        self._start_interims(utterance)

    async def end(self) -> None:
        utterance, self._open = self._open, None
        if utterance is None:
            return
        self._stop_interims(utterance)
        self._spawn(self._finish(utterance))

    async def forget(self) -> None:
        utterance, self._open = self._open, None
        if utterance is not None:
            self._stop_interims(utterance)
            self._drop_speculation(utterance)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def pending(self) -> int:
        """Transcriptions still running (interim or final)."""
        return len(self._tasks)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def _spawn(self, coroutine: Awaitable[_T]) -> asyncio.Task[_T]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _start_interims(self, utterance: _Utterance) -> None:
        if self._settings.interim_interval_s > 0:
            utterance.interim_task = self._spawn(self._interims(utterance))

    def _stop_interims(self, utterance: _Utterance) -> None:
        # Cancelling mid-call closes the engine request, so the engine drops the work too.
        if utterance.interim_task is not None:
            utterance.interim_task.cancel()
            utterance.interim_task = None

    def _drop_speculation(self, utterance: _Utterance) -> None:
        speculation, utterance.speculation = utterance.speculation, None
        if speculation is None:
            return
        if not speculation.done():
            speculation.cancel()
            self._count_call("speculative_final", "cancelled")
        elif not speculation.cancelled() and speculation.exception() is None:
            self._count_call("speculative_final", "discarded")

    async def _call(self, kind: CallKind, samples: np.ndarray) -> str:
        """One engine call; GatewayError propagates (counted as failed)."""
        try:
            return await self._service.transcribe_utterance(samples, self._options())
        except GatewayError:
            self._count_call(kind, "failed")
            raise

    async def _interims(self, utterance: _Utterance) -> None:
        settings = self._settings
        covered_s = 0.0  # audio the last interim call heard
        while True:
            await asyncio.sleep(settings.interim_interval_s)
            duration_s = utterance.duration_s
            if duration_s < settings.min_interim_audio_s or duration_s > self._max_interim_s:
                continue
            if duration_s <= covered_s:
                continue  # nothing new to hear
            if self._interim_slots.locked():
                continue  # the engine is busy: interims give way, finals must not queue
            try:
                async with self._interim_slots:
                    text = await self._call("interim", utterance.samples())
            except GatewayError as exc:
                logger.info("interim transcription failed: %s", exc.message)
                continue
            except asyncio.CancelledError:
                self._count_call("interim", "cancelled")  # a newer call covers its audio
                raise
            covered_s = duration_s
            self._count_call("interim", "used")
            words = new_words(utterance.sent_words, text, is_final=False)
            if words:
                await self._emit_delta(utterance, words)

    async def _emit_delta(self, utterance: _Utterance, words: list[str]) -> None:
        delta = delta_text(utterance.sent_words, words)
        utterance.sent_words.extend(words)
        await self._emit(
            server_event(DELTA, item_id=utterance.item_id, content_index=0, delta=delta)
        )

    async def _finish(self, utterance: _Utterance) -> None:
        samples = utterance.samples()
        try:
            if utterance.speculation is not None:
                # Made when speech paused; the audio since is the silence that closed the turn.
                text = await utterance.speculation
                self._count_call("speculative_final", "used")
            else:
                text = await self._call("final", samples)
                self._count_call("final", "used")
        except GatewayError as exc:
            await self._emit(
                server_event(
                    FAILED,
                    item_id=utterance.item_id,
                    content_index=0,
                    error=error_event(exc.message, exc.error_type, code=exc.code)["error"],
                )
            )
            return
        words = new_words(utterance.sent_words, text, is_final=True)
        if words:
            await self._emit_delta(utterance, words)
        await self._emit(
            server_event(
                COMPLETED,
                item_id=utterance.item_id,
                content_index=0,
                transcript=text,
                usage={"type": "duration", "seconds": round(len(samples) / SAMPLE_RATE_HZ, 3)},
            )
        )

    def _options(self) -> TranscriptionOptions:
        # The session's transcription settings, as the HTTP route's request would carry them.
        transcription = self._transcription()
        return TranscriptionOptions(language=transcription.language, prompt=transcription.prompt)
