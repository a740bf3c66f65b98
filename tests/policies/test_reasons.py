"""Every reason code is documented, has a fix and is reachable by some input."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from policies import REASONS, evaluate
from tests.policies.builders import request_dict

Spoil = Callable[[dict[str, Any]], Any]


class Exploding(Mapping[str, Any]):
    """A mapping that fails when read, as a broken upstream adapter might."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("storage went away")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("storage went away")

    def __len__(self) -> int:
        return 1


def policy_of(req: dict[str, Any]) -> dict[str, Any]:
    policy: dict[str, Any] = req["assets"][0]["policy"]
    return policy


def use(req: dict[str, Any], column: str, usage: str, function: str | None = None) -> None:
    entry = {"asset": "admissions", "column": column, "usage": usage}
    if function:
        entry["function"] = function
    req["column_uses"].append(entry)


def setting(*keys: Any, value: Any) -> Spoil:
    def spoil(req: dict[str, Any]) -> None:
        node = req
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return spoil


def all_never(req: dict[str, Any]) -> None:
    for rule in policy_of(req)["columns"].values():
        rule.clear()
        rule["control"] = "never"


def extra_column(req: dict[str, Any]) -> None:
    req["assets"][0]["facts"]["column_tags"]["bed"] = "attribute"
    use(req, "bed", "filter")


def time_window(req: dict[str, Any]) -> None:
    policy_of(req)["jobs"]["time_windows"] = [
        {"days": ["sat", "sun"], "start": "09:00", "end": "17:00", "timezone": "Asia/Shanghai"}
    ]


def declared_districts(count: int) -> Spoil:
    def spoil(req: dict[str, Any]) -> None:
        policy_of(req)["columns"]["district"]["keys"] = {"values": [f"d{i}" for i in range(count)]}
        req["group_keys"] = [["district"]]

    return spoil


PYTHON = {"code_hash": "a" * 64, "files": {"main.py": "b" * 64}, "operator_org_id": "org_op"}


def python_job(rules: bool) -> Spoil:
    def spoil(req: dict[str, Any]) -> None:
        req.update(job_kind="python", epsilon=0.5 if rules else 0.0, delta=0.0, python=PYTHON)
        if rules:
            policy_of(req)["jobs"]["kinds"] = ["python"]
            policy_of(req)["python"] = {"columns": ["age", "district"]}
            req["licences"][0]["job_kinds"] = ["python"]

    return spoil


SCENARIOS: dict[str, Spoil] = {
    "python_rules_missing": python_job(rules=False),
    "python_not_private": python_job(rules=True),
    "evaluation_error": setting("usage", value=Exploding()),
    "invalid_request": setting("epsilon", value="a lot"),
    "missing_attribute": lambda r: r.pop("now"),
    "empty_policy": all_never,
    "policy_asset_mismatch": setting("assets", 0, "policy", "asset", value="claims"),
    "unknown_asset": lambda r: r["column_uses"].append(
        {"asset": "ghost", "column": "age", "usage": "filter"}
    ),
    "asset_frozen": setting("assets", 0, "facts", "status", value="frozen"),
    "asset_disposed": setting("assets", 0, "facts", "status", value="disposed"),
    "unknown_column": lambda r: use(r, "shoe_size", "filter"),
    "column_not_listed": extra_column,
    "column_never": lambda r: use(r, "diagnosis", "group_by"),
    "column_not_allowed_in_filter": lambda r: use(r, "los_days", "filter"),
    "column_not_allowed_in_group_by": lambda r: use(r, "age", "group_by"),
    "column_not_allowed_in_join": lambda r: use(r, "district", "join_key"),
    "column_not_allowed_in_aggregate": lambda r: use(r, "district", "aggregate", "sum"),
    "column_not_allowed_plain": lambda r: use(r, "los_days", "select_plain"),
    "plain_on_sensitive": lambda r: use(r, "cost", "select_plain"),
    "plain_on_quasi_identifier": lambda r: use(r, "age", "select_plain"),
    "identifier_exposed": lambda r: use(r, "patient_id", "aggregate", "sum"),
    "aggregate_not_allowed": lambda r: use(r, "los_days", "aggregate", "max"),
    "clip_bounds_missing": lambda r: use(r, "ward", "aggregate", "sum"),
    "job_kind_not_allowed": setting("job_kind", value="he_linear"),
    "purpose_not_allowed": setting("purpose", value="marketing"),
    "epsilon_over_job_max": setting("epsilon", value=2.0),
    "budget_exhausted": setting("usage", "epsilon_spent", "admissions", value=9.8),
    "rate_limited": setting("usage", "jobs_last_hour", "L-1", value=20),
    "outside_time_window": time_window,
    "min_group_size_too_low": setting("min_group_size", value=5),
    "licence_asset_not_covered": setting("licences", 0, "asset_ids", value=["claims"]),
    "licence_not_active": setting("licences", 0, "status", value="suspended"),
    "licence_revoked": setting("licences", 0, "status", value="revoked"),
    "licence_key_rotated": setting("licences", 0, "status", value="key_rotated"),
    "licence_expired": setting("licences", 0, "valid_until", value="2025-02-01T00:00:00Z"),
    "licence_not_yet_valid": setting("licences", 0, "valid_from", value="2025-06-01T00:00:00Z"),
    "licence_purpose_not_covered": setting("licences", 0, "purposes", value=["other"]),
    "licence_job_kind_not_covered": setting("licences", 0, "job_kinds", value=["he_linear"]),
    "licence_job_cap": setting("licences", 0, "jobs_used", value=100),
    "licence_epsilon_cap": setting("licences", 0, "epsilon_used", value=49.8),
    "epsilon_under_job_min": setting("epsilon", value=0.001),
    "delta_over_job_max": setting("delta", value=1e-7),
    "undeclared_group_keys": setting("group_keys", value=[["district"]]),
    "too_many_groups": declared_districts(600),
}


def test_unspoiled_request_is_allowed() -> None:
    decision = evaluate(request_dict())
    assert decision.allow, decision.reasons


def test_every_code_has_a_scenario_and_every_scenario_a_code() -> None:
    assert set(SCENARIOS) == set(REASONS)


@pytest.mark.parametrize("code", sorted(REASONS))
def test_catalogue_entry_is_explained(code: str) -> None:
    info = REASONS[code]
    assert code.islower()
    assert " " not in code
    assert info.title.strip()
    assert info.fix.strip().endswith(".")


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_code_is_reachable(code: str) -> None:
    req = request_dict()
    SCENARIOS[code](req)
    decision = evaluate(req)
    assert not decision.allow
    assert code in decision.codes, decision.reasons
    assert decision.parameters is None
    for reason in decision.reasons:
        assert reason.code in REASONS
        assert reason.fix.strip()
        assert reason.message.strip()
        assert reason.clause.strip()
