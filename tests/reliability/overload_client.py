"""The overload test's clients, run as their own process at the lowest CPU priority.

    python -m tests.reliability.overload_client unloaded URL BODY CONTENT_TYPE REQUESTS
    python -m tests.reliability.overload_client overload URL BODY CONTENT_TYPE CLIENTS SECONDS

Real clients sit on other machines: their CPU is not the server's. On one small box the next
best thing is a separate process at nice 19, so the kernel gives the gateway and the engine
the CPU first and the load generator only what they leave. `unloaded` is the baseline (one
client, back to back, after 3 warm-ups); `overload` runs CLIENTS closed loops, each retrying
50 ms after a 429. Both print one JSON list of [status, seconds] per request.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

WARMUP = 3
PAUSE_AFTER_429_S = 0.05  # impatient clients: far sooner than Retry-After asks


async def _one(client: httpx.AsyncClient, url: str, body: bytes, content_type: str):
    started = time.monotonic()
    response = await client.post(url, content=body, headers={"content-type": content_type})
    seconds = time.monotonic() - started
    if response.status_code == 429:
        error = response.json()["error"]
        if error["type"] != "rate_limit_error" or int(response.headers["retry-after"]) < 1:
            return -429, seconds  # a malformed refusal: the test fails on the status
    return response.status_code, seconds


async def unloaded(url: str, body: bytes, content_type: str, requests: int) -> list:
    async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
        outcomes = [await _one(client, url, body, content_type) for _ in range(WARMUP + requests)]
    return outcomes[WARMUP:]


async def overload(url: str, body: bytes, content_type: str, clients: int, seconds: float) -> list:
    outcomes: list[tuple[int, float]] = []
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
