"""Frozen records passed between pipeline stages, so each stage is testable on its own."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True)
class Audio:
    """Decoded audio: mono float32 samples in [-1, 1] at 16 kHz."""

    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class Span:
    """A time range in seconds from the start of the file."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Segment:
    """One piece of the file sent upstream on its own, in file order."""

    index: int
    start_s: float
    end_s: float
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class Word:
    """One spoken word (punctuation attached) and when it was said, in seconds of the file."""

    word: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SegmentResult:
    """What the engine said for one segment (`words` only when word timing was asked for)."""

    index: int
    start_s: float
    end_s: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """The whole answer: stitched text plus the timed segments it came from."""

    text: str
    segments: tuple[SegmentResult, ...]
    duration_s: float
    language: str
