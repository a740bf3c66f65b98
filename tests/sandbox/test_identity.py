"""What a fragment can learn about the host, and which host uid it runs as.

Under namespaces (``strong``) every source is mounted at a neutral path and no
procfs is mounted, so a hostile fragment that reads every file of ``/proc`` it can
open, every link it can resolve, its environment, its own paths and the text of
the errors it provokes finds no host path of the asset, the virtualenv, the Python
runtime, the job input, the agent's cache or the launcher.  With either backend,
a root runner's fragments run as the unprivileged sandbox uid, checked from the
host side while the fragment is running.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
from pathlib import Path

import pytest

import sandbox
from sandbox.config import RunnerConfig
from sandbox.runner import Runner
from sandbox.spec import FailureReason, FragmentResult, FragmentSpec
from tests.sandbox.conftest import FAST_LIMITS, Files, run_python

SEARCH = r"""
import os, sys, traceback
texts, opened = [], 0

def keep(label, value):
    texts.append(label + "=" + value)

def read(path):
    global opened
    try:
        with open(path, "rb") as handle:
            data = handle.read(1 << 16)
        opened += 1
        keep(path, data.decode("utf-8", "replace"))
    except Exception as exc:
        keep(path, type(exc).__name__ + ":" + str(exc))

def link(path):
    try:
        keep(path, os.readlink(path))
    except Exception as exc:
        keep(path, str(exc))

if os.path.isdir("/proc"):
    skip = {"kcore", "kmsg", "pagemap", "mem", "clear_refs", "kpagecount", "kpageflags"}
    for top, dirs, names in os.walk("/proc", followlinks=False):
        if top.count("/") > 4:
            dirs[:] = []
        for name in names:
            full = os.path.join(top, name)
            if name in skip or os.path.islink(full):
                link(full)
            else:
                read(full)
for pid in ["self", "thread-self", "1", "2", str(os.getpid()), str(os.getppid())]:
    for name in ("cmdline", "environ", "mountinfo", "mounts", "maps", "status", "cgroup"):
        read(f"/proc/{pid}/{name}")
    for name in ("exe", "cwd", "root"):
        link(f"/proc/{pid}/{name}")
keep("environ", repr(dict(os.environ)))
keep("sys", repr((sys.executable, sys.prefix, sys.base_prefix, sys.exec_prefix, sys.path)))
keep("argv", repr(sys.argv))
keep("modules", repr(sorted(str(getattr(m, "__file__", "")) for m in list(sys.modules.values()))))
keep("stack", "".join(traceback.format_stack()))
keep("context", repr(context))
keep("cwd", os.getcwd())
for path in ("/", "/data", "/opt", "/opt/site", "/input", "/tmp", "/dev"):
    try:
        keep("ls " + path, repr(os.listdir(path)))
    except Exception as exc:
        keep("ls " + path, str(exc))
for action in (
    lambda: open("/nonexistent/x"),
    lambda: __import__("no_such_module_here"),
    lambda: open(context.asset_path, "w"),
    lambda: os.listdir(context.asset_path),
):
    try:
        action()
    except Exception:
        keep("error", traceback.format_exc())
try:
    import duckdb
    con = duckdb.connect()
    con.execute(f"SELECT no_such_column FROM read_csv('{context.asset_path}')")
except Exception as exc:
    keep("duckdb", str(exc))
rows = [[opened, "\n".join(texts)]]
"""


def host_paths(files: Files, runner: Runner) -> dict[str, str]:
    """Host paths that must stay unknown inside a strong sandbox."""
    package = Path(sandbox.__file__).resolve().parent
    found = {
        "asset": str(files.asset_csv),
        "asset directory": str(files.asset_csv.parent),
        "input": str(files.input_dir),
        "test root": str(files.root),
        "virtualenv": os.path.realpath(sys.prefix),
        "package": str(package),
        "checkout": str(package.parent),
        "launcher": str(package / "launcher.py"),
        "work directory": str(runner.config.work_dir),
    }
    base = os.path.realpath(sys.base_prefix)
    if base != "/usr":
        found["runtime"] = base
    return found


def test_strong_fragment_learns_no_host_path(runner: Runner, files: Files) -> None:
    if runner.isolation_report().backend != "bwrap":
        pytest.skip("neutral paths are a property of the namespace sandbox")
    result = run_python(runner, files, SEARCH, wall_seconds=20.0, cpu_seconds=10)
    assert result.ok, result
    assert result.table is not None
    _opened, text = result.table.rows[0]
    assert isinstance(text, str)
    assert "/data/asset.csv" in text
    assert "/opt/python" in text
    assert "/opt/blindgate/sandbox/worker.py" in text
    assert "no_such_column" in text
    for label, path in host_paths(files, runner).items():
        assert path not in text, f"the fragment learned the {label} path"


def _uids(pid: int) -> tuple[list[int], int]:
    """(real, effective, saved, fs uids) and the parent pid of host process ``pid``."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return [int(value) for value in fields["Uid"].split()], int(fields["PPid"])


def test_fragments_never_run_as_host_root(runner: Runner, files: Files) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root runner switches fragments to another uid")
    marker = "bg" + secrets.token_hex(6)
    code = f"""
import ctypes, os, time
ctypes.CDLL(None).prctl(15, {marker.encode()!r}, 0, 0, 0)
time.sleep(3)
rows = [[os.getuid(), os.getgid()]]
"""
    outcome: list[FragmentResult] = []
    thread = threading.Thread(
        target=lambda: outcome.append(run_python(runner, files, code, wall_seconds=10.0))
    )
    thread.start()
    chain: list[tuple[int, list[int]]] = []
    uid_map: list[str] = []
    deadline = time.monotonic() + 8
    while not chain and time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and (entry / "comm").read_text().strip() == marker:
                    pid = int(entry.name)
                    uid_map = (entry / "uid_map").read_text().split()
                    while pid not in (os.getpid(), 0, 1):
                        uids, parent = _uids(pid)
                        chain.append((pid, uids))
                        pid = parent
            except (OSError, ValueError):
                continue
        time.sleep(0.05)
    thread.join()
    assert outcome and outcome[0].ok, outcome
    namespaced = runner.isolation_report().backend == "bwrap"
    assert len(chain) >= (3 if namespaced else 1), "the fragment's process tree was not found"
    expected = runner.config.sandbox_uid
    for pid, uids in chain:
        assert uids == [expected] * 4, f"pid {pid} runs as {uids}"
    if namespaced:
        assert uid_map == [str(expected), str(expected), "1"]


def test_asset_unreadable_by_the_sandbox_uid_is_refused(
    runner: Runner, files: Files, tmp_path: Path
) -> None:
    if not runner.isolation_report().layers["separate_uid"]:
        pytest.skip("only a root runner switches fragments to another uid")
    private = tmp_path / "private.csv"
    private.write_bytes(files.asset_bytes)
    private.chmod(0o600)
    spec = FragmentSpec("duckdb_sql", "SELECT COUNT(*) FROM asset", private, limits=FAST_LIMITS)
    assert runner.run(spec).failure is FailureReason.INTERNAL


def test_asset_in_a_private_directory_is_served(runner: Runner, tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    asset = closed / "open.csv"
    asset.write_text("k\n1\n2\n", encoding="utf-8")
    asset.chmod(0o644)
    spec = FragmentSpec("duckdb_sql", "SELECT SUM(k) AS s FROM asset", asset, limits=FAST_LIMITS)
    result = runner.run(spec)
    assert result.ok, result
    assert result.table is not None
    assert result.table.rows == ((3,),)


def test_default_sandbox_identity_is_unprivileged() -> None:
    config = RunnerConfig()
    assert config.sandbox_uid > 0
    assert config.sandbox_gid > 0
