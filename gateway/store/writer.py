"""Group commit: one writer thread runs many callers' transactions in one database commit.

Each caller hands over a function of a batch transaction and blocks until
the batch holding it has committed (so its effects and its trace entries are durable) or
until its own function failed. Within a batch every function runs in its own savepoint:
one caller's failure rolls back only that caller's work.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from gateway.domain import PendingTrace, TraceRecord

log = logging.getLogger(__name__)
R = TypeVar("R")


class BatchTx(Protocol):
    """What the writer needs of the transaction a batch runs in."""

    def append_trace(self, record: TraceRecord) -> PendingTrace: ...

    def run_in_savepoint(self, fn: Callable[[Any], Any]) -> tuple[bool, Any]: ...


T = TypeVar("T", bound=BatchTx)


@dataclass(slots=True)
class _Unit(Generic[T]):
    fn: Callable[[T], Any] | None
    future: Future[Any]
    record: TraceRecord | None = None


class GroupCommitWriter(Generic[T]):
    """The single writer thread of a store; ``begin`` opens the transaction of one batch."""

    def __init__(
        self, begin: Callable[[], AbstractContextManager[T]], max_batch: int = 256
    ) -> None:
        self._begin = begin
        self._max_batch = max_batch
        self._queue: queue.Queue[_Unit[T] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._closed = False
        self._thread.start()
        self.batches = 0
        self.units = 0

    def submit(self, fn: Callable[[T], R]) -> R:
        """Run ``fn`` in the next batch; return its result once the batch is durable."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("a write unit cannot submit another write unit")
        if self._closed:
            raise RuntimeError("the store is closed")
        unit: _Unit[T] = _Unit(fn, Future())
        self._queue.put(unit)
        result: R = unit.future.result()
        return result

    def append(self, record: TraceRecord) -> PendingTrace:
        """Append one trace entry in the next batch (no savepoint needed); durable on return."""
        if self._closed:
            raise RuntimeError("the store is closed")
        unit: _Unit[T] = _Unit(None, Future(), record)
        self._queue.put(unit)
        pending: PendingTrace = unit.future.result()
        return pending

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run(batch)
            if stop:
                return

    def _run(self, batch: list[_Unit[T]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._begin() as tx:
                for unit in batch:
                    if unit.fn is None:
                        assert unit.record is not None
                        outcomes.append((True, tx.append_trace(unit.record)))
                    else:
                        outcomes.append(tx.run_in_savepoint(unit.fn))
        except BaseException as exc:  # the commit failed: nothing in the batch happened
            log.error("write batch of %d failed to commit: %s", len(batch), type(exc).__name__)
            for unit in batch:
                if not unit.future.done():
                    unit.future.set_exception(exc)
            return
        self.batches += 1
        self.units += len(batch)
        for unit, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                unit.future.set_result(value)
            else:
                unit.future.set_exception(value)
