"""The overload measurement's clients and gateway probes, shared by bench/overload.py and
tests/reliability/test_overload.py.

    python -m bench.overload_client unloaded URL BODY CONTENT_TYPE REQUESTS
    python -m bench.overload_client overload URL BODY CONTENT_TYPE CLIENTS SECONDS

`unloaded` is the baseline (one client, back to back, after 3 warm-ups); `overload` runs
CLIENTS closed loops, each retrying 50 ms after a 429 (`overload_processes` spreads them over
several processes for bench/overload.py). Run as a module, the clients are their own process
at nice 19 and print one JSON list of [status, seconds] per request: real clients sit on other
machines, and on one small box (the 2-core CI machine) the next best thing is a process the
kernel serves only after the gateway and the engine.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import re
import sys
import threading
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import httpx
import psutil

WARMUP = 3
PAUSE_AFTER_429_S = 0.05  # impatient clients: far sooner than Retry-After asks
Outcome = tuple[int, float]  # status (-429: malformed refusal, 0: no response), seconds
ADMISSION_GAUGES = (
    "voxtral_in_flight_requests",
    "voxtral_pending_segments",
    "voxtral_in_flight_audio_seconds",
)


def encode_form(audio: bytes, model: str) -> tuple[bytes, str]:
    """The multipart body and its content type, encoded once so clients only send bytes."""
    request = httpx.Request(
        "POST",
        "http://unused/",
        files={"file": ("clip.wav", audio, "audio/wav")},
        data={"model": model},
    )
    return request.read(), request.headers["content-type"]


async def _one(client: httpx.AsyncClient, url: str, body: bytes, content_type: str) -> Outcome:
    started = time.monotonic()
    try:
        response = await client.post(url, content=body, headers={"content-type": content_type})
    except httpx.TransportError:
        return 0, time.monotonic() - started  # counted as "other", never raised: keep loading
    seconds = time.monotonic() - started
    if response.status_code == 429:
        error = response.json()["error"]
        if error["type"] != "rate_limit_error" or int(response.headers["retry-after"]) < 1:
            return -429, seconds  # a malformed refusal: "other", not a 429
    return response.status_code, seconds


async def unloaded(url: str, body: bytes, content_type: str, requests: int) -> list[Outcome]:
    async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
        outcomes = [await _one(client, url, body, content_type) for _ in range(WARMUP + requests)]
    return outcomes[WARMUP:]


async def overload(
    url: str, body: bytes, content_type: str, clients: int, seconds: float
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(timeout=120, trust_env=False, limits=limits) as client:

        async def _loop() -> None:
            while time.monotonic() < deadline:
                status, elapsed = await _one(client, url, body, content_type)
                outcomes.append((status, elapsed))
                if status != 200:
                    await asyncio.sleep(PAUSE_AFTER_429_S)

        await asyncio.gather(*(_loop() for _ in range(clients)))
    return outcomes


def overload_share(
    barrier: Barrier,
    results: Queue[tuple[list[Outcome], float]],
    url: str,
    body: bytes,
    content_type: str,
    clients: int,
    seconds: float,
) -> None:
    """One client process of `overload_processes`: its share of the loops, started once every
    process is up (the barrier), so spawn and import time is neither load nor latency."""
    barrier.wait(timeout=120)  # an orphan gives up rather than hangs
    cpu_start_s = time.process_time()
    outcomes = asyncio.run(overload(url, body, content_type, clients, seconds))
    results.put((outcomes, time.process_time() - cpu_start_s))


def overload_processes(
    url: str, body: bytes, content_type: str, clients: int, seconds: float, processes: int
) -> tuple[list[Outcome], float, float]:
    """`overload` spread over `processes` processes, each with its own event loop: one loop
    saturates a core at ~250 requests/s of 200 KB and its own delay then inflates latencies.
    Returns the outcomes, the wall seconds and the client CPU seconds summed over processes."""
    ctx = mp.get_context("spawn")  # no forked copy of the parent's threads or sockets
    barrier = ctx.Barrier(processes + 1)
    results: Queue[tuple[list[Outcome], float]] = ctx.Queue()
    shares = [clients // processes + (i < clients % processes) for i in range(processes)]
    children = [
        ctx.Process(
            target=overload_share,
            args=(barrier, results, url, body, content_type, share, seconds),
            daemon=True,
        )
        for share in shares
    ]
    for child in children:
        child.start()
    barrier.wait(timeout=120)  # a child that died starting up: BrokenBarrierError, no hang
    started = time.monotonic()
    # Drain before join: a child blocks on exit until its queued result is read.
    done = [results.get(timeout=seconds + 300) for _ in children]
    wall_s = time.monotonic() - started
    for child in children:
        child.join()
    outcomes = [outcome for share_outcomes, _ in done for outcome in share_outcomes]
    return outcomes, wall_s, sum(cpu_s for _, cpu_s in done)


def gauge(metrics_text: str, name: str) -> float | None:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", metrics_text, re.MULTILINE)
    return float(match.group(1)) if match else None


class GatewayProcess:
    """The gateway's process tree (the pid, plus uvicorn workers if it runs several, or the
    real server if the pid is a wrapper that forked): RSS and CPU are summed over it."""

    def __init__(self, pid: int) -> None:
        root = psutil.Process(pid)
        self.processes = [root, *root.children(recursive=True)]

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.processes) / 2**20

    def cpu_s(self) -> float:
        return sum(t.user + t.system for t in (p.cpu_times() for p in self.processes))


class RssSampler(threading.Thread):
    """Peak gateway RSS every 0.1 s; with `metrics_url`, also the peak in-flight gauge every
    0.5 s, which shows the admission capacity the gateway really runs at."""

    def __init__(self, gateway: GatewayProcess, metrics_url: str | None = None) -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.metrics_url = metrics_url
        self.peak_mb = 0.0
        self.peak_in_flight: float | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        ticks = 0
        while not self.stop_event.is_set():
            self.peak_mb = max(self.peak_mb, self.gateway.rss_mb())
            if self.metrics_url and ticks % 5 == 0:
                try:
                    text = httpx.get(self.metrics_url, trust_env=False, timeout=5).text
                except httpx.HTTPError:
                    text = ""
                value = gauge(text, "voxtral_in_flight_requests")
                if value is not None:
                    self.peak_in_flight = max(self.peak_in_flight or 0.0, value)
            ticks += 1
            time.sleep(0.1)


def main() -> None:
    mode, url, body_path, content_type, *numbers = sys.argv[1:]
    os.nice(19)
    body = Path(body_path).read_bytes()
    if mode == "unloaded":
        outcomes = asyncio.run(unloaded(url, body, content_type, int(numbers[0])))
    else:
        outcomes = asyncio.run(
            overload(url, body, content_type, int(numbers[0]), float(numbers[1]))
        )
    print(json.dumps(outcomes))


if __name__ == "__main__":
    main()
