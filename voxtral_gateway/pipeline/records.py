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
class TokenUsage:
    """Tokens the engine reports for its calls (vLLM counts them only when asked to stream)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


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
    usage: TokenUsage | None = None
    """The engine's token counts for this segment's call; None when they were not asked for."""
    speaker: str | None = None
    """Who spoke, when the client asked for speakers (pipeline/speakers.py)."""
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """The whole answer: stitched text plus the timed segments it came from."""

    text: str
    segments: tuple[SegmentResult, ...]
    duration_s: float
    language: str
    usage: TokenUsage | None = None
    """Token counts summed over every engine call (empty segments too); None if not counted."""
