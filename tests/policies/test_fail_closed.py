"""The evaluator never allows malformed input and never raises."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import policies.evaluator as evaluator_module
from policies import EvaluationRequest, Policy, evaluate
from tests.policies.builders import request_dict, two_asset_request

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["active", "count", "sql_aggregate", "admissions", "2025-03-04T10:30:00Z"])
)
garbage = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: Fields that may be left out of the valid request: each has a documented default.
OPTIONAL_NAMES = {
    "delta",
    "min_group_size",
    "delta_spent",
    "version",
    "description",
    "clip",
    "max_rows_per_unit",
    "max_groups",
    "approval",
    "mode",
    "expires_after_hours",
    "rate_limit_per_hour",
    "privacy_unit",
    "epsilon_cap",
    "job_cap",
}
#: Mappings whose keys are data (column names, asset or licence ids), not fields.
DATA_MAPPINGS = {"columns", "column_tags", "epsilon_spent", "jobs_last_hour"}


def leaf_paths(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path in ``data``, containers and leaves alike (the root excluded)."""
    if path:
        yield path
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaf_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from leaf_paths(value, (*path, index))


def at(data: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    """The container holding ``path`` and the last key."""
    node = data
    for part in path[:-1]:
        node = node[part]
    return node, path[-1]


def is_valid(data: Any) -> bool:
    try:
        EvaluationRequest.model_validate(data)
    except ValidationError:
        return False
    return True


def assert_denied(data: Any) -> None:
    decision = evaluate(data)
    assert not decision.allow
    assert decision.reasons
    assert decision.parameters is None


VALID = request_dict()
PATHS = sorted(leaf_paths(VALID), key=repr)


def is_field(path: tuple[Any, ...]) -> bool:
    """Whether ``path`` names a model field (not a list item or a data-keyed entry)."""
    return isinstance(path[-1], str) and not (len(path) > 1 and path[-2] in DATA_MAPPINGS)


REQUIRED = [p for p in PATHS if is_field(p) and p[-1] not in OPTIONAL_NAMES]
OPTIONAL = [p for p in PATHS if is_field(p) and p[-1] in OPTIONAL_NAMES]


@pytest.mark.parametrize("path", REQUIRED, ids=repr)
def test_removing_any_required_field_denies(path: tuple[Any, ...]) -> None:
    data = copy.deepcopy(VALID)
    container, key = at(data, path)
    del container[key]
    assert_denied(data)
    assert "missing_attribute" in evaluate(data).codes


@pytest.mark.parametrize("path", OPTIONAL, ids=repr)
def test_optional_fields_really_are_optional(path: tuple[Any, ...]) -> None:
    data = copy.deepcopy(VALID)
    container, key = at(data, path)
    del container[key]
    assert is_valid(data)


@pytest.mark.parametrize("path", [p for p in PATHS if not is_field(p)], ids=repr)
def test_removing_entries_never_breaks_evaluation(path: tuple[Any, ...]) -> None:
    data = copy.deepcopy(VALID)
    container, key = at(data, path)
    del container[key]
    decision = evaluate(data)
    used = {use["column"] for use in VALID["column_uses"]}
    needed = (
        path in (("assets", 0), ("licences", 0))
        or path[-2] in ("epsilon_spent", "jobs_last_hour")
        or (path[-2] in ("columns", "column_tags") and path[-1] in used)
    )
    if needed:
        assert not decision.allow


@pytest.mark.parametrize("path", PATHS, ids=repr)
def test_wrong_type_anywhere_denies(path: tuple[Any, ...]) -> None:
    data = copy.deepcopy(VALID)
    container, key = at(data, path)
    original = container[key]
    container[key] = 12345 if isinstance(original, dict | list) else {"not": ["a", "scalar"]}
    assert not is_valid(data)
    assert_denied(data)


@FAST
@given(garbage)
def test_random_garbage_is_denied(data: Any) -> None:
    assert_denied(data)


@FAST
@given(st.fixed_dictionaries(dict.fromkeys(VALID, garbage)))
def test_garbage_with_the_right_keys_is_denied(data: dict[str, Any]) -> None:
    assert_denied(data)


@FAST
@given(st.sampled_from(PATHS), garbage, st.booleans())
def test_spoiled_valid_requests_are_denied_when_malformed(
    path: tuple[Any, ...], value: Any, two_assets: bool
) -> None:
    data = two_asset_request() if two_assets else request_dict()
    container, key = at(data, path)
    container[key] = value
    assume(not is_valid(data))
    assert_denied(data)


@FAST
@given(st.lists(st.sampled_from(PATHS), min_size=1, max_size=4, unique=True))
def test_missing_fields_in_any_combination(paths: list[tuple[Any, ...]]) -> None:
    data = request_dict()
    for path in sorted(paths, key=len, reverse=True):
        try:
            container, key = at(data, path)
            del container[key]
        except (KeyError, IndexError, TypeError):
            continue
    assume(not is_valid(data))
    assert_denied(data)


EMPTY_RULE_SETS: list[tuple[str, Any]] = [
    ("columns", {}),
    ("kinds", []),
    ("aggregates", []),
    ("purposes", []),
    ("all_never", None),
]


@FAST
@given(st.sampled_from(EMPTY_RULE_SETS), st.booleans(), st.floats(0.01, 1.0))
def test_empty_rule_sets_deny(which: tuple[str, Any], two_assets: bool, epsilon: float) -> None:
    data = two_asset_request() if two_assets else request_dict()
    data["epsilon"] = epsilon
    target = data["assets"][-1]["policy"]
    name, value = which
    if name == "columns":
        target["columns"] = value
    elif name == "all_never":
        target["columns"] = {column: {"control": "never"} for column in target["columns"]}
    else:
        target["jobs"][name] = value
    Policy.model_validate(target)  # the policy itself is well-formed
    decision = evaluate(data)
    assert not decision.allow
    assert "empty_policy" in decision.codes


@FAST
@given(st.dictionaries(st.sampled_from(sorted(EvaluationRequest.model_fields)), garbage))
def test_unvalidated_model_instances_are_revalidated(fields: dict[str, Any]) -> None:
    assert_denied(EvaluationRequest.model_construct(**fields))


def test_constructed_instance_with_bad_values_is_denied() -> None:
    valid = EvaluationRequest.model_validate(request_dict())
    spoiled = EvaluationRequest.model_construct(**{**dict(valid), "epsilon": -1.0})
    assert evaluate(spoiled).codes == ("invalid_request",)


def test_exception_during_evaluation_denies(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any) -> None:
        raise ZeroDivisionError

    monkeypatch.setattr(evaluator_module, "check_licences", explode)
    decision = evaluate(request_dict())
    assert decision.codes == ("evaluation_error",)
    assert decision.policy_versions == {"admissions": 3}


def test_exception_while_building_parameters_denies(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError

    monkeypatch.setattr(evaluator_module, "combine", explode)
    assert evaluate(request_dict()).codes == ("evaluation_error",)
