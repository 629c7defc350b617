"""The request pipeline, outside any web framework: decode -> segment -> fan out -> stitch.

`open_runtime(settings)` owns the long-lived parts (HTTP pool, VAD model, global segment
slots, metrics). The FastAPI app and the RunPod worker both drive the same `Runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from voxtral_gateway.admission import Admission
from voxtral_gateway.metrics import Metrics
from voxtral_gateway.pipeline.decode import decode_audio
from voxtral_gateway.pipeline.records import Audio, Segment, SegmentResult, Transcript
from voxtral_gateway.pipeline.segment import VadParams, fixed_windows, segment_audio, vad_params
from voxtral_gateway.pipeline.stitch import stitch
from voxtral_gateway.pipeline.transcribe import DecodingOptions, TokenBudget, transcribe_segments
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


@dataclass(frozen=True)
class PreparedAudio:
    """Decoded audio and the segments that will be sent upstream, with what each step took."""

    audio: Audio
    segments: list[Segment]
    decode_s: float = 0.0
    vad_s: float = 0.0


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

    async def prepare(self, data: bytes, options: TranscriptionOptions) -> PreparedAudio:
        """Decode and segment off the event loop; silence-only audio gives no segments."""
        # One thread hop for both steps: each hop costs the event loop a wake-up (~0.1 ms).
        prepared = await asyncio.to_thread(self._prepare_sync, data, options)
        self.metrics.decode_seconds.observe(prepared.decode_s)
        self.metrics.audio_seconds.inc(prepared.audio.duration_s)
        if options.use_vad:
            self.metrics.vad_seconds.observe(prepared.vad_s)
        self.metrics.segments.inc(len(prepared.segments))
        self.metrics.speech_seconds.inc(sum(s.duration_s for s in prepared.segments))
        return prepared

    def _prepare_sync(self, data: bytes, options: TranscriptionOptions) -> PreparedAudio:
        started = time.perf_counter()
        audio = decode_audio(data, self.settings.limits)
        decoded = time.perf_counter()
        if options.use_vad:
            params: VadParams = vad_params(self.settings.vad, options.vad_overrides)
            segments = segment_audio(audio, self.detector, params)
        else:
            segments = fixed_windows(audio, self.settings.vad.segment_max_s)
        return PreparedAudio(
            audio=audio,
            segments=segments,
            decode_s=decoded - started,
            vad_s=time.perf_counter() - decoded if options.use_vad else 0.0,
        )

    def segment_results(
        self, prepared: PreparedAudio, options: TranscriptionOptions
    ) -> AsyncIterator[SegmentResult]:
        """Results in file order; cancelling the iteration cancels the upstream calls."""
        return transcribe_segments(
            prepared.segments,
            self.upstream,
            budget=self.budget(),
            options=DecodingOptions(
                options.language or self.settings.default_language,
                options.prompt,
                options.temperature,
            ),
            per_request_limit=self.settings.max_segments_in_flight_per_request,
            global_slots=self.segment_slots,
        )

    def finish(
        self, prepared: PreparedAudio, results: list[SegmentResult], options: TranscriptionOptions
    ) -> Transcript:
        return stitch(
            results, duration_s=prepared.audio.duration_s, language=self.language_for(options)
        )

    async def transcribe(self, data: bytes, options: TranscriptionOptions) -> Transcript:
        prepared = await self.prepare(data, options)
        results = [result async for result in self.segment_results(prepared, options)]
        return self.finish(prepared, results, options)

    async def stream_segments(
        self, data: bytes, options: TranscriptionOptions
    ) -> AsyncIterator[SegmentResult]:
        prepared = await self.prepare(data, options)
        async for result in self.segment_results(prepared, options):
            yield result


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """One pool for all engines, sized to the global segment limit so nothing queues in httpx."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            settings.segment_timeout_s, connect=settings.upstream_connect_timeout_s
        ),
        limits=httpx.Limits(
            max_connections=settings.max_segments_in_flight,
            max_keepalive_connections=settings.max_segments_in_flight,
        ),
        # Engines are named by the operator; never let client-side proxy env vars reroute them.
        trust_env=False,
    )


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    http_client: httpx.AsyncClient | None = None,
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
            await client.aclose()
