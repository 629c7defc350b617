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
    speech_prob: float | None = None
    """Mean VAD speech probability (0-1) over the segment's frames; None without VAD."""
    regions: tuple[Span, ...] = ()
    """The speech regions (unpadded, seconds of the file) VAD packed into this segment, in
    order; () without VAD. A turn change between speakers always falls between two."""

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
    """What the engine said for one segment, what is known about how it said it, and its
    timed words (only when word timing was asked for)."""

    index: int
    start_s: float
    end_s: float
    text: str
    usage: TokenUsage | None = None
    """The engine's token counts for this segment's call; None when they were not asked for."""
    speaker: str | None = None
    """Who spoke, when the client asked for speakers (pipeline/speakers.py)."""
    words: tuple[Word, ...] = ()
    """Timed words (pipeline/align.py), when word timing was asked for."""
    phrases: tuple[Word, ...] = ()
    """The engine's own timed pieces of the text (Whisper's timestamp segments, seconds of
    the file), each a `Word` spanning one or more words; () when it gave none."""
    language: str | None = None
    """Language spoken (ISO-639-1): the client's, the engine's detection, or the detector's."""
    temperature: float | None = None
    """Sampling temperature the engine used."""
    avg_logprob: float | None = None
    """Mean log probability of the output tokens, when the engine reports them."""
    tokens: tuple[int, ...] | None = None
    """Output token ids, when the engine reports them."""
    no_speech_prob: float | None = None
    """1 - the mean VAD speech probability over the segment; None without VAD."""


@dataclass(frozen=True)
class Transcript:
    """The whole answer: stitched text plus the timed segments it came from."""

    text: str
    segments: tuple[SegmentResult, ...]
    duration_s: float
    language: str | None
    """Given or detected language of most of the speech; None when nothing could tell."""
    usage: TokenUsage | None = None
    """Token counts summed over every engine call (empty segments too); None if not counted."""
    task: str = "transcribe"
    """`transcribe` or `translate` (English text)."""
