"""The gateway's Prometheus metrics, in a registry owned by the application (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class GatewayMetrics:
    """Counters the service layer updates; exposed with the HTTP metrics on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
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
        self.budget_charges = Counter(
            "blindgate_budget_charges",
            "Privacy-budget charge attempts by outcome (charged/refused/refunded).",
            ["outcome"],
            registry=self.registry,
        )
