"""One transcription service behind every front door: audio in, transcript or events out.

    ingest (file | URL | base64) -> decode -> segment (VAD) -> engine calls -> stitch

The HTTP route (`routes/transcriptions.py`), the RunPod worker (`runpod/handler.py`) and the
realtime socket (`realtime/transcriber.py`) only translate their protocol onto this class:
a parameter such as `language` reaches the engine through the same `options_for` ->
`decoding` -> `transcribe_samples` path from every door.

Decode and VAD run a chunk of audio at a time (pipeline/stream.py), off the event loop: the
first chunk before the response starts (so a broken file is a 4xx, and a short file is done
in one step), later chunks while earlier segments are already with the engine.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from voxtral_gateway.pipeline.decode import AudioSource, decode_blocks
from voxtral_gateway.pipeline.events import delta_payload, done_payload
from voxtral_gateway.pipeline.head_start import SpeculativeWholeClip, cancel_unawaited
from voxtral_gateway.pipeline.ingest import resolve_audio_source
from voxtral_gateway.pipeline.records import (
    SAMPLE_RATE_HZ,
    Audio,
    Segment,
    SegmentResult,
    Transcript,
)
from voxtral_gateway.pipeline.segment import vad_params
from voxtral_gateway.pipeline.stitch import stitch
from voxtral_gateway.pipeline.stream import (
    ChunkSegments,
    FixedWindowSegmenter,
    Segmenter,
    VadSegmenter,
    segment_stream,
)
from voxtral_gateway.pipeline.token_stream import DeltaCleaner, SegmentDeltas, TextDelta
from voxtral_gateway.pipeline.transcribe import (
    DecodingOptions,
    TokenBudget,
    transcribe_samples,
    transcribe_segments,
)
from voxtral_gateway.protocol import TranscriptionRequest
from voxtral_gateway.upstream import EngineAnswer

if TYPE_CHECKING:
    from voxtral_gateway.runtime import Runtime


@dataclass(frozen=True)
class TranscriptionOptions:
    """Per-request choices, already validated."""

    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    use_vad: bool = True
    vad_overrides: dict[str, float | int] | None = None
    count_tokens: bool = False
    """Have the engine report token counts (Transcript.usage), e.g. for Mistral's `usage`."""
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
        chunks: Iterator[ChunkSegments],
        first: ChunkSegments,
        on_chunk: list[Callable[[ChunkSegments], None]],
        speculative_answer: asyncio.Task[EngineAnswer] | None = None,
        speculative_deltas: SegmentDeltas | None = None,
    ) -> None:
        self._chunks = chunks
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


class TranscriptionService:
    """ingest -> decode -> segment -> engine calls -> stitch, over one runtime's parts."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.settings = runtime.settings

    # --- requests in ---------------------------------------------------------------------

    def options_for(self, request: TranscriptionRequest) -> TranscriptionOptions:
        """The one conversion of a validated request into per-request options."""
        return TranscriptionOptions(
            language=request.language,
            prompt=request.prompt,
            temperature=request.temperature,
            use_vad=self.settings.vad.enabled if request.vad_filter is None else request.vad_filter,
            vad_overrides=request.vad_overrides() or None,
            stream_tokens=request.stream,
        )

    async def audio_source(
        self,
        *,
        upload: BinaryIO | None = None,
        file_url: str | None = None,
        audio: str | None = None,
    ) -> AudioSource:
        """The request's audio: an upload, inline base64 / data URL, or a guarded https fetch."""
        return await resolve_audio_source(
            upload=upload, file_url=file_url, audio=audio, settings=self.settings
        )

    def decoding(self, options: TranscriptionOptions) -> DecodingOptions:
        """What the engine is told; the server's default language fills a missing one."""
        return DecodingOptions(
            options.language or self.settings.default_language,
            options.prompt,
            options.temperature,
            options.count_tokens,
        )

    def budget(self) -> TokenBudget:
        s = self.settings
        return TokenBudget(s.tokens_per_audio_second, s.min_output_tokens, s.max_output_tokens)

    def language_for(self, options: TranscriptionOptions) -> str:
        return options.language or self.settings.default_language or self.settings.reported_language

    # --- decode and segment --------------------------------------------------------------

    async def prepare(
        self,
        source: AudioSource | Audio,
        options: TranscriptionOptions,
        on_chunk: Callable[[ChunkSegments], None] | None = None,
    ) -> PreparedAudio:
        """Decode and segment the first chunk off the event loop (all of a short file);
        `on_chunk` sees that chunk and every later one. No segments means no speech.
        An `Audio` (already decoded, as the realtime socket has it) skips the decoder."""
        runtime = self._runtime
        whole_clip: SpeculativeWholeClip | None = None
        early_deltas = SegmentDeltas() if options.stream_tokens else None
        if options.use_vad:
            whole_clip = self._speculative_whole_clip(options, early_deltas)
            segmenter: Segmenter = VadSegmenter(
                runtime.detector,
                vad_params(self.settings.vad, options.vad_overrides),
                warmup_s=self.settings.vad.stream_warmup_s,
                on_whole_file=whole_clip.offer if whole_clip else None,
            )
        else:
            segmenter = FixedWindowSegmenter(self.settings.vad.segment_max_s)
        blocks = (
            iter([source.samples])
            if isinstance(source, Audio)
            else decode_blocks(source, self.settings.limits)
        )
        chunks = segment_stream(blocks, segmenter, chunk_s=self.settings.vad.chunk_s)
        # One thread hop for decode and VAD: each hop costs the event loop a wake-up (~0.1 ms).
        try:
            first = await asyncio.to_thread(next, chunks)
        except BaseException:
            if whole_clip is not None:
                whole_clip.close()
            raise
        early = None
        if whole_clip is not None and whole_clip.started:
            early = whole_clip.settle(first.segments)
            runtime.metrics.head_starts.labels("used" if early else "cancelled").inc()
            if early is None:  # the engine had it: a window spent besides the segments
                runtime.metrics.engine_windows.inc()
        callbacks = [lambda chunk: self._observe(chunk, options)]
        if on_chunk is not None:
            callbacks.append(on_chunk)
        return PreparedAudio(chunks, first, callbacks, early, early_deltas if early else None)

    def _speculative_whole_clip(
        self, options: TranscriptionOptions, deltas: SegmentDeltas | None
    ) -> SpeculativeWholeClip | None:
        """`deltas` (key 0) gets the call's token deltas, when the request streams them."""
        settings = self.settings.head_start
        if not settings.enabled:
            return None
        runtime = self._runtime
        budget, decoding = self.budget(), self.decoding(options)

        async def launch(samples: np.ndarray) -> EngineAnswer:
            try:
                return await transcribe_samples(
                    samples,
                    runtime.upstream,
                    budget=budget,
                    options=decoding,
                    global_slots=runtime.segment_slots,
                    on_delta=partial(deltas.push, 0) if deltas else None,
                )
            finally:
                if deltas is not None:
                    deltas.close(0)

        return SpeculativeWholeClip(
            settings,
            launch,
            busy_segments=lambda: runtime.admission.pending_segments,
            loop=asyncio.get_running_loop(),
        )

    def _observe(self, chunk: ChunkSegments, options: TranscriptionOptions) -> None:
        metrics = self._runtime.metrics
        metrics.decode_seconds.observe(chunk.decode_s)
        metrics.audio_seconds.inc(chunk.added_s)
        if options.use_vad:
            metrics.vad_seconds.observe(chunk.vad_s)
        metrics.segments.inc(len(chunk.segments))
        metrics.engine_windows.inc(len(chunk.segments))
        metrics.speech_seconds.inc(sum(s.duration_s for s in chunk.segments))

    # --- engine calls and stitching ------------------------------------------------------

    def segment_results(
        self, prepared: PreparedAudio, options: TranscriptionOptions
    ) -> AsyncIterator[SegmentResult | TextDelta]:
        """Results in file order (each after its raw engine `TextDelta`s, with
        `options.stream_tokens`); cancelling the iteration cancels the upstream calls."""
        if prepared.speculative_answer is not None:
            return _speculative_result(prepared, prepared.speculative_answer)
        runtime = self._runtime
        return transcribe_segments(
            prepared.segments(),
            runtime.upstream,
            budget=self.budget(),
            options=self.decoding(options),
            per_request_limit=self.settings.max_segments_in_flight_per_request,
            global_slots=runtime.segment_slots,
            stream_tokens=options.stream_tokens,
        )

    def finish(
        self, prepared: PreparedAudio, results: list[SegmentResult], options: TranscriptionOptions
    ) -> Transcript:
        return stitch(results, duration_s=prepared.duration_s, language=self.language_for(options))

    async def collect(
        self,
        prepared: PreparedAudio,
        options: TranscriptionOptions,
        on_result: Callable[[SegmentResult], None] | None = None,
    ) -> Transcript:
        """Every segment's result, stitched; `on_result` sees each as it arrives."""
        results = []
        async for result in self.segment_results(prepared, options):
            if isinstance(result, TextDelta):
                continue
            if on_result is not None:
                on_result(result)
            results.append(result)
        return self.finish(prepared, results, options)

    async def transcribe(
        self, source: AudioSource | Audio, options: TranscriptionOptions
    ) -> Transcript:
        prepared = await self.prepare(source, options)
        try:
            return await self.collect(prepared, options)
        finally:
            prepared.discard()

    async def text_stream(
        self,
        prepared: PreparedAudio,
        options: TranscriptionOptions,
        *,
        results: AsyncIterator[SegmentResult | TextDelta] | None = None,
        on_result: Callable[[SegmentResult], None] | None = None,
    ) -> AsyncIterator[TextDelta | SegmentResult | Transcript]:
        """What every door streams, in file order: `TextDelta`s of text to send (the engine's
        token deltas with `options.stream_tokens`, else each segment's whole text), each
        segment's `SegmentResult` after its deltas, then the stitched `Transcript`. The deltas
        add up to the transcript's text exactly (DeltaCleaner: stitch's join rule).
        `results` is `segment_results(prepared, options)`, or a door's wrapper around it."""
        if results is None:
            results = self.segment_results(prepared, options)
        collected: list[SegmentResult] = []
        cleaner = DeltaCleaner()
        streamed = False  # the current segment's text went out as engine deltas already
        async for item in results:
            if isinstance(item, TextDelta):
                streamed = True
                if text := cleaner.clean(item.text):
                    yield replace(item, text=text)
                continue
            if on_result is not None:
                on_result(item)
            collected.append(item)
            if not streamed and (text := cleaner.clean(item.text)):
                yield TextDelta(item.index, item.start_s, item.end_s, text)
            yield item
            cleaner.next_segment()
            streamed = False
        yield self.finish(prepared, collected, options)

    async def stream_events(
        self,
        prepared: PreparedAudio,
        options: TranscriptionOptions,
        *,
        results: AsyncIterator[SegmentResult | TextDelta] | None = None,
        on_result: Callable[[SegmentResult], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI's stream events as dicts: `transcript.text.delta`s in file order (the
        engine's token deltas when streamed; deltas concatenate to the done text), then
        `transcript.text.done`."""
        async for item in self.text_stream(prepared, options, results=results, on_result=on_result):
            if isinstance(item, TextDelta):
                yield delta_payload(item, text=item.text, segment_count=prepared.segment_count)
            elif isinstance(item, Transcript):
                yield done_payload(item)

    async def transcribe_utterance(self, samples: np.ndarray, options: TranscriptionOptions) -> str:
        """Text of one spoken utterance (realtime): one engine call when it fits one segment,
        else VAD's cut, as for a file."""
        fits_one_segment = len(samples) / SAMPLE_RATE_HZ <= self.settings.vad.segment_max_s
        # VAD off, one window of segment_max_s: the utterance goes to the engine as it is.
        transcript = await self.transcribe(
            Audio(samples), replace(options, use_vad=not fits_one_segment)
        )
        return transcript.text


async def _speculative_result(
    prepared: PreparedAudio, call: asyncio.Task[EngineAnswer]
) -> AsyncIterator[SegmentResult | TextDelta]:
    """The one segment's result from the call made before VAD (cancelled with the iteration),
    after its token deltas when the request streams them."""
    async for segment in prepared.segments():
        if prepared.speculative_deltas is not None:
            async for text in prepared.speculative_deltas.deltas(0):
                yield TextDelta(segment.index, segment.start_s, segment.end_s, text)
        answer = await call
        yield SegmentResult(
            segment.index, segment.start_s, segment.end_s, answer.text, answer.usage
        )
