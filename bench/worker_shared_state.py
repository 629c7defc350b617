"""What sharing state between gateway workers costs per request (`Settings.workers` > 1).

    python -m bench.worker_shared_state [--requests 20000] [--out bench/results/worker-shared-state]

Times, in one process, the admission stage (admit, add one chunk, finish one segment, release)
on its own and on the workers' shared load table (flock + mmap, worker_group.py), and a per-key
rate-limit admit + audio charge in memory and on the shared SQLite store (ratelimit_shared.py).
No contention from other workers is simulated: this is the fixed cost each request pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from voxtral_gateway.admission import Admission
from voxtral_gateway.ratelimit import RateLimiter
from voxtral_gateway.ratelimit_shared import SharedAccounts
from voxtral_gateway.settings import RateLimitSettings, Settings
from voxtral_gateway.worker_group import SharedLoad

_WORKERS = 4


def _per_call_us(step: Callable[[int], None], calls: int) -> float:
    started = time.perf_counter()
    for index in range(calls):
        step(index)
    return (time.perf_counter() - started) / calls * 1e6


def _admission_step(admission: Admission) -> Callable[[int], None]:
    def step(_: int) -> None:
        ticket = admission.admit()
        ticket.add(5.0, 1)
        ticket.segment_done()
        ticket.release()

    return step


def _rate_limit_step(limiter: RateLimiter) -> Callable[[int], None]:
    def step(index: int) -> None:
        limiter.admit(f"key:{index % 100}")(1.0)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/worker-shared-state"))
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    load_path = run_dir / "admission-load"
    load_path.write_bytes(bytes(24 * _WORKERS))
    limits = RateLimitSettings(requests_per_minute=1e9)
    rows = [
        ("admission, one process", _admission_step(Admission(Settings()))),
        (
            f"admission, shared table ({_WORKERS} slots)",
            _admission_step(Admission(Settings(), shared=SharedLoad(load_path, 0))),
        ),
        ("rate limit, in memory", _rate_limit_step(RateLimiter(limits))),
        (
            "rate limit, shared SQLite",
            _rate_limit_step(
                RateLimiter(limits, accounts=SharedAccounts(run_dir / "rl.sqlite", limits))
            ),
        ),
    ]
    lines = [
        "# Per-request cost of the workers' shared state",
        "",
        f"Command: `{shlex.join(['python', '-m', 'bench.worker_shared_state', *sys.argv[1:]])}`",
        f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.1f} "
        "(a shared machine: read the ratios, not the absolute times)",
        "",
        "| step | µs per request |",
        "| --- | --- |",
    ]
    for name, step in rows:
        lines.append(f"| {name} | {_per_call_us(step, args.requests):.1f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
