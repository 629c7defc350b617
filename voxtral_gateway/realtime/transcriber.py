"""Utterances -> transcription events, over the gateway's own HTTP pipeline.

A session hands each utterance to an `UtteranceTranscriber`: `begin` when speech opens (with
the prefix audio), `extend` as audio arrives, `end` when it is committed. `EngineTranscriber`
re-transcribes the open utterance every `interim_interval_s` for interim deltas, and sends the
committed utterance upstream at once, through the gateway's one transcription service
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
from typing import Any, Protocol

import numpy as np

from voxtral_gateway.errors import GatewayError
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.realtime.protocol import Transcription, error_event, server_event
from voxtral_gateway.runtime import Runtime
from voxtral_gateway.service import TranscriptionOptions

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"

_WORD_EDGES = re.compile(r"^\W+|\W+$")


class UtteranceTranscriber(Protocol):
    """Receives one utterance at a time; emits delta/completed events for it."""

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

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)

    @property
    def duration_s(self) -> float:
        return sum(len(c) for c in self.chunks) / SAMPLE_RATE_HZ


class EngineTranscriber:
    """Utterances to the HTTP engines: interim re-transcriptions, then one final call."""

    def __init__(
        self,
        runtime: Runtime,
        emit: Emit,
        transcription: Callable[[], Transcription],
        interim_slots: asyncio.Semaphore,
    ) -> None:
        self._service = runtime.service
        self._max_interim_s = runtime.settings.vad.segment_max_s
        self._interim_slots = interim_slots
        self._emit = emit
        self._transcription = transcription
        self._settings = runtime.settings.realtime
        self._open: _Utterance | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def begin(self, item_id: str, samples: np.ndarray) -> None:
        self._open = _Utterance(item_id, [samples])
        if self._settings.interim_interval_s > 0:
            self._open.interim_task = self._spawn(self._interims(self._open))

    async def extend(self, samples: np.ndarray) -> None:
        if self._open is not None:
            self._open.chunks.append(samples)

    async def end(self) -> None:
        utterance, self._open = self._open, None
        if utterance is None:
            return
        if utterance.interim_task is not None:
            utterance.interim_task.cancel()
        self._spawn(self._finish(utterance))

    async def forget(self) -> None:
        utterance, self._open = self._open, None
        if utterance is not None and utterance.interim_task is not None:
            utterance.interim_task.cancel()

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

    def _spawn(self, coroutine: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _interims(self, utterance: _Utterance) -> None:
        settings = self._settings
        while True:
            await asyncio.sleep(settings.interim_interval_s)
            duration_s = utterance.duration_s
            if duration_s < settings.min_interim_audio_s or duration_s > self._max_interim_s:
                continue
            if self._interim_slots.locked():
                continue  # the engine is busy: interims give way, finals must not queue
            try:
                async with self._interim_slots:
                    text = await self._service.transcribe_utterance(
                        utterance.samples(), self._options()
                    )
            except GatewayError as exc:
                logger.info("interim transcription failed: %s", exc.message)
                continue
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
            text = await self._service.transcribe_utterance(samples, self._options())
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
