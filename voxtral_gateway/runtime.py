"""The request pipeline, outside any web framework: decode -> segment -> fan out -> stitch.

`open_runtime(settings)` owns the long-lived parts (HTTP pool, VAD model, global segment
slots, metrics). The FastAPI app and the RunPod worker both drive the same `Runtime`.

Decode and VAD run a chunk of audio at a time (pipeline/stream.py), off the event loop: the
first chunk before the response starts (so a broken file is a 4xx, and a short file is done
in one step), later chunks while earlier segments are already with the engine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial

import aiohttp
import numpy as np

from voxtral_gateway.admission import Admission
from voxtral_gateway.metrics import Metrics
from voxtral_gateway.pipeline.decode import AudioSource, decode_blocks
from voxtral_gateway.pipeline.head_start import HeadStart, drop
from voxtral_gateway.pipeline.records import Segment, SegmentResult, Transcript
from voxtral_gateway.pipeline.segment import vad_params
from voxtral_gateway.pipeline.stitch import stitch
from voxtral_gateway.pipeline.stream import (
    Batch,
    FixedWindowSegmenter,
    Segmenter,
    VadSegmenter,
    segment_stream,
)
from voxtral_gateway.pipeline.token_stream import SegmentDeltas, TextDelta
from voxtral_gateway.pipeline.transcribe import (
    DecodingOptions,
    TokenBudget,
    transcribe_samples,
    transcribe_segments,
)
from voxtral_gateway.pipeline.vad import SpeechDetector, load_detector
from voxtral_gateway.settings import Settings
from voxtral_gateway.upstream import UpstreamPool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranscriptionOptions:
    """Per-request choices, already validated."""

    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    use_vad: bool = True
    vad_overrides: dict[str, float | int] | None = None
    stream_tokens: bool = False
    """Stream the engine's token deltas (`segment_results` yields `TextDelta`s too)."""


class PreparedAudio:
    """A file on its way through decode and VAD.

    The first chunk's segments are ready; `segments()` yields them, then decodes and segments
    the rest a chunk at a time, off the event loop, as the consumer asks. Totals grow as
    chunks arrive and are final once `done`. Iterate `segments()` once.
    """

    def __init__(
        self,
        batches: Iterator[Batch],
        first: Batch,
        on_batch: list[Callable[[Batch], None]],
        head_start: asyncio.Task[str] | None = None,
        head_start_deltas: SegmentDeltas | None = None,
    ) -> None:
        self._batches = batches
        self.head_start = head_start
        """The engine's answer for the one segment, asked before VAD ran (head_start.py)."""
        self.head_start_deltas = head_start_deltas
        """Its token deltas (key 0), when the request streams tokens."""
        self._ready: collections.deque[Segment] = collections.deque()
        self._on_batch = on_batch
        self.duration_s = 0.0
        self.decode_s = 0.0
        self.vad_s = 0.0
        self.segment_count = 0
        self.done = False
        self._take(first)

    def _take(self, batch: Batch) -> None:
        self._ready.extend(batch.segments)
        self.duration_s = batch.decoded_s
        self.decode_s += batch.decode_s
        self.vad_s += batch.vad_s
        self.segment_count += len(batch.segments)
        self.done = batch.last
        for callback in self._on_batch:
            callback(batch)

    async def segments(self) -> AsyncIterator[Segment]:
        while True:
            while self._ready:
                # Popped, not kept: a finished segment's samples must not outlive its call.
                yield self._ready.popleft()
            if self.done:
                return
            self._take(await asyncio.to_thread(next, self._batches))

    def discard(self) -> None:
        """The request is over: a head-start call nobody awaited stops."""
        if self.head_start is not None and not self.head_start.done():
            drop(self.head_start)


@dataclass
class ProbeCache:
    """Last `/ready` probe, so a burst of probes costs one inference."""

    checked_at: float | None = None
    engines: dict[str, bool] = field(default_factory=dict)


@dataclass
class Runtime:
    settings: Settings
    upstream: UpstreamPool
    detector: SpeechDetector
    metrics: Metrics
    segment_slots: asyncio.Semaphore
    admission: Admission
    probe_cache: ProbeCache = field(default_factory=ProbeCache)

    def budget(self) -> TokenBudget:
        s = self.settings
        return TokenBudget(s.tokens_per_audio_second, s.min_output_tokens, s.max_output_tokens)

    def language_for(self, options: TranscriptionOptions) -> str:
        return options.language or self.settings.default_language or self.settings.reported_language

    async def prepare(
        self,
        source: AudioSource,
        options: TranscriptionOptions,
        on_batch: Callable[[Batch], None] | None = None,
    ) -> PreparedAudio:
        """Decode and segment the first chunk off the event loop (all of a short file);
        `on_batch` sees that chunk and every later one. No segments means no speech."""
        head_start: HeadStart | None = None
        early_deltas = SegmentDeltas() if options.stream_tokens else None
        if options.use_vad:
            head_start = self._head_start(options, early_deltas)
            segmenter: Segmenter = VadSegmenter(
                self.detector,
                vad_params(self.settings.vad, options.vad_overrides),
                warmup_s=self.settings.vad.stream_warmup_s,
                on_whole_file=head_start.offer if head_start else None,
            )
        else:
            segmenter = FixedWindowSegmenter(self.settings.vad.segment_max_s)
        batches = segment_stream(
            decode_blocks(source, self.settings.limits),
            segmenter,
            chunk_s=self.settings.vad.chunk_s,
        )
        # One thread hop for decode and VAD: each hop costs the event loop a wake-up (~0.1 ms).
        try:
            first = await asyncio.to_thread(next, batches)
        except BaseException:
            if head_start is not None:
                head_start.close()
            raise
        early = None
        if head_start is not None and head_start.started:
            early = head_start.settle(first.segments)
            self.metrics.head_starts.labels("used" if early else "cancelled").inc()
            if early is None:  # the engine had it: a window spent besides the segments
                self.metrics.engine_windows.inc()
        callbacks = [lambda batch: self._observe(batch, options)]
        if on_batch is not None:
            callbacks.append(on_batch)
        return PreparedAudio(batches, first, callbacks, early, early_deltas if early else None)

    def _head_start(
        self, options: TranscriptionOptions, deltas: SegmentDeltas | None
    ) -> HeadStart | None:
        """`deltas` (key 0) gets the call's token deltas, when the request streams them."""
        settings = self.settings.head_start
        if not settings.enabled:
            return None
        budget, decoding = self.budget(), self._decoding(options)

        async def launch(samples: np.ndarray) -> str:
            try:
                return await transcribe_samples(
                    samples,
                    self.upstream,
                    budget=budget,
                    options=decoding,
                    global_slots=self.segment_slots,
                    on_delta=partial(deltas.push, 0) if deltas else None,
                )
            finally:
                if deltas is not None:
                    deltas.close(0)

        return HeadStart(
            settings,
            launch,
            busy_segments=lambda: self.admission.pending_segments,
            loop=asyncio.get_running_loop(),
        )

    def _decoding(self, options: TranscriptionOptions) -> DecodingOptions:
        return DecodingOptions(
            options.language or self.settings.default_language, options.prompt, options.temperature
        )

    def _observe(self, batch: Batch, options: TranscriptionOptions) -> None:
        self.metrics.decode_seconds.observe(batch.decode_s)
        self.metrics.audio_seconds.inc(batch.added_s)
        if options.use_vad:
            self.metrics.vad_seconds.observe(batch.vad_s)
        self.metrics.segments.inc(len(batch.segments))
        self.metrics.engine_windows.inc(len(batch.segments))
        self.metrics.speech_seconds.inc(sum(s.duration_s for s in batch.segments))

    def segment_results(
        self, prepared: PreparedAudio, options: TranscriptionOptions
    ) -> AsyncIterator[SegmentResult | TextDelta]:
        """Results in file order (each after its `TextDelta`s, with `options.stream_tokens`);
        cancelling the iteration cancels the upstream calls."""
        if prepared.head_start is not None:
            return _head_start_result(prepared, prepared.head_start)
        return transcribe_segments(
            prepared.segments(),
            self.upstream,
            budget=self.budget(),
            options=self._decoding(options),
            per_request_limit=self.settings.max_segments_in_flight_per_request,
            global_slots=self.segment_slots,
            stream_tokens=options.stream_tokens,
        )

    def finish(
        self, prepared: PreparedAudio, results: list[SegmentResult], options: TranscriptionOptions
    ) -> Transcript:
        return stitch(results, duration_s=prepared.duration_s, language=self.language_for(options))

    async def transcribe(self, source: AudioSource, options: TranscriptionOptions) -> Transcript:
        prepared = await self.prepare(source, options)
        try:
            results = [result async for result in self.segment_results(prepared, options)]
        finally:
            prepared.discard()
        return self.finish(prepared, results, options)

    async def stream_segments(
        self, source: AudioSource, options: TranscriptionOptions
    ) -> AsyncIterator[SegmentResult]:
        prepared = await self.prepare(source, options)
        try:
            async for result in self.segment_results(prepared, options):
                yield result
        finally:
            prepared.discard()


async def _head_start_result(
    prepared: PreparedAudio, answer: asyncio.Task[str]
) -> AsyncIterator[SegmentResult | TextDelta]:
    """The one segment's result from the call made before VAD (cancelled with the iteration),
    after its token deltas when the request streams them."""
    async for segment in prepared.segments():
        if prepared.head_start_deltas is not None:
            async for text in prepared.head_start_deltas.deltas(0):
                yield TextDelta(segment.index, segment.start_s, segment.end_s, text)
        yield SegmentResult(segment.index, segment.start_s, segment.end_s, await answer)


def build_http_client(settings: Settings) -> aiohttp.ClientSession:
    """One pool for all engines, sized to the global segment limit so nothing queues in it.
    Call inside the running event loop."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.max_segments_in_flight, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(
            total=settings.segment_timeout_s, connect=settings.upstream_connect_timeout_s
        ),
        # Engines are named by the operator; never let client-side proxy env vars reroute them.
        trust_env=False,
    )


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    http_client: aiohttp.ClientSession | None = None,
    detector: SpeechDetector | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Runtime]:
    """Build the runtime; a client passed in is the caller's to close."""
    owns_client = http_client is None
    client = http_client or build_http_client(settings)
    metrics = metrics or Metrics()
    admission = Admission(settings)
    metrics.pending_segments.set_function(lambda: admission.pending_segments)
    metrics.in_flight_audio_seconds.set_function(lambda: admission.in_flight_audio_s)
    upstream = UpstreamPool.from_settings(client, settings)
    upstream.observe_latency = metrics.upstream_seconds.observe
    try:
        yield Runtime(
            settings=settings,
            upstream=upstream,
            detector=detector or await asyncio.to_thread(load_detector, settings.vad),
            metrics=metrics,
            segment_slots=asyncio.Semaphore(settings.max_segments_in_flight),
            admission=admission,
        )
    finally:
        if owns_client:
            await client.close()
