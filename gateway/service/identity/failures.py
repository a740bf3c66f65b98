"""Failed authentication: the evidence is kept, its cost is bounded, and it is rate-limited.

Failures are grouped by source address and fixed interval (``interval`` seconds). The first
failure of a group is traced at once, whole (reason, key id or key-hash prefix, source), as
any refusal is. The group's further failures are only counted; when the interval is over
(a timer flushes every ``interval``) or the gateway stops, one ``auth.failures`` entry
records the group: how many, the first and last time, the reasons with their counts, and
the distinct key-hash prefixes tried (the first 16, and how many there were). An unknown
key costs the trace at most two entries per source and interval, however fast it is sent.

A source that fails more than ``limit`` times in an interval is answered 429 with
``Retry-After`` (the end of the interval) instead of 401 for its further failures; a valid
key from that source still authenticates. At most ``max_sources`` sources are tracked per
interval; failures from further sources share one overflow group.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway.audit.entry import timestamp
from gateway.clock import Clock
from gateway.errors import TooManyRequests, Unauthenticated
from gateway.service.core.tracing import Note, Tracer

log = logging.getLogger(__name__)

OVERFLOW = "*"
"""The source of the group that gathers sources beyond ``max_sources``."""
_PREFIXES_KEPT = 16


@dataclass
class _Group:
    source: str
    window: int
    first: datetime
    last: datetime
    count: int = 0
    refused_429: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    prefixes: dict[str, None] = field(default_factory=dict)


class AuthFailures:
    """Records failed authentication per source and interval, and rate-limits it."""

    def __init__(
        self,
        tracer: Tracer,
        clock: Clock,
        *,
        interval: float = 60.0,
        limit: int = 30,
        max_sources: int = 1024,
    ) -> None:
        self.tracer = tracer
        self.clock = clock
        self.interval = interval
        self.limit = limit
        self.max_sources = max_sources
        self._groups: dict[tuple[str, int], _Group] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _window(self, at: datetime) -> int:
        return math.floor(at.timestamp() / self.interval)

    def refuse(
        self,
        source: str | None,
        why: str,
        *,
        key_hash: str | None = None,
        key_id: str | None = None,
    ) -> Unauthenticated | TooManyRequests:
        """Record one failure; return the error to answer it with (401, or 429 when the
        source is over its limit)."""
        now = self.clock.now()
        window = self._window(now)
        source = source or "unknown"
        prefix = key_hash[:16] if key_hash is not None else None
        with self._lock:
            group = self._groups.get((source, window))
            if group is None:
                live = sum(1 for (_, w) in self._groups if w == window)
                if live >= self.max_sources:
                    source = OVERFLOW
                    group = self._groups.get((source, window))
            if group is None:
                group = self._groups[(source, window)] = _Group(source, window, now, now)
            group.count += 1
            group.last = now
            group.reasons[why] += 1
            if prefix is not None and len(group.prefixes) < 10_000:
                group.prefixes[prefix] = None
            first = group.count == 1
            over = group.count > self.limit
            if over:
                group.refused_429 += 1
        if first:
            note = Note(detail={"source": source})
            if key_id is not None:
                note.target["key"] = key_id
            elif prefix is not None:
                note.detail["key_hash_prefix"] = prefix
            self.tracer.deny(None, "auth.authenticate", Unauthenticated(why), note)
        if over:
            end = datetime.fromtimestamp((window + 1) * self.interval, UTC)
            retry = max(1, math.ceil((end - now).total_seconds()))
            return TooManyRequests(
                "too many failed authentications from this source", retry_after=retry
            )
        return Unauthenticated(why)

    def flush(self, *, everything: bool = False) -> int:
        """Trace the summary of every group whose interval is over (``everything``: of
        every group, as at shutdown); return how many entries were written."""
        with self._flush_lock:
            current = self._window(self.clock.now())
            with self._lock:
                done = [key for key in self._groups if everything or key[1] < current]
                groups = [self._groups.pop(key) for key in done]
            written = 0
            for position, group in enumerate(groups):
                if group.count < 2:
                    continue
                try:
                    self._summarise(group)
                except Exception:
                    with self._lock:  # keep what was not written for the next flush
                        for kept in groups[position:]:
                            self._groups.setdefault((kept.source, kept.window), kept)
                    raise
                written += 1
            return written

    def _summarise(self, group: _Group) -> None:
        prefixes = list(group.prefixes)
        note = Note(
            detail={
                "source": group.source,
                "count": group.count,
                "first": timestamp(group.first),
                "last": timestamp(group.last),
                "interval_seconds": self.interval,
                "reasons": dict(sorted(group.reasons.items())),
                "key_hash_prefixes": prefixes[:_PREFIXES_KEPT],
                "distinct_key_hash_prefixes": len(prefixes),
                "answered_429": group.refused_429,
            }
        )
        error = Unauthenticated(f"{group.count} failed authentications")
        self.tracer.deny(None, "auth.failures", error, note)

    # the flush timer -------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="auth-failures", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the timer and trace every open group (nothing is lost at shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush(everything=True)

    def _run(self) -> None:
        while not self._stop.wait(min(self.interval, 5.0)):
            try:
                self.flush()
            except Exception as exc:  # the groups stay; the next tick retries
                log.error("auth failure summary failed: %s", type(exc).__name__)
