"""Ordered segment results -> one `Transcript`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from voxtral_gateway.pipeline.records import SegmentResult, TokenUsage, Transcript

_WHITESPACE = re.compile(r"\s+")
# Scripts written without spaces between words: joining their segments adds none.
NO_SPACE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")


def clean_text(text: str) -> str:
    """Collapse runs of whitespace (engines emit newlines and double spaces) and trim."""
    return _WHITESPACE.sub(" ", text).strip()


def join_texts(texts: Iterable[str]) -> str:
    """Join segment texts with one space, or none between two no-space scripts."""
    joined = ""
    for text in (clean_text(t) for t in texts):
        if not text:
            continue
        if joined and not (NO_SPACE_SCRIPT.match(joined[-1]) and NO_SPACE_SCRIPT.match(text[0])):
            joined += " "
        joined += text
    return joined


def stitch(
    results: Iterable[SegmentResult],
    *,
    duration_s: float,
    language: str | None,
    task: str = "transcribe",
) -> Transcript:
    """Build the transcript; segments with empty text are dropped from the timed list.

    `language` is the client's; without one, the request's language is the one spoken for
    the longest time across segments (None if no segment knows its language).
    """
    ordered = sorted(results, key=lambda r: r.index)
    kept = tuple(
        dataclasses.replace(r, text=clean_text(r.text)) for r in ordered if clean_text(r.text)
    )
    return Transcript(
        text=join_texts(r.text for r in kept),
        segments=kept,
        duration_s=duration_s,
        # All results: a segment with no words may still have told its language.
        language=language or main_language(ordered),
        usage=_total_usage(ordered),
        task=task,
    )


def _total_usage(results: Iterable[SegmentResult]) -> TokenUsage | None:
    """Every call's tokens, a segment heard as silence included: the engine spent them."""
    counted = [r.usage for r in results if r.usage is not None]
    return sum(counted, TokenUsage()) if counted else None


def main_language(results: Iterable[SegmentResult]) -> str | None:
    """The language spoken longest, by segment duration; None if none is known."""
    seconds: dict[str, float] = {}
    for r in results:
        if r.language:
            seconds[r.language] = seconds.get(r.language, 0.0) + (r.end_s - r.start_s)
    return max(seconds, key=lambda code: seconds[code]) if seconds else None
