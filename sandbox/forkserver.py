"""Fork servers seen from the runner: start-up paid once per (asset version, executor).

A :class:`ForkServer` is a sandbox started exactly like a one-fragment worker (same
launcher, namespaces, seccomp filter, cgroup and rlimits) that runs
:mod:`sandbox.zygote`: its executor is prepared once and every fragment runs in a fresh
child forked from it.  For each fragment the runner

* creates the fragment's own cgroup (memory and pids limits, CPU accounting),
* hands the server the fragment's socket and its stdout and stderr pipes,
* learns the child's pid from the kernel (``SCM_CREDENTIALS`` on the fragment socket,
  translated into the runner's pid namespace) and moves the child into that cgroup
  before it sends the program,
* reads the output under the output cap and the wall clock itself, and on either kills
  everything in the fragment's cgroup (the server stays),
* takes the child's wait status and CPU time from the server's report.

Any break of that protocol retires the server; the fragment then fails as ``internal``
or is classified from what was observed.  :class:`ForkServerPool` starts servers lazily,
keeps up to ``per_key`` per (executor, asset, input, limits, bound), discards those whose
asset file changed, and stops those idle longer than ``idle_seconds`` (the runner calls
:meth:`ForkServerPool.shrink` periodically).
"""

from __future__ import annotations

import array
import contextlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sandbox.cgroups import CgroupManager, FragmentCgroup
from sandbox.plans import LaunchRequest
from sandbox.pool import PoolKey, asset_identity
from sandbox.process import OutputReader, RawOutcome, kill_sandbox
from sandbox.spec import Limits
from sandbox.zygote import EXITED, GO, PREPARE, READY, credentials_pid, exit_report

log = logging.getLogger(__name__)

READY_SECONDS = 60.0
EXIT_REPORT_SECONDS = 5.0
MAX_FRAGMENTS_PER_SERVER = 10_000
STARTERS = 4
"""Servers started at the same time (for different keys), at most."""


class Attachable(Protocol):
    """What a fragment's stop switch offers (see :class:`sandbox.runner.Guard`)."""

    def attach(self, pid: int) -> bool: ...

    def detach(self) -> None: ...


class ServerBroken(Exception):
    """The server broke the protocol or died; it is retired."""


class Stopped(Exception):
    """The fragment's guard was pulled before its child started."""


class ForkServer:
    """One started fork server; serves one fragment at a time (the pool sees to that)."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        control: socket.socket,
        cgroup: FragmentCgroup | None,
        host_tmp: Path | None,
        identity: tuple[int, ...],
        cgroups: CgroupManager,
        on_close: Callable[[], None] = lambda: None,
    ) -> None:
        self._popen = popen
        self._control = control
        self.cgroup = cgroup
        self.host_tmp = host_tmp
        self.identity = identity
        self._cgroups = cgroups
        self._on_close = on_close
        self.served = 0
        self.last_used = time.monotonic()
        self.broken = False
        self._closed = False
        self._spare: _Spare | None = None

    @property
    def pid(self) -> int:
        """Pid of the server's launcher (which became ``bwrap``)."""
        return self._popen.pid

    def alive(self) -> bool:
        """Whether the server process is still running and has not been retired."""
        return not self.broken and not self._closed and self._popen.poll() is None

    def wait_ready(self, timeout: float = READY_SECONDS) -> None:
        """Block until the server has prepared its executor; :class:`ServerBroken` if not."""
        self._control.settimeout(timeout)
        try:
            message = self._control.recv(64)
        except OSError as exc:
            raise ServerBroken("no ready message") from exc
        if message != READY:
            raise ServerBroken("the server did not become ready")

    def prepare(self, limits: Limits) -> None:
        """Have a child forked, confined and moved into a fresh cgroup, ready for the next
        fragment (done between fragments, off their critical path)."""
        if self._spare is not None:
            return
        group = self._cgroups.create(limits.memory_bytes, limits.pids)
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            payload = PREPARE + json.dumps({"cpu_seconds": limits.cpu_seconds}).encode()
            rights = array.array("i", [theirs.fileno()])
            try:
                self._control.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            except OSError as exc:
                raise ServerBroken("no child prepared") from exc
            theirs.close()
            pid = self._child_pid(mine, time.monotonic() + READY_SECONDS)
            group.attach(pid)
        except BaseException:
            self.broken = True
            theirs.close()
            mine.close()
            group.remove()
            raise
        self._spare = _Spare(mine, group, pid)

    def execute(
        self, program: str, limits: Limits, stderr_keep: int, guard: Attachable | None
    ) -> RawOutcome:
        """Run one fragment in the prepared child (prepared now if there is none)."""
        outcome = RawOutcome()
        begin = time.monotonic()
        if self._spare is None:
            self.prepare(limits)
        spare, self._spare = self._spare, None
        assert spare is not None
        channels = _Channels(spare.socket)
        try:
            self._run_child(outcome, spare, channels, program, limits, stderr_keep, guard)
        except ServerBroken:
            self.broken = True
            spare.group.kill_all()
            raise
        finally:
            channels.close()
            outcome.oom_killed = spare.group.oom_killed()
            accounted = spare.group.cpu_seconds()
            if accounted is not None:
                outcome.cpu_seconds = max(outcome.cpu_seconds, accounted)
            spare.group.remove()
            self.served += 1
            self.last_used = time.monotonic()
        outcome.elapsed = time.monotonic() - begin
        return outcome

    def _run_child(
        self,
        outcome: RawOutcome,
        spare: _Spare,
        channels: _Channels,
        program: str,
        limits: Limits,
        stderr_keep: int,
        guard: Attachable | None,
    ) -> None:
        deadline = time.monotonic() + limits.wall_seconds
        if guard is not None and not guard.attach(spare.pid):
            spare.group.kill_all()
            self._await_exit(outcome, deadline + EXIT_REPORT_SECONDS)
            raise Stopped
        try:
            rights = array.array("i", channels.theirs())
            try:
                spare.socket.sendmsg([GO], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
            except OSError as exc:
                raise ServerBroken("the prepared child is gone") from exc
            channels.close_theirs()
            request = json.dumps({"program": program}).encode("utf-8")
            try:
                spare.socket.sendall(request)
                spare.socket.shutdown(socket.SHUT_WR)
            except OSError:
                outcome.notes.append("program not delivered")
            fds = [channels.out_read, channels.err_read]
            self._collect(outcome, spare.group, deadline, limits.output_bytes, stderr_keep, fds)
        finally:
            if guard is not None:
                guard.detach()

    def _child_pid(self, mine: socket.socket, deadline: float) -> int:
        mine.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            data, ancillary, _flags, _addr = mine.recvmsg(
                1, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64)
            )
        except OSError as exc:
            raise ServerBroken("the child did not start") from exc
        pid = credentials_pid(ancillary)
        if data != READY or pid is None or pid <= 1:
            raise ServerBroken("the child did not introduce itself")
        return pid

    def _collect(
        self,
        outcome: RawOutcome,
        group: FragmentCgroup,
        deadline: float,
        output_cap: int,
        stderr_keep: int,
        fds: list[int],
    ) -> None:
        output = OutputReader(outcome, output_cap, stderr_keep)
        out_fd, err_fd = fds
        reported = False
        with selectors.DefaultSelector() as selector:
            selector.register(out_fd, selectors.EVENT_READ, "out")
            selector.register(err_fd, selectors.EVENT_READ, "err")
            selector.register(self._control.fileno(), selectors.EVENT_READ, "exit")
            streams = 2
            while streams or not reported:
                now = time.monotonic()
                if now >= deadline:
                    outcome.timed_out = True
                    break
                for key, _ in selector.select(min(deadline - now, 0.25)):
                    if key.data == "exit":
                        selector.unregister(key.fd)
                        self._read_exit(outcome)
                        reported = True
                        continue
                    if not output.take(key.fd, key.data):
                        selector.unregister(key.fd)
                        streams -= 1
                if outcome.too_large:
                    break
                if reported and streams:
                    # The child is gone; whatever still holds its pipes is killed with
                    # its cgroup, which closes them.
                    group.kill_all()
        output.finish()
        group.kill_all()
        if not reported:
            self._await_exit(outcome, time.monotonic() + EXIT_REPORT_SECONDS)

    def _await_exit(self, outcome: RawOutcome, deadline: float) -> None:
        self._control.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            self._read_exit(outcome)
        except OSError as exc:
            raise ServerBroken("no exit report") from exc

    def _read_exit(self, outcome: RawOutcome) -> None:
        self._control.settimeout(EXIT_REPORT_SECONDS)
        message = self._control.recv(4096)
        if message[:1] != EXITED:
            raise ServerBroken("no exit report")
        try:
            status, cpu = exit_report(message[1:])
        except (ValueError, KeyError, TypeError) as exc:
            raise ServerBroken("bad exit report") from exc
        outcome.cpu_seconds = cpu
        if os.WIFSIGNALED(status):
            outcome.signal = os.WTERMSIG(status)
        elif os.WIFEXITED(status):
            outcome.exit_code = os.WEXITSTATUS(status)
        if outcome.signal == signal.SIGKILL and not (outcome.timed_out or outcome.too_large):
            outcome.notes.append("killed")

    def close(self) -> None:
        """Stop the server and remove everything it holds (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._spare is not None:
            self._spare.socket.close()
            self._spare.group.remove()
            self._spare = None
        with contextlib.suppress(OSError):
            self._control.close()
        kill_sandbox(self._popen, self.cgroup)
        with contextlib.suppress(ChildProcessError):
            self._popen.wait()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.host_tmp is not None:
            import shutil

            shutil.rmtree(self.host_tmp, ignore_errors=True)
        self._on_close()


@dataclass
class _Spare:
    """A child forked, confined and in its own cgroup, waiting for its fragment."""

    socket: socket.socket
    group: FragmentCgroup
    pid: int


class _Channels:
    """The fragment's socket and its stdout and stderr pipes (runner's and child's ends)."""

    def __init__(self, fragment: socket.socket) -> None:
        self.mine = fragment
        self.out_read, self._out_write = os.pipe()
        self.err_read, self._err_write = os.pipe()
        self._open_theirs = True

    def theirs(self) -> list[int]:
        """The child's ends: its stdout and stderr."""
        return [self._out_write, self._err_write]

    def close_theirs(self) -> None:
        """Close the child's ends here (the child holds its own copies)."""
        if self._open_theirs:
            self._open_theirs = False
            os.close(self._out_write)
            os.close(self._err_write)

    def close(self) -> None:
        self.close_theirs()
        self.mine.close()
        for fd in (self.out_read, self.err_read):
            with contextlib.suppress(OSError):
                os.close(fd)


class _Slot:
    """The servers of one key."""

    def __init__(self, request: LaunchRequest) -> None:
        self.request = request
        self.idle: list[ForkServer] = []
        self.busy = 0
        self.starting = 0


class ForkServerPool:
    """Fork servers per key, started lazily, at most ``per_key`` each; thread-safe."""

    def __init__(
        self,
        start: Callable[[LaunchRequest], ForkServer],
        per_key: int,
        max_keys: int,
        idle_seconds: float,
    ) -> None:
        self._start = start
        self.per_key = per_key
        self._max_keys = max_keys
        self.idle_seconds = idle_seconds
        self._cond = threading.Condition()
        self._slots: OrderedDict[PoolKey, _Slot] = OrderedDict()
        self._unservable: dict[PoolKey, tuple[int, ...]] = {}
        self._closed = False
        self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fork-prepare")
        # A sandbox gets the parent-death signal when the *thread* that started it ends, so
        # servers are started on the pool's own threads, which live as long as the pool.
        self._starter = ThreadPoolExecutor(max_workers=STARTERS, thread_name_prefix="fork-start")

    def acquire(self, request: LaunchRequest, timeout: float) -> ForkServer:
        """An idle server for ``request`` (started if none is free); :class:`OSError` or
        :class:`ServerBroken` if none can be had within ``timeout`` seconds."""
        key = PoolKey.of(request)
        end = time.monotonic() + timeout
        identity = asset_identity(request.asset_path)
        stale: list[ForkServer] = []
        try:
            with self._cond:
                while True:
                    if self._closed:
                        raise ServerBroken("the pool is closed")
                    if self._unservable.get(key) == identity:
                        raise ServerBroken("no fork server can prepare this asset")
                    slot = self._slot(key, request, stale)
                    while slot.idle:
                        server = slot.idle.pop()
                        if server.alive() and server.identity == identity:
                            slot.busy += 1
                            return server
                        stale.append(server)
                    if slot.busy + slot.starting < self.per_key:
                        slot.starting += 1
                        break
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        raise ServerBroken("no fork server became free")
                    self._cond.wait(remaining)
        finally:
            for server in stale:
                server.close()
        try:
            server = self._launch(request)
        except BaseException:
            with self._cond:
                slot.starting -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            slot.starting -= 1
            slot.busy += 1
        return server

    def release(self, request: LaunchRequest, server: ForkServer) -> None:
        """Give ``server`` back: it prepares its next child first, off the fragment's path
        (and is retired if it broke or served its share)."""
        retire = not server.alive() or server.served >= MAX_FRAGMENTS_PER_SERVER
        if not retire:
            with contextlib.suppress(RuntimeError):  # the pool is closing
                self._preparer.submit(self._prepared, request, server)
                return
        self._returned(request, server, retire=True)

    def _prepared(self, request: LaunchRequest, server: ForkServer) -> None:
        try:
            server.prepare(request.limits)
        except (OSError, ServerBroken) as exc:
            reason = str(exc) if isinstance(exc, ServerBroken) else f"errno {exc.errno}"
            log.warning("a fork server could not prepare a child: %s", reason)
            self._returned(request, server, retire=True)
            return
        self._returned(request, server, retire=False)

    def _returned(self, request: LaunchRequest, server: ForkServer, *, retire: bool) -> None:
        with self._cond:
            slot = self._slots.get(PoolKey.of(request))
            if slot is not None:
                slot.busy -= 1
            if slot is None or self._closed:
                retire = True
            if not retire and slot is not None:
                slot.idle.append(server)
            self._cond.notify_all()
        if retire:
            server.close()

    def warm(self, request: LaunchRequest) -> None:
        """Start one server for ``request`` if its key has none (blocking)."""
        key = PoolKey.of(request)
        stale: list[ForkServer] = []
        with self._cond:
            slot = self._slot(key, request, stale)
            if slot.idle or slot.busy or slot.starting or self._closed:
                start = False
            else:
                slot.starting += 1
                start = True
        for old in stale:
            old.close()
        if not start:
            return
        launched: ForkServer | None = None
        try:
            launched = self._launch(request)
            launched.prepare(request.limits)
        except (OSError, ServerBroken) as exc:
            log.warning("could not start a fork server: %s", type(exc).__name__)
            if launched is not None:
                launched.close()
            with self._cond:
                slot.starting -= 1
            return
        server = launched
        with self._cond:
            slot.starting -= 1
            if self._closed:
                closing: ForkServer | None = server
            else:
                slot.idle.append(server)
                closing = None
            self._cond.notify_all()
        if closing is not None:
            closing.close()

    def ready(self) -> int:
        """How many servers are idle and ready (for health and benchmarks)."""
        with self._cond:
            return sum(len(slot.idle) for slot in self._slots.values())

    def idle_pids(self) -> set[int]:
        """Host pids of the idle servers (each server's launcher, which became ``bwrap``)."""
        with self._cond:
            return {server.pid for slot in self._slots.values() for server in slot.idle}

    def shrink(self, now: float | None = None) -> int:
        """Stop servers idle for longer than ``idle_seconds``; how many were stopped."""
        now = time.monotonic() if now is None else now
        stopped: list[ForkServer] = []
        with self._cond:
            for slot in self._slots.values():
                keep = [s for s in slot.idle if now - s.last_used < self.idle_seconds]
                stopped += [s for s in slot.idle if s not in keep]
                slot.idle = keep
        for server in stopped:
            server.close()
        return len(stopped)

    def close(self) -> None:
        """Stop every idle server; busy ones are stopped when released, or at the latest when
        the threads that started them end here."""
        with self._cond:
            self._closed = True
            idle = [s for slot in self._slots.values() for s in slot.idle]
            self._slots.clear()
            self._cond.notify_all()
        for server in idle:
            server.close()
        self._preparer.shutdown(wait=True)
        self._starter.shutdown(wait=True)

    def _slot(self, key: PoolKey, request: LaunchRequest, stale: list[ForkServer]) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot(request)
        self._slots.move_to_end(key)
        while len(self._slots) > self._max_keys:
            oldest = next(iter(self._slots))
            victim = self._slots[oldest]
            if victim is slot or victim.busy or victim.starting:
                break
            stale.extend(victim.idle)
            del self._slots[oldest]
        return slot

    def _launch(self, request: LaunchRequest) -> ForkServer:
        """A started, ready server, started on one of the pool's own threads."""
        try:
            started = self._starter.submit(self._launch_here, request)
        except RuntimeError:  # the pool is closing
            raise ServerBroken("the pool is closed") from None
        return started.result()

    def _launch_here(self, request: LaunchRequest) -> ForkServer:
        server = self._start(request)
        try:
            server.wait_ready()
        except ServerBroken:
            # It could not prepare the asset within its limits (too large to hold in
            # memory, say): this asset version's fragments get sandboxes of their own.
            server.close()
            with self._cond:
                self._unservable[PoolKey.of(request)] = server.identity
            raise
        except BaseException:
            server.close()
            raise
        return server
