"""Leases on running jobs: short, and renewed by a heartbeat while the job runs.

A runner leases each job it claims for ``lease`` and renews the leases of the jobs it is
running every ``heartbeat``. If the runner's process dies, the renewals stop and the lease
lapses within ``lease``; any runner's next poll then queues the job again. A job that runs
for longer than its lease keeps it as long as its runner is alive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from gateway.domain import JobState
from gateway.service.core.context import ServiceContext
from gateway.store import Tx

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of one runner's running jobs from a heartbeat thread."""

    def __init__(self, ctx: ServiceContext, owner: str, lease: timedelta, heartbeat: float):
        self.ctx = ctx
        self.owner = owner
        self.lease = lease
        self.heartbeat = heartbeat
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-leases", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (as a runner that died would)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @contextmanager
    def holding(self, job_id: str) -> Iterator[None]:
        """Renew ``job_id``'s lease while the block runs."""
        with self._lock:
            self._running.add(job_id)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(job_id)

    def renew(self) -> int:
        """Extend the lease of every job held; return how many were still ours to extend."""
        with self._lock:
            running = sorted(self._running)
        if not running:
            return 0
        until = self.ctx.clock.now() + self.lease

        def unit(tx: Tx) -> int:
            return sum(
                int(
                    tx.update_job(
                        job_id, [JobState.RUNNING], lease_owner=self.owner, lease_until=until
                    )
                )
                for job_id in running
            )

        return self.ctx.store.transact(unit)

    def _loop(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.renew()
            except Exception as exc:  # the next beat retries; a lease outlives a few misses
                log.error("lease renewal failed: %s", type(exc).__name__)
