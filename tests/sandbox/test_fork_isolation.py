"""Fragments forked from one fork server stay isolated from it and from each other.

One server per key here (``fork_servers=1``), so consecutive fragments are children of
the same server (each reports its parent's pid inside the namespace to prove it). Each
case runs real fragments in the real sandbox: an earlier fragment plants something, a
later one looks for it or the runner checks what is left on the host.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sandbox.config import RunnerConfig
from sandbox.runner import Runner
from sandbox.spec import FailureReason, FragmentResult, FragmentSpec
from tests.sandbox.conftest import EXPECTED_GROUPS, FAST_LIMITS, Files, run_group_by


@contextmanager
def forking_runner() -> Iterator[Runner]:
    """A runner with one fork server per key (skips the test where there can be none)."""
    config = RunnerConfig(
        unsafe_enable_test_executor=True,
        default_limits=FAST_LIMITS,
        pool_size=0,
        fork_servers=1,
    )
    with Runner(config) as runner:
        if runner.fork_servers is None:
            pytest.skip("this host cannot run fork servers (namespaces, cgroups, Landlock 6)")
        yield runner


@pytest.fixture(scope="module")
def forked(files: Files) -> Iterator[Runner]:
    with forking_runner() as runner:
        yield runner


def run(runner: Runner, files: Files, code: str, **limits: object) -> FragmentResult:
    spec_limits = dataclasses.replace(FAST_LIMITS, **limits)
    program = textwrap.dedent(code)
    spec = FragmentSpec("python_test", program, files.asset_csv, files.input_dir, spec_limits)
    return runner.run(spec)


def cells(result: FragmentResult) -> list[object]:
    assert result.ok, result
    assert result.table is not None
    return [cell for row in result.table.rows for cell in row]


def server_of(runner: Runner, files: Files) -> int:
    """The fork server's pid (inside its namespace) as a fragment sees it."""
    (parent,) = cells(run(runner, files, "import os\nresult = os.getppid()\n"))
    assert isinstance(parent, int)
    return parent


def servers(runner: Runner, expected: set[int] | None = None) -> set[int]:
    """Host pids of the runner's idle fork servers, once ``expected`` (or, without it, any
    server) has prepared its next child and is idle again; waits at most 10 s."""
    pool = runner.fork_servers
    assert pool is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        idle = pool.idle_pids()
        if (expected is None and idle) or (expected is not None and expected <= idle):
            break
        time.sleep(0.01)
    return pool.idle_pids()


def descendants() -> set[int]:
    """Every process below this test process on the host (the servers and their children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_a_later_fragment_finds_nothing_of_an_earlier_one(forked: Runner, files: Files) -> None:
    secret = "EARLIER-" + secrets.token_hex(12)
    server = server_of(forked, files)
    earlier = run(
        forked,
        files,
        f"""
        import builtins, os, sys, tempfile
        SECRET = {secret!r}
        for directory in ("/tmp", tempfile.gettempdir(), os.getcwd()):
            try:
                with open(os.path.join(directory, "left.txt"), "w") as handle:
                    handle.write(SECRET)
            except OSError:
                pass
        os.makedirs("/tmp/deep/er", exist_ok=True)
        open("/tmp/deep/er/left.txt", "w").write(SECRET)
        os.chmod("/tmp/deep/er", 0)
        os.chmod("/tmp/deep", 0)
        builtins.LEFT = SECRET
        sys.modules["left_behind"] = type(sys)("left_behind")
        os.environ["LEFT"] = SECRET
        result = [os.getppid(), SECRET]
        rows = [result]
        """,
    )
    assert cells(earlier) == [server, secret]
    later = run(
        forked,
        files,
        f"""
        import builtins, gc, os, sys
        found = []
        for root, dirs, names in os.walk("/tmp"):
            found += [os.path.join(root, n) for n in names + dirs]
        leaked = any({secret!r} in repr(o) for o in gc.get_objects() if isinstance(o, dict))
        rows = [[os.getppid(), repr(found), hasattr(builtins, "LEFT"),
                 "left_behind" in sys.modules, "LEFT" in os.environ, leaked]]
        """,
    )
    parent, found, builtin, module, environment, leaked = cells(later)
    assert parent == server
    assert found == "[]"
    assert (builtin, module, environment, leaked) == (False, False, False, False)
    assert secret not in repr(later)


def test_the_server_never_holds_a_fragments_program_or_result(forked: Runner, files: Files) -> None:
    secret = "PROGRAM-" + secrets.token_hex(12)
    run(forked, files, f"result = {secret!r}\n")
    later = run(
        forked,
        files,
        f"""
        import gc

        def scan():
            needle = "".join(reversed({secret[::-1]!r}))
            mine = globals()
            return any(
                needle in repr(o)
                for o in gc.get_objects()
                if isinstance(o, (list, dict, tuple)) and o is not mine
            )

        result = scan()
        """,
    )
    assert cells(later) == [False]


def test_no_process_of_a_fragment_outlives_it(forked: Runner, files: Files) -> None:
    server = server_of(forked, files)
    before = descendants()
    planted = run(
        forked,
        files,
        """
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                try:
                    os.setsid()
                except OSError:
                    pass
                if os.fork() == 0:
                    for _ in range(400):
                        try:
                            open("/tmp/alive-%d" % os.getpid(), "w").close()
                        except OSError:
                            pass
                        time.sleep(0.02)
                os._exit(0)
        time.sleep(0.2)
        result = len([n for n in os.listdir("/tmp") if n.startswith("alive")])
        """,
    )
    assert cells(planted)[0] == 3
    time.sleep(0.3)
    later = run(
        forked, files, "import os, time\ntime.sleep(0.3)\nresult = repr(os.listdir('/tmp'))\n"
    )
    assert cells(later) == ["[]"]
    assert server_of(forked, files) == server
    assert descendants() == before


def test_a_fragment_cannot_change_the_server_for_later_fragments(
    forked: Runner, files: Files
) -> None:
    server = server_of(forked, files)
    hostile = run(
        forked,
        files,
        """
        import json, os, resource, signal, sys
        json.dumps = lambda *a, **k: '{"ok": true, "rows": [["forged"]]}'
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.chdir("/")
        sys.path.insert(0, "/tmp")
        open("/tmp/json.py", "w").write("raise SystemExit")
        os.umask(0o777)
        result = "changed"
        """,
    )
    assert hostile.failure is not FailureReason.SANDBOX_VIOLATION, hostile
    later = run(
        forked,
        files,
        """
        import json, os, resource, sys
        rows = [[json.dumps([1]), resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                 "/tmp" in sys.path, os.umask(0o022)]]
        """,
    )
    dumped, nofile, tmp_on_path, umask = cells(later)
    assert dumped == "[1]"
    assert nofile == FAST_LIMITS.open_files
    assert tmp_on_path is False
    assert umask != 0o777
    assert server_of(forked, files) == server
    assert run_group_by(forked, files.asset_csv).table.rows == EXPECTED_GROUPS  # type: ignore[union-attr]


def test_a_fragment_cannot_signal_ptrace_or_read_the_server(forked: Runner, files: Files) -> None:
    server = server_of(forked, files)
    signals = run(
        forked,
        files,
        """
        import ctypes, os, signal
        def attempt(action):
            try:
                action()
                return "done"
            except BaseException as exc:
                return "blocked:" + type(exc).__name__
        parent = os.getppid()
        def pidfd_signal():
            fd = os.pidfd_open(parent)
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        def memory():
            with open("/proc/%d/mem" % parent, "rb") as handle:
                handle.read(1)
        rows = [[attempt(lambda: os.kill(parent, signal.SIGKILL)),
                 attempt(lambda: os.kill(parent, signal.SIGSTOP)),
                 attempt(lambda: os.kill(1, signal.SIGKILL)),
                 attempt(pidfd_signal),
                 attempt(memory)]]
        """,
    )
    assert all(str(status).startswith("blocked:") for status in cells(signals)), signals
    assert server_of(forked, files) == server
    # Signals to every process it may address (kill(-1), its process group) reach only
    # itself and its own children: the server survives them.
    broadcast = run(
        forked,
        files,
        """
        import os, signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for target in (-1, -os.getpgid(os.getppid())):
            try:
                os.kill(target, signal.SIGTERM)
            except OSError:
                pass
        result = "sent"
        """,
    )
    assert cells(broadcast) == ["sent"]
    assert server_of(forked, files) == server
    for call in ("ptrace(16, os.getppid(), 0, 0)", "process_vm_readv(os.getppid(), 0, 0, 0, 0, 0)"):
        traced = run(
            forked,
            files,
            f"import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nresult = libc.{call}\n",
        )
        assert traced.failure is FailureReason.SANDBOX_VIOLATION
    assert server_of(forked, files) == server


def test_a_fragment_cannot_reach_a_sibling_running_at_the_same_time(
    files: Files, tmp_path: Path
) -> None:
    config = RunnerConfig(
        unsafe_enable_test_executor=True, default_limits=FAST_LIMITS, fork_servers=2
    )
    with Runner(config) as runner:
        if runner.fork_servers is None:
            pytest.skip("this host cannot run fork servers")
        outcome: dict[str, FragmentResult] = {}

        def sibling() -> None:
            outcome["sibling"] = run(
                runner,
                files,
                "import os, time\nopen('/tmp/sibling', 'w').write('x')\ntime.sleep(1.5)\n"
                "result = os.path.exists('/tmp/sibling')\n",
                wall_seconds=4.0,
            )

        thread = threading.Thread(target=sibling)
        thread.start()
        time.sleep(0.5)
        attacker = run(
            runner,
            files,
            """
            import os, signal
            hit = 0
            for pid in range(1, 4096):
                if pid == os.getpid():
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                    hit += 1
                except OSError:
                    pass
            rows = [[hit, os.path.exists("/tmp/sibling")]]
            """,
        )
        thread.join()
        assert cells(attacker) == [0, False]
        assert cells(outcome["sibling"]) == [True]
        assert run_group_by(runner, files.asset_csv).table.rows == EXPECTED_GROUPS  # type: ignore[union-attr]


def test_limits_apply_to_each_child_and_the_server_goes_on(forked: Runner, files: Files) -> None:
    server_of(forked, files)
    server = servers(forked)
    assert len(server) == 1
    memory = run(
        forked,
        files,
        "block = bytearray(2 << 30)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\n",
    )
    assert memory.failure is FailureReason.MEMORY
    spin = run(forked, files, "while True:\n    pass\n", cpu_seconds=1, wall_seconds=8.0)
    assert spin.failure is FailureReason.TIMEOUT
    sleep = run(forked, files, "import time\ntime.sleep(60)\n", wall_seconds=1.0)
    assert sleep.failure is FailureReason.TIMEOUT
    server_of(forked, files)  # the default limits' server, not one started for the others
    assert server <= servers(forked, server)


def test_a_server_outlives_the_thread_whose_fragment_started_it(files: Files) -> None:
    """A sandbox can be sent the parent-death signal when the thread that started it ends:
    a server started for a fragment run on a short-lived thread must not go with it."""
    with forking_runner() as runner:
        thread = threading.Thread(target=server_of, args=(runner, files))
        thread.start()
        thread.join()
        started = servers(runner)
        assert len(started) == 1
        time.sleep(0.2)
        server_of(runner, files)
        assert servers(runner) == started
