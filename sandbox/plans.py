"""Command lines and launcher plans for each isolation backend.

A :class:`LaunchRequest` describes one sandbox (executor, asset, input
directory, limits); :func:`build_plan` turns it into the launcher's JSON plan:
the cgroup to join, the rlimits, the confinement to apply and the command to
``execve`` (``bwrap`` wrapping the worker, or the worker itself).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.launcher import encode_plan
from sandbox.runtime import RuntimeLayout
from sandbox.spec import Limits
from sandbox.worker import boot_code

ASSET_DIR = "/data"
INPUT_DIR = "/input"
TMP_DIR = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox

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
    """Everything fixed when a sandbox starts (before its fragment is known)."""

    executor: str
    asset_path: Path
    input_dir: Path | None
    limits: Limits
    allow_test_executor: bool


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
        "context": {
            "asset_path": asset_inside,
            "asset_format": fmt or "unknown",
            "input_dir": input_inside,
            "tmp_dir": tmp_dir,
            "memory_bytes": limits.memory_bytes,
            "output_bytes": limits.output_bytes,
            "threads": limits.threads,
            "tmpfs_bytes": limits.tmpfs_bytes,
        },
    }


def _worker_command(layout: RuntimeLayout, args: dict[str, Any]) -> list[str]:
    return [
        layout.python,
        "-I",
        "-S",
        "-c",
        boot_code(layout.package_dir, list(layout.site_dirs)),
        json.dumps(args, separators=(",", ":")),
    ]


def _environment(tmp_dir: str) -> dict[str, str]:
    return {"HOME": tmp_dir, "TMPDIR": tmp_dir, "TZ": "UTC", "LANG": "C.UTF-8"}


def bwrap_command(
    layout: RuntimeLayout, request: LaunchRequest, confinement: Confinement, inner: list[str]
) -> list[str]:
    """The ``bwrap`` argv that runs ``inner`` in fresh namespaces."""
    assert confinement.bwrap is not None
    argv = [
        confinement.bwrap,
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
    for key, value in _environment(TMP_DIR).items():
        argv += ["--setenv", key, value]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(request.limits.tmpfs_bytes), "--tmpfs", TMP_DIR]
    for path in layout.read_only_paths:
        argv += ["--ro-bind", path, path]
    for link, target in layout.lib_links:
        argv += ["--symlink", target, link] if target else ["--ro-bind", link, link]
    argv += ["--ro-bind", str(request.asset_path), asset_inside_bwrap(request.asset_path)]
    if request.input_dir is not None:
        argv += ["--ro-bind", str(request.input_dir), INPUT_DIR]
    argv += ["--remount-ro", "/", "--chdir", TMP_DIR]
    if confinement.seccomp_fd is not None:
        argv += ["--seccomp", str(confinement.seccomp_fd)]
    return [*argv, "--", *inner]


def asset_inside_bwrap(asset: Path) -> str:
    """Where the asset file appears inside a namespace sandbox."""
    suffixes = [suffix.lower() for suffix in asset.suffixes]
    keep = suffixes[-2:] if suffixes[-1:] == [".gz"] else suffixes[-1:]
    return f"{ASSET_DIR}/asset{''.join(keep)}"


def build_plan(
    layout: RuntimeLayout,
    request: LaunchRequest,
    confinement: Confinement,
    sync_fd: int | None,
    host_tmp: Path | None,
    startup_cpu_seconds: int,
) -> dict[str, Any]:
    """The launcher plan for ``request`` under ``confinement``."""
    limits = request.limits
    cpu = limits.cpu_seconds + startup_cpu_seconds
    rlimits: dict[str, list[int]] = {
        "cpu": [cpu, cpu + 1],
        "nofile": [limits.open_files, limits.open_files],
        "fsize": [limits.file_size_bytes, limits.file_size_bytes],
        "core": [0, 0],
    }
    if confinement.backend == "bwrap":
        inner = _worker_command(
            layout,
            worker_args(
                request,
                asset_inside_bwrap(request.asset_path),
                INPUT_DIR if request.input_dir is not None else None,
                TMP_DIR,
            ),
        )
        return {
            "sync_fd": sync_fd,
            "rlimits": rlimits,
            "confine": None,
            "exec": bwrap_command(layout, request, confinement, inner),
            "env": {},
        }
    assert host_tmp is not None
    tmp = str(host_tmp)
    inner = _worker_command(
        layout,
        worker_args(
            request,
            str(request.asset_path),
            str(request.input_dir) if request.input_dir is not None else None,
            tmp,
        ),
    )
    if confinement.separate_uid and sync_fd is None:
        rlimits["nproc"] = [limits.pids, limits.pids]
    landlock = None
    if confinement.backend == "landlock":
        rules = [[path, "ro"] for path in layout.read_only_paths]
        rules += [[link, "ro"] for link, _ in layout.lib_links]
        rules += [[str(request.asset_path), "ro"], [tmp, "rw"], ["/dev/null", "dev"]]
        rules += [["/dev/urandom", "ro"], ["/proc/self/cgroup", "ro"]]
        rules += [[path, "ro"] for path in CGROUP_READ_PATHS]
        if request.input_dir is not None:
            rules.append([str(request.input_dir), "ro"])
        landlock = {"abi": confinement.landlock_abi, "rules": rules}
    return {
        "sync_fd": sync_fd,
        "rlimits": rlimits,
        "confine": {
            "uid": confinement.uid if confinement.separate_uid else None,
            "gid": confinement.gid if confinement.separate_uid else None,
            "landlock": landlock,
            "seccomp_fd": confinement.seccomp_fd,
            "parent_pid": confinement.parent_pid,
        },
        "exec": inner,
        "env": _environment(tmp),
    }


def launcher_command(layout: RuntimeLayout, plan: dict[str, Any]) -> list[str]:
    """The argv that starts the launcher with ``plan``."""
    boot = (
        f"import sys; sys.path.insert(0, {layout.package_parent!r}); "
        "from sandbox.launcher import main; main()"
    )
    return [layout.python, "-I", "-S", "-c", boot, encode_plan(plan)]
