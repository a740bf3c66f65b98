"""Landlock, capability and seccomp primitives through raw syscalls (ctypes).

Standard library only: this module is imported by the exec'd launcher, before
the fragment's interpreter starts, and must stay cheap to import.
"""

from __future__ import annotations

import ctypes
import os
import stat

SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1

FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13
FS_TRUNCATE = 1 << 14
FS_IOCTL_DEV = 1 << 15

NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

FILE_ACCESS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
READ_ACCESS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
DEV_ACCESS = FS_READ_FILE | FS_WRITE_FILE

PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECBITS_LOCKED_NOROOT = 0x2F
LINUX_CAPABILITY_VERSION_3 = 0x20080522


class LandlockError(OSError):
    """A Landlock or confinement syscall failed."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise LandlockError(err, f"{what}: {os.strerror(err)}")
    return result


def abi_version() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    libc = _libc()
    result = int(
        libc.syscall(SYS_LANDLOCK_CREATE_RULESET, None, 0, LANDLOCK_CREATE_RULESET_VERSION)
    )
    return max(result, 0)


def handled_fs_access(abi: int) -> int:
    """All filesystem rights that the given ABI can restrict."""
    rights = (FS_MAKE_SYM << 1) - 1
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def create_ruleset(abi: int) -> int:
    """Create a ruleset handling every right the ABI knows; returns its descriptor.

    Filesystem rights are denied unless a rule grants them.  TCP bind and connect
    (ABI 4) are denied outright, and from ABI 6 so are abstract unix sockets and
    signals to processes outside the Landlock domain.
    """
    if abi < 1:
        raise LandlockError(0, "landlock is not available")
    attr = _RulesetAttr(handled_access_fs=handled_fs_access(abi))
    size = 8
    if abi >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    libc = _libc()
    fd = int(libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0))
    return _check(fd, "landlock_create_ruleset")


def add_path_rule(ruleset: int, path: str, kind: str, abi: int) -> None:
    """Grant ``kind`` access beneath ``path``.

    ``kind`` is ``ro`` (read and execute), ``rw`` (every right) or ``dev`` (read
    and write a device file).  On a regular file only file rights apply.
    """
    handled = handled_fs_access(abi)
    wanted = {"ro": READ_ACCESS, "rw": handled, "dev": DEV_ACCESS}[kind]
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            wanted &= FILE_ACCESS
        rule = _PathBeneathAttr(allowed_access=wanted & handled, parent_fd=fd)
        result = _libc().syscall(
            SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0
        )
        _check(int(result), "landlock_add_rule")
    finally:
        os.close(fd)


def enforce(ruleset: int) -> None:
    """Confine the calling process and its future children (needs ``no_new_privs``)."""
    try:
        _check(int(_libc().syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0)), "restrict_self")
    finally:
        os.close(ruleset)


def set_no_new_privs() -> None:
    """Forbid gaining privileges through execve (setuid bits, file capabilities)."""
    _check(int(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)), "PR_SET_NO_NEW_PRIVS")


def drop_all_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable sets.

    Also locks the ``NOROOT`` secure bits so that uid 0 regains nothing on exec.
    Works for root (which holds ``CAP_SETPCAP``) and is a no-op for an ordinary user.
    """
    libc = _libc()
    if os.geteuid() == 0:
        _check(int(libc.prctl(PR_SET_SECUREBITS, SECBITS_LOCKED_NOROOT, 0, 0, 0)), "securebits")
        cap = 0
        while int(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) == 0:
            cap += 1
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = _CapHeader(version=LINUX_CAPABILITY_VERSION_3, pid=0)
    data = (_CapData * 2)()
    _check(int(libc.capset(ctypes.byref(header), data)), "capset")


def install_seccomp(program: bytes) -> None:
    """Install a raw BPF program as this process's seccomp filter."""
    if not program or len(program) % 8:
        raise LandlockError(0, "invalid BPF program")
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len=len(program) // 8, filter=ctypes.addressof(buffer))
    _check(
        int(_libc().prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0)),
        "PR_SET_SECCOMP",
    )
