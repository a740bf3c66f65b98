"""The evaluator's rules, parameters and most-restrictive combination over assets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from policies import (
    Decision,
    EvaluationRequest,
    Reason,
    TimeWindow,
    combine,
    evaluate,
)
from tests.policies.builders import NOW, build, policy, policy_dict, request_dict, two_asset_request


def codes(data: dict[str, Any]) -> tuple[str, ...]:
    return evaluate(data).codes


def test_allowed_job_gets_its_parameters() -> None:
    decision = evaluate(request_dict())
    assert decision.allow
    assert decision.reasons == ()
    assert decision.policy_versions == {"admissions": 3}
    params = decision.parameters
    assert params is not None
    assert params.epsilon == 0.5
    assert params.min_group_size == 10
    assert params.max_rows_per_unit == 2
    assert params.max_groups == 500
    assert params.approval_mode == "manual"
    assert params.approval_expires_after_hours == 72
    assert params.privacy_units == {"admissions": "patient_id"}
    assert {c: (b.lower, b.upper) for c, b in params.clip["admissions"].items()} == {
        "los_days": (0, 60)
    }


def test_model_and_mapping_inputs_agree() -> None:
    assert evaluate(build(request_dict())) == evaluate(request_dict())
    assert evaluate(build(two_asset_request())) == evaluate(two_asset_request())


def test_all_reasons_are_collected() -> None:
    req = request_dict()
    req["epsilon"] = 3.0
    req["purpose"] = "marketing"
    req["licences"][0]["status"] = "revoked"
    req["column_uses"].append({"asset": "admissions", "column": "diagnosis", "usage": "filter"})
    req["column_uses"].append({"asset": "admissions", "column": "cost", "usage": "select_plain"})
    assert set(codes(req)) == {
        "epsilon_over_job_max",
        "purpose_not_allowed",
        "licence_revoked",
        "licence_purpose_not_covered",
        "column_never",
        "plain_on_sensitive",
    }


def test_reason_locates_the_rule() -> None:
    req = request_dict()
    req["column_uses"].append({"asset": "admissions", "column": "age", "usage": "group_by"})
    [reason] = evaluate(req).reasons
    assert reason == Reason(
        code="column_not_allowed_in_group_by",
        clause="columns.age.control",
        message="Column 'age' of asset 'admissions' has control 'filter', which does not allow "
        "group_by use.",
        fix="Use 'age' only as: filter.",
        asset="admissions",
        subject="age",
    )


def test_duplicate_reasons_are_merged() -> None:
    req = request_dict()
    for _ in range(3):
        req["column_uses"].append({"asset": "admissions", "column": "diagnosis", "usage": "filter"})
    assert len(evaluate(req).reasons) == 1


@pytest.mark.parametrize(
    ("spent", "epsilon", "allowed"),
    [
        (9.5, 0.5, True),
        (9.7, 0.3, True),
        (9.8, 0.3, False),
        (0.0, 1.0, True),
        (9.5000001, 0.5, False),
    ],
)
def test_budget_boundary_is_exact(spent: float, epsilon: float, allowed: bool) -> None:
    req = request_dict()
    req["usage"]["epsilon_spent"]["admissions"] = spent
    req["epsilon"] = epsilon
    assert evaluate(req).allow is allowed


def test_delta_is_charged_too() -> None:
    req = request_dict()
    req["assets"][0]["policy"]["privacy"]["delta_per_job_max"] = 1e-7
    req["delta"] = 1e-7
    assert codes(req) == ("missing_attribute",)
    req["usage"]["delta_spent"] = {"admissions": 9e-7}
    assert evaluate(req).allow
    req["usage"]["delta_spent"] = {"admissions": 9.5e-7}
    [reason] = evaluate(req).reasons
    assert (reason.code, reason.clause, reason.subject) == (
        "budget_exhausted",
        "privacy.budget.delta",
        "delta",
    )


@pytest.mark.parametrize(("count", "allowed"), [(0, True), (19, True), (20, False), (500, False)])
def test_rate_limit_boundary(count: int, allowed: bool) -> None:
    req = request_dict()
    req["usage"]["jobs_last_hour"]["L-1"] = count
    assert evaluate(req).allow is allowed


def test_rate_limit_needs_the_counter() -> None:
    req = request_dict()
    req["usage"]["jobs_last_hour"] = {}
    assert codes(req) == ("missing_attribute",)


def test_budget_needs_the_counter() -> None:
    req = request_dict()
    req["usage"]["epsilon_spent"] = {"claims": 0.0}
    assert codes(req) == ("missing_attribute",)


@pytest.mark.parametrize(
    ("now", "code"),
    [
        (datetime(2025, 1, 1, tzinfo=UTC), None),
        (datetime(2025, 1, 1, tzinfo=UTC) - timedelta(microseconds=1), "licence_not_yet_valid"),
        (datetime(2026, 1, 1, tzinfo=UTC) - timedelta(microseconds=1), None),
        (datetime(2026, 1, 1, tzinfo=UTC), "licence_expired"),
    ],
)
def test_licence_validity_boundaries(now: datetime, code: str | None) -> None:
    req = request_dict()
    req["now"] = now
    assert codes(req) == ((code,) if code else ())


def test_licence_caps() -> None:
    req = request_dict()
    req["licences"][0].update(job_cap=8, jobs_used=7, epsilon_cap=3.5, epsilon_used=3.0)
    assert evaluate(req).allow
    req["licences"][0]["epsilon_used"] = 3.0000001
    assert codes(req) == ("licence_epsilon_cap",)
    req["licences"][0].update(epsilon_cap=None, jobs_used=8)
    assert codes(req) == ("licence_job_cap",)


def test_naive_now_is_refused() -> None:
    req = request_dict()
    req["now"] = datetime(2025, 3, 4, 10, 30)
    assert codes(req) == ("invalid_request",)


def test_job_without_assets_or_columns() -> None:
    req = request_dict()
    req["assets"] = []
    assert codes(req) == ("empty_policy",)
    req = request_dict()
    req["column_uses"] = []  # COUNT(*) alone: people are counted, no column is used
    assert codes(req) == ()


def test_delta_needs_the_policys_permission_and_undeclared_keys_need_delta() -> None:
    req = request_dict()
    req["group_keys"] = [["district"]]
    denied = evaluate(req)
    assert denied.codes == ("undeclared_group_keys",)
    assert "columns.district.keys" in denied.reasons[0].fix
    req["delta"] = 1e-8
    assert "delta_over_job_max" in codes(req)
    req["assets"][0]["policy"]["privacy"]["delta_per_job_max"] = 1e-7
    req["usage"]["delta_spent"] = {"admissions": 0.0}
    decision = evaluate(req)
    assert decision.allow, decision.reasons
    assert decision.parameters is not None and not decision.parameters.keys_declared


def test_declared_keys_are_released_as_the_intersection_over_assets() -> None:
    req = two_asset_request()
    req["group_keys"] = [["district"]]
    for n, keys in enumerate((["north", "south", "east"], ["south", "east", "west"])):
        req["assets"][n]["policy"]["columns"]["district"]["keys"] = {"values": keys}
    decision = evaluate(req)
    assert decision.allow, decision.reasons
    assert decision.parameters is not None
    assert decision.parameters.key_domains == {"district": ("south", "east")}
    assert decision.parameters.keys_declared


def test_epsilon_floor_and_undeclared_multi_column_keys() -> None:
    req = request_dict()
    req["epsilon"] = 5e-324
    assert "epsilon_under_job_min" in codes(req)
    req = request_dict()
    req["assets"][0]["policy"]["columns"]["district"]["keys"] = {"values": ["north"]}
    req["group_keys"] = [["district", "age"]]
    assert codes(req) == ("undeclared_group_keys",)


def test_asset_listed_twice() -> None:
    req = request_dict()
    req["assets"].append(req["assets"][0])
    assert "invalid_request" in codes(req)


def test_missing_privacy_unit() -> None:
    req = request_dict()
    req["assets"][0]["facts"]["privacy_unit"] = None
    assert codes(req) == ("missing_attribute",)
    req["assets"][0]["facts"]["privacy_unit"] = "person"
    assert codes(req) == ("unknown_column",)


def test_count_is_open_to_every_control_but_never() -> None:
    req = request_dict()
    for column in ("district", "age", "ward", "patient_id"):
        req["column_uses"].append(
            {"asset": "admissions", "column": column, "usage": "aggregate", "function": "count"}
        )
    assert evaluate(req).allow
    req["column_uses"].append(
        {"asset": "admissions", "column": "diagnosis", "usage": "aggregate", "function": "count"}
    )
    assert codes(req) == ("column_never",)


def test_function_only_with_aggregate_use() -> None:
    req = request_dict()
    req["column_uses"].append(
        {"asset": "admissions", "column": "age", "usage": "filter", "function": "sum"}
    )
    assert codes(req) == ("invalid_request",)
    req["column_uses"][-1] = {"asset": "admissions", "column": "los_days", "usage": "aggregate"}
    assert codes(req) == ("missing_attribute",)


def test_requested_group_size_raises_the_parameter() -> None:
    req = request_dict()
    req["min_group_size"] = 40
    params = evaluate(req).parameters
    assert params is not None
    assert params.min_group_size == 40


# Time windows ------------------------------------------------------------------------------


def window(days: list[str], start: str, end: str, tz: str = "Asia/Shanghai") -> TimeWindow:
    return TimeWindow.model_validate({"days": days, "start": start, "end": end, "timezone": tz})


def shanghai(day: int, hour: int, minute: int = 0) -> datetime:
    """2025-03-``day`` at ``hour``:``minute`` Shanghai time (March 3 is a Monday)."""
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (shanghai(3, 8), True),
        (shanghai(3, 7, 59), False),
        (shanghai(3, 17, 59), True),
        (shanghai(3, 18), False),
        (shanghai(8, 12), False),
    ],
)
def test_day_window(moment: datetime, inside: bool) -> None:
    assert window(["mon", "tue", "wed", "thu", "fri"], "08:00", "18:00").contains(moment) is inside


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        (shanghai(7, 22), True),  # Friday night
        (shanghai(8, 5, 59), True),  # early Saturday, window started Friday
        (shanghai(8, 6), False),
        (shanghai(8, 23), False),  # Saturday night: no window starts on Saturday
        (shanghai(7, 5), False),  # early Friday: Thursday has no window
    ],
)
def test_overnight_window(moment: datetime, inside: bool) -> None:
    assert window(["fri"], "22:00", "06:00").contains(moment) is inside


def test_window_to_end_of_day() -> None:
    assert window(["mon"], "20:00", "24:00").contains(shanghai(3, 23, 59))
    assert not window(["mon"], "20:00", "24:00").contains(shanghai(4, 0, 0))


def test_time_window_in_evaluation() -> None:
    req = request_dict()  # NOW is Tuesday 18:30 in Shanghai
    req["assets"][0]["policy"]["jobs"]["time_windows"] = [
        {"days": ["tue"], "start": "18:00", "end": "19:00", "timezone": "Asia/Shanghai"}
    ]
    assert evaluate(req).allow
    req["now"] = NOW + timedelta(hours=1)
    assert codes(req) == ("outside_time_window",)


# Several assets: the most restrictive rule wins ---------------------------------------------


def test_two_assets_combine_parameters() -> None:
    decision = evaluate(two_asset_request())
    assert decision.allow, decision.reasons
    params = decision.parameters
    assert params is not None
    assert decision.policy_versions == {"admissions": 3, "claims": 1}
    assert params.min_group_size == 25
    assert params.max_rows_per_unit == 1
    assert params.approval_mode == "quorum"
    assert params.approvals["admissions"].mode == "manual"
    assert params.approvals["claims"].quorum is not None
    assert params.privacy_units == {"admissions": "patient_id", "claims": "patient_id"}


def test_other_assets_rules_apply_to_the_whole_job() -> None:
    req = two_asset_request()
    claims = req["assets"][1]["policy"]
    claims["jobs"]["aggregates"] = ["count", "sum"]
    claims["jobs"]["kinds"] = ["he_aggregate"]
    req["epsilon"] = 0.9
    reasons = {(r.code, r.asset) for r in evaluate(req).reasons}
    assert reasons == {
        ("aggregate_not_allowed", "claims"),
        ("job_kind_not_allowed", "claims"),
        ("epsilon_over_job_max", "claims"),
    }


def test_uncovered_second_asset() -> None:
    req = two_asset_request()
    req["licences"].pop()
    [reason] = evaluate(req).reasons
    assert (reason.code, reason.asset) == ("licence_asset_not_covered", "claims")


def test_combine_is_most_restrictive() -> None:
    a = policy()
    b_data = policy_dict("claims")
    b_data["jobs"].update(
        kinds=["he_aggregate", "he_linear"],
        aggregates=["count", "max"],
        purposes=["public-health-research", "planning"],
        min_group_size=30,
        max_rows_per_unit=5,
        max_groups=None,
        rate_limit_per_hour=None,
        approval={"mode": "auto", "expires_after_hours": 24},
    )
    b_data["privacy"]["epsilon_per_job_max"] = 0.25
    b_data["privacy"]["budget"]["delta"] = 0
    rules = combine([a, policy(b_data)])
    assert rules.kinds == {"he_aggregate"}
    assert rules.aggregates == {"count"}
    assert rules.purposes == {"public-health-research"}
    assert rules.min_group_size == 30
    assert rules.max_rows_per_unit == 2
    assert rules.max_groups == 500
    assert rules.rate_limit_per_hour == 20
    assert rules.approval_mode == "manual"
    assert rules.approval_expires_after_hours == 24
    assert rules.epsilon_per_job_max == 0.25
    assert rules.delta == 0
    with pytest.raises(ValueError, match="at least one policy"):
        combine([])


@settings(max_examples=80, deadline=None)
@given(
    min_group=st.integers(2, 60),
    rows=st.integers(1, 4),
    eps_max=st.floats(0.05, 1.0),
    mode=st.sampled_from(["auto", "manual", "quorum"]),
    kinds=st.sets(st.sampled_from(["sql_aggregate", "he_aggregate", "he_linear"])),
    aggregates=st.sets(st.sampled_from(["count", "sum", "avg", "min"])),
)
def test_adding_an_asset_never_loosens(
    min_group: int, rows: int, eps_max: float, mode: str, kinds: set[str], aggregates: set[str]
) -> None:
    req = two_asset_request()
    jobs = req["assets"][1]["policy"]["jobs"]
    jobs.update(min_group_size=min_group, max_rows_per_unit=rows, kinds=sorted(kinds))
    jobs["aggregates"] = sorted(aggregates)
    jobs["approval"] = (
        {"mode": mode, "quorum": {"required": 1, "of": 2}} if mode == "quorum" else {"mode": mode}
    )
    req["assets"][1]["policy"]["privacy"]["epsilon_per_job_max"] = eps_max
    decision = evaluate(req)
    single = evaluate(request_dict())
    assert single.allow
    rules = combine([build(req).assets[0].policy, build(req).assets[1].policy])
    if decision.allow:
        params = decision.parameters
        assert params is not None
        assert params.min_group_size >= max(min_group, 10)
        assert params.max_rows_per_unit <= min(rows, 2)
        assert params.epsilon <= eps_max
        assert "sql_aggregate" in kinds
        assert {"count", "avg"} <= aggregates
        assert params.approval_mode == rules.approval_mode
    else:
        assert (
            req["epsilon"] > eps_max
            or "sql_aggregate" not in kinds
            or not {"count", "avg"} <= aggregates
            or not aggregates
        )


def test_decision_invariants() -> None:
    with pytest.raises(ValidationError):
        Decision(allow=True, reasons=(Reason(code="x", clause="c", message="m", fix="f"),))
    with pytest.raises(ValidationError):
        Decision(allow=False)
    with pytest.raises(ValidationError):
        Decision(allow=True)


def test_request_models_are_immutable() -> None:
    req = build(request_dict())
    with pytest.raises(ValidationError):
        req.epsilon = 100.0  # type: ignore[misc]
    assert isinstance(req, EvaluationRequest)
