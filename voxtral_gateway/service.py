"""One transcription service behind every front door: audio in, transcript or events out.

    ingest (file | URL | base64) -> decode -> segment (VAD) -> engine calls (+ word timing)
    -> stitch -> render

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
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from voxtral_gateway.engine_calls import EngineAnswer, Task
from voxtral_gateway.languages import supported_languages, validate_language
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.cues import CueLimits
from voxtral_gateway.pipeline.decode import AudioSource, decode_blocks
from voxtral_gateway.pipeline.events import openai_events
from voxtral_gateway.pipeline.head_start import SpeculativeWholeClip
from voxtral_gateway.pipeline.ingest import resolve_audio_source
from voxtral_gateway.pipeline.prepared import PreparedAudio
from voxtral_gateway.pipeline.records import (
    SAMPLE_RATE_HZ,
    Audio,
    SegmentResult,
    Transcript,
    Word,
)
from voxtral_gateway.pipeline.render import render_transcript
from voxtral_gateway.pipeline.segment import vad_params
from voxtral_gateway.pipeline.speaker_encoder import SpeakersUnavailableError
from voxtral_gateway.pipeline.speakers import SpeakerTrack, read_speaker_request
from voxtral_gateway.pipeline.stitch import stitch
from voxtral_gateway.pipeline.stream import (
    ChunkSegments,
    FixedWindowSegmenter,
    Segmenter,
    VadSegmenter,
    segment_stream,
)
from voxtral_gateway.pipeline.token_stream import SegmentDeltas, TextDelta, text_to_send
from voxtral_gateway.pipeline.transcribe import (
    DecodingOptions,
    LanguageDetection,
    TokenBudget,
    WordTimer,
    segment_result,
    transcribe_samples,
    transcribe_segments,
    with_chosen_language,
)
from voxtral_gateway.pipeline.word_timing import with_word_timing
from voxtral_gateway.protocol import TranscriptionRequest

if TYPE_CHECKING:
    from voxtral_gateway.runtime import Runtime


class TranscriptionService:
    """ingest -> decode -> segment -> engine calls -> stitch, over one runtime's parts."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.settings = runtime.settings

    # --- requests in ---------------------------------------------------------------------

    async def options_for(
        self, request: TranscriptionRequest, task: Task = "transcribe"
    ) -> TranscriptionOptions:
        """The one conversion of a validated request into per-request options (400 for a
        language the served model lacks)."""
        options = TranscriptionOptions(
            language=await self.checked_language(request.language),
            prompt=request.prompt,
            temperature=request.temperature,
            use_vad=self.settings.vad.enabled if request.vad_filter is None else request.vad_filter,
            vad_overrides=request.vad_overrides() or None,
            task=task,
            detailed=request.response_format == "verbose_json",
            speakers=await read_speaker_request(request, self.settings),
            stream_tokens=request.stream,
        )
        return with_word_timing(
            options,
            words="word" in request.timestamp_granularities,
            cues=request.response_format in ("srt", "vtt"),
            subtitles=self.settings.subtitles,
        )

    async def checked_language(self, language: str | None) -> str | None:
        """`language` checked against the served model's languages (400 if not supported) and
        normalised to what the engine expects (`pt-BR` -> `pt`); every door checks with this."""
        if not language:
            return None
        family = await self._runtime.upstream.family()
        supported = supported_languages(family, self.settings.languages)
        return validate_language(language, supported)

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
            task=options.task,
            detailed=options.detailed,
        )

    def budget(self) -> TokenBudget:
        s = self.settings
        return TokenBudget(s.tokens_per_audio_second, s.min_output_tokens, s.max_output_tokens)

    def language_for(self, options: TranscriptionOptions) -> str | None:
        """The language the client (or the operator's default) fixed; None: detected per segment."""
        if options.task == "translate":
            return None  # the source language, detected; the text is English
        return options.language or self.settings.default_language

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
        if options.word_timestamps:
            # Loaded now, so a missing model is a 400 before any engine call or stream starts.
            await runtime.aligner.get()
        max_segment_s = min(self.settings.vad.segment_max_s, options.max_segment_s or math.inf)
        whole_clip: SpeculativeWholeClip | None = None
        early_deltas = SegmentDeltas() if options.stream_tokens else None
        track = self._speaker_track(options)
        if options.use_vad:
            # Speakers or not, the same windows: the speaker stage cuts each window's text at
            # its speech regions afterwards (pipeline/speaker_turns.py).
            params = vad_params(self.settings.vad, options.vad_overrides)
            params = replace(params, max_segment_s=min(params.max_segment_s, max_segment_s))
            whole_clip = self._speculative_whole_clip(options, early_deltas)
            segmenter: Segmenter = VadSegmenter(
                runtime.detector,
                params,
                warmup_s=self.settings.vad.stream_warmup_s,
                on_whole_file=whole_clip.offer if whole_clip else None,
            )
        else:
            segmenter = FixedWindowSegmenter(max_segment_s)
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
            if track is not None:
                track.close()
            raise
        early = None
        if whole_clip is not None and whole_clip.started:
            early = whole_clip.settle(first.segments)
            runtime.metrics.head_starts.labels("used" if early else "cancelled").inc()
            if early is None:  # the engine had it: a window spent besides the segments
                runtime.metrics.engine_windows.inc()
        callbacks = [lambda chunk: self._observe(chunk, options)]
        if track is not None:
            callbacks.append(track.add_chunk)
        if on_chunk is not None:
            callbacks.append(on_chunk)
        return PreparedAudio(
            chunks, first, callbacks, early, track, early_deltas if early else None
        )

    def _speaker_track(self, options: TranscriptionOptions) -> SpeakerTrack | None:
        if options.speakers is None:
            return None
        stage = self._runtime.speaker_stage
        if stage is None:
            raise SpeakersUnavailableError
        return stage.track(options.speakers, pad_s=self.settings.vad.speech_pad_ms / 1000)

    def _speculative_whole_clip(
        self, options: TranscriptionOptions, deltas: SegmentDeltas | None
    ) -> SpeculativeWholeClip | None:
        """`deltas` (key 0) gets the call's token deltas, when the request streams them."""
        settings = self.settings.head_start
        if not settings.enabled:
            return None
        runtime = self._runtime
        budget, decoding = self.budget(), self.decoding(options)

        choose_language = self._choose_language()

        async def launch(samples: np.ndarray) -> EngineAnswer:
            try:
                return await transcribe_samples(
                    samples,
                    runtime.upstream,
                    budget=budget,
                    options=await with_chosen_language(decoding, samples, choose_language),
                    global_slots=runtime.segment_slots,
                    on_delta=partial(deltas.push, 0) if deltas else None,
                )
            finally:
                if deltas is not None:
                    deltas.close(0)

        return SpeculativeWholeClip(
            settings,
            launch,
            busy_segments=lambda: runtime.admission.gateway_load().segments,
            loop=asyncio.get_running_loop(),
        )

    def _observe(self, chunk: ChunkSegments, options: TranscriptionOptions) -> None:
        metrics = self._runtime.metrics
        metrics.decode_seconds.observe(chunk.decode_s)
        metrics.audio_seconds.inc(chunk.added_s)
        if options.use_vad:
            metrics.vad_seconds.observe(chunk.vad_s)
        metrics.segments.inc(len(chunk.segments))
        metrics.engine_windows.inc(len(chunk.segments))  # one engine call, one window, each
        metrics.speech_seconds.inc(sum(s.duration_s for s in chunk.segments))

    # --- engine calls and stitching ------------------------------------------------------

    def segment_results(
        self, prepared: PreparedAudio, options: TranscriptionOptions
    ) -> AsyncIterator[SegmentResult | TextDelta]:
        """Results in file order (with timed words if asked), each after its raw engine
        `TextDelta`s with `options.stream_tokens`; cancelling the iteration cancels the
        upstream calls."""
        decoding = self.decoding(options)
        time_words = self._word_timer(prepared, options) if options.word_timestamps else None
        if prepared.speculative_answer is not None:
            return _speculative_result(
                prepared,
                prepared.speculative_answer,
                decoding,
                self._detect_language(),
                time_words,
            )
        runtime = self._runtime
        return transcribe_segments(
            prepared.segments(),
            runtime.upstream,
            budget=self.budget(),
            options=decoding,
            per_request_limit=self.settings.max_segments_in_flight_per_request,
            global_slots=runtime.segment_slots,
            detect_language=self._detect_language(),
            choose_language=self._choose_language(),
            time_words=time_words,
            stream_tokens=options.stream_tokens,
        )

    def _detect_language(self) -> LanguageDetection | None:
        detector = self._runtime.language_detector
        return detector.detect_async if detector else None

    def _choose_language(self) -> LanguageDetection | None:
        """With `language_candidates`, the gateway's detector picks each segment's language
        before the engine call (the engine's own pick could be any of its languages)."""
        detector = self._runtime.language_detector
        return detector.detect_async if detector and detector.candidates else None

    def _word_timer(self, prepared: PreparedAudio, options: TranscriptionOptions) -> WordTimer:
        metrics = self._runtime.metrics

        def timed(seconds: float) -> None:
            prepared.align_s += seconds
            metrics.align_seconds.observe(seconds)

        language = options.language or self.settings.default_language
        return self._runtime.aligner.timer(language=language, on_timed=timed)

    def finish(
        self, prepared: PreparedAudio, results: list[SegmentResult], options: TranscriptionOptions
    ) -> Transcript:
        return stitch(
            results,
            duration_s=prepared.duration_s,
            language=self.language_for(options),
            task=options.task,
        )

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
        return await self.attach_speakers(prepared, self.finish(prepared, results, options))

    async def attach_speakers(self, prepared: PreparedAudio, transcript: Transcript) -> Transcript:
        """The transcript with speakers, when asked for (embeddings ran beside the engine)."""
        if prepared.speakers is None:
            return transcript
        return await prepared.speakers.attach(transcript)

    def render(self, transcript: Transcript, request: TranscriptionRequest) -> str | dict[str, Any]:
        """OpenAI's response body for the request's format; srt/vtt cues cut by the settings."""
        subtitles = self.settings.subtitles
        return render_transcript(
            transcript,
            request.response_format,
            granularities=request.timestamp_granularities,
            cue_limits=CueLimits(
                cue_max_s=subtitles.cue_max_s,
                line_max_chars=subtitles.line_max_chars,
                max_lines=subtitles.max_lines,
                pause_s=subtitles.pause_s,
            ),
        )

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
        token deltas with `options.stream_tokens`, else each segment's whole text; they add up
        to the transcript's text exactly), each segment's `SegmentResult` after its text (the
        doors cut it at speaker turns with `split_speakers`), then the stitched `Transcript`.
        `results` is `segment_results(prepared, options)`, or a door's wrapper."""
        if results is None:
            results = self.segment_results(prepared, options)
        collected: list[SegmentResult] = []
        async for item in text_to_send(results):
            if isinstance(item, SegmentResult):
                if on_result is not None:
                    on_result(item)
                collected.append(item)
            yield item
        yield self.finish(prepared, collected, options)

    async def stream_events(
        self,
        prepared: PreparedAudio,
        options: TranscriptionOptions,
        *,
        results: AsyncIterator[SegmentResult | TextDelta] | None = None,
        on_result: Callable[[SegmentResult], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """OpenAI's stream events as dicts (pipeline/events.openai_events) of `text_stream`."""
        stream = self.text_stream(prepared, options, results=results, on_result=on_result)
        split = None if prepared.speakers is None else partial(self.split_speakers, prepared)
        async for event in openai_events(stream, split, segment_count=prepared.segment_count):
            yield event

    async def split_speakers(
        self, prepared: PreparedAudio, result: SegmentResult
    ) -> list[SegmentResult]:
        """Streaming: `result` cut at speaker turns, each part with its speaker, final as soon
        as it is given (without speakers: `result` alone)."""
        if prepared.speakers is None:
            return [result]
        return await prepared.speakers.split_online(result)

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
    prepared: PreparedAudio,
    call: asyncio.Task[EngineAnswer],
    options: DecodingOptions,
    detect_language: LanguageDetection | None,
    time_words: WordTimer | None,
) -> AsyncIterator[SegmentResult | TextDelta]:
    """The one segment's result from the call made before VAD (cancelled with the iteration),
    after its token deltas when the request streams them."""
    async for segment in prepared.segments():
        if prepared.speculative_deltas is not None:
            async for text, language in prepared.speculative_deltas.deltas(0):
                yield TextDelta(segment.index, segment.start_s, segment.end_s, text, language)
        answer = await call
        # The engine heard the clip from 0 s; segment_result reads phrase times from the segment.
        phrases = tuple(
            Word(p.word, p.start_s - segment.start_s, p.end_s - segment.start_s)
            for p in answer.phrases
        )
        answer = replace(answer, phrases=phrases)
        yield await segment_result(segment, answer, options, detect_language, time_words)
