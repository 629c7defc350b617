"""Per-key rate-limit buckets shared by the gateway's worker processes (`Settings.workers` > 1):
an SQLite file in the workers' run folder (worker_group.py), one row per client.

Why SQLite: the kernel spreads a client's connections over the workers by a hash, so a
bucket per process would give every key N times its limit (or, with the limit split N
ways, 1/N of it to a client on one keep-alive connection). SQLite gives one read-modify-write
per request across processes, and its locks are the kernel's, dropped if a worker dies
mid-transaction. Timestamps are `time.monotonic()`, one clock for every process of the host.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from voxtral_gateway.ratelimit import Account, TokenBucket, new_account
from voxtral_gateway.settings import RateLimitSettings

_SCHEMA = """CREATE TABLE IF NOT EXISTS accounts (
    identity TEXT PRIMARY KEY,
    requests_tokens REAL, requests_at REAL,
    audio_tokens REAL, audio_at REAL)"""
_PER_MINUTE_TO_PER_S = 1 / 60


class SharedAccounts:
    """The `AccountStore` every worker opens on the same `path`."""

    def __init__(self, path: Path, settings: RateLimitSettings) -> None:
        self.settings = settings
        # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE ... COMMIT below.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 5000")  # milliseconds; holds last microseconds
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = OFF")  # the buckets need not survive a crash
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def open(self, identity: str, now: float) -> Iterator[Account]:
        self._db.execute("BEGIN IMMEDIATE")  # the write lock first: no lost updates
        try:
            row = self._db.execute(
                "SELECT requests_tokens, requests_at, audio_tokens, audio_at"
                " FROM accounts WHERE identity = ?",
                (identity,),
            ).fetchone()
            if row is None:
                self._forget_idle_if_full(now)
                account = new_account(self.settings, now)
            else:
                account = self._account(row)
            yield account
            self._db.execute(
                "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?, ?, ?)",
                (identity, *_columns(account.requests), *_columns(account.audio_s)),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _account(self, row: tuple) -> Account:
        s = self.settings
        requests = _restore(s.requests_per_minute, row[0], row[1])
        return Account(requests=requests, audio_s=_restore(s.audio_s_per_minute, row[2], row[3]))

    def _forget_idle_if_full(self, now: float) -> None:
        # As LocalAccounts: a client whose buckets have refilled holds no information.
        (count,) = self._db.execute("SELECT COUNT(*) FROM accounts").fetchone()
        if count < self.settings.max_tracked_clients:
            return
        s = self.settings
        self._db.execute(
            "DELETE FROM accounts WHERE"
            " (requests_tokens IS NULL OR requests_tokens + (? - requests_at) * ? >= ?)"
            " AND (audio_tokens IS NULL OR audio_tokens + (? - audio_at) * ? >= ?)",
            (
                now,
                (s.requests_per_minute or 0) * _PER_MINUTE_TO_PER_S,
                s.requests_per_minute or 0,
                now,
                (s.audio_s_per_minute or 0) * _PER_MINUTE_TO_PER_S,
                s.audio_s_per_minute or 0,
            ),
        )


def _columns(bucket: TokenBucket | None) -> tuple[float | None, float | None]:
    return (None, None) if bucket is None else (bucket.tokens, bucket.updated_at)


def _restore(
    per_minute: float | None, tokens: float | None, at: float | None
) -> TokenBucket | None:
    if per_minute is None or tokens is None or at is None:
        return None
    return TokenBucket(capacity=float(per_minute), tokens=tokens, updated_at=at)
