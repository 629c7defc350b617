"""Engine readiness for `/ready` and RunPod's `/ping`: a real probe, cached, single-flight.

A probe is a one-token transcription per engine (`UpstreamPool.probe`): `/health` on vLLM can
say 200 for a stuck engine. Load balancers poll often and in bursts, so an answer is reused
for `max_age_s`, and callers that arrive while a probe runs wait for that probe rather than
start their own: a burst of probes costs one inference.
"""

from __future__ import annotations

import asyncio
import time

from voxtral_gateway.upstream import UpstreamPool

READY_CACHE_S = 2.0
"""How long one probe's answer stands (seconds)."""


class Readiness:
    """The last probe's answer per engine, refreshed by at most one probe at a time."""

    def __init__(self, upstream: UpstreamPool, *, max_age_s: float = READY_CACHE_S) -> None:
        self._upstream = upstream
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._checked_at: float | None = None
        self.engines: dict[str, bool] = {}
        """Engine base URL -> whether it answered the last probe."""

    async def check(self) -> bool:
        """Whether any engine is ready, probing only when the last answer is stale."""
        async with self._lock:
            if self._checked_at is None or time.monotonic() - self._checked_at > self._max_age_s:
                self.engines = await self._upstream.probe()
                self._checked_at = time.monotonic()
        return any(self.engines.values())
