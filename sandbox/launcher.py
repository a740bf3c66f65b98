"""The exec'd launcher that puts a fragment's process into its confinement.

The runner never configures a child between ``fork`` and ``exec`` (no
``preexec_fn``: the runner lives in a threaded server).  Instead it spawns this
small program with ``python -I -S``; the launcher decodes its plan (one
argument: a hex-encoded ``marshal`` dump, cheaper to load than JSON), then, in its
own single-threaded process:

1. waits on an inherited pipe until the runner has moved it into the fragment's
   cgroup(s) (the runner writes the pid while this interpreter starts, which
   hides most of the cost of a cgroup v1 migration) and refuses to go on unless
   the runner confirms with one byte;
2. sets the rlimits (CPU, open files, file size, core dumps; never an
   address-space limit, which breaks DuckDB);
3. when the runner is root, *stages* the fragment's sources: unshares a private
   mount namespace, mounts a small tmpfs on the stage directory and, still as
   root, bind-mounts every source (read-only) under it, so the unprivileged uid
   that follows needs no access to the sources' host directories (nothing of this
   is visible outside this process's mount namespace);
4. for ``bwrap``: switches to the unprivileged sandbox uid/gid (when the runner is
   root), so that ``bwrap`` runs unprivileged and its user namespace maps the
   fragment to that uid, never to host root;
5. for the Landlock and ``none`` backends: builds the Landlock ruleset, switches
   to the sandbox uid/gid (when configured), drops every capability, sets
   ``no_new_privs``, enforces Landlock, installs the seccomp program read from an
   inherited pipe and asks for SIGKILL when the runner dies;
6. ``execve``\\ s the next stage: ``bwrap`` (which reads its arguments from an
   inherited pipe, applies namespaces and the same seccomp program itself) or the
   fragment worker, with a clean environment.

Any failure before ``execve`` exits with :data:`LAUNCH_FAILED` and writes only the
failing step's name to stderr.  Standard library only (``ctypes`` is imported
only when a confinement needs it), to start fast.
"""

from __future__ import annotations

import marshal
import os
import resource
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

LAUNCH_FAILED = 121
JOINED = b"1"
PR_SET_PDEATHSIG = 1
SIGKILL = 9
CLONE_NEWNS = 0x00020000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _wait_for_cgroup(sync_fd: int) -> None:
    received = b""
    while chunk := os.read(sync_fd, 16):
        received += chunk
    os.close(sync_fd)
    if received != JOINED:
        raise ValueError("the runner did not confirm the cgroup")


def encode_plan(plan: dict[str, Any]) -> str:
    """The launcher's argument for ``plan``."""
    return marshal.dumps(plan).hex()


def _set_rlimits(limits: dict[str, list[int]]) -> None:
    for name, (wanted_soft, wanted_hard) in limits.items():
        which = getattr(resource, "RLIMIT_" + name.upper())
        soft, hard = wanted_soft, wanted_hard
        _, current_hard = resource.getrlimit(which)
        if current_hard != resource.RLIM_INFINITY:
            hard = min(hard, current_hard)
            soft = min(soft, hard)
        resource.setrlimit(which, (soft, hard))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _mount(libc: Any, source: str | None, target: str, fstype: str | None, flags: int) -> None:
    import ctypes

    data = b"mode=0755,size=1m" if fstype == "tmpfs" else None
    encoded = [None if value is None else value.encode() for value in (source, target, fstype)]
    if libc.mount(encoded[0], encoded[1], encoded[2], flags, data) != 0:
        raise OSError(ctypes.get_errno(), "mount")


def _stage(stage: dict[str, Any]) -> None:
    """Bind each source under ``stage["dir"]`` in a private mount namespace (as root)."""
    import ctypes
    import stat

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    root = stage["dir"]
    _mount(libc, "tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV)
    for host, name in stage["entries"]:
        target = f"{root}/{name}"
        if stat.S_ISDIR(os.stat(host).st_mode):
            os.mkdir(target, 0o755)
        else:
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
        _mount(libc, host, target, None, MS_BIND | MS_REC)
        _mount(libc, None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _drop(uid: int, gid: int, parent_pid: int) -> None:
    """Become the unprivileged sandbox uid/gid (no supplementary groups, no capabilities)."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getgroups():
        raise ValueError("the sandbox uid was not taken")
    if os.getppid() != parent_pid:
        os._exit(LAUNCH_FAILED)


def _confine(confine: dict[str, Any]) -> None:
    import ctypes

    from sandbox import landlock

    program = _read_all(confine["seccomp_fd"]) if confine.get("seccomp_fd") is not None else b""
    ruleset = None
    layer = confine.get("landlock")
    if layer is not None:
        ruleset = landlock.create_ruleset(layer["abi"])
        for path, kind in layer["rules"]:
            landlock.add_path_rule(ruleset, path, kind, layer["abi"])
    uid, gid = confine.get("uid"), confine.get("gid")
    if uid is not None and gid is not None:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    landlock.drop_all_capabilities()
    landlock.set_no_new_privs()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)
    if os.getppid() != confine["parent_pid"]:
        os._exit(LAUNCH_FAILED)
    if ruleset is not None:
        landlock.enforce(ruleset)
    if program:
        landlock.install_seccomp(program)


def run(plan: dict[str, Any]) -> None:
    """Apply ``plan`` to this process and exec its target (never returns)."""
    step = "cgroup"
    try:
        if plan.get("sync_fd") is not None:
            _wait_for_cgroup(plan["sync_fd"])
        step = "rlimits"
        _set_rlimits(plan.get("rlimits", {}))
        if plan.get("stage") is not None:
            step = "stage"
            _stage(plan["stage"])
        if plan.get("drop") is not None:
            step = "drop"
            _drop(plan["drop"][0], plan["drop"][1], plan["parent_pid"])
        if plan.get("confine") is not None:
            step = "confine"
            _confine(plan["confine"])
        step = "exec"
        argv: list[str] = plan["exec"]
        os.execve(argv[0], argv, plan.get("env", {}))  # noqa: S606
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        os.write(2, f"launcher: {step} failed\n".encode())
        os._exit(LAUNCH_FAILED)


def main() -> None:
    """Entry point: ``python -I -S -c <boot> PLAN``."""
    try:
        plan = marshal.loads(bytes.fromhex(sys.argv[1]))  # noqa: S302 - written by the runner
    except (IndexError, ValueError, EOFError, TypeError):
        os.write(2, b"launcher: bad plan\n")
        os._exit(LAUNCH_FAILED)
    run(plan)
