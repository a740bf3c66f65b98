"""Per-fragment cgroups bounding memory and the number of processes.

Each fragment gets its own cgroup, a child of the cgroup the runner itself is in
(so that any limit placed on the runner still applies to its fragments).  Both
cgroup v2 (where the memory and pids controllers are delegated to us) and v1
(separate ``memory`` and ``pids`` hierarchies, as on hybrid hosts) are supported.
The runner moves the launcher into the cgroup while the launcher is blocked on a
pipe, before it executes the sandbox, so every process of the fragment is inside.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_COUNTER = itertools.count()


class CgroupUnavailable(RuntimeError):
    """No writable cgroup with the memory and pids controllers was found."""


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii")


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of every cgroup mount."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or not tail[0].startswith("cgroup"):
            continue
        root, point = fields[3], fields[4].replace("\\040", " ")
        found.append((root, point, tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """Map a controller name (``""`` for v2) to this process's cgroup path."""
    paths: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


def _join(mount_root: str, mount_point: str, path: str) -> Path | None:
    """The directory of cgroup ``path`` under a mount of hierarchy part ``mount_root``."""
    if mount_root == "/":
        relative = path
    elif path == mount_root or path.startswith(mount_root + "/"):
        relative = path[len(mount_root) :]
    else:
        return None
    return Path(mount_point) / relative.lstrip("/")


@dataclass(frozen=True)
class FragmentCgroup:
    """The cgroup directories of one fragment (one for v2, memory and pids for v1)."""

    version: int
    dirs: tuple[Path, ...]
    cpu_dir: Path | None = None

    @property
    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files the launcher writes its pid to."""
        return [str(directory / "cgroup.procs") for directory in self.dirs]

    def oom_killed(self) -> bool:
        """Whether the kernel's OOM killer killed a process of this fragment."""
        memory_dir = self.dirs[0]
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            counters = dict(line.split(" ", 1) for line in _read(memory_dir / name).splitlines())
            if "oom_kill" in counters:
                return int(counters["oom_kill"]) > 0
            return self.version == 1 and int(_read(memory_dir / "memory.failcnt")) > 0
        except (OSError, ValueError):
            return False

    def attach(self, pid: int) -> None:
        """Move process ``pid`` (not yet started on the fragment) into the cgroup."""
        for path in self.procs_files:
            _write(Path(path), str(pid))

    def cpu_seconds(self) -> float | None:
        """CPU time used by all processes of the fragment, if accounted."""
        if self.cpu_dir is None:
            return None
        try:
            if self.version == 2:
                for line in _read(self.cpu_dir / "cpu.stat").splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
                return None
            return int(_read(self.cpu_dir / "cpuacct.usage")) / 1e9
        except (OSError, ValueError):
            return None

    def pids(self) -> set[int]:
        """Pids currently in the fragment's cgroup."""
        found: set[int] = set()
        for path in self.procs_files:
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in _read(Path(path)).split())
        return found

    def kill_all(self) -> None:
        """SIGKILL every process left in the cgroup."""
        kill_file = self.dirs[0] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            with contextlib.suppress(OSError):
                _write(kill_file, "1")
            return
        for _ in range(20):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.002)

    def remove(self) -> None:
        """Kill what is left and delete the directories (retrying while busy)."""
        self.kill_all()
        for directory in self.dirs:
            for attempt in range(100):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if attempt % 10 == 9:
                        self.kill_all()
                    time.sleep(0.005)


class CgroupManager:
    """Creates per-fragment cgroups under the runner's own cgroup(s)."""

    def __init__(
        self,
        version: int,
        memory_parent: Path,
        pids_parent: Path,
        cpuacct_parent: Path | None = None,
    ) -> None:
        self.version = version
        self.memory_parent = memory_parent
        self.pids_parent = pids_parent
        self.cpuacct_parent = cpuacct_parent

    @classmethod
    def detect(cls, v2_parent: Path | None = None) -> CgroupManager:
        """Find a usable hierarchy and prove it by creating a probe cgroup."""
        errors: list[str] = []
        for candidate in cls._candidates(v2_parent):
            try:
                probe = candidate.create(64 * 1024 * 1024, 8)
                probe.remove()
                return candidate
            except OSError as exc:
                errors.append(f"cgroup v{candidate.version}: {exc.strerror or exc}")
        raise CgroupUnavailable("; ".join(errors) or "no cgroup hierarchy with memory and pids")

    @classmethod
    def _candidates(cls, v2_parent: Path | None) -> list[CgroupManager]:
        mounts = _mounts()
        own = _own_paths()
        candidates: list[CgroupManager] = []
        if v2_parent is not None:
            candidates.append(cls(2, v2_parent, v2_parent))
        for root, point, fstype, _ in mounts:
            if fstype == "cgroup2" and "" in own and v2_parent is None:
                base = _join(root, point, own[""])
                if base is not None and _v2_has_controllers(base):
                    candidates.append(cls(2, base, base))
        found: dict[str, Path | None] = {}
        for root, point, fstype, options in mounts:
            for controller in ("memory", "pids", "cpuacct"):
                if fstype == "cgroup" and controller in options and controller in own:
                    found[controller] = _join(root, point, own[controller])
        memory, pids = found.get("memory"), found.get("pids")
        if memory is not None and pids is not None:
            candidates.append(cls(1, memory, pids, found.get("cpuacct")))
        return candidates

    def create(self, memory_bytes: int, pids: int) -> FragmentCgroup:
        """Create and configure the cgroup of one fragment."""
        name = f"blindgate-{os.getpid()}-{next(_COUNTER)}"
        if self.version == 2:
            directory = self.memory_parent / name
            directory.mkdir(mode=0o755)
            group = FragmentCgroup(2, (directory,), directory)
            try:
                _write(directory / "memory.max", str(memory_bytes))
                with contextlib.suppress(FileNotFoundError):
                    _write(directory / "memory.swap.max", "0")
                _write(directory / "pids.max", str(pids))
            except OSError:
                group.remove()
                raise
            return group
        memory_dir, pids_dir = self.memory_parent / name, self.pids_parent / name
        memory_dir.mkdir(mode=0o755)
        try:
            pids_dir.mkdir(mode=0o755)
        except OSError:
            memory_dir.rmdir()
            raise
        cpu_dir = None
        if self.cpuacct_parent is not None:
            try:
                cpu_dir = self.cpuacct_parent / name
                cpu_dir.mkdir(mode=0o755)
            except OSError:
                cpu_dir = None
        dirs = (memory_dir, pids_dir) if cpu_dir is None else (memory_dir, pids_dir, cpu_dir)
        group = FragmentCgroup(1, dirs, cpu_dir)
        try:
            _write(memory_dir / "memory.limit_in_bytes", str(memory_bytes))
            memsw = memory_dir / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(memory_bytes))
            _write(pids_dir / "pids.max", str(pids))
        except OSError:
            group.remove()
            raise
        return group


def _v2_has_controllers(base: Path) -> bool:
    """Whether children of ``base`` can get the memory and pids controllers."""
    try:
        enabled = set(_read(base / "cgroup.subtree_control").split())
        available = set(_read(base / "cgroup.controllers").split())
    except OSError:
        return False
    if {"memory", "pids"} <= enabled:
        return True
    if not {"memory", "pids"} <= available:
        return False
    try:
        _write(base / "cgroup.subtree_control", "+memory +pids")
    except OSError:
        return False
    return True
