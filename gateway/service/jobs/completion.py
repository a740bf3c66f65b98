"""Job completion pushed to those waiting for it (long polls), instead of polled.

``GET /v1/jobs/{id}?wait=S`` answers as soon as the job is finished (succeeded, failed,
denied or cancelled) or after ``S`` seconds (at most :data:`MAX_WAIT_SECONDS`), whichever
comes first.  The runner tells :class:`Completions` when it releases or fails a job, and
each waiter is woken on its own event loop at once; a waiter also reads the job again
every :data:`RECHECK_SECONDS`, so a job finished by another gateway sharing the store, or
by a path that does not notify, is seen too.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

MAX_WAIT_SECONDS = 30.0
RECHECK_SECONDS = 1.0


class Completions:
    """Who waits for which job in this process; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def finished(self, job_id: str) -> None:
        """Wake everyone waiting for ``job_id`` (callable from any thread)."""
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(event.set)

    def waiting(self) -> int:
        """How many waiters are registered (for tests and metrics)."""
        with self._lock:
            return sum(len(waiters) for waiters in self._waiters.values())

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set when ``job_id`` finishes, registered while the block runs."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(job_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[job_id]
