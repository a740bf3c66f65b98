"""Runner configuration."""

from __future__ import annotations

import enum
import pwd
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sandbox.spec import Limits

Backend = Literal["auto", "bwrap", "landlock", "none"]


class IsolationLevel(enum.StrEnum):
    """How strongly a fragment is isolated, from weakest to strongest."""

    WEAK = "weak"
    MEDIUM = "medium"
    STRONG = "strong"

    @property
    def rank(self) -> int:
        """Position in the order weak < medium < strong."""
        return _RANKS[self]


_RANKS = {IsolationLevel.WEAK: 0, IsolationLevel.MEDIUM: 1, IsolationLevel.STRONG: 2}

SANDBOX_USER = "blindgate-sandbox"
"""The dedicated system user fragments run as, when the host has one."""

NOBODY = 65534


def sandbox_identity(user: str = SANDBOX_USER) -> tuple[int, int]:
    """The host uid and gid of ``user`` if it exists, else those of ``nobody`` (65534)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return NOBODY, NOBODY
    if entry.pw_uid <= 0 or entry.pw_gid <= 0:
        return NOBODY, NOBODY
    return entry.pw_uid, entry.pw_gid


@dataclass(frozen=True)
class RunnerConfig:
    """Settings of a :class:`sandbox.runner.Runner`.

    ``backend`` chooses the confinement: ``bwrap`` (namespaces), ``landlock``
    (Landlock + a separate uid or Landlock scoping), ``none`` (rlimits, cgroup and
    seccomp only) or ``auto`` (the strongest that works on this host).  The
    runner refuses to start below ``minimum_isolation`` unless
    ``unsafe_allow_weak_isolation`` is set, which then logs a warning on every
    fragment.  ``unsafe_enable_test_executor`` enables the ``python_test``
    executor, which runs arbitrary Python inside the sandbox; it exists for the
    hostile-job test suite only.

    ``sandbox_uid``/``sandbox_gid`` are the *host* ids a fragment runs as when the
    runner is root (by default the ``blindgate-sandbox`` system user if the host has
    one, else ``nobody``); a runner that is not root runs fragments as its own uid.
    Either way no fragment ever runs as host root.

    ``fork_servers`` is how many fork servers (:mod:`sandbox.forkserver`) may serve one
    (executor, asset version, input, limits, bound) at once, each running one fragment at
    a time in a fresh child; they start on first use (or :meth:`Runner.warm`) and stop
    after ``pool_idle_seconds`` without a fragment (pre-started sandboxes too), or when
    their own CPU time
    nears ``fork_server_cpu_seconds``.  ``0`` turns them off: every fragment then gets a
    sandbox of its own (pre-started when ``pool_size`` > 0).  Fork servers are used only
    where they keep isolation (namespaces, cgroups and Landlock signal scoping).
    """

    backend: Backend = "auto"
    minimum_isolation: IsolationLevel = IsolationLevel.STRONG
    unsafe_allow_weak_isolation: bool = False
    unsafe_enable_test_executor: bool = False
    unsafe_log_child_stderr: bool = False
    default_limits: Limits = field(default_factory=Limits)
    sandbox_uid: int = field(default_factory=lambda: sandbox_identity()[0])
    sandbox_gid: int = field(default_factory=lambda: sandbox_identity()[1])
    bwrap_path: str | None = None
    python_executable: Path | None = None
    use_cgroups: bool = True
    cgroup_v2_parent: Path | None = None
    work_dir: Path = field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "blindgate-sandbox"
    )
    pool_size: int = 0
    pool_max_keys: int = 8
    stderr_capture_bytes: int = 16 * 1024
    startup_cpu_allowance_seconds: int = 5
    fork_servers: int = 1
    pool_idle_seconds: float = 600.0
    fork_server_cpu_seconds: int = 3600

    def __post_init__(self) -> None:
        if self.pool_size < 0 or self.pool_max_keys < 1:
            raise ValueError("pool_size must be >= 0 and pool_max_keys >= 1")
        if self.fork_servers < 0 or self.pool_idle_seconds <= 0:
            raise ValueError("fork_servers must be >= 0 and the idle time positive")
        if self.sandbox_uid <= 0 or self.sandbox_gid <= 0:
            raise ValueError("the sandbox uid and gid must not be root")
