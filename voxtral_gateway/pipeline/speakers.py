"""The speaker stage: embeds each segment's speech in a worker thread, beside the engine calls.

When a request asks for speakers, VAD hands on one segment per speech region (a turn change
always falls in a pause, so no engine call spans two speakers), and every segment, as its
chunk arrives, is queued here for embedding. Only the embedding (256 floats) is kept once a
job has run, never the audio, so memory stays bounded on long files. The labels are computed
when the last engine result is in (clustering takes milliseconds), or, when streaming, one
segment at a time.
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
from voxtral_gateway.pipeline.records import SAMPLE_RATE_HZ, Transcript
from voxtral_gateway.pipeline.speaker_encoder import (
    SpeakerEncoder,
    SpeakersUnavailableError,
    is_available,
    load_speaker_encoder,
)
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

    def track(self, request: SpeakerRequest) -> SpeakerTrack:
        if not self.is_available:
            raise SpeakersUnavailableError
        return SpeakerTrack(self, request)

    def submit(self, samples: np.ndarray) -> Future[np.ndarray | None]:
        return self._executor.submit(self._embed, samples)

    def _embed(self, samples: np.ndarray) -> np.ndarray | None:
        """One segment's voice: the normalised mean of its windows' embeddings (None: no audio)."""
        windows = self.encoder().embed_windows(samples, self.settings.window_s, self.settings.hop_s)
        mean = windows.mean(axis=0) if len(windows) else None
        # An all-zero embedding (silence through the ReLU) has no direction to compare.
        return normalise(mean) if mean is not None and np.any(mean) else None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class SpeakerTrack:
    """One request's embeddings, by segment index, and its labels."""

    def __init__(self, stage: SpeakerStage, request: SpeakerRequest) -> None:
        self._stage = stage
        self._request = request
        self._references = {name: stage.submit(samples) for name, samples in request.references}
        self._embeddings: dict[int, Future[np.ndarray | None]] = {}
        self._online: OnlineSpeakers | None = None
        self.wait_s = 0.0
        """Time spent waiting for embeddings after the engine had finished (what speakers
        added to the request, seconds)."""

    def add_chunk(self, chunk: ChunkSegments) -> None:
        for segment in chunk.segments:
            self._embeddings[segment.index] = self._stage.submit(segment.samples)

    async def _embedding(self, index: int) -> np.ndarray | None:
        future = self._embeddings.get(index)
        return None if future is None else await asyncio.wrap_future(future)

    async def _reference_embeddings(self) -> dict[str, np.ndarray]:
        found = {}
        for name, future in self._references.items():
            embedding = await asyncio.wrap_future(future)
            if embedding is not None:
                found[name] = embedding
        return found

    async def label(self, index: int) -> str | None:
        """Streaming: the speaker of segment `index`, final as soon as it is given."""
        if self._online is None:
            settings = self._stage.settings
            self._online = OnlineSpeakers(
                bounds=self._request.bounds,
                distance_threshold=settings.distance_threshold,
                references=await self._reference_embeddings(),
                min_similarity=settings.reference_min_similarity,
                max_speakers=settings.max_speakers,
            )
        embedding = await self._embedding(index)
        return None if embedding is None else self._online.label(embedding)

    async def attach(self, transcript: Transcript) -> Transcript:
        """The transcript with a speaker on every segment, clustered over the whole file."""
        started = time.perf_counter()
        indices, rows = [], []
        for segment in transcript.segments:
            embedding = await self._embedding(segment.index)
            if embedding is not None:
                indices.append(segment.index)
                rows.append(embedding)
        self.wait_s = time.perf_counter() - started
        if not rows:
            return transcript
        settings = self._stage.settings
        bounds = self._request.bounds
        bounds = replace(
            bounds,
            max_speakers=min(bounds.max_speakers or settings.max_speakers, settings.max_speakers),
        )
        embeddings = np.stack(rows)
        clusters = cluster_speakers(
            embeddings, bounds=bounds, distance_threshold=settings.distance_threshold
        )
        names = speaker_names(
            centroids(embeddings, clusters),
            await self._reference_embeddings(),
            min_similarity=settings.reference_min_similarity,
        )
        by_index = {index: names[c] for index, c in zip(indices, clusters, strict=True)}
        segments = tuple(replace(s, speaker=by_index.get(s.index)) for s in transcript.segments)
        return replace(transcript, segments=segments)

    def close(self) -> None:
        """The request is over: drop queued work nobody will read."""
        for future in [*self._embeddings.values(), *self._references.values()]:
            future.cancel()


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
