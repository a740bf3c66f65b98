"""Hostile jobs, each run in the real sandbox on every backend this host offers.

Every case must be stopped with the right reason code, or fail inside the sandbox
(the snippet then reports ``blocked:<error>``); no secret may reach the output,
and the runner must go on serving an ordinary DuckDB fragment afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
import textwrap
from collections.abc import Iterator

import pytest

from sandbox.runner import Runner
from sandbox.spec import FailureReason, FragmentResult
from tests.sandbox.conftest import EXPECTED_GROUPS, Files, run_group_by, run_python

PRELUDE = textwrap.dedent(
    """
    def attempt(action):
        try:
            return "done:" + repr(action())[:2000]
        except BaseException as exc:
            return "blocked:" + type(exc).__name__
    """
)


@pytest.fixture
def env_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = "ENV-SECRET-" + secrets.token_hex(12)
    monkeypatch.setenv("BLINDGATE_TEST_SECRET", value)
    return value


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.3)
        yield listener


@pytest.fixture
def udp_receiver() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.3)
        yield receiver


def outcome_text(result: FragmentResult) -> str:
    """Everything the caller receives, as one string to search for leaks."""
    return repr(result)


def attempts(result: FragmentResult) -> list[str]:
    assert result.ok, result
    assert result.table is not None
    return [str(cell) for row in result.table.rows for cell in row]


def assert_all_blocked(result: FragmentResult) -> None:
    for status in attempts(result):
        assert status.startswith("blocked:"), status


def assert_no_leak(result: FragmentResult, *secret_values: str) -> None:
    text = outcome_text(result)
    for value in secret_values:
        assert value not in text


def assert_still_serving(runner: Runner, files: Files) -> None:
    result = run_group_by(runner, files.asset_csv)
    assert result.ok, result
    assert result.table is not None
    assert result.table.rows == EXPECTED_GROUPS


def hostile(runner: Runner, files: Files, body: str, **limits: object) -> FragmentResult:
    return run_python(runner, files, PRELUDE + textwrap.dedent(body), **limits)


def test_tcp_connect_to_loopback_listener(
    runner: Runner, files: Files, tcp_listener: socket.socket
) -> None:
    port = tcp_listener.getsockname()[1]
    result = hostile(
        runner,
        files,
        f"""
        import socket
        result = attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
        """,
    )
    assert_all_blocked(result)
    with pytest.raises(TimeoutError):
        tcp_listener.accept()
    assert_still_serving(runner, files)


def test_udp_send(runner: Runner, files: Files, udp_receiver: socket.socket) -> None:
    port = udp_receiver.getsockname()[1]
    result = hostile(
        runner,
        files,
        f"""
        import socket
        def send():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                return s.sendto(b"leak", ("127.0.0.1", {port}))
        result = attempt(send)
        """,
    )
    assert_all_blocked(result)
    with pytest.raises(TimeoutError):
        udp_receiver.recvfrom(16)
    assert_still_serving(runner, files)


def test_resolve_a_name(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import socket
        result = attempt(lambda: socket.getaddrinfo("localhost", 80))
        """,
    )
    assert_all_blocked(result)
    assert_still_serving(runner, files)


def test_read_host_and_agent_files(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        f"""
        paths = ["/etc/hostname", "/etc/passwd", {str(files.key_file)!r},
                 {str(files.other_asset)!r}, {str(files.input_dir.parent)!r}]
        def read(path):
            import os
            if os.path.isdir(path):
                return os.listdir(path)
            with open(path) as handle:
                return handle.read()
        rows = [[attempt(lambda p=p: read(p))] for p in paths]
        """,
    )
    assert_all_blocked(result)
    assert_no_leak(result, files.key_secret, files.other_secret)
    assert_still_serving(runner, files)


def test_read_parent_environment(runner: Runner, files: Files, env_secret: str) -> None:
    result = hostile(
        runner,
        files,
        """
        import os
        found = []
        for name in ["/proc/%d/environ" % os.getppid(), "/proc/1/environ"] + [
            "/proc/%s/environ" % pid for pid in attempt(lambda: os.listdir("/proc"))[5:].split("'")
            if pid.isdigit()
        ]:
            try:
                with open(name, "rb") as handle:
                    found.append(handle.read().decode("utf-8", "replace"))
            except OSError:
                pass
        rows = [[repr(dict(os.environ))], ["\\n".join(found)]]
        """,
    )
    assert result.ok, result
    assert_no_leak(result, env_secret)
    assert_still_serving(runner, files)


def test_write_to_the_asset(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        def append():
            with open(context.asset_path, "a") as handle:
                return handle.write("forged,1\\n")
        def replace():
            import os
            os.rename(context.asset_path, context.asset_path + ".old")
        def chmod():
            import os
            os.chmod(context.asset_path, 0o666)
        def plant():
            with open("/planted", "w") as handle:
                return handle.write("x")
        def fill_tmp():
            with open(context.tmp_dir + "/fill", "wb") as handle:
                for _ in range(128):
                    handle.write(b"x" * (1 << 20))
        rows = [[attempt(append)], [attempt(replace)], [attempt(chmod)], [attempt(plant)],
                [attempt(fill_tmp)]]
        """,
    )
    assert_all_blocked(result)
    assert files.asset_csv.read_bytes() == files.asset_bytes
    assert files.asset_csv.stat().st_mode & 0o777 == files.asset_mode
    assert_still_serving(runner, files)


def test_fork_200_processes(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import os, signal, time
        children, error = [], "none"
        for _ in range(200):
            try:
                pid = os.fork()
            except OSError as exc:
                error = type(exc).__name__
                break
            if pid == 0:
                time.sleep(3)
                os._exit(0)
            children.append(pid)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        rows = [[len(children), error]]
        """,
    )
    assert result.ok, result
    assert result.table is not None
    forked, error = result.table.rows[0]
    assert isinstance(forked, int)
    assert forked < 64
    assert error == "BlockingIOError"
    assert_still_serving(runner, files)


def test_allocate_2_gib_against_512_mib(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        block = bytearray(2 << 30)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        result = "allocated"
        """,
    )
    assert result.failure is FailureReason.MEMORY
    assert_still_serving(runner, files)


def test_spin_past_the_cpu_limit(runner: Runner, files: Files) -> None:
    result = hostile(runner, files, "while True:\n    pass\n", cpu_seconds=1, wall_seconds=8.0)
    assert result.failure is FailureReason.TIMEOUT
    assert result.elapsed_ms < 6000
    assert_still_serving(runner, files)


def test_spin_ignoring_sigxcpu(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True:
            pass
        """,
        cpu_seconds=1,
        wall_seconds=8.0,
    )
    assert result.failure is FailureReason.TIMEOUT
    assert_still_serving(runner, files)


def test_sleep_past_the_wall_clock(runner: Runner, files: Files) -> None:
    result = hostile(runner, files, "import time\ntime.sleep(60)\n", wall_seconds=1.0)
    assert result.failure is FailureReason.TIMEOUT
    assert 900 < result.elapsed_ms < 3000
    assert_still_serving(runner, files)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_print_1_gib(runner: Runner, files: Files, stream: str) -> None:
    result = hostile(
        runner,
        files,
        f"""
        import sys
        chunk = "x" * (1 << 20)
        for _ in range(1024):
            sys.{stream}.write(chunk)
        """,
    )
    assert result.failure is FailureReason.OUTPUT_TOO_LARGE
    assert result.elapsed_ms < 3000
    assert_still_serving(runner, files)


def test_large_result_rows(runner: Runner, files: Files) -> None:
    result = hostile(runner, files, "rows = [['x' * 1000] for _ in range(20000)]\n")
    assert result.failure is FailureReason.OUTPUT_TOO_LARGE
    assert_still_serving(runner, files)


def test_ptrace_the_parent(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.ptrace(16, os.getppid(), 0, 0)
        """,
    )
    assert result.failure is FailureReason.SANDBOX_VIOLATION
    assert_still_serving(runner, files)


def test_mount(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
        """,
    )
    assert result.failure is FailureReason.SANDBOX_VIOLATION
    assert_still_serving(runner, files)


def test_new_user_namespace(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        result = libc.unshare(0x10000000)
        """,
    )
    assert result.failure is FailureReason.SANDBOX_VIOLATION
    assert_still_serving(runner, files)


def test_clone_with_namespace_flags_fails(runner: Runner, files: Files) -> None:
    result = hostile(
        runner,
        files,
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWNET, SIGCHLD = 0x40000000, 17
        pid = libc.syscall(56, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            os._exit(0)
        rows = [[pid, ctypes.get_errno()]]
        """,
    )
    assert result.ok, result
    assert result.table is not None
    assert result.table.rows == ((-1, 1),)
    assert_still_serving(runner, files)


def test_sql_cannot_read_other_files(runner: Runner, files: Files) -> None:
    from sandbox.spec import FragmentSpec

    for sql in (
        f"SELECT * FROM read_csv('{files.other_asset}')",
        f"SELECT * FROM read_text('{files.key_file}')",
        "SELECT * FROM read_text('/etc/hostname')",
    ):
        result = runner.run(FragmentSpec("duckdb_sql", sql, files.asset_csv))
        assert result.failure is FailureReason.SANDBOX_VIOLATION, sql
        assert_no_leak(result, files.key_secret, files.other_secret)
    assert_still_serving(runner, files)


def test_runner_environment_is_untouched(runner: Runner) -> None:
    assert os.environ.get("BLINDGATE_TEST_SECRET") is None
    assert runner.isolation_report().layers["seccomp"]
