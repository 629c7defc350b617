"""Per-key buckets shared by worker processes: two `RateLimiter`s on one SQLite store stand
for two workers (the real processes are in tests/gateway/test_faults.py)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxtral_gateway.errors import OverloadedError
from voxtral_gateway.ratelimit import RateLimiter
from voxtral_gateway.ratelimit_shared import SharedAccounts
from voxtral_gateway.settings import RateLimitSettings


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


def _workers(
    path: Path, settings: RateLimitSettings, clock: _Clock
) -> Iterator[tuple[RateLimiter, RateLimiter]]:
    stores = [SharedAccounts(path, settings) for _ in range(2)]
    yield tuple(RateLimiter(settings, clock=clock, accounts=store) for store in stores)
    for store in stores:
        store.close()


def test_requests_per_minute_hold_across_workers(tmp_path: Path, clock: _Clock) -> None:
    settings = RateLimitSettings(requests_per_minute=3)
    for first, second in _workers(tmp_path / "buckets.sqlite", settings, clock):
        first.admit("key:a")
        second.admit("key:a")
        first.admit("key:a")
        for worker in (first, second):
            with pytest.raises(OverloadedError) as refused:
                worker.admit("key:a")
            assert refused.value.headers["Retry-After"] == "20"  # one token per 20 s
        second.admit("key:b")  # another key has its own bucket
        clock.now_s += 20.0
        second.admit("key:a")


def test_audio_charged_on_one_worker_is_owed_on_the_other(tmp_path: Path, clock: _Clock) -> None:
    settings = RateLimitSettings(audio_s_per_minute=60)
    for first, second in _workers(tmp_path / "buckets.sqlite", settings, clock):
        charge = first.admit("key:a")
        charge(90.0)  # into debt: 30 s owed, refilled at 1 s per second
        with pytest.raises(OverloadedError):
            second.admit("key:a")
        clock.now_s += 31.0
        second.admit("key:a")


def test_idle_clients_are_forgotten_past_the_cap(tmp_path: Path, clock: _Clock) -> None:
    settings = RateLimitSettings(requests_per_minute=1, max_tracked_clients=2)
    path = tmp_path / "buckets.sqlite"
    for first, second in _workers(path, settings, clock):
        first.admit("key:a")
        clock.now_s += 30.0
        first.admit("key:b")
        clock.now_s += 30.0  # a's bucket is full again, b's is not
        second.admit("key:c")
        with pytest.raises(OverloadedError):
            first.admit("key:b")
    with contextlib.closing(sqlite3.connect(path)) as db:
        remembered = {identity for (identity,) in db.execute("SELECT identity FROM accounts")}
    assert remembered == {"key:b", "key:c"}
