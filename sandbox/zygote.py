"""The fork server inside a sandbox: one engine and asset loaded once, a fresh child per
fragment.

Started like a pooled worker (same launcher, bubblewrap, seccomp filter, cgroup and
rlimits; see :mod:`sandbox.isolation`), it prepares its executor once — the engine
imported, the asset loaded into memory with its contribution-bounded view — and then
serves fragments one at a time on its control socket (descriptor 0, an ``AF_UNIX``
``SOCK_SEQPACKET`` pair whose other end the runner holds):

1. the runner sends ``P`` (prepare) with one descriptor: the next fragment's own socket;
2. the server empties its ``/tmp`` (and refuses to go on if it cannot), then forks;
3. the child closes every descriptor but that socket (and the server's ``/dev/null``
   stdout and stderr), tightens its CPU limit, confines itself with Landlock (signals
   and abstract sockets scoped to its own domain, writes only beneath ``/tmp`` and
   ``/dev``) and tells the runner it exists by writing one byte on its socket: the kernel
   attaches its pid as the runner sees it, so the runner moves it into a cgroup of its
   own.  The child is now ready, before any fragment is known;
4. when a fragment comes, the runner sends the child, on that socket, its stdout and
   stderr pipes and then the program.  The server never reads a program or a result:
   they go straight between the runner and the child, so nothing of one fragment is
   ever in the memory a later child inherits.  The child runs the program once with the
   prepared executor, writes one result document and exits;
5. the server reaps the child and reports ``X`` with its wait status and CPU time, then
   waits for the next ``P``.

A child is isolated from its server and from later children: it holds no descriptor of
the server, cannot signal or ptrace it (Landlock scope, seccomp) nor read its memory (no
``/proc``; ``process_vm_readv`` is killed), its writes to memory are copy-on-write, its
files are removed before the next child starts, and every process it started is killed
with its cgroup.  The server exits when its control socket closes, when it cannot clean
up, or when its own CPU time nears its limit (the runner then starts a fresh one).

Standard library only apart from the executor's engine.
"""

from __future__ import annotations

import array
import json
import os
import resource
import shutil
import socket
import struct
from typing import Any

from sandbox.executors.base import (
    Executor,
    FragmentError,
    read_request,
    run_document,
)

MAX_CONTROL_BYTES = 4096
READY = b"R"
PREPARE = b"P"
GO = b"G"
EXITED = b"X"
CPU_MARGIN_SECONDS = 3


def _receive(control: socket.socket, size: int = MAX_CONTROL_BYTES) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancillary, _flags, _addr = control.recvmsg(size, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % fds.itemsize
            fds.frombytes(payload[:usable])
    return data, list(fds)


def wipe(directory: str) -> bool:
    """Remove everything beneath ``directory``; whether it is empty afterwards."""
    try:
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                _open_up(path)
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return not os.listdir(directory)
    except OSError:
        return False


def _open_up(path: str) -> None:
    """Give the owner full rights on every directory below ``path`` (a child may have
    removed them) so that it can be removed."""
    os.chmod(path, 0o700)
    for root, dirs, _files in os.walk(path):
        for name in dirs:
            full = os.path.join(root, name)
            if not os.path.islink(full):
                os.chmod(full, 0o700)


def _cpu_used() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _near_cpu_limit() -> bool:
    soft, _ = resource.getrlimit(resource.RLIMIT_CPU)
    return soft != resource.RLIM_INFINITY and _cpu_used() + CPU_MARGIN_SECONDS >= soft


def serve_forks(executor: Executor, args: dict[str, Any], control_fd: int = 0) -> int:
    """Serve fragments until the control socket closes (or the server must retire)."""
    from sandbox import landlock  # imported once here, not in every child

    landlock.abi_version()
    control = socket.socket(fileno=control_fd)
    tmp_dir = str(args["context"]["tmp_dir"])
    if not wipe(tmp_dir):
        return 1
    control.sendmsg([READY])
    while True:
        data, fds = _receive(control)
        if not data:
            return 0
        if data[:1] != PREPARE or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return 1
        if not wipe(tmp_dir) or _near_cpu_limit():
            os.close(fds[0])
            return 0
        cpu_seconds = int(json.loads(data[1:])["cpu_seconds"])
        pid = os.fork()
        if pid == 0:
            _child(executor, control.fileno(), fds[0], cpu_seconds, tmp_dir)
        os.close(fds[0])
        _, status, usage = os.wait4(pid, 0)
        wipe(tmp_dir)
        report = {"status": status, "cpu": usage.ru_utime + usage.ru_stime}
        control.sendmsg([EXITED + json.dumps(report).encode()])


def _child(executor: Executor, control_fd: int, fragment_fd: int, cpu: int, tmp: str) -> None:
    """The fragment's process (never returns): made ready before its fragment arrives."""
    code = 0
    try:
        os.close(control_fd)
        os.dup2(fragment_fd, 0)
        os.closerange(3, 65536)
        _confine(cpu, tmp)
        fragment = socket.socket(fileno=0)
        fragment.sendmsg([READY])
        go, outputs = _receive(fragment, 1)
        if go != GO or len(outputs) != 2:
            os._exit(1)
        os.dup2(outputs[0], 1)
        os.dup2(outputs[1], 2)
        for fd in outputs:
            os.close(fd)
        result_fd = os.dup(1)
        os.dup2(2, 1)
    except BaseException:
        os._exit(1)
    try:

        def run() -> str:
            program = str(read_request(0)["program"])
            after_fork = getattr(executor, "after_fork", None)
            if after_fork is not None:
                after_fork()
            return executor.run(program)

        document = run_document(run)
        view = memoryview(document.encode("utf-8"))
        while view:
            view = view[os.write(result_fd, view) :]
    except BaseException:
        code = 1
    os._exit(code)


def _confine(cpu_seconds: int, tmp_dir: str) -> None:
    """The child's own layer: a CPU limit of its own and a Landlock domain of its own."""
    from sandbox import landlock

    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    abi = landlock.abi_version()
    if abi < 6:
        raise FragmentError("internal", "NoLandlockScope")
    ruleset = landlock.create_ruleset(abi)
    landlock.add_path_rule(ruleset, "/", "ro", abi)
    landlock.add_path_rule(ruleset, tmp_dir, "rw", abi)
    landlock.add_path_rule(ruleset, "/dev", "rw", abi)
    landlock.enforce(ruleset)


def exit_report(payload: bytes) -> tuple[int, float]:
    """The runner's reading of an ``X`` report: (wait status, CPU seconds)."""
    report = json.loads(payload)
    status, cpu = report["status"], report["cpu"]
    if not isinstance(status, int) or not isinstance(cpu, int | float):
        raise ValueError("bad exit report")
    return status, float(cpu)


def credentials_pid(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    """The sender's pid from ``SCM_CREDENTIALS`` (as the receiver's pid namespace sees it)."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(payload) >= 12:
            pid, _uid, _gid = struct.unpack("3i", payload[:12])
            return int(pid)
    return None
