"""Pools start lazily and shrink when idle: fork servers and pre-started sandboxes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from sandbox.config import RunnerConfig
from sandbox.runner import Runner
from tests.sandbox.conftest import EXPECTED_GROUPS, FAST_LIMITS, Files, run_group_by


def eventually(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_fork_servers_start_on_first_use_and_stop_when_idle(files: Files) -> None:
    config = RunnerConfig(default_limits=FAST_LIMITS, fork_servers=1, pool_idle_seconds=1.0)
    with Runner(config) as runner:
        servers = runner.fork_servers
        if servers is None:
            pytest.skip("this host cannot run fork servers")
        assert servers.ready() == 0
        assert run_group_by(runner, files.asset_csv).table.rows == EXPECTED_GROUPS  # type: ignore[union-attr]
        assert eventually(lambda: servers.ready() == 1, 5.0)
        assert eventually(lambda: servers.ready() == 0)
        assert run_group_by(runner, files.asset_csv).table.rows == EXPECTED_GROUPS  # type: ignore[union-attr]


def test_pre_started_sandboxes_stop_when_idle(files: Files) -> None:
    config = RunnerConfig(
        default_limits=FAST_LIMITS, fork_servers=0, pool_size=1, pool_idle_seconds=1.0
    )
    with Runner(config) as runner:
        assert runner.fork_servers is None
        runner.warm("duckdb_sql", files.asset_csv, limits=FAST_LIMITS)
        assert runner.pool.ready() == 1
        assert eventually(lambda: runner.pool.ready() == 0)
        assert run_group_by(runner, files.asset_csv).table.rows == EXPECTED_GROUPS  # type: ignore[union-attr]
        time.sleep(0.5)
        assert runner.pool.ready() == 0  # a key dropped when idle is not refilled


def test_sandboxes_warmed_from_a_short_lived_thread_outlive_it(files: Files) -> None:
    """A sandbox can be sent the parent-death signal when the thread that started it
    ends: the runner starts pre-started sandboxes on its own thread, so they stay ready."""
    config = RunnerConfig(default_limits=FAST_LIMITS, fork_servers=0, pool_size=1)
    with Runner(config) as runner:
        thread = threading.Thread(
            target=runner.warm, args=("duckdb_sql", files.asset_csv), kwargs={"limits": FAST_LIMITS}
        )
        thread.start()
        thread.join()
        assert runner.pool.ready() == 1
        time.sleep(0.3)
        (sandbox,) = [s for queue in runner.pool._ready.values() for s in queue]
        assert sandbox.alive()
        assert run_group_by(runner, files.asset_csv).table.rows == EXPECTED_GROUPS  # type: ignore[union-attr]
