"""One transcription service behind every front door: audio in, transcript or events out.

    ingest (file | URL | base64) -> decode -> segment (VAD) -> engine calls (+ word timing)
    -> stitch -> render

The HTTP route (`routes/transcriptions.py`), the RunPod worker (`runpod/handler.py`) and the
realtime socket (`realtime/transcriber.py`) only translate their protocol onto this class:
a parameter such as `language` reaches the engine through the same `options_for` ->
`decoding` -> `transcribe_samples` path from every door.

Decode and VAD (with the speaker track and the head start beside them) are one stage of
their own, `prepare` (prepare.py): the first chunk before the response starts, later chunks
while earlier segments are already with the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from voxtral_gateway.engine_calls import EngineAnswer, Task
from voxtral_gateway.languages import supported_languages, validate_language
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.cues import CueLimits
from voxtral_gateway.pipeline.decode import AudioSource
from voxtral_gateway.pipeline.events import openai_events
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
from voxtral_gateway.pipeline.speakers import read_speaker_request
from voxtral_gateway.pipeline.stitch import stitch
from voxtral_gateway.pipeline.stream import ChunkSegments
from voxtral_gateway.pipeline.token_stream import TextDelta, text_to_send
from voxtral_gateway.pipeline.transcribe import (
    DecodingOptions,
    LanguageDetection,
    TokenBudget,
    WordTimer,
    segment_result,
    transcribe_segments,
)
from voxtral_gateway.pipeline.word_timing import with_word_timing
from voxtral_gateway.prepare import AudioPreparation
from voxtral_gateway.protocol import TranscriptionRequest

if TYPE_CHECKING:
    from voxtral_gateway.runtime import Runtime


class TranscriptionService:
    """ingest -> decode -> segment -> engine calls -> stitch, over one runtime's parts."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self.settings = runtime.settings
        self._preparation = AudioPreparation(
            runtime,
            decoding=self.decoding,
            budget=self.budget,
            choose_language=self._choose_language,
        )

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
        An `Audio` (already decoded, as the realtime socket has it) skips the decoder.
        The stage itself: prepare.py."""
        return await self._preparation.prepare(source, options, on_chunk)

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
