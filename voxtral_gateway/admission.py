"""Admission control: refuse early (429) rather than queue without bound; drain on shutdown.

Load is counted in what costs engine time, audio seconds and pending segments, not only in
requests: one 2-hour file weighs as much as a thousand short clips.

With several workers (`Settings.workers`) each one publishes its load to a table they share
(worker_group.py) and admits only while the sum over all workers is under the limits, so the
limits hold for the whole gateway. Why not split each limit N ways: the kernel spreads
connections over the workers by a hash, not by load, so one worker would refuse (429) while
another sat idle; a client with one keep-alive connection would never see more than 1/N.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from voxtral_gateway.errors import OverloadedError, UpstreamUnavailableError
from voxtral_gateway.pipeline.stream import ChunkSegments
from voxtral_gateway.ratelimit import AudioCharge
from voxtral_gateway.settings import Settings
from voxtral_gateway.worker_group import Load, SharedLoad


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
        self.admission.changed()

    def add_chunk(self, chunk: ChunkSegments) -> None:
        self.add(chunk.added_s, len(chunk.segments))

    def segment_done(self) -> None:
        if self.segments > 0:
            self.segments -= 1
            self.admission.pending_segments -= 1
            self.admission.changed()

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
        self.admission.changed()


@dataclass
class Admission:
    settings: Settings
    in_flight_requests: int = 0
    in_flight_audio_s: float = 0.0
    pending_segments: int = 0
    draining: bool = False
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    shared: SharedLoad | None = None
    """The other workers' load, and where this one publishes its own (None: one process)."""
    on_change: Callable[[Admission], None] | None = None
    """Called after every change of the load (metrics gauges)."""

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def load(self) -> Load:
        """This process's load."""
        return Load(self.in_flight_requests, self.in_flight_audio_s, self.pending_segments)

    def gateway_load(self) -> Load:
        """The load of every worker together (this process's alone with one worker)."""
        with self._shared_lock() as others:
            return self.load + others

    @contextlib.contextmanager
    def _shared_lock(self) -> Iterator[Load]:
        """The other workers' load, held still until the block ends (zero with one process)."""
        if self.shared is None:
            yield Load()
            return
        with self.shared.locked():
            yield self.shared.others()

    def changed(self) -> None:
        if self.shared is not None:
            with self.shared.locked():
                self.shared.publish(self.load)
        if self.on_change is not None:
            self.on_change(self)

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
        with self._shared_lock() as others:
            total = self.load + others
            if (
                total.requests >= s.max_in_flight_requests
                or total.audio_s >= s.max_in_flight_audio_s
                or total.segments >= s.max_pending_segments
            ):
                raise OverloadedError(
                    "The gateway is at capacity; retry shortly.", headers=self._retry_after()
                )
            self.in_flight_requests += 1
            if self.shared is not None:
                self.shared.publish(self.load)  # inside the lock: no sibling admits past it
        self.idle.clear()
        if self.on_change is not None:
            self.on_change(self)
        return Ticket(self, charge_audio)

    async def drain(self, timeout_s: float) -> bool:
        """Stop admitting; True if every in-flight request finished within `timeout_s`."""
        self.draining = True
        try:
            await asyncio.wait_for(self.idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
