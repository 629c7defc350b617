"""A file on its way through decode and VAD, between the service's `prepare` and its engine
calls: the first chunk's segments at hand, the rest decoded as they are asked for."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Iterator

from voxtral_gateway.engine_calls import EngineAnswer
from voxtral_gateway.pipeline.head_start import cancel_unawaited
from voxtral_gateway.pipeline.records import Segment
from voxtral_gateway.pipeline.speakers import SpeakerTrack
from voxtral_gateway.pipeline.stream import ChunkSegments
from voxtral_gateway.pipeline.token_stream import SegmentDeltas


class PreparedAudio:
    """A file on its way through decode and VAD.

    The first chunk's segments are ready; `segments()` yields them, then decodes and segments
    the rest a chunk at a time, off the event loop, as the consumer asks. Totals grow as
    chunks arrive and are final once `done`. Iterate `segments()` once.
    """

    def __init__(
        self,
        chunks: Iterator[ChunkSegments],
        first: ChunkSegments,
        on_chunk: list[Callable[[ChunkSegments], None]],
        speculative_answer: asyncio.Task[EngineAnswer] | None = None,
        speakers: SpeakerTrack | None = None,
        speculative_deltas: SegmentDeltas | None = None,
    ) -> None:
        self._chunks = chunks
        self.speakers = speakers
        """The request's speaker track, fed each chunk; None when speakers weren't asked for."""
        self.speculative_answer = speculative_answer
        """The engine's answer for the whole clip, asked before VAD ran and kept because VAD
        found it to be the one segment (the head start, head_start.py)."""
        self.speculative_deltas = speculative_deltas
        """Its token deltas (key 0), when the request streams tokens."""
        self._ready: collections.deque[Segment] = collections.deque()
        self._on_chunk = on_chunk
        self.duration_s = 0.0
        self.decode_s = 0.0
        self.vad_s = 0.0
        self.align_s = 0.0
        """Time spent timing words, summed over segments (it overlaps the engine wait)."""
        self.segment_count = 0
        self.done = False
        self._take(first)

    def _take(self, chunk: ChunkSegments) -> None:
        self._ready.extend(chunk.segments)
        self.duration_s = chunk.decoded_s
        self.decode_s += chunk.decode_s
        self.vad_s += chunk.vad_s
        self.segment_count += len(chunk.segments)
        self.done = chunk.last
        for callback in self._on_chunk:
            callback(chunk)

    async def segments(self) -> AsyncIterator[Segment]:
        while True:
            while self._ready:
                # Popped, not kept: a finished segment's samples must not outlive its call.
                yield self._ready.popleft()
            if self.done:
                return
            self._take(await asyncio.to_thread(next, self._chunks))

    def discard(self) -> None:
        """The request is over: a head-start call nobody awaited stops."""
        if self.speculative_answer is not None and not self.speculative_answer.done():
            cancel_unawaited(self.speculative_answer)
        if self.speakers is not None:
            self.speakers.close()
