"""Timed words -> subtitle cues a player can show (srt, vtt).

Broadcast practice: a cue lasts at most `cue_max_s`, holds at most `max_lines` lines of at
most `line_max_chars` characters, ends at a pause or at the end of a sentence, and starts and
ends with its words. Words are never split; a single word longer than a line gets its own.

Segments without word timings (the aligner is not installed) are timed by spreading their
text over the segment in proportion to characters: the segment is a VAD sub-segment no
longer than a cue, so the estimate never drifts by more than one cue.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from voxtral_gateway.pipeline.records import SegmentResult, Transcript, Word
from voxtral_gateway.pipeline.stitch import join_texts

_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
_TRAILING_QUOTES = "\"'”’»)]"


@dataclass(frozen=True)
class CueLimits:
    cue_max_s: float = 7.0
    line_max_chars: int = 42
    max_lines: int = 2
    pause_s: float = 0.5


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    lines: tuple[str, ...]
    speaker: str | None = None
    """The segment's speaker, when speakers were asked for (cues never span segments)."""

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def build_cues(transcript: Transcript, limits: CueLimits) -> list[Cue]:
    """Cues in time order; cues never span two segments (a segment edge is a pause)."""
    cues: list[Cue] = []
    for segment in transcript.segments:
        words = list(segment.words) or spread_words(segment)
        cues.extend(
            dataclasses.replace(cue, speaker=segment.speaker)
            for cue in _segment_cues(words, limits)
        )
    return cues


def spread_words(segment: SegmentResult) -> list[Word]:
    """Estimated word timings: the segment's span shared out by characters."""
    pieces = segment.text.split()
    if not pieces:
        return []
    weights = [len(p) + 1 for p in pieces]
    total, seen = sum(weights), 0
    span = segment.end_s - segment.start_s
    words = []
    for piece, weight in zip(pieces, weights, strict=True):
        start = segment.start_s + span * seen / total
        seen += weight
        words.append(Word(piece, round(start, 3), round(segment.start_s + span * seen / total, 3)))
    return words


def _segment_cues(words: Sequence[Word], limits: CueLimits) -> Iterator[Cue]:
    current: list[Word] = []
    for word in words:
        if current and not _fits(current, word, limits):
            yield _cue(current, limits)
            current = []
        current.append(word)
        if _ends_sentence(word.word):
            yield _cue(current, limits)
            current = []
    if current:
        yield _cue(current, limits)


def _fits(current: list[Word], word: Word, limits: CueLimits) -> bool:
    if word.start_s - current[-1].end_s >= limits.pause_s:
        return False
    if word.end_s - current[0].start_s > limits.cue_max_s:
        return False
    return _wrap([w.word for w in [*current, word]], limits) is not None


def _ends_sentence(word: str) -> bool:
    return word.rstrip(_TRAILING_QUOTES).endswith(_SENTENCE_END)


def _cue(words: list[Word], limits: CueLimits) -> Cue:
    texts = [w.word for w in words]
    lines = _wrap(texts, limits) or (join_texts(texts),)  # one over-long word: its own line
    return Cue(words[0].start_s, words[-1].end_s, lines)


def _wrap(words: list[str], limits: CueLimits) -> tuple[str, ...] | None:
    """The most even split of `words` into at most `max_lines` lines that fit, or None."""
    whole = join_texts(words)
    if len(whole) <= limits.line_max_chars:
        return (whole,)
    if limits.max_lines < 2 or len(words) < 2:
        return None
    best: tuple[str, ...] | None = None
    for cut in range(1, len(words)):
        head = join_texts(words[:cut])
        if len(head) > limits.line_max_chars:
            break
        tail = _wrap(
            words[cut:],
            CueLimits(line_max_chars=limits.line_max_chars, max_lines=limits.max_lines - 1),
        )
        if tail is None:
            continue
        lines = (head, *tail)
        if best is None or max(map(len, lines)) < max(map(len, best)):
            best = lines
    return best
