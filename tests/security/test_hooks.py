"""The metric hooks that a running federation rarely trips: near-threshold releases,
sandbox violations, checkpoint signing failures."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics, near_threshold
from gateway.service.trace.log import CheckpointTicker
from gateway.siteclient.client import SiteMetrics
from sandbox.wire import FragmentOutcome


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_near_threshold_releases() -> None:
    assert near_threshold({"rows": [], "threshold": 10})  # SQL: every group held back
    assert not near_threshold({"rows": [[{"value": 3}]], "threshold": 10})
    he = {"rows": [], "he": {"keys": [["a"], ["b"]], "released": [0]}}
    assert near_threshold(he)  # HE: a key not released
    he["he"]["released"] = [0, 1]  # type: ignore[index]
    assert not near_threshold(he)
    assert near_threshold({"rows": [], "he": {"kind": "he_linear", "suppressed": True}})
    assert not near_threshold({"rows": [], "he": {"kind": "he_linear", "suppressed": False}})
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.released("sql_aggregate", "org_op", [("ast_1", 0.5, 0.0)], {"rows": []}, 1.0)
    assert value(
        metrics.registry, "blindgate_operator_releases_total",
        operator_org="org_op", near_threshold="true",
    ) == 1  # fmt: skip
    assert value(metrics.registry, "blindgate_budget_epsilon_charged_total", asset="ast_1") == 0.5


def test_sandbox_violations_by_site_and_reason() -> None:
    registry = CollectorRegistry()
    site = SiteMetrics(registry)
    site.fragment("north", FragmentOutcome.failed("f1", "sandbox_violation"))
    site.fragment("north", FragmentOutcome.failed("f2", "memory"))
    site.fragment("north", FragmentOutcome.failed("f3", "timeout"))  # slow, not a violation
    site.fragment("north", FragmentOutcome("f4", ok=True, elapsed_ms=20.0))
    site.violation("gateway", "combine_sandbox_violation")
    site.violation("gateway", "policy_denied")
    get = lambda s, r: value(registry, "blindgate_sandbox_violations_total", site=s, reason=r)  # noqa: E731
    assert get("north", "sandbox_violation") == 1
    assert get("north", "memory") == 1
    assert get("north", "timeout") == 0
    assert get("gateway", "sandbox_violation") == 1
    assert value(registry, "blindgate_fragment_failures_total", site="north", reason="timeout") == 1
    assert value(registry, "blindgate_fragment_seconds_count", site="north") == 1


class FailingLog:
    """A trace log whose store is gone."""

    def latest_checkpoint(self) -> None:
        raise OSError("the store is gone")


def test_checkpoint_failures_are_counted() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    ticker = CheckpointTicker(FailingLog(), 0.02, failed=metrics.checkpoint_failures.inc)  # type: ignore[arg-type]
    ticker.start()
    try:
        deadline = time.monotonic() + 10
        while not value(metrics.registry, "blindgate_trace_checkpoint_failures_total"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        ticker.stop()
