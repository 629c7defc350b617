"""Decoded blocks -> segments, a chunk of audio at a time, so a long file's memory is bounded.

`segment_stream` takes the decoder's blocks and, each time `chunk_s` of new audio has
arrived (and at the end), runs VAD over it and hands on every segment that audio still to
come can no longer change. It keeps only the audio from the first unfinished segment (or the
VAD warm-up, if earlier): about `chunk_s + 2 windows`, whatever the file's length. A file no
longer than one chunk gets one VAD call over all of it.

The batched detector carries its LSTM state from chunk to chunk (`SileroStream`), so the
probabilities are exactly those of one pass over the whole file. Another detector runs each
chunk with `warmup_s` of the audio before it, so Silero's state has converged when the chunk
begins (as the batched detector's parallel streams do). Segmentation restarts after the last
finished segment, in the pause that ended it, where Silero's hysteresis has already reset:
the groups, cuts and padding come out as for the whole file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Audio, Segment, Span
from voxtral_gateway.pipeline.segment import (
    VadParams,
    cut_segments,
    detect_speech,
    group_spans,
    pad_groups,
    speech_room_s,
)
from voxtral_gateway.pipeline.vad import (
    FRAME_S,
    FRAME_SAMPLES,
    BatchedSileroDetector,
    SpeechDetector,
)


@dataclass(frozen=True)
class ChunkSegments:
    """Segments finished by one chunk of audio, in file order, and what that chunk took."""

    segments: list[Segment]
    decoded_s: float
    """Audio decoded so far (seconds); the file's duration once `last`."""
    added_s: float
    """Audio decoded for this chunk (seconds)."""
    last: bool
    decode_s: float = 0.0
    vad_s: float = 0.0


class Segmenter(Protocol):
    """Cuts audio into segments as it arrives."""

    def add(self, block: np.ndarray) -> None: ...

    def segments(self, *, last: bool) -> list[Segment]:
        """Segments that no later audio can change (all that remain, when `last`)."""
        ...

    @property
    def decoded_samples(self) -> int: ...


def segment_stream(
    blocks: Iterator[np.ndarray], segmenter: Segmenter, *, chunk_s: float
) -> Iterator[ChunkSegments]:
    """One ChunkSegments per `chunk_s` of decoded audio, the last one with `last=True`."""
    chunk_samples = round(chunk_s * SAMPLE_RATE_HZ)
    waiting = 0
    decode_s = 0.0
    reported = 0  # samples accounted for in earlier chunks
    while True:
        started = time.perf_counter()
        block = next(blocks, None)
        decode_s += time.perf_counter() - started
        if block is not None:
            segmenter.add(block)
            waiting += len(block)
            if waiting < chunk_samples:
                continue
        started = time.perf_counter()
        segments = segmenter.segments(last=block is None)
        decoded = segmenter.decoded_samples
        yield ChunkSegments(
            segments=segments,
            decoded_s=decoded / SAMPLE_RATE_HZ,
            added_s=(decoded - reported) / SAMPLE_RATE_HZ,
            last=block is None,
            decode_s=decode_s,
            vad_s=time.perf_counter() - started,
        )
        if block is None:
            return
        waiting, decode_s, reported = 0, 0.0, decoded


class _Buffer:
    """The file's samples from `start` on; blocks are joined only when they are read."""

    def __init__(self) -> None:
        self.start = 0
        self._joined = np.zeros(0, dtype=np.float32)
        self._blocks: list[np.ndarray] = []
        self.end = 0

    def add(self, block: np.ndarray) -> None:
        self._blocks.append(block)
        self.end += len(block)

    def samples(self) -> np.ndarray:
        if self._blocks:
            self._joined = np.concatenate([self._joined, *self._blocks])
            self._blocks = []
        return self._joined

    def drop_before(self, sample: int) -> None:
        if sample > self.start:
            # A copy, so the dropped part's memory is freed rather than kept under a view.
            self._joined = self.samples()[sample - self.start :].copy()
            self.start = sample


class VadSegmenter:
    """Silero VAD segmentation, a chunk at a time (see the module docstring)."""

    def __init__(
        self,
        detector: SpeechDetector,
        params: VadParams,
        *,
        warmup_s: float,
        on_whole_file: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        """`on_whole_file` gets all the samples just before VAD runs, when the whole file
        came in one chunk (never for a longer file)."""
        self._detector = detector
        self._on_whole_file = on_whole_file
        self._params = params
        self._pad_s = params.speech_pad_ms / 1000
        limit_s = speech_room_s(params.max_segment_s, self._pad_s)
        # A group is final once its window, a following cut's window and the pause that closes
        # a span all lie in analysed audio: later probabilities cannot reach it.
        self._settle_s = 2 * limit_s + params.min_silence_ms / 1000 + 2 * FRAME_S
        self._stream = detector.stream() if isinstance(detector, BatchedSileroDetector) else None
        self._warmup_frames = 0 if self._stream else math.ceil(warmup_s / FRAME_S)
        self._audio = _Buffer()
        self._probabilities = np.zeros(0, dtype=np.float32)  # from frame `_origin` on
        self._analysed = 0  # frames with a probability
        self._origin = 0  # frame where segmentation (re)starts: in a pause, or 0
        self._previous_end_s: float | None = None  # unpadded end of the last segment handed on
        self._next_index = 0

    @property
    def decoded_samples(self) -> int:
        return self._audio.end

    @property
    def retained_samples(self) -> int:
        """Samples held in memory now (what bounds the request's memory)."""
        return self._audio.end - self._audio.start

    def add(self, block: np.ndarray) -> None:
        self._audio.add(block)

    def segments(self, *, last: bool) -> list[Segment]:
        self._analyse(last)
        origin_s = self._origin * FRAME_S
        params = self._params
        spans = detect_speech(self._probabilities, params)
        groups = [
            Span(g.start_s + origin_s, g.end_s + origin_s)
            for g in group_spans(
                spans,
                max_segment_s=params.max_segment_s,
                speech_pad_s=self._pad_s,
                probabilities=self._probabilities,
            )
        ]
        analysed_s = self._analysed * FRAME_S
        final = len(groups)
        if not last:
            final = 0
            while final + 1 < len(groups) and groups[final].start_s + self._settle_s < analysed_s:
                final += 1
        duration_s = self._audio.end / SAMPLE_RATE_HZ
        # The next group (if any) bounds the last final one's padding.
        spans = pad_groups(
            groups[: final + 1],
            self._pad_s,
            duration_s,
            self._previous_end_s,
            max_segment_s=params.max_segment_s,
        )
        segments = cut_segments(
            Audio(self._audio.samples()),
            spans[:final],
            first_index=self._next_index,
            offset=self._audio.start,
        )
        self._next_index += final
        if final:
            self._previous_end_s = groups[final - 1].end_s
            self._restart_at(int(spans[final - 1].end_s / FRAME_S))
        elif not groups:
            # No speech (or none long enough yet): what could still become the start of a
            # span, with its padding, lies in the last min_speech + pad + pause.
            quiet_s = (params.min_speech_ms + params.min_silence_ms) / 1000 + self._pad_s
            self._restart_at(max(self._origin, int((analysed_s - quiet_s) / FRAME_S) - 1))
        # Own copies: a view would keep the whole chunk alive while the segment is in flight.
        return [replace(s, samples=s.samples.copy()) for s in segments]

    def _analyse(self, last: bool) -> None:
        """Probabilities for the new audio (whole frames; the tail too when `last`)."""
        end = self._audio.end
        end_frame = -(-end // FRAME_SAMPLES) if last else end // FRAME_SAMPLES
        if end_frame <= self._analysed:
            return
        context = max(0, self._analysed - self._warmup_frames)
        samples = self._audio.samples()[
            context * FRAME_SAMPLES - self._audio.start : end_frame * FRAME_SAMPLES
            - self._audio.start
        ]
        whole_file = last and self._analysed == 0
        if whole_file and self._on_whole_file is not None:
            self._on_whole_file(samples)
        if self._stream is not None and not whole_file:
            new = self._stream.probabilities(samples)
        else:  # a file in one piece (same values, one frame less), or warm-up per chunk
            new = self._detector.frame_probabilities(samples)[self._analysed - context :]
        self._probabilities = np.concatenate([self._probabilities, new])
        self._analysed = end_frame

    def _restart_at(self, frame: int) -> None:
        self._probabilities = self._probabilities[frame - self._origin :]
        self._origin = frame
        keep = min(frame, max(0, self._analysed - self._warmup_frames))
        self._audio.drop_before(keep * FRAME_SAMPLES)


class FixedWindowSegmenter:
    """VAD off: back-to-back windows of `window_s`, each handed on once it is full."""

    def __init__(self, window_s: float) -> None:
        self._window = round(window_s * SAMPLE_RATE_HZ)
        self._audio = _Buffer()
        self._next_index = 0

    @property
    def decoded_samples(self) -> int:
        return self._audio.end

    def add(self, block: np.ndarray) -> None:
        self._audio.add(block)

    def segments(self, *, last: bool) -> list[Segment]:
        start, end = self._audio.start, self._audio.end
        cut_end = end if last else start + (end - start) // self._window * self._window
        spans = [
            Span(s / SAMPLE_RATE_HZ, min(s + self._window, cut_end) / SAMPLE_RATE_HZ)
            for s in range(start, cut_end, self._window)
        ]
        segments = cut_segments(
            Audio(self._audio.samples()), spans, first_index=self._next_index, offset=start
        )
        self._next_index += len(segments)
        segments = [replace(s, samples=s.samples.copy()) for s in segments]
        self._audio.drop_before(cut_end)
        return segments
