"""Prometheus metrics, on a registry owned by the app (no process-global state).

With several workers each one writes its values to prometheus_client's multiprocess files
(worker_group.py sets the folder up) and /metrics, on whichever worker answers, reads all of
them: counters and histograms add up over every worker that ever ran, gauges over the live
ones ('livesum': each worker's in-flight share, summed). prometheus_client does not write
`*_created` samples in that mode; every other name is the same as with one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from voxtral_gateway.admission import Admission

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """Everything the gateway counts; one instance per app. `multiprocess_dir`: the folder
    all workers write to (PROMETHEUS_MULTIPROC_DIR, set before this process started); None
    with one process."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        if (
            multiprocess_dir is not None
            and prometheus_values.ValueClass is prometheus_values.MutexValue
        ):
            # Values would stay in this process's memory and /metrics would miss them.
            raise RuntimeError("PROMETHEUS_MULTIPROC_DIR was not set before the worker started")
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "voxtral_requests",
            "Transcription requests by outcome.",
            ["status", "format"],
            registry=r,
        )
        self.audio_seconds = Counter(
            "voxtral_audio_seconds", "Seconds of decoded audio received.", registry=r
        )
        self.speech_seconds = Counter(
            "voxtral_speech_seconds", "Seconds of audio sent upstream after VAD.", registry=r
        )
        self.segments = Counter("voxtral_segments", "Segments sent upstream.", registry=r)
        # Voxtral and Whisper pad every call to one 30 s window of encoder + prefill, so
        # windows per audio minute (this over voxtral_audio_seconds, x60) is what a file
        # costs the engine; 2 for a file of speech edge to edge.
        self.engine_windows = Counter(
            "voxtral_engine_windows",
            "Engine calls started, each one model window (segments, plus head starts that "
            "were cancelled after the engine had them).",
            registry=r,
        )
        self.in_flight_requests = Gauge(
            "voxtral_in_flight_requests",
            "Transcription requests being served.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.pending_segments = Gauge(
            "voxtral_pending_segments",
            "Segments admitted and not yet transcribed.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.in_flight_audio_seconds = Gauge(
            "voxtral_in_flight_audio_seconds",
            "Audio seconds being transcribed.",
            multiprocess_mode="livesum",
            registry=r,
        )
        self.decode_seconds = Histogram(
            "voxtral_decode_seconds",
            "Decode time per chunk of audio (a whole file up to VOXTRAL_VAD__CHUNK_S).",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.vad_seconds = Histogram(
            "voxtral_vad_seconds",
            "VAD time per chunk of audio (a whole file up to VOXTRAL_VAD__CHUNK_S).",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.align_seconds = Histogram(
            "voxtral_align_seconds",
            "Word-timing (aligner) time per segment, queueing for the aligner included.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.head_starts = Counter(
            "voxtral_head_start_calls",
            "Whole-clip engine calls started while VAD ran, by outcome (used or cancelled).",
            ["outcome"],
            registry=r,
        )
        self.verbose_fallbacks = Counter(
            "voxtral_verbose_text_fallbacks",
            "Whisper verbose_json answers that may have dropped text, asked again as json, by"
            " outcome (recovered: the json text replaced it; kept: it held as many words).",
            ["outcome"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "voxtral_upstream_seconds",
            "Engine latency per segment.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )
        self.request_seconds = Histogram(
            "voxtral_request_seconds",
            "Whole request latency.",
            buckets=_LATENCY_BUCKETS_S,
            registry=r,
        )

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone, path=str(self.multiprocess_dir))
        return generate_latest(everyone)

    def observe_verbose_fallback(self, outcome: str) -> None:
        self.verbose_fallbacks.labels(outcome).inc()

    def observe_admission(self, admission: Admission) -> None:
        """Admission's `on_change`: its load, as gauges (this process's share)."""
        self.pending_segments.set(admission.pending_segments)
        self.in_flight_audio_seconds.set(admission.in_flight_audio_s)


@dataclass
class RequestRecord:
    """One transcription request in the metrics: its outcome, latency and in-flight share are
    written once, when its response is over (for a stream, when the stream ends)."""

    metrics: Metrics
    response_format: str = "json"
    started: float = field(default_factory=time.perf_counter)
    is_in_flight: bool = False
    is_finished: bool = False

    def admitted(self) -> None:
        self.is_in_flight = True
        self.metrics.in_flight_requests.inc()

    def finish(self, status: int) -> None:
        """Count the outcome; later calls change nothing (the first status is the real one)."""
        if self.is_finished:
            return
        self.is_finished = True
        self.metrics.requests.labels(str(status), self.response_format).inc()
        if self.is_in_flight:
            self.metrics.in_flight_requests.dec()
        self.metrics.request_seconds.observe(time.perf_counter() - self.started)
