"""Token streaming for `stream=true`: the engine's own text deltas, segment by segment.

Every segment's engine call streams (vLLM sends transcription deltas with `stream=true`); its
deltas wait in that segment's queue until the segment is next in file order, so the client
sees the first words as soon as the engine produces them and later segments' words in turn.
`DeltaCleaner` makes the deltas add up to exactly the done event's text (`stitch.join_texts`:
whitespace collapsed and trimmed, one space between segments, none between two no-space
scripts).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace

from voxtral_gateway.pipeline.records import SegmentResult
from voxtral_gateway.pipeline.stitch import NO_SPACE_SCRIPT as _NO_SPACE


@dataclass(frozen=True)
class TextDelta:
    """Raw engine text for segment `index`, yielded before that segment's `SegmentResult`."""

    index: int
    start_s: float
    end_s: float
    text: str
    language: str | None = None
    """The language the engine decodes the segment in, when known before its result."""


class SegmentDeltas:
    """One request's engine deltas, buffered per segment until the segment's turn."""

    def __init__(self) -> None:
        self._queues: defaultdict[int, asyncio.Queue[tuple[str, str | None] | None]]
        self._queues = defaultdict(asyncio.Queue)

    def push(self, index: int, text: str, language: str | None = None) -> None:
        self._queues[index].put_nowait((text, language))

    def close(self, index: int) -> None:
        """The segment's call ended (answered or failed): its delta iterator stops."""
        self._queues[index].put_nowait(None)

    async def deltas(self, index: int) -> AsyncIterator[tuple[str, str | None]]:
        """The segment's (text, language) deltas: those buffered, then live ones until its
        call ends."""
        queue = self._queues[index]
        try:
            while (delta := await queue.get()) is not None:
                yield delta
        finally:
            self._queues.pop(index, None)


class DeltaCleaner:
    """Raw engine deltas -> the text to send, so that all of it adds up to the done text."""

    def __init__(self) -> None:
        self._last = ""  # last character sent, in any segment
        self._segment_has_text = False
        self._space = False  # whitespace after this segment's last character sent

    def next_segment(self) -> None:
        self._segment_has_text, self._space = False, False

    def clean(self, text: str) -> str:
        out: list[str] = []
        for char in text:
            if char.isspace():
                self._space = self._segment_has_text
                continue
            if not self._segment_has_text:
                # A segment's first character: one space after earlier text, unless both
                # sides are scripts written without spaces.
                if self._last and not (_NO_SPACE.match(self._last) and _NO_SPACE.match(char)):
                    out.append(" ")
            elif self._space:
                out.append(" ")
            out.append(char)
            self._last, self._segment_has_text, self._space = char, True, False
        return "".join(out)


async def text_to_send(
    items: AsyncIterable[SegmentResult | TextDelta],
) -> AsyncIterator[TextDelta | SegmentResult]:
    """`segment_results` -> the text to send, as `TextDelta`s that add up to the stitched text
    (the engine's own deltas when its call streamed, else the segment's whole text as one),
    each segment's `SegmentResult` after its text."""
    cleaner = DeltaCleaner()
    streamed = False  # the current segment's text went out as engine deltas already
    async for item in items:
        if isinstance(item, TextDelta):
            streamed = True
            if text := cleaner.clean(item.text):
                yield replace(item, text=text)
            continue
        if not streamed and (text := cleaner.clean(item.text)):
            yield TextDelta(item.index, item.start_s, item.end_s, text, item.language)
        yield item
        cleaner.next_segment()
        streamed = False
