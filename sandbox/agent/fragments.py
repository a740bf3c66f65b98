"""Stoppable fragments: the sandbox runner with a switch another thread can pull.

:class:`AgentRunner` is the sandbox :class:`~sandbox.runner.Runner` (same
validation, pool, isolation and result classification) whose ``run_stoppable``
attaches the fragment's sandbox to a :class:`StopSwitch`.  Pulling the switch
(``Cancel``, or the fragment's deadline) before the sandbox starts means it never
starts; afterwards it SIGKILLs the sandbox's main process through a pidfd, so a
recycled pid can never be hit, and the runner's own clean-up then kills whatever
is left in the fragment's cgroup or process group.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import threading

from sandbox.runner import Runner
from sandbox.spec import FragmentResult, FragmentSpec

log = logging.getLogger(__name__)


class StopReason(enum.StrEnum):
    """Why a fragment was stopped."""

    CANCELLED = "cancelled"
    DEADLINE = "deadline"


class StopSwitch:
    """Stops one fragment from another thread, before or while it runs; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reason: StopReason | None = None
        self._pidfd: int | None = None
        self._finished = False

    @property
    def reason(self) -> StopReason | None:
        """Why the fragment was stopped, or ``None``."""
        with self._lock:
            return self._reason

    @property
    def finished(self) -> bool:
        """Whether the fragment has finished (the switch no longer does anything)."""
        with self._lock:
            return self._finished

    def stop(self, reason: StopReason) -> bool:
        """Stop the fragment; ``False`` if it had already finished or been stopped."""
        with self._lock:
            if self._finished or self._reason is not None:
                return False
            self._reason = reason
            if self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            return True

    def attach(self, pid: int) -> bool:
        """Watch the sandbox ``pid``; ``False`` if the fragment is already stopped."""
        with self._lock:
            if self._reason is not None or self._finished:
                return False
            with contextlib.suppress(ProcessLookupError):
                self._pidfd = os.pidfd_open(pid)
            return True

    def detach(self) -> None:
        """Forget the sandbox (before it is reaped)."""
        with self._lock:
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None

    def finish(self) -> StopReason | None:
        """Mark the fragment finished; returns why it was stopped, if it was."""
        with self._lock:
            self._finished = True
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None
            return self._reason


class AgentRunner(Runner):
    """The sandbox runner with stoppable fragments."""

    def run_stoppable(self, spec: FragmentSpec, switch: StopSwitch, label: str) -> FragmentResult:
        """Like :meth:`Runner.run`, but ``switch`` can stop the fragment at any point.

        If the switch was pulled the result is a failure whose code the caller
        replaces (``switch.reason`` says why); ``label`` names the fragment in the
        debug log.
        """
        return self.run(spec, guard=switch, label=label)
