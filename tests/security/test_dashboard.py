"""The deployment to watch: every expression of the Grafana dashboard and of the alert
rules names only metrics a live gateway (with three sites behind it) exports, and the
dashboard covers every metric family a security team needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.security.conftest import SQL, Watched

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "blindgate.json"
RULES = ROOT / "deploy" / "prometheus" / "blindgate.rules.yml"
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "time", "max", "min", "count",
    "and", "or", "unless", "on", "ignoring", "avg", "without", "le",
}  # fmt: skip
PROMETHEUS_OWN = {"ALERTS"}
"""Series Prometheus itself makes (the alerts it evaluates), not the gateway."""
SECURITY_FAMILIES = {
    "blindgate_jobs", "blindgate_job_outcomes", "blindgate_job_failures",
    "blindgate_operator_decisions", "blindgate_policy_decision_reasons",
    "blindgate_operator_releases", "blindgate_queue_depth", "blindgate_queue_oldest_age_seconds",
    "blindgate_fragment_seconds", "blindgate_fragment_failures",
    "blindgate_budget_epsilon_charged", "blindgate_budget_delta_charged",
    "blindgate_budget_epsilon_remaining", "blindgate_budget_delta_remaining",
    "blindgate_auth_failures", "blindgate_sandbox_violations", "blindgate_trace_size",
    "blindgate_trace_last_checkpoint_age_seconds", "blindgate_trace_checkpoint_failures",
    "blindgate_site_up", "blindgate_site_isolation_level",
    "blindgate_site_certificate_expiry_timestamp_seconds", "blindgate_licences_expiring",
    "blindgate_budget_charges",
}  # fmt: skip


def exported(text: str) -> set[str]:
    """Every series name a /metrics page can hold (families without samples included)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            names.add(family)
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"),
            }.get(kind, ())
            names.update(family + s for s in suffixes)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def names_in(expr: str) -> set[str]:
    """The metric names an expression uses (label names and values, functions and
    durations left out)."""
    stripped = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    stripped = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)  # ranges
    tokens = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped))
    return {t for t in tokens if t not in PROMQL_WORDS}


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def test_names_in_reads_expressions() -> None:
    expr = 'sum by (site, le) (rate(blindgate_fragment_seconds_bucket{site="x"}[5m])) * 60'
    assert names_in(expr) == {"blindgate_fragment_seconds_bucket"}


def test_dashboard_and_rules_name_only_exported_metrics(watched: Watched) -> None:
    w = watched
    assert w.wait(w.submit(SQL, epsilon=0.5)["id"])["state"] == "succeeded"
    with w.client(None) as c:
        live = exported(c.get("/metrics").text)
    used = set()
    for expr in dashboard_exprs() + rule_exprs():
        found = names_in(expr)
        assert found, expr
        found -= PROMETHEUS_OWN
        missing = found - live
        assert not missing, f"{expr!r} names metrics the gateway does not export: {missing}"
        used |= found
    families = {re.sub(r"_(total|bucket|count|sum|created)$", "", n) for n in used}
    assert families >= SECURITY_FAMILIES, SECURITY_FAMILIES - families
    for rule in rule_exprs():
        assert names_in(rule) & {n for e in dashboard_exprs() for n in names_in(e)}, rule
