"""What the gateway's worker processes share (`Settings.workers` > 1): one run folder with
prometheus_client's multiprocess files (so /metrics totals every worker), a table of each
worker's admission load (so the limits hold for the whole gateway, not per process) and the
per-key rate-limit buckets (ratelimit_shared.py).

The load table is a small file mapped into every worker, one slot per worker, each written
only by its worker, read by all under an `flock`. Why a file lock and not a
`multiprocessing.Lock`: the kernel drops an flock when its holder dies, so a worker killed
in the middle of an admission cannot wedge its siblings. Why a slot per worker and not one
shared counter: the supervisor zeroes a dead worker's slot, so requests it never finished
stop counting against the limits (server.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import multiprocess

_SLOT = struct.Struct("<qdq")
"""One worker's load: in-flight requests, in-flight audio seconds, pending segments."""
_METRICS_DIR = "metrics"
_LOAD_FILE = "admission-load"
_RATE_LIMITS_FILE = "rate-limits.sqlite"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class Load:
    """Admission load: what `Admission` counts against its limits."""

    requests: int = 0
    audio_s: float = 0.0
    segments: int = 0

    def __add__(self, other: Load) -> Load:
        return Load(
            self.requests + other.requests,
            self.audio_s + other.audio_s,
            self.segments + other.segments,
        )


@dataclass(frozen=True)
class WorkerGroup:
    """One worker's place in the group: the run folder and its own slot `index`."""

    run_dir: Path
    index: int
    count: int

    @property
    def metrics_dir(self) -> Path:
        return self.run_dir / _METRICS_DIR

    @property
    def load_path(self) -> Path:
        return self.run_dir / _LOAD_FILE

    @property
    def rate_limits_path(self) -> Path:
        """Per-key rate-limit buckets (ratelimit_shared.py)."""
        return self.run_dir / _RATE_LIMITS_FILE


def create_run_dir(count: int, parent: Path | None = None) -> Path:
    """A fresh, empty run folder for `count` workers (called by the supervisor before it
    starts them); remove it with `remove_run_dir` when they have all exited.

    Also points PROMETHEUS_MULTIPROC_DIR at its metrics folder in this process's environment:
    prometheus_client picks its multiprocess value class from that variable when it is first
    imported, so it must be in the environment the workers inherit, before they start.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="voxtral-gateway-", dir=parent))
    (run_dir / _METRICS_DIR).mkdir()
    (run_dir / _LOAD_FILE).write_bytes(bytes(_SLOT.size * count))
    os.environ[_MULTIPROC_ENV] = str(run_dir / _METRICS_DIR)
    return run_dir


def remove_run_dir(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)


def forget_worker(run_dir: Path, index: int, pid: int) -> None:
    """After worker `index` (process `pid`) exited: its unfinished load no longer counts, and
    its live gauges leave /metrics (its counters and histograms stay in the totals)."""
    with SharedLoad(run_dir / _LOAD_FILE, index) as shared, shared.locked():
        shared.publish(Load())
    multiprocess.mark_process_dead(pid, str(run_dir / _METRICS_DIR))


class SharedLoad:
    """This worker's view of the load table: its own slot to write, the others' to read.
    Call `others` and `publish` inside `locked()` so a check and its update are one step."""

    def __init__(self, path: Path, index: int) -> None:
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 0)
        self._count = len(self._map) // _SLOT.size
        if not 0 <= index < self._count:
            raise ValueError(f"worker {index} has no slot in {path} ({self._count} slots)")
        self._index = index

    def __enter__(self) -> SharedLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._map.close()
        self._file.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # Held for a few reads and writes of memory, never across an await.
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)

    def others(self) -> Load:
        """The summed load of every other worker."""
        total = Load()
        for index in range(self._count):
            if index != self._index:
                total = total + Load(*_SLOT.unpack_from(self._map, index * _SLOT.size))
        return total

    def publish(self, load: Load) -> None:
        _SLOT.pack_into(
            self._map, self._index * _SLOT.size, load.requests, load.audio_s, load.segments
        )
