"""Footprint of a realtime engine profile: start-up time, peak memory, one session's timings.

  .venv/bin/python -m bench.realtime_engine cpu-tiny-voxtral-realtime [--audio-s 10] [--sessions 3]

Starts `vllm serve` from the profile on a free loopback port (generating its model first if
needed; that time is reported apart), times /health, then streams `--audio-s` seconds of noise
to vLLM's own `/v1/realtime` at real-time pace, `--sessions` times one after another, and
reports audio -> first delta and final commit -> `transcription.done`. RSS and PSS of the whole
process tree (API server + engine core) are sampled every 0.5 s (serve.measure). Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

from serve.launcher import start_engine
from serve.measure import PeakSampler
from serve.models import prepare_model
from serve.profiles import load_profile

SAMPLE_RATE_HZ = 16_000
CHUNK_S = 0.1


async def _session(url: str, model: str, audio_s: float) -> dict[str, float]:
    """One realtime session at real-time pace; seconds from the first audio to the first
    delta and from the final commit to `transcription.done`."""
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(int(SAMPLE_RATE_HZ * audio_s)) * 3000).astype(np.int16)
    step = int(SAMPLE_RATE_HZ * CHUNK_S)
    async with websockets.connect(f"{url}/v1/realtime", max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        await ws.send(json.dumps({"type": "session.update", "model": model}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        first_delta_at: float | None = None

        async def _read() -> float:
            nonlocal first_delta_at
            while True:
                event = json.loads(await ws.recv())
                if event["type"] == "transcription.delta" and first_delta_at is None:
                    first_delta_at = time.perf_counter()
                elif event["type"] == "transcription.done":
                    return time.perf_counter()
                elif event["type"] == "error":
                    raise RuntimeError(event)

        reader = asyncio.ensure_future(_read())
        started = time.perf_counter()
        for i, offset in enumerate(range(0, len(pcm), step)):
            chunk = base64.b64encode(pcm[offset : offset + step].tobytes()).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
            await asyncio.sleep(max(0.0, started + (i + 1) * CHUNK_S - time.perf_counter()))
        committed = time.perf_counter()
        await ws.send(json.dumps({"type": "input_audio_buffer.commit", "final": True}))
        done = await reader
    assert first_delta_at is not None
    return {"first_delta_s": first_delta_at - started, "commit_to_done_s": done - committed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime_engine", description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--audio-s", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=3)
    args = parser.parse_args(argv)

    profile = load_profile(args.profile)
    result: dict[str, object] = {"profile": args.profile, "audio_s": args.audio_s}
    t0 = time.monotonic()
    prepare_model(profile)
    result["model_prepare_s"] = round(time.monotonic() - t0, 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = Path(tempfile.mkdtemp(prefix="bench-realtime-engine-"))
    started = time.monotonic()
    engine = start_engine(profile, port, log_path=workdir / "engine.log")
    sampler = PeakSampler(engine.pid)
    sampler.start()
    try:
        engine.wait_healthy(f"http://127.0.0.1:{port}/health", timeout_s=900)
        result["startup_s"] = round(time.monotonic() - started, 1)
        runs = [
            asyncio.run(_session(f"ws://127.0.0.1:{port}", profile.served_model_name, args.audio_s))
            for _ in range(args.sessions)
        ]
        for key in ("first_delta_s", "commit_to_done_s"):
            values = [run[key] for run in runs]
            result[f"{key}_median"] = round(statistics.median(values), 3)
            result[f"{key}_range"] = [round(min(values), 3), round(max(values), 3)]
    finally:
        sampler.stop()
        result["peak_rss_gib"] = round(sampler.peak_rss / 2**30, 2)
        result["peak_pss_gib"] = round(sampler.peak_pss / 2**30, 2)
        engine.stop()
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
