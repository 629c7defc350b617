"""A packed engine window's result cut at its speech regions, each region with its speaker.

With speakers asked for, VAD still packs speech regions into whole engine windows, as it
does without them (the same engine calls); the speaker stage labels each region, and a turn
change always falls in the pause between two regions. Here a window's result becomes one
result per region, its text shared out by time with the finest timing at hand:

    timed words (the aligner, when word timing was asked for)
    -> the engine's own timed phrases (Whisper's timestamps, when verbose_json asked for them)
    -> the window's whole text, untimed (no extra cost; vLLM's Whisper verbose_json drops
       the text of windows whose timestamps do not close, so it is not asked for)

A timed piece that lies in one region's stretch goes to it whole. One that spans several
regions (a Whisper phrase over two turns, or the untimed text) is shared out in proportion
to each region's speech inside it (characters per second of speech taken as even), cut
between words, at a sentence end when one is close.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from voxtral_gateway.pipeline.records import SegmentResult, Span, Word
from voxtral_gateway.pipeline.stitch import clean_text

# A cut moves onto a sentence end this close to it, as a fraction of the smaller of the two
# regions' shares of the piece.
_SENTENCE_PULL = 0.4
_SENTENCE_END = re.compile(r"[.?!。？！]['\")\]]*$")


@dataclass(frozen=True)
class Region:
    """One speech region of a window and who spoke it (None: no voice heard in it)."""

    span: Span
    speaker: str | None


def split_at_regions(
    result: SegmentResult, regions: Sequence[Region], *, pad_s: float
) -> list[SegmentResult]:
    """`result` cut into one result per region that got text, in order, each timed from its
    region padded by up to `pad_s` (never past the gap's midpoint or the window), with its
    speaker. Usage and tokens stay with the first part, so totals are unchanged."""
    if len(regions) <= 1:
        return [replace(result, speaker=regions[0].speaker if regions else None)]
    texts: list[list[str]] = [[] for _ in regions]
    words: list[list[Word]] = [[] for _ in regions]
    if result.words:
        for word in result.words:
            k = _region_of(word, regions)
            texts[k].append(word.word)
            words[k].append(word)
    else:
        # Phrases only if they hold the whole text (verbose_json can drop an unfinished one).
        timed = clean_text(" ".join(p.word for p in result.phrases)) == clean_text(result.text)
        whole = Word(result.text, result.start_s, result.end_s)
        pieces = result.phrases if result.phrases and timed else (whole,)
        for piece in pieces:
            for k, share in _share_piece(piece, regions):
                texts[k] += share
    bounds = region_bounds([r.span for r in regions], Span(result.start_s, result.end_s), pad_s)
    parts = []
    for k, region in enumerate(regions):
        if not texts[k]:
            continue
        first = not parts
        parts.append(
            replace(
                result,
                start_s=bounds[k].start_s,
                end_s=bounds[k].end_s,
                text=" ".join(texts[k]),
                words=tuple(words[k]),
                phrases=(),
                speaker=region.speaker,
                usage=result.usage if first else None,
                tokens=result.tokens if first else None,
            )
        )
    return parts


def region_bounds(spans: Sequence[Span], window: Span, pad_s: float) -> list[Span]:
    """Each region padded by up to `pad_s`, never past the window or the midpoint of the gap
    to a neighbour; the first starts and the last ends with the window (already padded)."""
    bounds = []
    for k, span in enumerate(spans):
        start_s = window.start_s
        if k > 0:
            before = spans[k - 1].end_s
            start_s = max(span.start_s - pad_s, (before + span.start_s) / 2, window.start_s)
        end_s = window.end_s
        if k < len(spans) - 1:
            after = spans[k + 1].start_s
            end_s = min(span.end_s + pad_s, (span.end_s + after) / 2, window.end_s)
        bounds.append(Span(start_s, end_s))
    return bounds


def _overlap(piece: Word, span: Span) -> float:
    return max(0.0, min(piece.end_s, span.end_s) - max(piece.start_s, span.start_s))


def _region_of(piece: Word, regions: Sequence[Region]) -> int:
    """The region a piece overlaps most, or (in a pause) the nearest one."""
    overlaps = [_overlap(piece, r.span) for r in regions]
    if max(overlaps) > 0:
        return overlaps.index(max(overlaps))
    middle = (piece.start_s + piece.end_s) / 2
    distances = [max(r.span.start_s - middle, middle - r.span.end_s) for r in regions]
    return distances.index(min(distances))


def _share_piece(piece: Word, regions: Sequence[Region]) -> list[tuple[int, list[str]]]:
    """The piece's words, shared out over the regions whose speech it covers."""
    tokens = piece.word.split()
    overlaps = [_overlap(piece, r.span) for r in regions]
    covered = [k for k, o in enumerate(overlaps) if o > 0]
    if len(covered) <= 1 or len(tokens) <= 1:
        return [(_region_of(piece, regions), tokens)] if tokens else []
    total = sum(overlaps[k] for k in covered)
    targets, seen = [], 0.0
    for k in covered[:-1]:
        seen += overlaps[k]
        targets.append(seen / total)
    cuts = _cuts(tokens, targets)
    bounds = [0, *cuts, len(tokens)]
    return [(k, tokens[bounds[i] : bounds[i + 1]]) for i, k in enumerate(covered)]


def _cuts(tokens: Sequence[str], targets: Sequence[float]) -> list[int]:
    """Word positions (0..len), in order, nearest each cumulative character fraction in
    `targets`; a sentence end wins when it lies within `_SENTENCE_PULL` of the smaller
    neighbouring share (a turn change usually ends a sentence)."""
    lengths = [len(t) + 1 for t in tokens]
    total = sum(lengths)
    fractions = [0.0]
    for length in lengths:
        fractions.append(fractions[-1] + length / total)
    ends = [j for j in range(1, len(tokens)) if _SENTENCE_END.search(tokens[j - 1])]
    edges = [0.0, *targets, 1.0]
    cuts: list[int] = []
    low = 0
    for n, target in enumerate(targets, start=1):
        reach = _SENTENCE_PULL * min(edges[n] - edges[n - 1], edges[n + 1] - edges[n])
        near = [j for j in ends if j >= low and abs(fractions[j] - target) <= reach]
        candidates = near or range(low, len(tokens) + 1)
        low = min(candidates, key=lambda j, target=target: abs(fractions[j] - target))
        cuts.append(low)
    return cuts
