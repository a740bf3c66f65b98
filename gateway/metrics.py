"""The gateway's Prometheus metrics, in a registry owned by the application (no globals).

Labels carry only bounded values: ids of organisations and assets, job kinds, states and
catalogued codes — never principals, keys, SQL or other free text.  Authentication
failures are labelled by the first two hex digits of the presented key's SHA-256 (256
buckets at most), which lets a security team match a burst with the trace's
``key_hash_prefix`` without the metric naming anyone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector


class GatewayMetrics:
    """Counters the service layer updates; exposed with the HTTP metrics on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._collectors: dict[str, Collector] = {}
        self.decisions = Counter(
            "blindgate_policy_decisions",
            "Policy decisions by outcome (allow/deny).",
            ["outcome"],
            registry=self.registry,
        )
        self.decision_reasons = Counter(
            "blindgate_policy_decision_reasons",
            "Reasons given in denied policy decisions, by reason code.",
            ["code"],
            registry=self.registry,
        )
        self.operator_decisions = Counter(
            "blindgate_operator_decisions",
            "Policy decisions on jobs and dry runs, by operator organisation and outcome.",
            ["operator_org", "outcome"],
            registry=self.registry,
        )
        self.budget_charges = Counter(
            "blindgate_budget_charges",
            "Privacy-budget charge attempts by outcome (charged/refused/refunded).",
            ["outcome"],
            registry=self.registry,
        )
        self.epsilon_charged = Counter(
            "blindgate_budget_epsilon_charged",
            "Epsilon charged to each asset's privacy budget by released jobs.",
            ["asset"],
            registry=self.registry,
        )
        self.delta_charged = Counter(
            "blindgate_budget_delta_charged",
            "Delta charged to each asset's privacy budget by released jobs.",
            ["asset"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "blindgate_job_outcomes",
            "Jobs by kind and outcome: submitted (denied, pending_approval or queued at "
            "submission), then succeeded, failed or cancelled.",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.job_failures = Counter(
            "blindgate_job_failures",
            "Failed jobs by kind and failure code.",
            ["kind", "code"],
            registry=self.registry,
        )
        self.releases = Counter(
            "blindgate_operator_releases",
            "Released results by operator organisation; near_threshold=true when the group-size "
            "threshold held a group back.",
            ["operator_org", "near_threshold"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "blindgate_job_seconds",
            "Time from claiming a job to its release, by kind.",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "blindgate_auth_failures",
            "Failed authentications by reason and by the first two hex digits of the "
            "presented key's SHA-256 ('none' without a key).",
            ["reason", "key_prefix"],
            registry=self.registry,
        )
        self.checkpoint_failures = Counter(
            "blindgate_trace_checkpoint_failures",
            "Checkpoints of the trace that could not be signed or stored.",
            registry=self.registry,
        )
        self.suspensions = Counter(
            "blindgate_suspensions",
            "Emergency suspensions applied and lifted, by kind.",
            ["kind", "action"],
            registry=self.registry,
        )

    # hooks ---------------------------------------------------------------------------------
    def auth_failed(self, key_hash: str | None, key_id: str | None) -> None:
        """Count one failed authentication (``key_hash``: the presented key's SHA-256 hex)."""
        if key_hash is None:
            reason, prefix = "malformed", "none"
        else:
            reason = "unknown_key" if key_id is None else "revoked_key"
            prefix = key_hash[:2]
        self.auth_failures.labels(reason, prefix).inc()

    def decided(self, operator_org: str, allow: bool) -> None:
        self.operator_decisions.labels(operator_org, "allow" if allow else "deny").inc()

    def submitted(self, kind: str, state: str) -> None:
        self.jobs.labels(kind, "submitted").inc()
        self.jobs.labels(kind, state).inc()

    def finished(self, kind: str, outcome: str, code: str | None = None) -> None:
        self.jobs.labels(kind, outcome).inc()
        if outcome == "failed":
            self.job_failures.labels(kind, code or "internal").inc()

    def charged(self, charges: Iterable[tuple[str, float, float]]) -> None:
        """Budget charged ``(asset, epsilon, delta)`` each (a release, or a failure that
        may depend on the data)."""
        for asset, epsilon, delta in charges:
            self.budget_charges.labels("charged").inc()
            self.epsilon_charged.labels(asset).inc(epsilon)
            self.delta_charged.labels(asset).inc(delta)

    def released(
        self,
        kind: str,
        operator_org: str,
        charges: Iterable[tuple[str, float, float]],
        result: dict[str, Any],
        seconds: float,
    ) -> None:
        """A job released ``result`` after charging ``(asset, epsilon, delta)`` each."""
        self.charged(charges)
        near = near_threshold(result)
        self.releases.labels(operator_org, "true" if near else "false").inc()
        self.jobs.labels(kind, "succeeded").inc()
        self.job_seconds.labels(kind).observe(seconds)

    def collect_with(self, name: str, collector: Collector) -> None:
        """Register a scrape-time collector under ``name``, replacing an earlier one."""
        previous = self._collectors.pop(name, None)
        if previous is not None:
            self.registry.unregister(previous)
        self.registry.register(collector)
        self._collectors[name] = collector


def near_threshold(result: dict[str, Any]) -> bool:
    """Whether the threshold held something back in a release: an HE group key that was
    not released, a suppressed HE linear evaluation, or a SQL release with no group at all
    (every group under the threshold: the shape of a query narrowed onto a few people).
    SQL releases never say how many groups were suppressed, so partial suppression there
    is not counted."""
    he = result.get("he")
    if isinstance(he, dict):
        if he.get("suppressed"):
            return True
        keys, released = he.get("keys"), he.get("released")
        if isinstance(keys, list) and isinstance(released, list):
            return len(released) < len(keys)
        return False
    return not result.get("rows")
