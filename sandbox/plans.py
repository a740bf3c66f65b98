"""Command lines and launcher plans for each isolation backend.

A :class:`LaunchRequest` describes one sandbox (executor, asset, input
directory, limits); :func:`build_plan` turns it into the launcher's plan: the
cgroup to join, the rlimits, the sources to stage, the identity to take, the
confinement to apply and the command to ``execve`` (``bwrap`` wrapping the
worker, or the worker itself).

Under namespaces every host path the worker needs is mounted at a *neutral*
path (:data:`RUNTIME_DIR`, :data:`SITE_DIR`, :data:`PACKAGE_DIR`,
:data:`ASSET_DIR`, :data:`INPUT_DIR`), ``bwrap`` reads its arguments from a pipe
(``--args FD``) and no ``/proc`` is mounted, so a fragment learns no host path
of the asset, the runtime, the job input or the launcher: not from its
environment, its own paths, error text, another process's command line nor the
mount table (which names the source of every bind mount).

When the runner is root, the launcher *stages* each source first: still root, it
unshares a private mount namespace and binds them under
:attr:`Confinement.stage_dir` (see :mod:`sandbox.launcher`), then drops to the
unprivileged sandbox uid.  The sandbox uid therefore needs read access to
the files themselves but not to their host directories (a runtime under
``/root`` works), and ``bwrap`` runs unprivileged, so its user namespace maps
the fragment's uid to that unprivileged host uid, never to root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.launcher import encode_plan
from sandbox.runtime import RuntimeLayout
from sandbox.spec import Bound, Limits
from sandbox.worker import boot_code

ASSET_DIR = "/data"
INPUT_DIR = "/input"
TMP_DIR = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox
RUNTIME_DIR = "/opt/python"
SITE_DIR = "/opt/site"
PACKAGE_DIR = "/opt/blindgate/sandbox"

CGROUP_READ_PATHS = ("/sys/fs/cgroup",)
"""Read-only under Landlock: DuckDB fails on EACCES when it probes its cgroup limits."""

ASSET_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def asset_format(path: Path) -> str | None:
    """``csv`` or ``parquet`` from the file name, ``None`` if unsupported."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if not suffixes:
        return None
    if suffixes[-1] == ".gz" and suffixes[-2:-1] not in ([".csv"], [".tsv"]):
        return None
    return ASSET_FORMATS.get(suffixes[-1])


@dataclass(frozen=True)
class LaunchRequest:
    """Everything fixed when a sandbox starts (before its fragment is known).

    ``forks`` starts a fork server (:mod:`sandbox.zygote`) instead of a one-fragment
    worker; ``bound`` asks for the asset's contribution-bounded view.
    """

    executor: str
    asset_path: Path
    input_dir: Path | None
    limits: Limits
    allow_test_executor: bool
    bound: Bound | None = None
    forks: bool = False
    writable_input: str | None = None
    """A directory of the input (relative, existing and empty) that gets a tmpfs of its
    own, ``limits.tmpfs_bytes`` large: where a Python job writes its outputs.  Only a
    namespace sandbox can mount it; other backends refuse such a request."""


@dataclass(frozen=True)
class Confinement:
    """Backend-specific settings decided at start-up."""

    backend: str
    bwrap: str | None
    uid: int
    gid: int
    landlock_abi: int
    separate_uid: bool
    seccomp_fd: int | None
    parent_pid: int
    stage_dir: str | None = None
    args_fd: int | None = None


def worker_args(
    request: LaunchRequest, asset_inside: str, input_inside: str | None, tmp_dir: str
) -> dict[str, Any]:
    """The worker's JSON arguments (paths as seen inside the sandbox)."""
    limits = request.limits
    fmt = asset_format(request.asset_path)
    return {
        "executor": request.executor,
        "allow_test": request.allow_test_executor,
        "cpu_seconds": limits.cpu_seconds,
        "forks": request.forks,
        "context": {
            "asset_path": asset_inside,
            "asset_format": fmt or "unknown",
            "input_dir": input_inside,
            "tmp_dir": tmp_dir,
            "memory_bytes": limits.memory_bytes,
            "output_bytes": limits.output_bytes,
            "threads": limits.threads,
            "tmpfs_bytes": limits.tmpfs_bytes,
            "forks": request.forks,
            "bound": request.bound.as_dict() if request.bound is not None else None,
        },
    }


@dataclass(frozen=True)
class View:
    """Where the worker finds its interpreter, libraries, asset and input."""

    python: str
    site_dirs: tuple[str, ...]
    package_dir: str
    asset: str
    input_dir: str | None
    library_path: str | None


def _entry_name(dest: str) -> str:
    return dest.strip("/").replace("/", "-")


def sources(layout: RuntimeLayout, request: LaunchRequest) -> list[tuple[str, str]]:
    """(host path, neutral path) of everything a worker reads besides system paths."""
    found: list[tuple[str, str]] = []
    if layout.relocatable:
        found.append((layout.base_prefix, RUNTIME_DIR))
    else:
        found.append((layout.base_executable, layout.base_executable))
    for index, directory in enumerate(layout.site_dirs):
        found.append((os.path.realpath(directory), f"{SITE_DIR}/{index}"))
    found.append((layout.package_dir, PACKAGE_DIR))
    found.append((str(request.asset_path), asset_inside_bwrap(request.asset_path)))
    if request.input_dir is not None:
        found.append((str(request.input_dir), INPUT_DIR))
    return found


def staged_entries(layout: RuntimeLayout, request: LaunchRequest) -> list[list[str]]:
    """The launcher's staging list: ``[host path, entry name]`` per source."""
    return [[host, _entry_name(dest)] for host, dest in sources(layout, request)]


def view(
    layout: RuntimeLayout, request: LaunchRequest, place: Callable[[str, str], str] | None
) -> View:
    """The worker's paths, with ``place(host, neutral)`` giving where a source appears.

    ``place`` is ``None`` when the worker sees the host paths themselves.
    """
    if place is None:
        return View(
            python=layout.python,
            site_dirs=layout.site_dirs,
            package_dir=layout.package_dir,
            asset=str(request.asset_path),
            input_dir=str(request.input_dir) if request.input_dir is not None else None,
            library_path=None,
        )
    if layout.relocatable:
        runtime = place(layout.base_prefix, RUNTIME_DIR)
        python = f"{runtime}/{layout.executable_in_prefix}"
        library_path: str | None = f"{runtime}/lib"
    else:
        python = place(layout.base_executable, layout.base_executable)
        library_path = None
    sites = tuple(
        place(os.path.realpath(directory), f"{SITE_DIR}/{index}")
        for index, directory in enumerate(layout.site_dirs)
    )
    return View(
        python=python,
        site_dirs=sites,
        package_dir=place(layout.package_dir, PACKAGE_DIR),
        asset=place(str(request.asset_path), asset_inside_bwrap(request.asset_path)),
        input_dir=(
            place(str(request.input_dir), INPUT_DIR) if request.input_dir is not None else None
        ),
        library_path=library_path,
    )


def _worker_command(seen: View, args: dict[str, Any]) -> list[str]:
    return [
        seen.python,
        "-I",
        "-S",
        "-c",
        boot_code(seen.package_dir, list(seen.site_dirs)),
        json.dumps(args, separators=(",", ":")),
    ]


def _environment(tmp_dir: str, seen: View) -> dict[str, str]:
    env = {"HOME": tmp_dir, "TMPDIR": tmp_dir, "TZ": "UTC", "LANG": "C.UTF-8"}
    if seen.library_path is not None:
        env["LD_LIBRARY_PATH"] = seen.library_path
    return env


def bwrap_arguments(
    layout: RuntimeLayout,
    request: LaunchRequest,
    confinement: Confinement,
    seen: View,
) -> list[str]:
    """``bwrap``'s options, read from ``--args FD`` (the command follows on its argv).

    No procfs is mounted: the runtimes need none, and a procfs would show the
    source of every bind mount in ``/proc/*/mountinfo``.
    """
    argv = [
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--uid",
        str(confinement.uid),
        "--gid",
        str(confinement.gid),
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--hostname",
        "sandbox",
    ]
    for key, value in _environment(TMP_DIR, seen).items():
        argv += ["--setenv", key, value]
    argv += ["--dev", "/dev"]
    argv += ["--size", str(request.limits.tmpfs_bytes), "--tmpfs", TMP_DIR]
    for path in layout.system_paths:
        argv += ["--ro-bind", path, path]
    for link, target in layout.lib_links:
        argv += ["--symlink", target, link] if target else ["--ro-bind", link, link]
    for host, dest in sources(layout, request):
        source = host
        if confinement.stage_dir is not None:
            source = f"{confinement.stage_dir}/{_entry_name(dest)}"
        argv += ["--ro-bind", source, dest]
    if request.writable_input is not None and request.input_dir is not None:
        target = f"{INPUT_DIR}/{request.writable_input}"
        argv += ["--size", str(request.limits.tmpfs_bytes), "--tmpfs", target]
    argv += ["--remount-ro", "/", "--chdir", TMP_DIR]
    if confinement.seccomp_fd is not None:
        argv += ["--seccomp", str(confinement.seccomp_fd)]
    return argv


def asset_inside_bwrap(asset: Path) -> str:
    """Where the asset file appears inside a namespace sandbox."""
    suffixes = [suffix.lower() for suffix in asset.suffixes]
    keep = suffixes[-2:] if suffixes[-1:] == [".gz"] else suffixes[-1:]
    return f"{ASSET_DIR}/asset{''.join(keep)}"


def _rlimits(limits: Limits, startup_cpu_seconds: int) -> dict[str, list[int]]:
    cpu = limits.cpu_seconds + startup_cpu_seconds
    return {
        "cpu": [cpu, cpu + 1],
        "nofile": [limits.open_files, limits.open_files],
        "fsize": [limits.file_size_bytes, limits.file_size_bytes],
        "core": [0, 0],
    }


def build_plan(
    layout: RuntimeLayout,
    request: LaunchRequest,
    confinement: Confinement,
    sync_fd: int | None,
    host_tmp: Path | None,
    startup_cpu_seconds: int,
    python_args: list[str] | None = None,
) -> tuple[dict[str, Any], bytes | None]:
    """The launcher plan for ``request`` under ``confinement``.

    Returns the plan and, for ``bwrap``, the NUL-separated options the runner
    writes to :attr:`Confinement.args_fd` (they name the host sources, so they are
    kept off every command line; the command itself holds only neutral paths).
    ``python_args`` replaces the worker's interpreter arguments (probes and
    benchmarks).
    """
    limits = request.limits
    rlimits = _rlimits(limits, startup_cpu_seconds)
    stage: dict[str, Any] | None = None
    if confinement.stage_dir is not None:
        stage = {"dir": confinement.stage_dir, "entries": staged_entries(layout, request)}
    if confinement.backend == "bwrap":
        assert confinement.bwrap is not None
        assert confinement.args_fd is not None
        seen = view(layout, request, lambda _host, dest: dest)
        inner = _worker_command(seen, worker_args(request, seen.asset, seen.input_dir, TMP_DIR))
        if python_args is not None:
            inner = [seen.python, *python_args]
        block = bwrap_arguments(layout, request, confinement, seen)
        drop = [confinement.uid, confinement.gid] if confinement.separate_uid else None
        plan: dict[str, Any] = {
            "sync_fd": sync_fd,
            "rlimits": rlimits,
            "stage": stage,
            "drop": drop,
            "parent_pid": confinement.parent_pid,
            "confine": None,
            "exec": [confinement.bwrap, "--args", str(confinement.args_fd), "--", *inner],
            "env": {},
        }
        return plan, b"".join(arg.encode("utf-8") + b"\0" for arg in block)
    if request.writable_input is not None:
        raise OSError(0, "a writable input directory needs a namespace sandbox")
    assert host_tmp is not None
    tmp = str(host_tmp)
    stage_dir = confinement.stage_dir
    place = None
    if stage_dir is not None:
        place = lambda _host, dest: f"{stage_dir}/{_entry_name(dest)}"  # noqa: E731
    seen = view(layout, request, place)
    inner = _worker_command(seen, worker_args(request, seen.asset, seen.input_dir, tmp))
    if python_args is not None:
        inner = [seen.python, *python_args]
    if confinement.separate_uid and sync_fd is None:
        rlimits["nproc"] = [limits.pids, limits.pids]
    landlock: dict[str, Any] | None = None
    if confinement.backend == "landlock":
        if stage_dir is not None:
            rules = [[stage_dir, "ro"]] + [[path, "ro"] for path in layout.system_paths]
        else:
            rules = [[path, "ro"] for path in layout.read_only_paths]
            rules += [[str(request.asset_path), "ro"]]
            if request.input_dir is not None:
                rules.append([str(request.input_dir), "ro"])
        rules += [[link, "ro"] for link, _ in layout.lib_links]
        rules += [[tmp, "rw"], ["/dev/null", "dev"]]
        rules += [["/dev/urandom", "ro"], ["/proc/self/cgroup", "ro"]]
        rules += [[path, "ro"] for path in CGROUP_READ_PATHS]
        landlock = {"abi": confinement.landlock_abi, "rules": rules}
    plan = {
        "sync_fd": sync_fd,
        "rlimits": rlimits,
        "stage": stage,
        "drop": None,
        "parent_pid": confinement.parent_pid,
        "confine": {
            "uid": confinement.uid if confinement.separate_uid else None,
            "gid": confinement.gid if confinement.separate_uid else None,
            "landlock": landlock,
            "seccomp_fd": confinement.seccomp_fd,
            "parent_pid": confinement.parent_pid,
        },
        "exec": inner,
        "env": _environment(tmp, seen),
    }
    return plan, None


def launcher_command(layout: RuntimeLayout, plan: dict[str, Any]) -> list[str]:
    """The argv that starts the launcher with ``plan``."""
    boot = (
        f"import sys; sys.path.insert(0, {layout.package_parent!r}); "
        "from sandbox.launcher import main; main()"
    )
    return [layout.python, "-I", "-S", "-c", boot, encode_plan(plan)]
