"""Decode one file in a fresh process and report the outcome and peak memory above baseline.

Used by test_audio_bombs.py: `python -m tests.security.decode_probe FILE MAX_DURATION_S`.
Peak RSS is sampled every 5 ms from /proc/self/statm (native decoder buffers count
too); tracemalloc's peak covers the numpy arrays. Prints one JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from tests.whole_file import decode_whole
from voxtral_gateway.errors import GatewayError
from voxtral_gateway.settings import LimitSettings

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE_BYTES


class _PeakSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = _rss_bytes()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.005)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, _rss_bytes())


def main() -> None:
    data = Path(sys.argv[1]).read_bytes()
    limits = LimitSettings(max_duration_s=float(sys.argv[2]))
    # Warm up the decoders on a tiny prefix so one-time library allocations are in the baseline.
    with contextlib.suppress(GatewayError):
        decode_whole(data[:4096], limits)
    tracemalloc.start()
    baseline = _rss_bytes()
    sampler = _PeakSampler()
    sampler.start()
    started = time.monotonic()
    outcome, status, duration_s = "decoded", 200, None
    try:
        audio = decode_whole(data, limits)
        duration_s = audio.duration_s
        del audio
    except GatewayError as exc:
        outcome, status = type(exc).__name__, exc.status_code
    elapsed_s = time.monotonic() - started
    peak = sampler.stop()
    _current, traced_peak = tracemalloc.get_traced_memory()
    print(
        json.dumps(
            {
                "outcome": outcome,
                "status": status,
                "duration_s": duration_s,
                "file_bytes": len(data),
                "rss_peak_above_baseline_bytes": peak - baseline,
                "tracemalloc_peak_bytes": traced_peak,
                "elapsed_s": round(elapsed_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
