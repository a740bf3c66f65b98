"""Per-fragment cgroups bounding memory and the number of processes.

Each fragment gets its own cgroup below the cgroup the runner was started in (so
that any limit placed on the runner still applies to its fragments).  The runner
moves the launcher into the cgroup while the launcher is blocked on a pipe, before
it executes the sandbox, so every process of the fragment is inside.

cgroup v2 (a *delegated* cgroup ``D``, e.g. a systemd service with
``Delegate=yes``): the kernel's "no internal processes" rule forbids enabling
controllers for the children of a cgroup that holds processes, so the runner first
moves every process of ``D`` into the leaf ``D/agent``, then enables ``memory`` and
``pids`` in ``D/cgroup.subtree_control``, creates ``D/fragments`` (no processes,
the same controllers enabled for its children) and puts each fragment in
``D/fragments/<name>``.  Fragment cgroups a previous agent left behind (named
after a pid that is gone) are removed at start-up.

cgroup v1 (separate ``memory`` and ``pids`` hierarchies, as on hybrid hosts): each
fragment's cgroups are children of the runner's own cgroup in each hierarchy.

Filesystem access goes through :class:`CgroupFiles`, so the delegation logic can be
tested against a fake tree that enforces the kernel's rules.
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


CONTROLLERS = ("memory", "pids")
AGENT_LEAF = "agent"
FRAGMENTS = "fragments"
PREFIX = "blindgate-"


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii")


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


class CgroupFiles:
    """The cgroup filesystem as the kernel presents it (replaceable in tests)."""

    def read(self, path: Path) -> str:
        """The content of a cgroup file."""
        return _read(path)

    def write(self, path: Path, value: str) -> None:
        """Write one value to a cgroup file (the kernel applies it or refuses)."""
        _write(path, value)

    def mkdir(self, path: Path) -> None:
        """Create a cgroup (the kernel fills in its files)."""
        path.mkdir(mode=0o755)

    def rmdir(self, path: Path) -> None:
        """Remove an empty cgroup."""
        path.rmdir()

    def children(self, path: Path) -> list[Path]:
        """The child cgroups of ``path``."""
        return [entry for entry in path.iterdir() if entry.is_dir()]


REAL_FILES = CgroupFiles()


def delegate_v2(base: Path, files: CgroupFiles = REAL_FILES, *, is_root: bool = False) -> Path:
    """Prepare delegated cgroup ``base`` and return the parent for fragment cgroups.

    Moves the processes of ``base`` into ``base/agent`` (unless ``base`` is the
    hierarchy's root, which the no-internal-processes rule exempts), enables
    memory and pids for the children of ``base`` and of ``base/fragments``, and
    removes fragment cgroups of agents that are gone.  A runner whose own cgroup is
    already a leaf named ``agent`` (a second runner in the same process, or systemd's
    ``DelegateSubgroup=agent``) uses its parent as ``base``.
    """
    if base.name == AGENT_LEAF:
        base = base.parent
    available = set(files.read(base / "cgroup.controllers").split())
    if not set(CONTROLLERS) <= available:
        raise OSError(0, f"the delegated cgroup lacks {' and '.join(CONTROLLERS)}")
    if not set(CONTROLLERS) <= set(files.read(base / "cgroup.subtree_control").split()):
        if not is_root:
            leaf = base / AGENT_LEAF
            if not leaf.is_dir():
                files.mkdir(leaf)
            for pid in files.read(base / "cgroup.procs").split():
                with contextlib.suppress(ProcessLookupError):
                    files.write(leaf / "cgroup.procs", pid)
        files.write(base / "cgroup.subtree_control", _enable())
    fragments = base / FRAGMENTS
    if not fragments.is_dir():
        files.mkdir(fragments)
    if not set(CONTROLLERS) <= set(files.read(fragments / "cgroup.subtree_control").split()):
        files.write(fragments / "cgroup.subtree_control", _enable())
    remove_stale(fragments, files)
    return fragments


def _enable() -> str:
    return " ".join("+" + name for name in CONTROLLERS)


def _owner_pid(name: str) -> int | None:
    """The runner pid a fragment cgroup's name carries (``blindgate-<pid>-<n>``)."""
    if not name.startswith(PREFIX):
        return None
    pid, _, _ = name[len(PREFIX) :].partition("-")
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(parent: Path, files: CgroupFiles = REAL_FILES) -> None:
    """Remove fragment cgroups under ``parent`` whose runner is gone (empty ones only)."""
    for child in files.children(parent):
        owner = _owner_pid(child.name)
        if owner is None or owner == os.getpid() or _alive(owner):
            continue
        with contextlib.suppress(OSError):
            files.rmdir(child)


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
    files: CgroupFiles = REAL_FILES

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
            self.files.write(Path(path), str(pid))

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
                    self.files.rmdir(directory)
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
        files: CgroupFiles = REAL_FILES,
    ) -> None:
        self.version = version
        self.memory_parent = memory_parent
        self.pids_parent = pids_parent
        self.cpuacct_parent = cpuacct_parent
        self.files = files

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
            with contextlib.suppress(OSError):
                fragments = delegate_v2(v2_parent)
                candidates.append(cls(2, fragments, fragments))
        for root, point, fstype, _ in mounts:
            if fstype == "cgroup2" and "" in own and v2_parent is None:
                base = _join(root, point, own[""])
                if base is not None and _v2_available(base):
                    with contextlib.suppress(OSError):
                        fragments = delegate_v2(base, is_root=base == Path(point))
                        candidates.append(cls(2, fragments, fragments))
        found: dict[str, Path | None] = {}
        for root, point, fstype, options in mounts:
            for controller in ("memory", "pids", "cpuacct"):
                if fstype == "cgroup" and controller in options and controller in own:
                    found[controller] = _join(root, point, own[controller])
        memory, pids = found.get("memory"), found.get("pids")
        for parent in found.values():
            if parent is not None:
                with contextlib.suppress(OSError):
                    remove_stale(parent)
        if memory is not None and pids is not None:
            candidates.append(cls(1, memory, pids, found.get("cpuacct")))
        return candidates

    def create(self, memory_bytes: int, pids: int) -> FragmentCgroup:
        """Create and configure the cgroup of one fragment."""
        name = f"{PREFIX}{os.getpid()}-{next(_COUNTER)}"
        if self.version == 2:
            directory = self.memory_parent / name
            self.files.mkdir(directory)
            group = FragmentCgroup(2, (directory,), directory, self.files)
            try:
                self.files.write(directory / "memory.max", str(memory_bytes))
                with contextlib.suppress(FileNotFoundError):
                    self.files.write(directory / "memory.swap.max", "0")
                self.files.write(directory / "pids.max", str(pids))
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


def _v2_available(base: Path) -> bool:
    """Whether ``base`` offers the memory and pids controllers to delegate."""
    try:
        return set(CONTROLLERS) <= set(_read(base / "cgroup.controllers").split())
    except OSError:
        return False
