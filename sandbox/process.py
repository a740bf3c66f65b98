"""One sandboxed process: start it, hand it a fragment, collect its output.

The parent reads stdout and stderr with caps (past the output cap it stops
reading and kills the sandbox) and enforces the wall clock itself.  Exit is
observed through a pidfd, so no polling is needed; when the main process is gone
anything left (in the cgroup, or in the process group without namespaces) is
killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.cgroups import FragmentCgroup


@dataclass
class RawOutcome:
    """What the parent observed; classified into a result by the runner."""

    stdout: bytes = b""
    stderr_head: bytes = b""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    too_large: bool = False
    timed_out: bool = False
    exit_code: int | None = None
    signal: int | None = None
    cpu_seconds: float = 0.0
    oom_killed: bool = False
    elapsed: float = 0.0
    notes: list[str] = field(default_factory=list)


def kill_sandbox(popen: subprocess.Popen[bytes], cgroup: FragmentCgroup | None) -> None:
    """SIGKILL a sandbox's process group, its launcher and everything in its cgroup."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)
    if popen.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()


class OutputReader:
    """Reads a fragment's stdout and stderr into ``outcome`` under the output cap: stdout
    kept whole up to the cap, the first ``stderr_keep`` bytes of stderr, and
    ``too_large`` set once either stream passes the cap."""

    def __init__(self, outcome: RawOutcome, output_cap: int, stderr_keep: int) -> None:
        self.outcome = outcome
        self.output_cap = output_cap
        self.stderr_keep = stderr_keep
        self._chunks: list[bytes] = []
        self._head: list[bytes] = []

    def take(self, fd: int, stream: str) -> bool:
        """Read what ``fd`` (stream ``"out"`` or ``"err"``) has; ``False`` at its end."""
        data = os.read(fd, 65536)
        if not data:
            return False
        outcome = self.outcome
        if stream == "out":
            outcome.stdout_bytes += len(data)
            if outcome.stdout_bytes > self.output_cap:
                outcome.too_large = True
            else:
                self._chunks.append(data)
        else:
            outcome.stderr_bytes += len(data)
            if outcome.stderr_bytes <= self.stderr_keep:
                self._head.append(data)
            if outcome.stderr_bytes > self.output_cap:
                outcome.too_large = True
        return True

    def finish(self) -> None:
        """Put what was kept into the outcome."""
        self.outcome.stdout = b"".join(self._chunks)
        self.outcome.stderr_head = b"".join(self._head)[: self.stderr_keep]


class SandboxProcess:
    """A started sandbox waiting for (or running) exactly one fragment."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        cgroup: FragmentCgroup | None,
        host_tmp: Path | None,
        signal_offset: bool,
        identity: tuple[int, ...],
    ) -> None:
        self._popen = popen
        self.cgroup = cgroup
        self.host_tmp = host_tmp
        self._signal_offset = signal_offset
        self.identity = identity
        self.started = time.monotonic()
        self._closed = False

    @property
    def pid(self) -> int:
        """Pid of the launcher (which became ``bwrap`` or the worker)."""
        return self._popen.pid

    def alive(self) -> bool:
        """Whether the sandbox is still waiting (it may exit early on set-up failure)."""
        return self._popen.poll() is None

    def execute(
        self, program: str, wall_seconds: float, output_cap: int, stderr_keep: int
    ) -> RawOutcome:
        """Send the fragment, then collect output under the caps and the wall clock."""
        outcome = RawOutcome()
        begin = time.monotonic()
        deadline = begin + wall_seconds
        request = json.dumps({"program": program}).encode("utf-8")
        stdin = self._popen.stdin
        assert stdin is not None
        try:
            stdin.write(request)
            stdin.close()
        except (BrokenPipeError, OSError):
            outcome.notes.append("stdin closed early")
        self._collect(outcome, deadline, output_cap, stderr_keep)
        outcome.elapsed = time.monotonic() - begin
        return outcome

    def _collect(
        self, outcome: RawOutcome, deadline: float, output_cap: int, stderr_keep: int
    ) -> None:
        stdout, stderr = self._popen.stdout, self._popen.stderr
        assert stdout is not None
        assert stderr is not None
        output = OutputReader(outcome, output_cap, stderr_keep)
        pidfd = os.pidfd_open(self._popen.pid)
        exited_at: float | None = None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout.fileno(), selectors.EVENT_READ, "out")
            selector.register(stderr.fileno(), selectors.EVENT_READ, "err")
            selector.register(pidfd, selectors.EVENT_READ, "exit")
            streams = 2
            while streams or exited_at is None:
                now = time.monotonic()
                if now >= deadline:
                    outcome.timed_out = True
                    break
                if exited_at is not None and now - exited_at > 0.2:
                    outcome.notes.append("descendants kept output open")
                    break
                for key, _ in selector.select(min(deadline - now, 0.25)):
                    if key.data == "exit":
                        selector.unregister(pidfd)
                        exited_at = time.monotonic()
                        continue
                    if not output.take(key.fd, key.data):
                        selector.unregister(key.fd)
                        streams -= 1
                if outcome.too_large:
                    break
        os.close(pidfd)
        output.finish()
        self._finish(outcome)

    def _finish(self, outcome: RawOutcome) -> None:
        self.kill()
        _, status, usage = os.wait4(self._popen.pid, 0)
        self._popen.returncode = os.waitstatus_to_exitcode(status)
        outcome.cpu_seconds = usage.ru_utime + usage.ru_stime
        if os.WIFSIGNALED(status):
            outcome.signal = os.WTERMSIG(status)
        else:
            code = os.WEXITSTATUS(status)
            if self._signal_offset and code > 128:
                outcome.signal = code - 128
            else:
                outcome.exit_code = code
        if outcome.signal == signal.SIGKILL and not (outcome.timed_out or outcome.too_large):
            outcome.notes.append("killed")
        if self.cgroup is not None:
            outcome.oom_killed = self.cgroup.oom_killed()
            accounted = self.cgroup.cpu_seconds()
            if accounted is not None:
                outcome.cpu_seconds = max(outcome.cpu_seconds, accounted)

    def kill(self) -> None:
        """SIGKILL the sandbox and everything it started."""
        kill_sandbox(self._popen, self.cgroup)

    def close(self) -> None:
        """Kill, reap and remove everything this sandbox holds (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._popen.returncode is None:
            self.kill()
            with contextlib.suppress(ChildProcessError):
                self._popen.wait()
        for stream in (self._popen.stdin, self._popen.stdout, self._popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.host_tmp is not None:
            shutil.rmtree(self.host_tmp, ignore_errors=True)
