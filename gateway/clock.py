"""Injected time and randomness, so that tests are deterministic."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Clock(Protocol):
    """A source of the current time (always timezone-aware UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests: returns a set time, moved forward explicitly."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._now += delta


class RandomSource(Protocol):
    """A source of random bytes (cryptographic in production)."""

    def bytes(self, n: int) -> bytes: ...


class OsRandom:
    """Randomness from the operating system's CSPRNG."""

    def bytes(self, n: int) -> bytes:
        return os.urandom(n)


class IdFactory:
    """Makes sortable identifiers: ``<prefix>_`` + a 26-character ULID (time + 80 random bits).

    Identifiers sort by creation time, which keyset pagination relies on.
    """

    def __init__(self, clock: Clock, random: RandomSource) -> None:
        self._clock = clock
        self._random = random
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self, prefix: str) -> str:
        with self._lock:
            ms = int(self._clock.now().timestamp() * 1000)
            if ms <= self._last_ms:
                ms = self._last_ms
                rand = (self._last_rand + 1) % (1 << 80)
            else:
                rand = int.from_bytes(self._random.bytes(10), "big")
            self._last_ms, self._last_rand = ms, rand
        value = (ms << 80) | rand
        chars = []
        for _ in range(26):
            chars.append(_CROCKFORD[value & 31])
            value >>= 5
        return f"{prefix}_{''.join(reversed(chars))}"
