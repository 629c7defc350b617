"""Per-key rate limits: requests per minute and audio seconds per minute (token buckets).

A request's audio length is known only after decoding, so the audio bucket is checked on
arrival (it must not be in debt) and charged once the audio is decoded, possibly into debt:
one long file is allowed through, and the key waits for the bucket to refill afterwards.
`admit()` returns that charge as a plain callable: RateLimitMiddleware puts it on the request
(`request.state.audio_charge`), the route passes it to `Admission.admit()`, and the ticket
calls it as audio is decoded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from voxtral_gateway.errors import OverloadedError
from voxtral_gateway.settings import RateLimitSettings

_SECONDS_PER_MINUTE = 60.0

AudioCharge = Callable[[float], None]
"""Charges decoded audio seconds to one client's audio bucket."""


@dataclass
class TokenBucket:
    """`capacity` tokens, refilled at `capacity` per minute; may go negative (debt)."""

    capacity: float
    tokens: float
    updated_at: float

    @property
    def per_s(self) -> float:
        return self.capacity / _SECONDS_PER_MINUTE

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.per_s)
        self.updated_at = now

    def seconds_until(self, amount: float) -> float:
        """Seconds until `amount` tokens are available (0 if they are now)."""
        return max(0.0, (amount - self.tokens) / self.per_s)

    @property
    def is_full(self) -> bool:
        return self.tokens >= self.capacity


@dataclass
class Account:
    """One client's buckets (None where that limit is off)."""

    requests: TokenBucket | None
    audio_s: TokenBucket | None


class AccountStore(Protocol):
    """Where the buckets live: this process's memory, or a store every worker shares
    (ratelimit_shared.py)."""

    def open(self, identity: str, now: float) -> AbstractContextManager[Account]:
        """The client's account for one read-modify-write; changes are kept at exit."""
        ...


def new_account(settings: RateLimitSettings, now: float) -> Account:
    """A client seen for the first time: full buckets."""
    return Account(
        requests=_bucket(settings.requests_per_minute, now),
        audio_s=_bucket(settings.audio_s_per_minute, now),
    )


@dataclass
class LocalAccounts:
    """Buckets in this process's memory (one gateway process)."""

    settings: RateLimitSettings
    _accounts: dict[str, Account] = field(default_factory=dict)

    @contextlib.contextmanager
    def open(self, identity: str, now: float) -> Iterator[Account]:
        account = self._accounts.get(identity)
        if account is None:
            if len(self._accounts) >= self.settings.max_tracked_clients:
                self._forget_idle(now)
            account = self._accounts[identity] = new_account(self.settings, now)
        yield account

    def _forget_idle(self, now: float) -> None:
        # A full bucket holds no information: dropping it and re-creating it later is the same.
        for identity, account in list(self._accounts.items()):
            buckets = [b for b in (account.requests, account.audio_s) if b is not None]
            for bucket in buckets:
                bucket.refill(now)
            if all(b.is_full for b in buckets):
                del self._accounts[identity]


@dataclass
class RateLimiter:
    """Buckets per client identity (a hash of its API key, else its address)."""

    settings: RateLimitSettings
    clock: Callable[[], float] = time.monotonic
    accounts: AccountStore | None = None
    """Where the buckets live; None: this process's memory."""
    _store: AccountStore = field(init=False)

    def __post_init__(self) -> None:
        self._store = self.accounts or LocalAccounts(self.settings)

    @property
    def is_enabled(self) -> bool:
        s = self.settings
        return s.requests_per_minute is not None or s.audio_s_per_minute is not None

    def admit(self, identity: str) -> AudioCharge:
        """Take one request token; raise 429 with `Retry-After` if the key is out of either.
        Returns what charges this request's decoded audio to the key."""
        now = self.clock()
        with self._store.open(identity, now) as account:
            self._take_request(account, now)
        return functools.partial(self.charge_audio, identity)

    @staticmethod
    def _take_request(account: Account, now: float) -> None:
        waits = []
        if account.requests is not None:
            account.requests.refill(now)
            waits.append(account.requests.seconds_until(1.0))
        if account.audio_s is not None:
            account.audio_s.refill(now)
            # Any positive balance admits: the cost is unknown until the audio is decoded.
            waits.append(account.audio_s.seconds_until(1e-9))
        wait_s = max(waits, default=0.0)
        if wait_s > 0:
            raise OverloadedError(
                "Rate limit reached for this API key; retry later.",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
            )
        if account.requests is not None:
            account.requests.tokens -= 1.0

    def charge_audio(self, identity: str, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._store.open(identity, self.clock()) as account:
            if account.audio_s is not None:
                account.audio_s.tokens -= seconds


def client_identity(authorization: bytes, client_host: str | None) -> str:
    """A stable, non-secret name for the caller: its key's hash, else its address."""
    scheme, _, token = authorization.partition(b" ")
    if scheme.lower() == b"bearer" and token.strip():
        return "key:" + hashlib.sha256(token.strip()).hexdigest()[:32]
    return f"addr:{client_host or '-'}"


def _bucket(per_minute: float | None, now: float) -> TokenBucket | None:
    if per_minute is None:
        return None
    return TokenBucket(capacity=float(per_minute), tokens=float(per_minute), updated_at=now)
