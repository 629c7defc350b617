"""Realtime turn detection: speech start/stop events from audio streamed in small appends.

The probabilities come from the gateway's own VAD detector (`pipeline.vad`: one model and one
set of weights for batch and realtime), through a `SileroStream` that carries each session's
LSTM state and context from append to append, so nothing is ever re-run over the buffer. The
start/stop rule is `pipeline.hysteresis.SpeechHysteresis`, the one batch segmentation uses.

Between a start and its stop the detector also reports where speech pauses (the first frame
the rule counts towards a stop) and resumes (a frame loud enough to start speech), so a session
can transcribe a turn speculatively while the silence that would close it is still running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from voxtral_gateway.pipeline.hysteresis import SpeechHysteresis
from voxtral_gateway.pipeline.vad import FRAME_SAMPLES, SileroStream

__all__ = ["TurnDetector", "TurnEvent"]


@dataclass(frozen=True)
class TurnEvent:
    """At `sample` (counted from the first sample fed): speech started, paused (it may stop
    here if the silence lasts), resumed after a pause, or stopped (placed where its pause began)."""

    kind: Literal["start", "pause", "resume", "stop"]
    sample: int


class TurnDetector:
    """Speech start/stop decisions from streamed audio: whole 32 ms frames are run as they
    complete, a partial frame waits for the next append."""

    def __init__(self, stream: SileroStream, *, threshold: float, silence_ms: int) -> None:
        self._stream = stream
        self._rule = SpeechHysteresis(threshold=threshold, min_silence_ms=silence_ms)
        self._pending = np.zeros(0, dtype=np.float32)
        self._next_frame_sample = 0
        self._paused = False

    @property
    def is_speech(self) -> bool:
        return self._rule.is_speech

    def feed(self, samples: np.ndarray) -> list[TurnEvent]:
        """Run every complete frame now available; a partial frame waits for the next call."""
        self._pending = np.concatenate([self._pending, samples])
        usable = len(self._pending) - len(self._pending) % FRAME_SAMPLES
        if usable == 0:
            return []
        probabilities = self._stream.probabilities(self._pending[:usable])
        self._pending = self._pending[usable:]
        events: list[TurnEvent] = []
        for probability in probabilities.tolist():
            event = self._step(probability, self._next_frame_sample)
            if event:
                events.append(event)
            self._next_frame_sample += FRAME_SAMPLES
        return events

    def _step(self, probability: float, frame_start: int) -> TurnEvent | None:
        was_speech = self._rule.is_speech
        event = self._rule.step(probability, frame_start)
        if event is not None:
            self._paused = False
            return TurnEvent(event.kind, event.sample)
        if not was_speech:
            return None
        # The rule's own pause: it starts on a frame below the exit threshold and only a frame
        # at or above the entry threshold ends it (frames in between leave it running).
        if not self._paused and probability < self._rule.neg_threshold:
            self._paused = True
            return TurnEvent("pause", frame_start)
        if self._paused and probability >= self._rule.threshold:
            self._paused = False
            return TurnEvent("resume", frame_start)
        return None

    def force_stop(self) -> None:
        """Forget the open speech region (after a forced cut or a buffer clear)."""
        self._rule.force_stop()
        self._paused = False
