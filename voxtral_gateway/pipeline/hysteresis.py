"""Silero's speech hysteresis, one frame at a time: the one rule that both batch segmentation
(`segment.detect_speech`) and realtime turn detection (`realtime.vad_stream.TurnDetector`) use.

Speech starts on the first frame at or above `threshold`. It stops once frames have stayed
below `threshold - 0.15` for `min_silence_ms`, counted from the start of the first such frame
to the start of the current one, and the stop is placed where that pause began. This is
`get_speech_timestamps` in the silero-vad package, without its padding and length caps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ

NEG_THRESHOLD_GAP = 0.15
"""Silero's exit threshold sits this far below the entry threshold."""


def neg_threshold(threshold: float) -> float:
    """Probability below which a frame counts towards ending speech."""
    return max(threshold - NEG_THRESHOLD_GAP, 0.01)


@dataclass(frozen=True)
class TurnEvent:
    """Speech started or stopped at `sample` (counted from the first sample fed)."""

    kind: Literal["start", "stop"]
    sample: int


class SpeechHysteresis:
    """The start/stop decision for a sequence of frame probabilities, fed in order."""

    def __init__(self, *, threshold: float, min_silence_ms: int) -> None:
        self.threshold = threshold
        self.neg_threshold = neg_threshold(threshold)
        self._min_silence_samples = SAMPLE_RATE_HZ * min_silence_ms / 1000
        self.is_speech = False
        self._pause_start: int | None = None

    def step(self, probability: float, frame_start: int) -> TurnEvent | None:
        """The frame starting at sample `frame_start` had this speech probability."""
        if probability >= self.threshold:
            self._pause_start = None
            if not self.is_speech:
                self.is_speech = True
                return TurnEvent("start", frame_start)
            return None
        if not self.is_speech or probability >= self.neg_threshold:
            return None
        if self._pause_start is None:
            self._pause_start = frame_start
        if frame_start - self._pause_start < self._min_silence_samples:
            return None
        stop = self._pause_start
        self.force_stop()
        return TurnEvent("stop", stop)

    def force_stop(self) -> None:
        """Forget the open speech region (after a forced cut or a buffer clear)."""
        self.is_speech = False
        self._pause_start = None
