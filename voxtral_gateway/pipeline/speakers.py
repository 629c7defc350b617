"""The speaker stage: embeds each speech region in a worker thread, beside the engine calls.

VAD packs speech regions into engine windows as it does without speakers (the same engine
calls); a turn change always falls in a pause, between two regions. Every region, as its
chunk arrives, is queued here for embedding; only the embedding (256 floats) is kept once a
job has run, never the audio, so memory stays bounded on long files. When the last engine
result is in, the regions are clustered (milliseconds) and each window's text is cut at its
regions with their speakers (pipeline/speaker_turns.py); when streaming, one window at a
time with online labels.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from voxtral_gateway.errors import InvalidRequestError
from voxtral_gateway.pipeline.decode import decode_blocks
from voxtral_gateway.pipeline.diarize import (
    OnlineSpeakers,
    SpeakerBounds,
    centroids,
    cluster_speakers,
    normalise,
    speaker_names,
)
from voxtral_gateway.pipeline.inline import decode_inline_audio
from voxtral_gateway.pipeline.records import (
    SAMPLE_RATE_HZ,
    Segment,
    SegmentResult,
    Span,
    Transcript,
)
from voxtral_gateway.pipeline.speaker_encoder import (
    SpeakerEncoder,
    SpeakersUnavailableError,
    is_available,
    load_speaker_encoder,
)
from voxtral_gateway.pipeline.speaker_turns import Region, region_bounds, split_at_regions
from voxtral_gateway.pipeline.stream import ChunkSegments
from voxtral_gateway.protocol import TranscriptionRequest
from voxtral_gateway.settings import LimitSettings, Settings, SpeakerSettings

_REFERENCES = "known_speaker_references"


@dataclass(frozen=True)
class SpeakerRequest:
    """A request's speaker options: count bounds and known speakers' reference audio."""

    bounds: SpeakerBounds = field(default_factory=SpeakerBounds)
    references: tuple[tuple[str, np.ndarray], ...] = ()
    """(name, 16 kHz samples) per known speaker."""


def decode_references(
    names: list[str],
    clips: list[str],
    settings: SpeakerSettings,
    limits: LimitSettings,
    *,
    param: str = _REFERENCES,
) -> tuple[tuple[str, np.ndarray], ...]:
    """Decode reference clips given as data URLs (never a file or remote URL); every bad
    count, size or duration is a 4xx naming `param` (OpenAI's `known_speaker_references`,
    Mistral's `speaker_references`). Runs the decoder: call off the loop."""
    if len(names) != len(clips):
        raise InvalidRequestError(
            "known_speaker_names[] and known_speaker_references[] must have the same length.",
            param="known_speaker_names",
        )
    if len(clips) > settings.max_references:
        raise InvalidRequestError(
            f"At most {settings.max_references} known speakers per request.", param=param
        )
    if len(set(names)) != len(names):
        raise InvalidRequestError(
            "known_speaker_names[] must be distinct.", param="known_speaker_names"
        )
    clip_limits = limits.model_copy(
        update={
            "max_upload_bytes": settings.max_reference_bytes,
            "max_inline_bytes": settings.max_reference_bytes * 4 // 3 + 1024,
            "max_duration_s": settings.reference_max_s,
        }
    )
    decoded = []
    for name, clip in zip(names, clips, strict=True):
        if not clip.strip().lower().startswith("data:"):
            raise InvalidRequestError(
                "Each known speaker reference must be a data URL (data:audio/...;base64,...).",
                param=param,
            )
        encoded = decode_inline_audio(clip, clip_limits, param=param)
        samples = np.concatenate(list(decode_blocks(encoded, clip_limits)))
        if len(samples) < settings.reference_min_s * SAMPLE_RATE_HZ:
            raise InvalidRequestError(
                f"Each known speaker reference must be at least {settings.reference_min_s:g} s.",
                param=param,
            )
        decoded.append((name, samples))
    return tuple(decoded)


class SpeakerStage:
    """The encoder (loaded on first use, in the worker) and the worker threads, for all requests."""

    def __init__(self, settings: SpeakerSettings) -> None:
        self.settings = settings
        self.is_available = is_available(settings)
        self._executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="speakers")
        self._encoder: SpeakerEncoder | None = None
        self._lock = threading.Lock()

    def encoder(self) -> SpeakerEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = load_speaker_encoder(self.settings)
            return self._encoder

    def track(self, request: SpeakerRequest, *, pad_s: float) -> SpeakerTrack:
        """A request's track; `pad_s` is VAD's padding (seconds), given to each region."""
        if not self.is_available:
            raise SpeakersUnavailableError
        return SpeakerTrack(self, request, pad_s=pad_s)

    def submit(self, samples: np.ndarray) -> Future[np.ndarray | None]:
        """One clip's voice (a reference), embedded in the worker."""
        return self._executor.submit(lambda: self._embed([samples])[0])

    def submit_regions(self, clips: list[np.ndarray]) -> Future[list[np.ndarray | None]]:
        """Each clip's voice (a window's regions), embedded together in one job."""
        return self._executor.submit(self._embed, clips)

    def _embed(self, clips: list[np.ndarray]) -> list[np.ndarray | None]:
        """Each clip's voice: the normalised mean of its windows' embeddings over its middle
        `region_max_s` (None: no audio)."""
        settings = self.settings
        keep = round(settings.region_max_s * SAMPLE_RATE_HZ)
        middles = [clip[max(0, (len(clip) - keep) // 2) :][:keep] for clip in clips]
        voices: list[np.ndarray | None] = []
        for windows in self.encoder().embed_clips(middles, settings.window_s, settings.hop_s):
            mean = windows.mean(axis=0) if len(windows) else None
            # An all-zero embedding (silence through the ReLU) has no direction to compare.
            voices.append(normalise(mean) if mean is not None and np.any(mean) else None)
        return voices

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class SpeakerTrack:
    """One request's region embeddings, by segment index, and its labels."""

    def __init__(self, stage: SpeakerStage, request: SpeakerRequest, *, pad_s: float) -> None:
        self._stage = stage
        self._request = request
        self._pad_s = pad_s
        self._references = {name: stage.submit(samples) for name, samples in request.references}
        self._regions: dict[int, tuple[list[Span], Future[list[np.ndarray | None]]]] = {}
        self._online: OnlineSpeakers | None = None
        self.wait_s = 0.0
        """Time spent waiting for embeddings after the engine had finished (what speakers
        added to the request, seconds)."""

    def add_chunk(self, chunk: ChunkSegments) -> None:
        for segment in chunk.segments:
            cut = self._cut(segment)
            future = self._stage.submit_regions([samples for _, samples in cut])
            self._regions[segment.index] = ([span for span, _ in cut], future)

    def _cut(self, segment: Segment) -> list[tuple[Span, np.ndarray]]:
        """The segment's regions and their padded samples (VAD off: the whole segment)."""
        window = Span(segment.start_s, segment.end_s)
        spans = list(segment.regions) or [window]
        cut = []
        for span, bound in zip(spans, region_bounds(spans, window, self._pad_s), strict=True):
            first = max(0, round((bound.start_s - segment.start_s) * SAMPLE_RATE_HZ))
            last = round((bound.end_s - segment.start_s) * SAMPLE_RATE_HZ)
            cut.append((span, segment.samples[first:last]))
        return cut

    async def _embeddings(self, index: int) -> list[tuple[Span, np.ndarray | None]]:
        if index not in self._regions:
            return []
        spans, future = self._regions[index]
        return list(zip(spans, await asyncio.wrap_future(future), strict=True))

    async def _reference_embeddings(self) -> dict[str, np.ndarray]:
        found = {}
        for name, future in self._references.items():
            embedding = await asyncio.wrap_future(future)
            if embedding is not None:
                found[name] = embedding
        return found

    async def split_online(self, result: SegmentResult) -> list[SegmentResult]:
        """Streaming: `result` cut at its regions, each with its speaker, final as soon as it
        is given."""
        if self._online is None:
            settings = self._stage.settings
            self._online = OnlineSpeakers(
                bounds=self._request.bounds,
                distance_threshold=settings.distance_threshold,
                references=await self._reference_embeddings(),
                min_similarity=settings.reference_min_similarity,
                max_speakers=settings.max_speakers,
            )
        online = self._online
        regions = [
            (span, None if embedding is None else online.label(embedding))
            for span, embedding in await self._embeddings(result.index)
        ]
        return split_at_regions(result, _filled(regions), pad_s=self._pad_s)

    async def attach(self, transcript: Transcript) -> Transcript:
        """The transcript cut at speech regions, each with its speaker, clustered over the
        whole file."""
        started = time.perf_counter()
        by_window = {s.index: await self._embeddings(s.index) for s in transcript.segments}
        self.wait_s = time.perf_counter() - started
        keys = [
            (index, k)
            for index, regions in by_window.items()
            for k, (_, embedding) in enumerate(regions)
            if embedding is not None
        ]
        if not keys:
            return transcript
        settings = self._stage.settings
        bounds = self._request.bounds
        bounds = replace(
            bounds,
            max_speakers=min(bounds.max_speakers or settings.max_speakers, settings.max_speakers),
        )
        embeddings = np.stack([by_window[index][k][1] for index, k in keys])
        clusters = cluster_speakers(
            embeddings, bounds=bounds, distance_threshold=settings.distance_threshold
        )
        names = speaker_names(
            centroids(embeddings, clusters),
            await self._reference_embeddings(),
            min_similarity=settings.reference_min_similarity,
        )
        label = {key: names[c] for key, c in zip(keys, clusters, strict=True)}
        segments = []
        for result in transcript.segments:
            regions = [
                (span, label.get((result.index, k)))
                for k, (span, _) in enumerate(by_window[result.index])
            ]
            segments += split_at_regions(result, _filled(regions), pad_s=self._pad_s)
        return replace(transcript, segments=tuple(segments))

    def close(self) -> None:
        """The request is over: drop queued work nobody will read."""
        regions = [future for _, future in self._regions.values()]
        for future in [*regions, *self._references.values()]:
            future.cancel()


def _filled(regions: list[tuple[Span, str | None]]) -> list[Region]:
    """Regions with a speaker each: one with no voice heard (too short or too quiet to
    embed) takes the speaker before it in the window, or else the one after."""
    known = [speaker for _, speaker in regions if speaker is not None]
    previous = known[0] if known else None
    filled = []
    for span, speaker in regions:
        previous = speaker or previous
        filled.append(Region(span, previous))
    return filled


async def read_speaker_request(
    params: TranscriptionRequest, settings: Settings
) -> SpeakerRequest | None:
    """The request's speaker options (references decoded off the loop); None: not asked for."""
    if not params.wants_speakers():
        return None
    references = await asyncio.to_thread(
        decode_references,
        params.known_speaker_names,
        params.known_speaker_references,
        settings.speakers,
        settings.limits,
    )
    return SpeakerRequest(SpeakerBounds(params.min_speakers, params.max_speakers), references)


async def read_named_references(
    references: dict[str, str], settings: Settings, *, param: str
) -> SpeakerRequest:
    """Speaker options from a name -> data URL mapping (Mistral's `speaker_references`)."""
    decoded = await asyncio.to_thread(
        decode_references,
        list(references),
        list(references.values()),
        settings.speakers,
        settings.limits,
        param=param,
    )
    return SpeakerRequest(SpeakerBounds(), decoded)
