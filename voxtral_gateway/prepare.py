"""Decode and segment, the stage before any engine call: a request's audio becomes
`PreparedAudio` (pipeline/prepared.py), its first chunk's segments at hand.

Decode and VAD run a chunk of audio at a time (pipeline/stream.py), off the event loop: the
first chunk before the response starts (so a broken file is a 4xx, and a short file is done
in one step), later chunks while earlier segments are already with the engine. Beside them
start the request's speaker track and, on a nearly idle gateway, the whole clip's engine call
before VAD has run (the head start, pipeline/head_start.py).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from voxtral_gateway.engine_calls import EngineAnswer
from voxtral_gateway.options import TranscriptionOptions
from voxtral_gateway.pipeline.decode import AudioSource, decode_blocks
from voxtral_gateway.pipeline.head_start import SpeculativeWholeClip
from voxtral_gateway.pipeline.prepared import PreparedAudio
from voxtral_gateway.pipeline.records import Audio
from voxtral_gateway.pipeline.segment import vad_params
from voxtral_gateway.pipeline.speaker_encoder import SpeakersUnavailableError
from voxtral_gateway.pipeline.speakers import SpeakerTrack
from voxtral_gateway.pipeline.stream import (
    ChunkSegments,
    FixedWindowSegmenter,
    Segmenter,
    VadSegmenter,
    segment_stream,
)
from voxtral_gateway.pipeline.token_stream import SegmentDeltas
from voxtral_gateway.pipeline.transcribe import (
    DecodingOptions,
    LanguageDetection,
    TokenBudget,
    transcribe_samples,
    with_chosen_language,
)

if TYPE_CHECKING:
    from voxtral_gateway.runtime import Runtime


class AudioPreparation:
    """decode -> segment (VAD), with the speaker track and the head start beside them, over
    one runtime's parts. The head start's engine call is told what the service tells every
    call: `decoding`, `budget` and `choose_language` are the service's."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        decoding: Callable[[TranscriptionOptions], DecodingOptions],
        budget: Callable[[], TokenBudget],
        choose_language: Callable[[], LanguageDetection | None],
    ) -> None:
        self._runtime = runtime
        self.settings = runtime.settings
        self._decoding = decoding
        self._budget = budget
        self._choose_language = choose_language

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
        budget, decoding = self._budget(), self._decoding(options)

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
