"""Load shapes: closed loop (fixed concurrency) and open loop (Poisson arrivals).

Closed loop answers "how much can the server do with N users who wait for each answer";
open loop answers "what happens to latency when requests arrive at R per second regardless",
which is how queues build up in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import httpx
import numpy as np

from bench.client import AudioCache, Job, RequestRecord, Target, transcribe

Progress = Callable[[], None]


def _noop() -> None:
    return None


async def run_closed(
    client: httpx.AsyncClient,
    target: Target,
    jobs: Sequence[Job],
    concurrency: int,
    audio: AudioCache,
    *,
    on_done: Progress = _noop,
) -> tuple[list[RequestRecord], float]:
    """``concurrency`` workers take jobs in order until none are left; returns (records, wall_s)."""
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    records: list[RequestRecord] = []
    origin = time.perf_counter()

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            record = await transcribe(
                client, target, job, audio.get(job.path), level=concurrency, origin_s=origin
            )
            records.append(record)
            on_done()

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(jobs)))))
    return records, time.perf_counter() - origin


async def run_open(
    client: httpx.AsyncClient,
    target: Target,
    jobs: Sequence[Job],
    rate_per_s: float,
    duration_s: float,
    audio: AudioCache,
    *,
    seed: int = 0,
    on_done: Progress = _noop,
) -> tuple[list[RequestRecord], float]:
    """Send at Poisson arrival times for ``duration_s``, cycling through ``jobs``, then wait for
    every answer; late answers count (they are the queue). Returns (records, wall_s)."""
    arrivals = poisson_arrivals(rate_per_s, duration_s, seed)
    origin = time.perf_counter()

    async def fire(at_s: float, job: Job) -> RequestRecord:
        await asyncio.sleep(max(0.0, origin + at_s - time.perf_counter()))
        record = await transcribe(
            client, target, job, audio.get(job.path), level=rate_per_s, origin_s=origin
        )
        on_done()
        return record

    tasks = [fire(at_s, jobs[i % len(jobs)]) for i, at_s in enumerate(arrivals)]
    records = list(await asyncio.gather(*tasks))
    return records, time.perf_counter() - origin


def poisson_arrivals(rate_per_s: float, duration_s: float, seed: int = 0) -> list[float]:
    """Send times in seconds from the start: exponential gaps, seeded, all below ``duration_s``."""
    rng = np.random.default_rng(seed)
    arrivals: list[float] = []
    clock = float(rng.exponential(1.0 / rate_per_s))
    while clock < duration_s:
        arrivals.append(clock)
        clock += float(rng.exponential(1.0 / rate_per_s))
    return arrivals
