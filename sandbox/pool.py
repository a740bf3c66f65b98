"""A small pool of pre-started sandboxes per (executor, asset, input, limits).

Each pooled sandbox has its engine imported and its asset view prepared, then
blocks reading its fragment from stdin; it serves exactly one fragment and exits,
so isolation stays per fragment while the 100+ ms interpreter and engine start-up
leaves the critical path.  A pooled sandbox is discarded if it died or if the
asset file changed (device, inode, size or mtime) since it was started, and a key
nobody used for ``idle_seconds`` is dropped with its sandboxes (:meth:`SandboxPool.shrink`;
it fills again when warmed again).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox.plans import LaunchRequest
from sandbox.process import SandboxProcess
from sandbox.spec import Bound, Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolKey:
    """What a pooled sandbox was started for; it can serve only a matching fragment."""

    executor: str
    asset_path: Path
    input_dir: Path | None
    limits: Limits
    bound: Bound | None = None
    forks: bool = False
    writable_input: str | None = None

    @classmethod
    def of(cls, request: LaunchRequest) -> PoolKey:
        """The key of a launch request."""
        return cls(
            request.executor,
            request.asset_path,
            request.input_dir,
            request.limits,
            request.bound,
            request.forks,
            request.writable_input,
        )


def asset_identity(path: Path) -> tuple[int, ...]:
    """(device, inode, size, mtime) of the asset file, to detect replacement."""
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


class SandboxPool:
    """Keeps up to ``size`` started sandboxes for each warmed key (at most ``max_keys``)."""

    def __init__(
        self,
        start: Callable[[LaunchRequest], SandboxProcess],
        size: int,
        max_keys: int,
        idle_seconds: float = 600.0,
    ) -> None:
        self._start = start
        self._size = size
        self._max_keys = max_keys
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._ready: OrderedDict[PoolKey, deque[SandboxProcess]] = OrderedDict()
        self._requests: dict[PoolKey, LaunchRequest] = {}
        self._used: dict[PoolKey, float] = {}
        self._closed = False

    @property
    def size(self) -> int:
        """Target number of ready sandboxes per key."""
        return self._size

    def warm(self, request: LaunchRequest) -> None:
        """Register ``request``'s key and fill its ready queue."""
        if self._size == 0:
            return
        key = PoolKey.of(request)
        evicted: list[SandboxProcess] = []
        with self._lock:
            if key not in self._ready:
                self._ready[key] = deque()
                self._requests[key] = request
            self._ready.move_to_end(key)
            self._used[key] = time.monotonic()
            while len(self._ready) > self._max_keys:
                old, queue = self._ready.popitem(last=False)
                self._requests.pop(old, None)
                self._used.pop(old, None)
                evicted.extend(queue)
        for sandbox in evicted:
            sandbox.close()
        self.refill(key)

    def take(self, request: LaunchRequest) -> SandboxProcess | None:
        """A ready sandbox for ``request``, or ``None`` (the caller starts one)."""
        key = PoolKey.of(request)
        try:
            identity = asset_identity(request.asset_path)
        except OSError:
            return None
        discard: list[SandboxProcess] = []
        found: SandboxProcess | None = None
        with self._lock:
            queue = self._ready.get(key)
            if queue is not None:
                self._used[key] = time.monotonic()
            while queue and found is None:
                candidate = queue.popleft()
                if candidate.alive() and candidate.identity == identity:
                    found = candidate
                else:
                    discard.append(candidate)
        for sandbox in discard:
            sandbox.close()
        return found

    def refill(self, key: PoolKey) -> None:
        """Start sandboxes until ``key`` has ``size`` ready (if ``key`` is warmed)."""
        while True:
            with self._lock:
                request = self._requests.get(key)
                queue = self._ready.get(key)
                if self._closed or request is None or queue is None or len(queue) >= self._size:
                    return
            try:
                sandbox = self._start(request)
            except OSError as exc:
                if not self._closed:
                    log.warning("could not pre-start a sandbox: %s", type(exc).__name__)
                return
            with self._lock:
                queue = self._ready.get(key)
                if queue is None or self._closed:
                    stale: SandboxProcess | None = sandbox
                else:
                    queue.append(sandbox)
                    stale = None
            if stale is not None:
                stale.close()
                return

    def refill_for(self, request: LaunchRequest) -> None:
        """Refill the queue ``request`` would be served from."""
        self.refill(PoolKey.of(request))

    def ready(self) -> int:
        """How many started sandboxes wait for a fragment."""
        with self._lock:
            return sum(len(queue) for queue in self._ready.values())

    def shrink(self, now: float | None = None) -> int:
        """Drop the keys nobody used for ``idle_seconds``, killing their sandboxes; how
        many sandboxes were stopped."""
        now = time.monotonic() if now is None else now
        stopped: list[SandboxProcess] = []
        with self._lock:
            for key in [k for k, used in self._used.items() if now - used >= self.idle_seconds]:
                stopped.extend(self._ready.pop(key, ()))
                self._requests.pop(key, None)
                self._used.pop(key, None)
        for sandbox in stopped:
            sandbox.close()
        return len(stopped)

    def close(self) -> None:
        """Kill every pooled sandbox; the pool starts no more."""
        with self._lock:
            self._closed = True
            queues = list(self._ready.values())
            self._ready.clear()
            self._requests.clear()
        for queue in queues:
            for sandbox in queue:
                sandbox.close()
