"""Streaming Silero VAD: each connection carries its own LSTM state over one shared ONNX model.

Audio arrives in small appends; every 512-sample frame (32 ms at 16 kHz) is run once, with the
previous frame's last 64 samples as context, exactly like the silero-vad package's own
`OnnxWrapper` loop. Nothing is ever re-run over the whole buffer. The model file is the one
inside the `silero-vad` wheel; the ONNX session is shared (its `run` is thread-safe) and the
per-connection state is two small arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Literal

import numpy as np
import onnxruntime

from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ
from voxtral_gateway.pipeline.vad import FRAME_SAMPLES

_CONTEXT_SAMPLES = 64
_STATE_SHAPE = (2, 1, 128)
_NEGATIVE_MARGIN = 0.15  # Silero's hysteresis: speech ends below threshold - 0.15.


def load_vad_session() -> onnxruntime.InferenceSession:
    """The wheel's Silero ONNX model on one intra-op thread (no downloads)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    path = str(resources.files("silero_vad.data").joinpath("silero_vad.onnx"))
    return onnxruntime.InferenceSession(
        path, sess_options=options, providers=["CPUExecutionProvider"]
    )


class SileroStream:
    """One connection's Silero state: feed frames in order, get one probability per frame."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._rate = np.array(SAMPLE_RATE_HZ, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)

    def frame_probability(self, frame: np.ndarray) -> float:
        """Speech probability (0-1) of the next 512-sample frame."""
        model_input = np.concatenate([self._context, frame])[np.newaxis, :]
        output, self._state = self._session.run(
            None, {"input": model_input, "state": self._state, "sr": self._rate}
        )
        self._context = frame[-_CONTEXT_SAMPLES:]
        return float(output[0, 0])


@dataclass(frozen=True)
class TurnEvent:
    """Speech started or stopped at `sample` (counted from the session's first sample)."""

    kind: Literal["start", "stop"]
    sample: int


class TurnDetector:
    """Speech start/stop decisions from streamed audio, frame by frame.

    Speech starts on the first frame at or above `threshold`; it stops once the probability
    has stayed below `threshold - 0.15` for `silence_ms`, and the stop is placed where that
    silence began.
    """

    def __init__(self, stream: SileroStream, *, threshold: float, silence_ms: int) -> None:
        self._stream = stream
        self._threshold = threshold
        self._negative_threshold = max(threshold - _NEGATIVE_MARGIN, 0.01)
        self._silence_samples = silence_ms * SAMPLE_RATE_HZ // 1000
        self._pending = np.zeros(0, dtype=np.float32)
        self._next_frame_sample = 0
        self.is_speech = False
        self._silence_from: int | None = None

    def feed(self, samples: np.ndarray) -> list[TurnEvent]:
        """Run every complete frame now available; a partial frame waits for the next call."""
        self._pending = np.concatenate([self._pending, samples])
        events: list[TurnEvent] = []
        usable = len(self._pending) - len(self._pending) % FRAME_SAMPLES
        for offset in range(0, usable, FRAME_SAMPLES):
            frame = self._pending[offset : offset + FRAME_SAMPLES]
            event = self._decide(self._stream.frame_probability(frame))
            if event:
                events.append(event)
            self._next_frame_sample += FRAME_SAMPLES
        self._pending = self._pending[usable:]
        return events

    def _decide(self, probability: float) -> TurnEvent | None:
        frame_start = self._next_frame_sample
        if probability >= self._threshold:
            self._silence_from = None
            if not self.is_speech:
                self.is_speech = True
                return TurnEvent("start", frame_start)
            return None
        if not self.is_speech or probability >= self._negative_threshold:
            return None
        if self._silence_from is None:
            self._silence_from = frame_start
        if frame_start + FRAME_SAMPLES - self._silence_from >= self._silence_samples:
            stop = self._silence_from
            self.is_speech = False
            self._silence_from = None
            return TurnEvent("stop", stop)
        return None

    def force_stop(self) -> None:
        """Forget the open speech region (after a forced cut or a buffer clear)."""
        self.is_speech = False
        self._silence_from = None
