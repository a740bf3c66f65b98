"""The agent's service layer with a stand-in runner: admission, queueing, stopping, bounds.

The live suite covers real sandboxes; these cases need fragments that wait for the
test (queued fragments, full queues, cache eviction), so the runner is replaced by
one that blocks until released or stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.tickets import Ticket
from sandbox.agent.config import parse_config
from sandbox.agent.fragments import StopSwitch
from sandbox.agent.service import AgentService, Busy, InvalidRequest, WaitAbandoned
from sandbox.config import IsolationLevel
from sandbox.isolation import LAYERS, IsolationReport
from sandbox.spec import FailureReason, FragmentResult, FragmentSpec, ResultTable
from sandbox.wire import CancelOutcome, FragmentRequest
from tests.agent import tickets
from tests.agent.conftest import agent_identity
from tests.agent.tickets import HOLDER, ORGANISATION, Minter

MINT = Minter()


class BlockingRunner:
    """Runs nothing: each fragment waits for ``release`` (or its stop switch)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release = threading.Event()
        self.closed = False

    def run_stoppable(self, spec: FragmentSpec, switch: StopSwitch, label: str) -> FragmentResult:
        self.started.append(label)
        while not self.release.wait(0.01):
            if switch.reason is not None:
                return FragmentResult.failed(FailureReason.INTERNAL, 1.0)
        table = ResultTable(("run",), ("BIGINT",), ((len(self.started),),))
        return FragmentResult.success(table, 1.0)

    def executors(self) -> frozenset[str]:
        return frozenset({"duckdb_sql"})

    def isolation_report(self) -> IsolationReport:
        layers = dict.fromkeys(LAYERS, False)
        return IsolationReport("none", IsolationLevel.WEAK, layers, (), None, 0)

    def close(self) -> None:
        self.closed = True


def make_service(tmp_path: Path, **settings: Any) -> tuple[AgentService, BlockingRunner]:
    document = {
        "tls": {"cert": "c", "key": "k", "ca": "a"},
        "gateway_fingerprints": ["0" * 64],
        "assets": {"a": {"path": "a.csv"}},
        "cache_dir": "cache",
        "pool_size": 0,
        "unsafe_enable_test_executor": True,
        **agent_identity(tmp_path, ORGANISATION, HOLDER),
        **settings,
    }
    runner = BlockingRunner()
    return AgentService(parse_config(document, tmp_path), runner), runner  # type: ignore[arg-type]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[AgentService, BlockingRunner]]:
    made = make_service(tmp_path, max_concurrent_fragments=1, max_queued_fragments=1)
    yield made
    made[1].release.set()
    made[0].close()


_TICKETS: dict[str, Ticket] = {}


@pytest.fixture(autouse=True)
def _fresh_tickets() -> None:
    _TICKETS.clear()


def request(fragment_id: str, **fields: Any) -> FragmentRequest:
    """The same signed ticket every time for one fragment id (a retry, not a new job)."""
    if fragment_id not in _TICKETS:
        _TICKETS[fragment_id] = MINT.ticket(
            kind="python_test", sql="result = 1", local_ref="a", fragment_id=fragment_id
        )
    return tickets.request(_TICKETS[fragment_id], **fields)


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end
        time.sleep(0.01)


def test_a_full_queue_refuses_new_fragments(service: tuple[AgentService, BlockingRunner]) -> None:
    agent, runner = service
    running, _ = agent.submit(request("f1"))
    queued, _ = agent.submit(request("f2"))
    with pytest.raises(Busy):
        agent.submit(request("f3"))
    assert agent.submit(request("f1"))[0] is running
    runner.release.set()
    assert agent.wait(queued, 5).ok
    assert agent.run(request("f3")).ok


def test_a_queued_fragment_is_cancelled_without_running(
    service: tuple[AgentService, BlockingRunner],
) -> None:
    agent, runner = service
    agent.submit(request("f1"))
    queued, _ = agent.submit(request("f2"))
    wait_until(lambda: runner.started == ["f1"])
    assert agent.cancel("f2") == CancelOutcome.STOPPED
    outcome = agent.wait(queued, 1)
    assert (outcome.ok, outcome.failure) == (False, "cancelled")
    runner.release.set()
    assert agent.run(request("f1")).replayed
    assert runner.started == ["f1"]


def test_a_queued_fragment_past_its_deadline_times_out(
    service: tuple[AgentService, BlockingRunner],
) -> None:
    agent, runner = service
    agent.submit(request("f1"))
    queued, _ = agent.submit(request("f2", deadline_ms=50))
    assert agent.wait(queued, 2).failure == "timeout"
    assert runner.started == ["f1"]


def test_a_running_fragment_is_stopped_at_its_deadline(
    service: tuple[AgentService, BlockingRunner],
) -> None:
    agent, _ = service
    assert agent.run(request("f1", deadline_ms=50), timeout=5).failure == "timeout"


def test_a_waiter_that_gives_up_leaves_the_fragment_running(
    service: tuple[AgentService, BlockingRunner],
) -> None:
    agent, runner = service
    with pytest.raises(WaitAbandoned):
        agent.run(request("f1"), timeout=0.05)
    with pytest.raises(WaitAbandoned):
        agent.run(request("f1"), active=lambda: False)
    runner.release.set()
    outcome = agent.run(request("f1"), timeout=5)
    assert outcome.ok and outcome.replayed
    assert runner.started == ["f1"]


def test_close_stops_running_fragments(tmp_path: Path) -> None:
    agent, runner = make_service(tmp_path)
    execution, _ = agent.submit(request("f1"))
    wait_until(lambda: runner.started == ["f1"])
    agent.close()
    assert execution.outcome is not None and execution.outcome.failure == "cancelled"
    assert runner.closed
    with pytest.raises(Busy):
        agent.submit(request("f2"))


def test_the_outcome_cache_is_bounded(tmp_path: Path) -> None:
    agent, runner = make_service(tmp_path, result_cache_entries=2)
    runner.release.set()
    for name in ("f1", "f2", "f3"):
        assert agent.run(request(name)).ok
    assert agent.run(request("f3")).replayed
    again = agent.run(request("f1"))
    assert not again.replayed
    assert (again.failure, again.reasons) == ("refused", ("replayed",))
    assert runner.started == ["f1", "f2", "f3"]
    agent.close()


def test_requests_are_checked(service: tuple[AgentService, BlockingRunner]) -> None:
    agent, _ = service
    for bad in ("", "x" * 129, "a/b", "a b"):
        with pytest.raises(InvalidRequest):
            agent.submit(FragmentRequest(bad, request("f").ticket))
        with pytest.raises(InvalidRequest):
            agent.cancel(bad)
    with pytest.raises(InvalidRequest):
        agent.submit(request("f", deadline_ms=10**10))
