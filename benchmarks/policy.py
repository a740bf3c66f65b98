"""Decision latency of the policy engine for a realistic job.

Two holders' assets (20 policed columns each, quorum and manual approval, time windows,
rate limits, budgets), two licences, and a job with 8 column uses. Measures
``evaluate`` on a validated request, on a plain mapping (as decoded from JSON) and
on a request that is denied for several reasons; also ``load_policy`` on the YAML.

    .venv/bin/python benchmarks/policy.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policies import EvaluationRequest, evaluate, load_policy  # noqa: E402

NOW = datetime(2025, 3, 4, 3, 30, tzinfo=UTC)  # Tuesday 11:30 in Shanghai

COLUMNS: dict[str, tuple[str, str, tuple[float, float] | None]] = {
    # name: (control, tag, clip)
    "patient_id": ("join_key", "identifier", None),
    "national_id": ("never", "identifier", None),
    "name": ("never", "identifier", None),
    "phone": ("never", "identifier", None),
    "birth_year": ("group_by", "quasi_identifier", None),
    "sex": ("group_by", "quasi_identifier", None),
    "district": ("group_by", "quasi_identifier", None),
    "postcode": ("filter", "quasi_identifier", None),
    "admission_date": ("filter", "quasi_identifier", None),
    "discharge_date": ("filter", "quasi_identifier", None),
    "ward": ("group_by", "attribute", None),
    "department": ("group_by", "attribute", None),
    "diagnosis_icd10": ("group_by", "sensitive", None),
    "procedure_code": ("filter", "sensitive", None),
    "los_days": ("aggregate", "attribute", (0, 120)),
    "total_cost": ("aggregate", "sensitive", (0, 500_000)),
    "drug_cost": ("aggregate", "sensitive", (0, 200_000)),
    "readmitted_30d": ("aggregate", "attribute", (0, 1)),
    "icu_hours": ("aggregate", "attribute", (0, 2_000)),
    "insurance_type": ("plain", "attribute", None),
}


def policy_yaml(asset: str, min_group: int, mode: str) -> str:
    lines = ["version: 1", f"asset: {asset}", "description: Inpatient stays", "columns:"]
    for name, (control, _, clip) in COLUMNS.items():
        lines.append(f"  {name}:")
        lines.append(f"    control: {control}")
        if clip:
            lines.append(f"    clip: {{lower: {clip[0]}, upper: {clip[1]}}}")
    approval = (
        "{mode: quorum, quorum: {required: 2, of: 3}, expires_after_hours: 48}"
        if mode == "quorum"
        else "{mode: manual, expires_after_hours: 72}"
    )
    lines += [
        "jobs:",
        "  kinds: [sql_aggregate, he_aggregate, he_linear]",
        "  aggregates: [count, sum, avg, variance, stddev]",
        "  purposes: [public-health-research, hospital-planning]",
        f"  min_group_size: {min_group}",
        "  max_rows_per_unit: 3",
        "  max_groups: 1000",
        f"  approval: {approval}",
        "  rate_limit_per_hour: 30",
        "  time_windows:",
        "    - {days: [mon, tue, wed, thu, fri], start: '08:00', end: '20:00',"
        " timezone: Asia/Shanghai}",
        "    - {days: [sat], start: '09:00', end: '12:00', timezone: Asia/Shanghai}",
        "privacy:",
        "  epsilon_per_job_max: 1.0",
        "  budget: {epsilon: 20, delta: 1.0e-5, period_days: 30}",
    ]
    return "\n".join(lines) + "\n"


def licence(licence_id: str, asset: str) -> dict[str, Any]:
    return {
        "licence_id": licence_id,
        "status": "active",
        "valid_from": datetime(2025, 1, 1, tzinfo=UTC),
        "valid_until": datetime(2026, 1, 1, tzinfo=UTC),
        "asset_ids": [asset],
        "purposes": ["public-health-research"],
        "job_kinds": ["sql_aggregate", "he_aggregate"],
        "epsilon_cap": 100.0,
        "epsilon_used": 12.5,
        "job_cap": 1000,
        "jobs_used": 140,
    }


def request_data() -> dict[str, Any]:
    tags = {name: tag for name, (_, tag, _) in COLUMNS.items()}
    assets = []
    for asset, group, mode in (("stays-north", 10, "manual"), ("stays-south", 20, "quorum")):
        assets.append(
            {
                "facts": {
                    "asset_id": asset,
                    "status": "active",
                    "privacy_unit": "patient_id",
                    "column_tags": tags,
                },
                "policy": load_policy(policy_yaml(asset, group, mode)),
                "policy_revision": 4,
            }
        )
    uses = [
        ("stays-north", "patient_id", "join_key", None),
        ("stays-south", "patient_id", "join_key", None),
        ("stays-north", "district", "group_by", None),
        ("stays-north", "birth_year", "group_by", None),
        ("stays-south", "admission_date", "filter", None),
        ("stays-north", "los_days", "aggregate", "avg"),
        ("stays-south", "total_cost", "aggregate", "sum"),
        ("stays-north", "patient_id", "aggregate", "count"),
    ]
    return {
        "job_kind": "sql_aggregate",
        "purpose": "public-health-research",
        "epsilon": 0.5,
        "delta": 1e-7,
        "assets": assets,
        "column_uses": [
            {"asset": a, "column": c, "usage": u, **({"function": f} if f else {})}
            for a, c, u, f in uses
        ],
        "licences": [licence("L-N", "stays-north"), licence("L-S", "stays-south")],
        "usage": {
            "jobs_last_hour": {"L-N": 3, "L-S": 7},
            "epsilon_spent": {"stays-north": 6.0, "stays-south": 11.5},
            "delta_spent": {"stays-north": 1e-6, "stays-south": 0.0},
        },
        "now": NOW,
    }


def measure(label: str, call: Callable[[], object], iterations: int) -> None:
    for _ in range(min(1000, iterations)):
        call()
    samples = []
    gc.collect()
    for _ in range(iterations):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[int(len(samples) * 0.99)] / 1000
    mean = statistics.fmean(samples) / 1000
    print(f"{label:<40} p50 {p50:8.1f} us   p99 {p99:8.1f} us   mean {mean:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000)
    args = parser.parse_args()

    data = request_data()
    model = EvaluationRequest.model_validate(data)
    allowed = evaluate(model)
    if not allowed.allow:
        raise SystemExit(f"benchmark request should be allowed: {allowed.reasons}")

    denied_data = copy.deepcopy(data)
    denied_data["epsilon"] = 2.0
    denied_data["purpose"] = "marketing"
    denied_data["column_uses"].append(
        {"asset": "stays-north", "column": "national_id", "usage": "select_plain"}
    )
    denied = EvaluationRequest.model_validate(denied_data)
    print(f"denied request gives {len(evaluate(denied).reasons)} reasons")

    text = policy_yaml("stays-north", 10, "manual")
    print(f"policy: {len(COLUMNS)} columns; job: {len(data['column_uses'])} column uses, 2 assets")
    measure("evaluate (validated request, allow)", lambda: evaluate(model), args.iterations)
    measure("evaluate (plain mapping, allow)", lambda: evaluate(data), args.iterations)
    measure("evaluate (validated request, deny)", lambda: evaluate(denied), args.iterations)
    measure("load_policy (YAML, 20 columns)", lambda: load_policy(text), args.iterations // 20)


if __name__ == "__main__":
    main()
