"""Build the seccomp-BPF program that every sandboxed fragment runs under.

The filter is a deny list on top of the other layers: syscalls that only an
attacker needs kill the whole process (the parent reports
``sandbox_violation``), a few that programs legitimately probe fail with an
errno instead.  ``clone3`` fails with ``ENOSYS`` so that glibc falls back to
``clone``, whose flags *can* be inspected, and ``clone`` with any namespace
flag fails with ``EPERM``.  Foreign architectures (e.g. 32-bit ``int 0x80``
syscalls) kill the process.

The program is compiled once in the parent with libseccomp (``pyseccomp``, or
the ``seccomp`` bindings shipped with libseccomp) and exported as raw BPF, which
bubblewrap loads from ``--seccomp FD`` and the Landlock launcher installs with
``prctl``.
"""

from __future__ import annotations

import errno
import importlib
import os
import socket
import tempfile
from types import ModuleType
from typing import Any

KILL_SYSCALLS: tuple[str, ...] = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "iopl",
    "ioperm",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "quotactl",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "uselib",
    "vhangup",
    "fanotify_init",
    "lookup_dcookie",
    "_sysctl",
    "nfsservctl",
)
"""Syscalls whose use is treated as an attack: the process is killed (SIGSYS)."""

HOST_ONLY_ERRNO_SYSCALLS: tuple[str, ...] = (
    "setsid",
    "setpgid",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "chown",
    "fchown",
    "lchown",
    "fchownat",
    "setxattr",
    "lsetxattr",
    "fsetxattr",
    "removexattr",
    "lremovexattr",
    "fremovexattr",
    "utime",
    "utimes",
    "futimesat",
    "utimensat",
)
"""Denied (``EPERM``) only without namespaces: leaving the process group, and the
metadata changes (mode, owner, xattrs, times) that Landlock does not govern."""

CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)


class SeccompUnavailable(RuntimeError):
    """No libseccomp binding could be loaded or the filter could not be built."""


def load_binding() -> ModuleType:
    """Import ``pyseccomp``, falling back to the ``seccomp`` module."""
    for name in ("pyseccomp", "seccomp"):
        try:
            return importlib.import_module(name)
        except (ImportError, RuntimeError, OSError):
            continue
    raise SeccompUnavailable("neither pyseccomp nor seccomp can be imported")


def build_filter_bpf(*, allow_unix_sockets: bool) -> bytes:
    """Compile the filter and return the raw BPF program (``struct sock_filter[]``).

    With ``allow_unix_sockets`` (used inside a network namespace) ``socket`` and
    ``socketpair`` are allowed for ``AF_UNIX`` only; otherwise every socket is
    refused and ``setsid``/``setpgid`` are denied as well.
    """
    sc = load_binding()
    try:
        filt = sc.SyscallFilter(sc.ALLOW)
        filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
        for name in KILL_SYSCALLS:
            _add(sc, filt, sc.KILL_PROCESS, name)
        _add(sc, filt, sc.ERRNO(errno.ENOSYS), "clone3")
        for flag in CLONE_NAMESPACE_FLAGS:
            filt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        for name in ("socket", "socketpair"):
            if allow_unix_sockets:
                filt.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), name, sc.Arg(0, sc.NE, socket.AF_UNIX))
            else:
                filt.add_rule(sc.ERRNO(errno.EACCES), name)
        if not allow_unix_sockets:
            for name in HOST_ONLY_ERRNO_SYSCALLS:
                _add(sc, filt, sc.ERRNO(errno.EPERM), name)
        return _export(filt)
    except SeccompUnavailable:
        raise
    except (OSError, RuntimeError, ValueError, AttributeError) as exc:
        raise SeccompUnavailable("building the seccomp filter failed") from exc


def _add(sc: ModuleType, filt: Any, action: int, name: str) -> None:
    """Add a rule, ignoring syscalls this architecture does not have."""
    try:
        number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    except (OSError, ValueError):
        return
    if isinstance(number, int) and number < 0:
        return
    filt.add_rule(action, name)


def _export(filt: Any) -> bytes:
    with tempfile.TemporaryFile() as handle:
        filt.export_bpf(handle)
        handle.flush()
        os.lseek(handle.fileno(), 0, os.SEEK_SET)
        program: bytes = handle.read()
    if not program or len(program) % 8:
        raise SeccompUnavailable("libseccomp exported an invalid BPF program")
    return program


def bpf_pipe(program: bytes) -> int:
    """Return the read end of a pipe holding ``program`` (write end closed).

    Each sandbox needs its own descriptor: bubblewrap reads the program to EOF.
    The descriptor is inheritable so that it can be passed with ``pass_fds``.
    """
    read_fd, write_fd = os.pipe()
    try:
        if len(program) > 60 * 1024:
            raise SeccompUnavailable("BPF program larger than a pipe buffer")
        os.write(write_fd, program)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return read_fd
