"""Fragments through a real agent over mutual TLS: results, failures, idempotency, cancel."""

from __future__ import annotations

import dataclasses
import socket
import textwrap
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.errors import Conflict
from gateway.siteclient.client import SiteClient, SiteMetrics
from sandbox.wire import CancelOutcome, FragmentOutcome, FragmentRequest, RequestedLimits
from tests.agent.conftest import EXACT, Pki, metric
from tests.agent.tickets import GROUPED, Minter, release_of, request

PRELUDE = textwrap.dedent(
    """
    def attempt(action):
        try:
            return "done:" + repr(action())[:2000]
        except BaseException as exc:
            return "blocked:" + type(exc).__name__
    """
)

MINT = Minter()


def sql(
    query: str = GROUPED,
    asset: str = "admissions-csv",
    fragment_id: str | None = None,
    epsilon: float = 50.0,
) -> FragmentRequest:
    """A ``sql_aggregate`` ticket for ``query``, as the gateway would send it."""
    ticket = MINT.ticket(sql=query, local_ref=asset, fragment_id=fragment_id, epsilon=epsilon)
    return request(ticket)


def python(body: str, fragment_id: str | None = None, **fields: object) -> FragmentRequest:
    """A ``python_test`` ticket: signed, never decided, only with the unsafe test executor."""
    program = PRELUDE + textwrap.dedent(body)
    ticket = MINT.ticket(kind="python_test", sql=program, fragment_id=fragment_id)
    return dataclasses.replace(request(ticket), **fields)  # type: ignore[arg-type]


def cells(outcome: FragmentOutcome) -> list[object]:
    assert outcome.ok, outcome
    assert outcome.table is not None
    return [cell for row in outcome.table.rows for cell in row]


def released(outcome: FragmentOutcome) -> dict[str, list[Any]]:
    """The noisy partials per district, as released by the site."""
    assert outcome.ok, outcome
    assert outcome.table is not None
    return {str(row[0]): list(row[1:]) for row in outcome.table.rows}


def assert_still_serving(client: SiteClient) -> None:
    outcome = client.run_fragment(sql())
    assert set(released(outcome)) == set(EXACT)


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield pool


def test_health_reports_isolation_and_assets(
    client: SiteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_DSN", raising=False)
    health = client.health()
    assert health.isolation_level == "strong"
    assert health.isolation_backend == "bwrap"
    assert health.layers["namespaces"] and health.layers["seccomp"]
    assert {a.id: a.ready for a in health.assets} == {
        "admissions-csv": True,
        "admissions-parquet": True,
        "billing": False,
    }
    assert {a.id: a.format for a in health.assets}["admissions-parquet"] == "parquet"
    assert "duckdb_sql" in health.executors
    assert client.healthy()


@pytest.mark.parametrize("asset", ["admissions-csv", "admissions-parquet"])
def test_a_grouped_job_leaves_the_site_noised_per_declared_key(
    client: SiteClient, registry: CollectorRegistry, asset: str
) -> None:
    outcome = client.run_fragment(sql(asset=asset))
    assert outcome.ok and not outcome.replayed
    assert outcome.table is not None
    assert outcome.table.columns[:2] == ("__g0", "__units")
    groups = released(outcome)
    assert set(groups) == set(EXACT)
    for district, (people, total) in EXACT.items():
        noisy_people, *partials = groups[district]
        assert isinstance(noisy_people, int) and abs(noisy_people - people) <= 3
        # the sum's Laplace scale is 10 / 12.5 = 0.8: |noise| >= 12 has probability 3e-7
        assert any(abs(float(v) - total) < 12 for v in partials if v is not None)
    meta = release_of(outcome)
    assert meta["key_release"] == "declared_keys"
    assert {c["mechanism"] for c in meta["charges"]} == {"laplace"}
    assert sum(c["epsilon"] for c in meta["charges"]) == pytest.approx(50.0)
    labels = {"site": "riverside", "method": "RunFragment"}
    assert metric(registry, "blindgate_site_calls_total", **labels) == 1
    assert metric(registry, "blindgate_site_call_seconds_count", **labels) == 1


def test_values_keep_their_types(client: SiteClient) -> None:
    outcome = client.run_fragment(python(f"rows = [[None, True, 2.5, 'x', {2**127 - 1}]]"))
    assert cells(outcome) == [None, True, 2.5, "x", 2**127 - 1]


def test_a_ticket_for_an_asset_the_site_does_not_serve_is_refused(
    client: SiteClient, registry: CollectorRegistry
) -> None:
    outcome = client.run_fragment(sql(asset="no-such-asset"))
    assert (outcome.ok, outcome.failure, outcome.table) == (False, "refused", None)
    assert outcome.reasons == ("unknown_asset",)
    labels = {"site": "riverside", "method": "RunFragment", "reason": "refused"}
    assert metric(registry, "blindgate_site_failures_total", **labels) == 1


def test_a_postgres_asset_without_its_connection_string_fails(
    client: SiteClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BILLING_DSN", raising=False)
    assert client.run_fragment(sql(asset="billing")).failure == "internal"


def test_a_query_the_site_cannot_analyse_is_refused_with_codes_only(client: SiteClient) -> None:
    outcome = client.run_fragment(sql("SELECT no_such_column FROM admissions"))
    assert (outcome.ok, outcome.failure, outcome.table) == (False, "refused", None)
    assert outcome.reasons[0] == "analysis_refused"
    assert "no_such_column" not in repr(outcome.reasons)


def test_repeated_fragment_id_returns_the_stored_release(client: SiteClient) -> None:
    request = sql(epsilon=1.0)
    first = client.run_fragment(request)
    again = client.run_fragment(request)
    assert again.replayed and not first.replayed
    assert cells(again) == cells(first)
    assert again.release == first.release
    other = client.run_fragment(sql(epsilon=1.0))
    assert cells(other) != cells(first)


def test_fragment_id_reused_for_another_fragment_is_refused(client: SiteClient) -> None:
    request = sql()
    client.run_fragment(request)
    with pytest.raises(Conflict):
        client.run_fragment(
            sql("SELECT COUNT(*) AS n FROM admissions", fragment_id=request.fragment_id)
        )


def test_hostile_fragment_is_stopped_and_the_agent_keeps_serving(
    client: SiteClient, certs: Pki
) -> None:
    secret = certs.site_key_path.read_text()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        listener.settimeout(0.3)
        port = listener.getsockname()[1]
        outcome = client.run_fragment(
            python(
                f"""
                import socket
                def read(path):
                    with open(path) as handle:
                        return handle.read()
                rows = [
                    [attempt(lambda: read({str(certs.site_key_path)!r}))],
                    [attempt(lambda: read("/etc/hostname"))],
                    [attempt(lambda: socket.create_connection(("127.0.0.1", {port}), timeout=1))],
                ]
                """
            )
        )
        statuses = [str(cell) for cell in cells(outcome)]
        assert all(status.startswith("blocked:") for status in statuses), statuses
        assert "PRIVATE KEY" not in repr(outcome) and secret not in repr(outcome)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert_still_serving(client)


def test_seccomp_violation_is_reported_by_code_only(client: SiteClient) -> None:
    outcome = client.run_fragment(
        python(
            """
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            result = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
            """
        )
    )
    assert (outcome.ok, outcome.failure, outcome.table) == (False, "sandbox_violation", None)
    assert_still_serving(client)


def test_cancel_stops_a_sleeping_fragment(
    client: SiteClient, background: ThreadPoolExecutor
) -> None:
    request = python("import time\ntime.sleep(30)")
    begin = time.monotonic()
    pending = background.submit(client.run_fragment, request)
    time.sleep(0.6)
    assert client.cancel(request.fragment_id) == CancelOutcome.STOPPED
    outcome = pending.result(timeout=10)
    assert outcome.failure == "cancelled"
    assert time.monotonic() - begin < 3.0
    assert client.cancel(request.fragment_id) == CancelOutcome.ALREADY_FINISHED
    assert client.run_fragment(request).failure == "cancelled"
    assert_still_serving(client)


def test_a_fragment_cancelled_before_it_arrives_never_runs(client: SiteClient) -> None:
    request = python("result = 'ran'")
    assert client.cancel(request.fragment_id) == CancelOutcome.NOT_STARTED
    outcome = client.run_fragment(request)
    assert (outcome.ok, outcome.failure) == (False, "cancelled")


def test_fragment_deadline_stops_it_with_timeout(client: SiteClient) -> None:
    begin = time.monotonic()
    outcome = client.run_fragment(python("import time\ntime.sleep(30)", deadline_ms=400))
    assert outcome.failure == "timeout"
    assert time.monotonic() - begin < 2.5


def test_wall_clock_limit_from_the_request(client: SiteClient) -> None:
    outcome = client.run_fragment(
        python("import time\ntime.sleep(30)", limits=RequestedLimits(wall_seconds=0.5))
    )
    assert outcome.failure == "timeout"


def test_retry_after_a_call_deadline_attaches_to_the_same_run(
    address: str, certs: Pki, client: SiteClient
) -> None:
    registry = CollectorRegistry()
    impatient = SiteClient(
        address,
        certs.ca,
        certs.gateway.cert,
        certs.gateway.key,
        certs.site.fingerprint,
        site="riverside",
        metrics=SiteMetrics(registry),
        timeout=0.4,
        attempts=8,
        sleep=lambda _: None,
    )
    request = python("import os, time\ntime.sleep(1.2)\nresult = os.urandom(8).hex()")
    with impatient:
        outcome = impatient.run_fragment(request)
    token = cells(outcome)
    labels = {"site": "riverside", "method": "RunFragment"}
    assert metric(registry, "blindgate_site_retries_total", **labels) >= 1
    failures = {**labels, "reason": "deadline_exceeded"}
    assert metric(registry, "blindgate_site_failures_total", **failures) >= 1
    replay = client.run_fragment(request)
    assert replay.replayed and cells(replay) == token
