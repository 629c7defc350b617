"""Admission limits across worker processes: each worker's `Admission` sees the others' load
through the shared table (worker_group.py). Two `Admission`s on one table stand for two
workers; the real processes are in tests/gateway/test_faults.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from voxtral_gateway.admission import Admission
from voxtral_gateway.errors import OverloadedError
from voxtral_gateway.settings import Settings
from voxtral_gateway.worker_group import Load, SharedLoad, WorkerGroup, forget_worker

_WORKERS = 2


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "metrics").mkdir()
    WorkerGroup(tmp_path, 0, _WORKERS).load_path.write_bytes(bytes(24 * _WORKERS))
    return tmp_path


@pytest.fixture
def workers(run_dir: Path) -> Iterator[tuple[Admission, Admission]]:
    settings = Settings(max_in_flight_requests=3, max_pending_segments=10)
    shared = [SharedLoad(WorkerGroup(run_dir, i, _WORKERS).load_path, i) for i in range(2)]
    yield Admission(settings, shared=shared[0]), Admission(settings, shared=shared[1])
    for one in shared:
        one.close()


def test_requests_limit_counts_every_worker(workers: tuple[Admission, Admission]) -> None:
    first, second = workers
    first.admit()
    first.admit()
    ticket = second.admit()
    # Each worker holds fewer than 3 requests, the gateway holds 3: both refuse.
    for worker in workers:
        with pytest.raises(OverloadedError):
            worker.admit()
    ticket.release()
    first.admit()


def test_pending_segments_limit_counts_every_worker(workers: tuple[Admission, Admission]) -> None:
    first, second = workers
    ticket = first.admit()
    ticket.add(audio_s=30.0, segments=10)
    assert second.gateway_load() == Load(requests=1, audio_s=30.0, segments=10)
    with pytest.raises(OverloadedError):
        second.admit()
    for _ in range(10):
        ticket.segment_done()
    second.admit()


def test_a_dead_workers_load_stops_counting(
    run_dir: Path, workers: tuple[Admission, Admission]
) -> None:
    first, second = workers
    for _ in range(3):
        first.admit()
    with pytest.raises(OverloadedError):
        second.admit()
    forget_worker(run_dir, index=0, pid=123456)  # what the supervisor does when worker 0 exits
    second.admit()


def test_one_process_admits_up_to_the_limit_alone() -> None:
    admission = Admission(Settings(max_in_flight_requests=2))
    admission.admit()
    admission.admit()
    with pytest.raises(OverloadedError):
        admission.admit()
    assert admission.load == Load(requests=2)
