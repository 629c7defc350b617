"""The gateway's long-lived parts: HTTP pool, engines, VAD model, word aligner, global segment
slots, metrics.

`open_runtime(settings)` builds them once per process; the FastAPI app, the RunPod worker and
the realtime socket all transcribe through `runtime.service` (service.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

from voxtral_gateway.admission import Admission
from voxtral_gateway.metrics import Metrics
from voxtral_gateway.pipeline.language import WhisperLanguageDetector, load_language_detector
from voxtral_gateway.pipeline.speaker_encoder import check_backend
from voxtral_gateway.pipeline.speakers import SpeakerStage
from voxtral_gateway.pipeline.vad import SpeechDetector, load_detector
from voxtral_gateway.pipeline.word_timing import OnDemandAligner
from voxtral_gateway.readiness import Readiness
from voxtral_gateway.service import TranscriptionService
from voxtral_gateway.settings import Settings
from voxtral_gateway.upstream import UpstreamPool
from voxtral_gateway.worker_group import SharedLoad, WorkerGroup

logger = logging.getLogger(__name__)

# Where a packaged CTranslate2 model (the language detector's `base`) is assembled once.


@dataclass
class Runtime:
    """The long-lived parts every front door shares; `service` transcribes with them."""

    settings: Settings
    upstream: UpstreamPool
    detector: SpeechDetector
    metrics: Metrics
    segment_slots: asyncio.Semaphore
    admission: Admission
    readiness: Readiness
    language_detector: WhisperLanguageDetector | None = None
    """Detects the spoken language where the engine cannot (settings.language_detector_model)."""
    speaker_stage: SpeakerStage | None = None
    """The speaker encoder's workers (pipeline/speakers.py); None with backend `off`."""
    aligner: OnDemandAligner = field(init=False)
    """Word timing's Whisper model, loaded by the first request that asks for words."""
    service: TranscriptionService = field(init=False)

    def __post_init__(self) -> None:
        self.aligner = OnDemandAligner(self.settings.align)
        self.service = TranscriptionService(self)


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
    worker_group: WorkerGroup | None = None,
) -> AsyncIterator[Runtime]:
    """Build the runtime; a client passed in is the caller's to close. `worker_group`: this
    process's place among several workers (metrics and admission limits then span them all)."""
    check_backend(settings.speakers)
    owns_client = http_client is None
    client = http_client or build_http_client(settings)
    if worker_group is None:
        metrics = metrics or Metrics()
        admission = Admission(settings)
    else:
        metrics = metrics or Metrics(worker_group.metrics_dir)
        shared = SharedLoad(worker_group.load_path, worker_group.index)
        admission = Admission(settings, shared=shared)
    admission.on_change = metrics.observe_admission
    upstream = UpstreamPool.from_settings(client, settings)
    upstream.observe_latency = metrics.upstream_seconds.observe
    upstream.observe_verbose_fallback = metrics.observe_verbose_fallback
    speaker_stage = None if settings.speakers.backend == "off" else SpeakerStage(settings.speakers)
    try:
        yield Runtime(
            settings=settings,
            upstream=upstream,
            detector=detector or await asyncio.to_thread(load_detector, settings.vad),
            metrics=metrics,
            segment_slots=asyncio.Semaphore(settings.max_segments_in_flight),
            admission=admission,
            readiness=Readiness(upstream),
            speaker_stage=speaker_stage,
            language_detector=await asyncio.to_thread(
                load_language_detector,
                settings.language_detector_model,
                settings.align.cache_dir.expanduser(),
                settings.language_candidates,
                settings.language_detection_method,
            ),
        )
    finally:
        if speaker_stage is not None:
            speaker_stage.close()
        if admission.shared is not None:
            admission.shared.close()
        if owns_client:
            await client.close()
