"""Admission control: refuse early (429) rather than queue without bound; drain on shutdown.

Load is counted in what costs engine time, audio seconds and pending segments, not only in
requests: one 2-hour file weighs as much as a thousand short clips.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voxtral_gateway.errors import OverloadedError, UpstreamUnavailableError
from voxtral_gateway.pipeline.stream import ChunkSegments
from voxtral_gateway.ratelimit import AudioCharge
from voxtral_gateway.settings import Settings


@dataclass
class Ticket:
    """One admitted request's share of the load; `release()` is safe to call twice."""

    admission: Admission
    charge_audio: AudioCharge | None = None
    """The client's audio-seconds rate limit, when one is set."""
    audio_s: float = 0.0
    segments: int = 0
    released: bool = False

    def add(self, audio_s: float, segments: int) -> None:
        """Add newly decoded audio and newly found segments to the load (and the audio to the
        client's audio-seconds rate limit, when one is set). A long file adds them chunk by
        chunk."""
        if self.released:
            return
        if self.charge_audio is not None:
            self.charge_audio(audio_s)
        self.admission.in_flight_audio_s += audio_s
        self.admission.pending_segments += segments
        self.audio_s += audio_s
        self.segments += segments

    def add_chunk(self, chunk: ChunkSegments) -> None:
        self.add(chunk.added_s, len(chunk.segments))

    def segment_done(self) -> None:
        if self.segments > 0:
            self.segments -= 1
            self.admission.pending_segments -= 1

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.admission.in_flight_audio_s -= self.audio_s
        if abs(self.admission.in_flight_audio_s) < 1e-6:  # float dust of many adds, not a leak
            self.admission.in_flight_audio_s = 0.0
        self.admission.pending_segments -= self.segments
        self.audio_s, self.segments = 0.0, 0
        self.admission.in_flight_requests -= 1
        if self.admission.in_flight_requests == 0:
            self.admission.idle.set()


@dataclass
class Admission:
    settings: Settings
    in_flight_requests: int = 0
    in_flight_audio_s: float = 0.0
    pending_segments: int = 0
    draining: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def _retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(self.settings.retry_after_s)}

    def admit(self, charge_audio: AudioCharge | None = None) -> Ticket:
        """Raise before any body is read if draining (503) or saturated (429).

        `charge_audio`: what the ticket charges decoded audio to (a rate-limited client's
        bucket, from `RateLimiter.admit`)."""
        if self.draining:
            raise UpstreamUnavailableError(
                "The gateway is shutting down; retry on another instance.",
                code="draining",
                headers=self._retry_after(),
            )
        s = self.settings
        if (
            self.in_flight_requests >= s.max_in_flight_requests
            or self.in_flight_audio_s >= s.max_in_flight_audio_s
            or self.pending_segments >= s.max_pending_segments
        ):
            raise OverloadedError(
                "The gateway is at capacity; retry shortly.", headers=self._retry_after()
            )
        self.in_flight_requests += 1
        self.idle.clear()
        return Ticket(self, charge_audio)

    async def drain(self, timeout_s: float) -> bool:
        """Stop admitting; True if every in-flight request finished within `timeout_s`."""
        self.draining = True
        try:
            await asyncio.wait_for(self.idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
