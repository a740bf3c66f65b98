"""The alert rules and the Prometheus configuration: promtool tests every rule (a missing
promtool fails the suite under CI=true), and the console's in-process rules say the same
as the rules file (names, severities, metrics, windows, thresholds)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from gateway.service.watch.alerts import RULES, MetricHistory

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES_FILE = PROMETHEUS / "blindgate.rules.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is missing (Debian package prometheus; scripts/system-packages)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, check=False, timeout=120
    )


def test_promtool_unit_tests_of_every_rule_pass() -> None:
    done = run("test", "rules", str(PROMETHEUS / "tests" / "blindgate.rules.test.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_has_a_promtool_test() -> None:
    tests = yaml.safe_load((PROMETHEUS / "tests" / "blindgate.rules.test.yml").read_text())
    tested = {
        case["alertname"]
        for group in tests["tests"]
        for case in group.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert tested == {rule["alert"] for rule in rules()}


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    text = (PROMETHEUS / "tests" / "blindgate.rules.test.yml").read_text()
    broken = tmp_path / "broken.test.yml"
    broken.write_text(
        text.replace("../blindgate.rules.yml", str(RULES_FILE)).replace(
            "had 30 denied", "had 29 denied"
        )
    )
    done = run("test", "rules", str(broken))
    assert done.returncode != 0


def test_prometheus_configuration_and_rules_check() -> None:
    done = run("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 rules found" in done.stdout


def rules() -> list[dict]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_in_process_rules_match_the_rules_file() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    assert set(by_name) == {r.name for r in RULES}
    for rule in RULES:
        expr = by_name[rule.name]["expr"]
        assert by_name[rule.name]["labels"]["severity"] == rule.severity
        assert rule.metric in expr
        if rule.divisor:
            assert rule.divisor in expr
        if rule.window:
            assert f"[{rule.window // 60}m]" in expr
        threshold = f"{rule.threshold:g}" if rule.threshold < 86400 else "14 * 86400"
        assert re.search(rf"{re.escape(rule.op)} {re.escape(threshold)}$", expr), (rule, expr)
        for key, value in rule.match.items():
            assert f'{key}="{value}"' in expr
        for key, value in rule.exclude.items():
            assert f'{key}!="{value}"' in expr
        by = re.search(r"by \(([^)]*)\)", expr)
        grouped = tuple(by.group(1).split(", ")) if by else ()
        if rule.kind == "increase" or grouped:  # aggregations name the labels kept
            assert grouped == rule.by, (rule, expr)
        if rule.for_seconds:
            assert by_name[rule.name]["for"] == f"{rule.for_seconds // 60}m"


def test_in_process_probing_alert_fires_like_the_rule() -> None:
    """The promtool scenario (3 denials a minute from one operator, 1 from another) through
    the console's evaluator: the prober is flagged after ten minutes, the other never."""
    metrics = GatewayMetrics(CollectorRegistry())
    history = MetricHistory(metrics.registry, interval=60)
    for minute in range(11):
        if minute:
            for _ in range(3):
                metrics.decided("org_probe", allow=False)
            metrics.decided("org_fine", allow=False)
            metrics.decided("org_probe", allow=True)
        history.record(at=minute * 60.0)
        firing = [f for f in history.evaluate(now=minute * 60.0) if f.name.startswith("Blindgate")]
        probing = [f for f in firing if f.name == "BlindgateProbingDenials"]
        if minute < 7:
            assert probing == []
    assert [(f.labels, f.value) for f in probing] == [({"operator_org": "org_probe"}, 30.0)]
    # ten minutes later with no new denial the burst has left the window
    history.record(at=21 * 60.0)
    assert not [f for f in history.evaluate(now=21 * 60.0) if f.name == "BlindgateProbingDenials"]


def test_in_process_gauge_and_ratio_rules() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    history = MetricHistory(metrics.registry)
    now = 1_000_000.0
    current = {
        "blindgate_budget_epsilon_remaining": {(("asset", "a"), ("org", "h")): 1.0},
        "blindgate_budget_epsilon_limit": {(("asset", "a"), ("org", "h")): 20.0},
        "blindgate_site_up": {(("site", "north"),): 0.0, (("site", "east"),): 1.0},
        "blindgate_site_isolation_level": {
            (("level", "strong"), ("site", "east")): 1.0,
            (("level", "medium"), ("site", "north")): 1.0,
            (("level", "strong"), ("site", "north")): 0.0,
        },
        "blindgate_trace_unsigned_entries": {(): 4.0},
        "blindgate_trace_last_checkpoint_age_seconds": {(): 900.0},
        "blindgate_site_certificate_expiry_timestamp_seconds": {
            (("site", "north"),): now + 86400.0,
            (("site", "east"),): now + 60 * 86400.0,
        },
    }
    firing = {(f.name, tuple(f.labels.items())) for f in history.evaluate(now, current)}
    assert firing == {
        ("BlindgateBudgetNearlySpent", (("asset", "a"), ("org", "h"))),
        ("BlindgateSiteDown", (("site", "north"),)),
        ("BlindgateSiteIsolationDegraded", (("site", "north"),)),
        ("BlindgateCheckpointStale", ()),
        ("BlindgateSiteCertificateExpiring", (("site", "north"),)),
    }
