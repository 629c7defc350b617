"""One realtime transcription session, without the WebSocket: client events in, server events out.

Audio arrives as 24 kHz PCM16, is resampled to 16 kHz by a streaming soxr resampler, and goes
either through the streaming VAD (`server_vad`: speech start/stop open and commit utterances)
or into one utterance that the client commits (`turn_detection: null`). Utterances go to an
`UtteranceTranscriber`; one that can (`SpeculativeTranscriber`) is told when speech pauses and
resumes inside a turn, so it can start the final before the silence closes the turn. Protocol
mistakes raise `GatewayError` (the session stays open); `SessionEnded` means the client broke a
limit and the connection must close.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import soxr

from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.pcm16 import from_pcm16
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.pipeline.vad import SpeechDetector
from voxtral_gateway.realtime.protocol import (
    INPUT_RATE_HZ,
    ClientEvent,
    SessionConfig,
    error_event,
    new_id,
    server_event,
    session_changes,
)
from voxtral_gateway.realtime.transcriber import (
    Emit,
    SpeculativeTranscriber,
    UtteranceTranscriber,
)
from voxtral_gateway.realtime.vad_stream import TurnDetector, TurnEvent
from voxtral_gateway.settings import Settings

_MIN_COMMIT_S = 0.1  # OpenAI refuses to commit less than 100 ms of audio.

CheckLanguage = Callable[[str | None], Awaitable[str | None]]
"""The service's language check (`TranscriptionService.checked_language`): the language as the
engine expects it, or a GatewayError."""


class SessionEnded(Exception):
    """The client broke a session limit: send `event`, then close with `close_code`."""

    def __init__(self, event: dict[str, Any], close_code: int) -> None:
        super().__init__(event["error"]["message"])
        self.event = event
        self.close_code = close_code


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE_HZ


def _settled(turns: list[TurnEvent]) -> list[TurnEvent]:
    """`turns` without pauses that one append's frames already resume (a dip between words)."""
    kept: list[TurnEvent] = []
    for turn in turns:
        if turn.kind == "resume" and kept and kept[-1].kind == "pause":
            kept.pop()
        else:
            kept.append(turn)
    return kept


class RealtimeSession:
    def __init__(
        self,
        settings: Settings,
        emit: Emit,
        detector: SpeechDetector,
        make_transcriber: Callable[[RealtimeSession], UtteranceTranscriber],
        check_language: CheckLanguage,
    ) -> None:
        self.settings = settings
        self._check_language = check_language
        self.config = SessionConfig()
        self._emit = emit
        self._vad = detector  # the gateway's one VAD model, shared with batch requests
        self._resampler = soxr.ResampleStream(INPUT_RATE_HZ, SAMPLE_RATE_HZ, 1, dtype="float32")
        self._history = np.zeros(0, np.float32)
        self._history_start = 0
        self._total_samples = 0
        self._detector = self._new_detector()
        self._open_item: str | None = None
        self._open_start = 0
        self._fed_upto = 0
        self._previous_item: str | None = None
        self.transcriber = make_transcriber(self)

    @property
    def received_s(self) -> float:
        """Seconds of audio received so far."""
        return self._total_samples / SAMPLE_RATE_HZ

    def _new_detector(self) -> TurnDetector | None:
        vad = self.config.turn_detection
        if vad is None:
            return None
        return TurnDetector(
            self._vad.stream(),
            threshold=vad.threshold,
            silence_ms=vad.silence_duration_ms,
        )

    async def start(self) -> None:
        # `transcription_mode` is ours, outside OpenAI's schema (its SDK keeps unknown keys).
        await self._emit(
            server_event(
                "session.created",
                session=self.config.as_ga(),
                transcription_mode=self.transcriber.mode,
            )
        )

    async def handle(self, event: ClientEvent) -> None:
        match event.type:
            case "session.update" | "transcription_session.update":
                await self._update(event)
            case "input_audio_buffer.append":
                await self._append(event.audio or "")
            case "input_audio_buffer.commit":
                await self._commit()
            case "input_audio_buffer.clear":
                await self._clear()

    async def _update(self, event: ClientEvent) -> None:
        changes = session_changes(event.model_dump())
        previous = self.config.turn_detection
        config = self.config.updated(changes)
        if "transcription" in changes:
            config = await self._with_checked_language(config, event.type)
        self.config = config
        if self.config.turn_detection != previous:
            # A new turn-detection mode starts from a clean slate.
            await self._forget_open()
            self._detector = self._new_detector()
        if event.type == "session.update":
            await self._emit(server_event("session.updated", session=self.config.as_ga()))
        else:
            await self._emit(
                server_event("transcription_session.updated", session=self.config.as_beta())
            )

    async def _with_checked_language(self, config: SessionConfig, event_type: str) -> SessionConfig:
        """`config` with its language as the HTTP route would send it, or the route's error."""
        try:
            language = await self._check_language(config.transcription.language)
        except InvalidRequestError as exc:
            exc.param = (
                "session.audio.input.transcription.language"
                if event_type == "session.update"
                else "session.input_audio_transcription.language"
            )
            raise
        transcription = config.transcription.model_copy(update={"language": language})
        return config.model_copy(update={"transcription": transcription})

    def _decode(self, audio_b64: str) -> np.ndarray:
        try:
            raw = base64.b64decode(audio_b64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                "`audio` is not valid base64.", param="audio", code="invalid_audio"
            ) from None
        if len(raw) % 2:
            raise InvalidRequestError(
                "`audio` must be whole 16-bit PCM samples (an even byte count).",
                param="audio",
                code="invalid_audio",
            )
        pcm = from_pcm16(raw)
        return self._resampler.resample_chunk(pcm)

    async def _append(self, audio_b64: str) -> None:
        samples = self._decode(audio_b64)
        if samples.size == 0:
            return
        self._history = np.concatenate([self._history, samples])
        self._total_samples += len(samples)
        if self._detector is None:
            await self._append_manual(samples)
        else:
            await self._append_with_vad(samples)
        self._trim_history()

    async def _append_manual(self, samples: np.ndarray) -> None:
        if self._open_item is None:
            await self._open(self._total_samples - len(samples), announce=False)
        else:
            await self.transcriber.extend(samples)
        self._fed_upto = self._total_samples
        buffered_s = (self._total_samples - self._open_start) / SAMPLE_RATE_HZ
        if buffered_s > self.settings.realtime.max_buffer_s:
            raise SessionEnded(
                error_event(
                    f"The input audio buffer holds more than "
                    f"{self.settings.realtime.max_buffer_s:g} s; commit more often.",
                    code="input_audio_buffer_too_large",
                ),
                close_code=1009,
            )

    async def _append_with_vad(self, samples: np.ndarray) -> None:
        assert self._detector is not None
        prefix = self.config.turn_detection.prefix_padding_ms * SAMPLE_RATE_HZ // 1000  # type: ignore[union-attr]
        speculative = (
            self.transcriber if isinstance(self.transcriber, SpeculativeTranscriber) else None
        )
        for turn in _settled(self._detector.feed(samples)):
            if turn.kind == "start" and self._open_item is None:
                await self._open(max(turn.sample - prefix, self._history_start), announce=True)
            elif turn.kind == "pause" and self._open_item is not None and speculative:
                await self._feed_open()
                await speculative.pause()
            elif turn.kind == "resume" and self._open_item is not None and speculative:
                await speculative.resume()
            elif turn.kind == "stop" and self._open_item is not None:
                await self._emit(
                    server_event(
                        "input_audio_buffer.speech_stopped",
                        audio_end_ms=_ms(turn.sample),
                        item_id=self._open_item,
                    )
                )
                await self._commit_open()
        await self._feed_open()
        max_samples = int(self.settings.vad.segment_max_s * SAMPLE_RATE_HZ)
        if self._open_item is not None and self._total_samples - self._open_start > max_samples:
            # Same cap as the batch route's segments: commit, and carry on in a new item.
            await self._commit_open()
            await self._open(self._total_samples, announce=True)

    async def _feed_open(self) -> None:
        """Hand the open utterance all audio received so far."""
        if self._open_item is not None and self._fed_upto < self._total_samples:
            await self.transcriber.extend(self._slice(self._fed_upto, self._total_samples))
            self._fed_upto = self._total_samples

    def _slice(self, start: int, end: int) -> np.ndarray:
        return self._history[start - self._history_start : end - self._history_start].copy()

    def _trim_history(self) -> None:
        # Keep what the next speech start may reach back to (prefix padding plus a frame).
        keep = SAMPLE_RATE_HZ * 2 + (
            self.config.turn_detection.prefix_padding_ms * SAMPLE_RATE_HZ // 1000
            if self.config.turn_detection
            else 0
        )
        cut = max(self._total_samples - keep, self._history_start)
        if self._open_item is not None:
            cut = min(cut, self._fed_upto)
        if cut > self._history_start:
            self._history = self._history[cut - self._history_start :]
            self._history_start = cut

    async def _open(self, start: int, *, announce: bool) -> None:
        self._open_item = new_id("item")
        self._open_start = start
        self._fed_upto = self._total_samples
        if announce:
            await self._emit(
                server_event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=_ms(start),
                    item_id=self._open_item,
                )
            )
        await self.transcriber.begin(self._open_item, self._slice(start, self._total_samples))

    async def _commit_open(self) -> None:
        item_id = self._open_item
        assert item_id is not None
        self._open_item = None
        await self._emit(
            server_event(
                "input_audio_buffer.committed",
                item_id=item_id,
                previous_item_id=self._previous_item,
            )
        )
        self._previous_item = item_id
        await self.transcriber.end()

    async def _commit(self) -> None:
        buffered = self._total_samples - self._open_start if self._open_item else 0
        if buffered < _MIN_COMMIT_S * SAMPLE_RATE_HZ:
            raise InvalidRequestError(
                "Error committing input audio buffer: buffer too small. Expected at least "
                "100ms of audio.",
                code="input_audio_buffer_commit_empty",
            )
        if self._detector is not None:
            self._detector.force_stop()
        await self._commit_open()

    async def _forget_open(self) -> None:
        if self._open_item is not None:
            self._open_item = None
            await self.transcriber.forget()

    async def _clear(self) -> None:
        await self._forget_open()
        if self._detector is not None:
            self._detector.force_stop()
        await self._emit(server_event("input_audio_buffer.cleared"))
