"""Detect the isolation layers this host offers and start sandboxes with them.

At start-up :meth:`Isolation.detect` builds the seccomp programs, looks for a
writable cgroup, asks the kernel for its Landlock ABI and *proves* the chosen
backend works by running a trivial interpreter through the complete launch path.
The outcome is an :class:`IsolationReport`: which layers are active, why others
are not, and the overall level:

* ``strong``: namespaces (bubblewrap) + seccomp + cgroup + rlimits;
* ``medium``: filesystem confinement (namespaces or Landlock) + seccomp + rlimits
  + identity separation (namespaces, a separate uid, or Landlock scoping of
  signals and abstract sockets), without the full ``strong`` set;
* ``weak``: anything less.

No fragment runs as host root: a root runner always has the launcher switch to
the unprivileged sandbox uid (``separate_uid``), whatever the backend; a runner
that is not root runs fragments as its own uid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox import landlock
from sandbox.cgroups import CgroupManager, CgroupUnavailable, FragmentCgroup
from sandbox.config import IsolationLevel, RunnerConfig
from sandbox.forkserver import ForkServer
from sandbox.launcher import JOINED
from sandbox.plans import Confinement, LaunchRequest, build_plan, launcher_command
from sandbox.process import RawOutcome, SandboxProcess
from sandbox.runtime import RuntimeLayout
from sandbox.seccomp_filter import SeccompUnavailable, bpf_pipe, build_filter_bpf
from sandbox.spec import Limits

LAYERS = ("namespaces", "landlock", "seccomp", "cgroup", "rlimits", "separate_uid")


@dataclass(frozen=True)
class IsolationReport:
    """Active layers, the backend in use, the overall level and notes on gaps."""

    backend: str
    level: IsolationLevel
    layers: Mapping[str, bool]
    notes: tuple[str, ...]
    cgroup_version: int | None
    landlock_abi: int

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view (for logs, metrics and the agent's status call)."""
        return {
            "backend": self.backend,
            "level": self.level.value,
            "layers": dict(self.layers),
            "notes": list(self.notes),
            "cgroup_version": self.cgroup_version,
            "landlock_abi": self.landlock_abi,
        }


def compute_level(backend: str, layers: Mapping[str, bool], landlock_abi: int) -> IsolationLevel:
    """The overall level implied by the active layers."""
    base = layers["seccomp"] and layers["rlimits"]
    if backend == "bwrap" and base and layers["cgroup"]:
        return IsolationLevel.STRONG
    if backend == "bwrap" and base:
        return IsolationLevel.MEDIUM
    scoped = landlock_abi >= 6
    if backend == "landlock" and base and (layers["separate_uid"] or scoped):
        return IsolationLevel.MEDIUM
    return IsolationLevel.WEAK


class Isolation:
    """The detected platform: starts sandboxes with the strongest working backend."""

    def __init__(self, config: RunnerConfig, layout: RuntimeLayout) -> None:
        self.config = config
        self.layout = layout
        self.notes: list[str] = []
        self.programs: dict[bool, bytes] = {}
        self.cgroups: CgroupManager | None = None
        self.landlock_abi = 0
        self.bwrap = config.bwrap_path or shutil.which("bwrap")
        self.backend = "none"
        self.separate_uid = os.geteuid() == 0
        self.stage_dir: Path | None = None
        self.report: IsolationReport

    @classmethod
    def detect(cls, config: RunnerConfig, layout: RuntimeLayout) -> Isolation:
        """Probe every layer and choose the backend."""
        found = cls(config, layout)
        try:
            found.programs = {
                True: build_filter_bpf(allow_unix_sockets=True),
                False: build_filter_bpf(allow_unix_sockets=False),
            }
        except SeccompUnavailable as exc:
            found.notes.append(f"seccomp: {exc}")
        if config.use_cgroups:
            try:
                found.cgroups = CgroupManager.detect(config.cgroup_v2_parent)
            except CgroupUnavailable as exc:
                found.notes.append(f"cgroup: {exc}")
        else:
            found.notes.append("cgroup: disabled by configuration")
        found.landlock_abi = landlock.abi_version()
        if found.separate_uid:
            found.stage_dir = found._make_stage_dir()
        else:
            found.notes.append("separate_uid: the runner is not root; fragments run as its uid")
        found._choose_backend()
        layers = {
            "namespaces": found.backend == "bwrap",
            "landlock": found.backend == "landlock",
            "seccomp": bool(found.programs),
            "cgroup": found.cgroups is not None,
            "rlimits": True,
            "separate_uid": found.separate_uid,
        }
        found.report = IsolationReport(
            backend=found.backend,
            level=compute_level(found.backend, layers, found.landlock_abi),
            layers=layers,
            notes=tuple(found.notes),
            cgroup_version=found.cgroups.version if found.cgroups else None,
            landlock_abi=found.landlock_abi,
        )
        return found

    def _choose_backend(self) -> None:
        wanted = self.config.backend
        order = ["bwrap", "landlock", "none"] if wanted == "auto" else [wanted]
        for backend in order:
            if backend == "bwrap" and not self.bwrap:
                self.notes.append("namespaces: bwrap not found")
                continue
            if backend == "landlock" and self.landlock_abi < 1:
                self.notes.append("landlock: not supported by this kernel")
                continue
            if backend in ("bwrap", "landlock") and not self.programs:
                continue
            self.backend = backend
            if self._probe():
                return
            self.notes.append(f"{backend}: probe failed")
        self.backend = "none"
        if not self._probe():
            self.notes.append("none: probe failed (fragments cannot start)")

    def _make_stage_dir(self) -> Path:
        """The (always empty) host directory each launcher mounts its staging tmpfs on."""
        base = self.config.work_dir
        base.mkdir(mode=0o711, parents=True, exist_ok=True)
        stage = base / "stage"
        stage.mkdir(mode=0o755, exist_ok=True)
        return stage

    def _probe(self) -> bool:
        """Run the whole launch path with a no-op interpreter."""
        try:
            outcome = self.run_command([self.layout.python, "-I", "-S", "-c", ""])
        except OSError as exc:
            self.notes.append(f"{self.backend}: {exc.strerror or exc}")
            return False
        return outcome.exit_code == 0 and outcome.signal is None

    @property
    def forks(self) -> bool:
        """Whether fork servers keep isolation here: namespaces, cgroups for each forked
        child, and Landlock scoping (ABI 6) for each child's signals."""
        return self.backend == "bwrap" and self.cgroups is not None and self.landlock_abi >= 6

    def start(self, request: LaunchRequest, command: list[str] | None = None) -> SandboxProcess:
        """Start one sandbox for ``request`` (optionally running ``command`` instead).

        ``command`` is a Python command line; its first element is replaced by the
        interpreter as the sandbox sees it.
        """
        popen, cgroup, host_tmp, identity = self._launch(request, command, None)
        return SandboxProcess(popen, cgroup, host_tmp, self.backend == "bwrap", identity)

    def start_server(self, request: LaunchRequest) -> ForkServer:
        """Start a fork server for ``request`` (see :mod:`sandbox.forkserver`)."""
        if not self.forks or self.cgroups is None:
            raise OSError(0, "fork servers need namespaces, cgroups and Landlock scoping")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            launched = self._launch(request, None, theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        popen, cgroup, host_tmp, identity = launched
        return ForkServer(popen, ours, cgroup, host_tmp, identity, self.cgroups)

    def _launch(
        self, request: LaunchRequest, command: list[str] | None, control: int | None
    ) -> tuple[subprocess.Popen[bytes], FragmentCgroup | None, Path | None, tuple[int, ...]]:
        asset_stat = os.stat(request.asset_path)
        identity = (
            asset_stat.st_dev,
            asset_stat.st_ino,
            asset_stat.st_size,
            asset_stat.st_mtime_ns,
        )
        limits = request.limits
        cgroup = self.cgroups.create(limits.memory_bytes, limits.pids) if self.cgroups else None
        host_tmp: Path | None = None
        seccomp_fd: int | None = None
        args_fd: int | None = None
        args_write: int | None = None
        sync_read, sync_write = os.pipe() if cgroup is not None else (None, None)
        popen: subprocess.Popen[bytes] | None = None
        startup = self.config.startup_cpu_allowance_seconds
        if request.forks:
            startup = max(startup, self.config.fork_server_cpu_seconds)
        try:
            if self.backend != "bwrap":
                host_tmp = self._private_tmp()
            program = self.programs.get(self.backend == "bwrap")
            if program is not None:
                seccomp_fd = bpf_pipe(program)
            if self.backend == "bwrap":
                args_fd, args_write = os.pipe()
            confinement = Confinement(
                backend=self.backend,
                bwrap=self.bwrap,
                uid=self.config.sandbox_uid,
                gid=self.config.sandbox_gid,
                landlock_abi=self.landlock_abi,
                separate_uid=self.separate_uid,
                seccomp_fd=seccomp_fd,
                parent_pid=os.getpid(),
                stage_dir=str(self.stage_dir) if self.stage_dir is not None else None,
                args_fd=args_fd,
            )
            plan, block = build_plan(
                self.layout,
                request,
                confinement,
                sync_read,
                host_tmp,
                startup,
                python_args=command[1:] if command is not None else None,
            )
            if args_write is not None:
                assert block is not None
                _fill_pipe(args_write, block)
                os.close(args_write)
                args_write = None
            quiet = subprocess.DEVNULL
            popen = subprocess.Popen(
                launcher_command(self.layout, plan),
                stdin=subprocess.PIPE if control is None else control,
                stdout=subprocess.PIPE if control is None else quiet,
                stderr=subprocess.PIPE if control is None else quiet,
                pass_fds=tuple(fd for fd in (seccomp_fd, sync_read, args_fd) if fd is not None),
                start_new_session=True,
                env={},
                cwd="/",
            )
            if cgroup is not None and sync_write is not None:
                cgroup.attach(popen.pid)
                os.write(sync_write, JOINED)
        except BaseException:
            if popen is not None:
                _abandon(popen)
            if cgroup is not None:
                cgroup.remove()
            if host_tmp is not None:
                shutil.rmtree(host_tmp, ignore_errors=True)
            raise
        finally:
            for fd in (seccomp_fd, sync_read, sync_write, args_fd, args_write):
                if fd is not None:
                    os.close(fd)
        return popen, cgroup, host_tmp, identity

    def run_command(self, command: list[str], limits: Limits | None = None) -> RawOutcome:
        """Run ``command`` in a fresh sandbox (for probes and benchmarks).

        The sandbox is built exactly as for a fragment (a throw-away asset file is
        bound) but ``command`` replaces the worker.
        """
        with tempfile.TemporaryDirectory() as scratch:
            asset = Path(scratch) / "probe.csv"
            asset.write_text("x\n1\n", encoding="ascii")
            os.chmod(scratch, 0o755)  # noqa: S103 - readable by a separate sandbox uid
            os.chmod(asset, 0o644)
            request = LaunchRequest(
                "probe", asset, None, limits or self.config.default_limits, False
            )
            sandbox = self.start(request, command=command)
            try:
                return sandbox.execute("", 10.0, 64 * 1024, 4096)
            finally:
                sandbox.close()

    def _private_tmp(self) -> Path:
        base = self.config.work_dir
        base.mkdir(mode=0o711, parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="fragment-", dir=base))
        if self.separate_uid:
            os.chown(path, self.config.sandbox_uid, self.config.sandbox_gid)
        return path


def _fill_pipe(fd: int, data: bytes) -> None:
    """Write ``data`` (at most one pipe buffer) to an empty pipe without blocking."""
    if len(data) > 60 * 1024:
        raise OSError(0, "bwrap arguments larger than a pipe buffer")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _abandon(popen: subprocess.Popen[bytes]) -> None:
    """Kill and reap a launcher that must not go on."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.kill()
    popen.wait()
    for stream in (popen.stdin, popen.stdout, popen.stderr):
        if stream is not None:
            stream.close()
