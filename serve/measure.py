"""Measure a CPU profile's engine: start-up time, per-request latency, peak memory.

  .venv/bin/python -m serve.measure cpu-whisper-tiny-en [--repeats 5] [--token-cap 32]

Starts `vllm serve` from the profile on a free loopback port, times /health, sends espeak-ng
clips of 5 s and 60 s (tests/fixtures/audio.py, so run from a checkout), and samples RSS and PSS
of the whole process tree (API server + engine core) every 0.5 s. Prints one JSON object.
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from serve.launcher import start_engine
from serve.profiles import load_profile


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _tree_pids(root_pid: int) -> list[int]:
    pids, stack = [], [root_pid]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack += _children(pid)
    return pids


def _status_kib(path: Path, field: str) -> int:
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass  # the process ended between listing and reading
    return 0


def tree_memory_bytes(root_pid: int) -> tuple[int, int]:
    """(RSS, PSS) summed over `root_pid` and its descendants. RSS counts shared pages (the
    torch libraries every vLLM process maps) once per process; PSS splits them fairly."""
    pids = _tree_pids(root_pid)
    rss = sum(_status_kib(Path(f"/proc/{pid}/status"), "VmRSS:") for pid in pids)
    pss = sum(_status_kib(Path(f"/proc/{pid}/smaps_rollup"), "Pss:") for pid in pids)
    return rss * 1024, pss * 1024


class PeakSampler(threading.Thread):
    """Samples tree_memory_bytes every `interval_s`; keeps the peaks."""

    def __init__(self, pid: int, interval_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.peak_rss = self.peak_pss = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            rss, pss = tree_memory_bytes(self.pid)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            time.sleep(self.interval_s)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serve.measure", description=__doc__)
    parser.add_argument("profile")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--token-cap", type=int, help="max_completion_tokens (needed for the random Voxtral)"
    )
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.fixtures.audio import AudioFactory

    workdir = Path(tempfile.mkdtemp(prefix="serve-measure-"))
    audio = AudioFactory(workdir)
    clips = {"5s": audio.speech(5.0), "60s": audio.speech(60.0)}
    profile = load_profile(args.profile)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    engine = start_engine(profile, port, log_path=workdir / "engine.log")
    sampler = PeakSampler(engine.pid)
    sampler.start()
    result: dict[str, object] = {"profile": args.profile, "token_cap": args.token_cap}
    try:
        engine.wait_healthy(f"http://127.0.0.1:{port}/health", timeout_s=900)
        result["startup_s"] = round(time.monotonic() - started, 1)
        url = f"http://127.0.0.1:{port}/v1/audio/transcriptions"
        form = {"model": profile.served_model_name, "temperature": "0"}
        if args.token_cap is not None:
            form["max_completion_tokens"] = str(args.token_cap)
        with httpx.Client(timeout=600, trust_env=False) as client:
            for name, clip in clips.items():
                latencies = []
                for _ in range(args.repeats + 1):  # the first request warms up; not counted
                    t0 = time.perf_counter()
                    response = client.post(
                        url,
                        files={"file": (clip.path.name, clip.read_bytes(), "audio/wav")},
                        data=form,
                    )
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - t0)
                result[f"request_{name}_p50_s"] = round(statistics.median(latencies[1:]), 3)
                result[f"request_{name}_range_s"] = [
                    round(min(latencies[1:]), 3),
                    round(max(latencies[1:]), 3),
                ]
                result[f"text_{name}"] = response.json()["text"][:120]
    finally:
        sampler.stop()
        result["peak_rss_gib"] = round(sampler.peak_rss / 2**30, 2)
        result["peak_pss_gib"] = round(sampler.peak_pss / 2**30, 2)
        engine.stop()
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
