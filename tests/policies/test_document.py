"""Policy documents: YAML reading, schema validation, located errors, schema/model agreement."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]

from policies import Policy, PolicyDocumentError, PolicyIssue, load_policy, policy_schema
from tests.policies.builders import POLICY_YAML, policy_dict


def issues_of(text: str) -> list[tuple[int, int, str, str]]:
    with pytest.raises(PolicyDocumentError) as caught:
        load_policy(text)
    return [(i.line, i.column, i.path, i.message) for i in caught.value.issues]


def line_of(text: str, needle: str) -> int:
    """1-based line of the only line containing ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) == 1, (needle, hits)
    return hits[0]


def test_valid_document_loads() -> None:
    policy = load_policy(POLICY_YAML)
    assert policy.asset == "admissions"
    assert policy.columns["los_days"].clip is not None
    assert policy.columns["los_days"].clip.upper == 60
    assert policy.jobs.min_group_size == 10
    assert policy.jobs.approval.mode == "manual"
    assert policy.privacy.budget.delta == pytest.approx(1e-6)
    assert policy == Policy.model_validate({**policy_dict(), "description": policy.description})


def test_defaults_are_conservative() -> None:
    text = """\
version: 1
asset: a
columns: {x: {control: filter}}
jobs: {kinds: [sql_aggregate], aggregates: [count], purposes: [research]}
privacy: {epsilon_per_job_max: 0.5, budget: {epsilon: 5, period_days: 7}}
"""
    policy = load_policy(text)
    assert policy.jobs.min_group_size == 10
    assert policy.jobs.max_rows_per_unit == 1
    assert policy.jobs.approval.mode == "manual"
    assert policy.jobs.rate_limit_per_hour is None
    assert policy.privacy.budget.delta == 0


def test_unknown_field_is_reported_at_its_key() -> None:
    text = POLICY_YAML.replace("  min_group_size: 10\n", "  min_group_size: 10\n  min_grup: 3\n")
    assert issues_of(text) == [
        (line_of(text, "min_grup:"), 3, "jobs.min_grup", "unknown field 'min_grup'")
    ]


def test_bad_enum_reported_at_value_with_dotted_path() -> None:
    text = POLICY_YAML.replace("age: {control: filter}", "age: {control: filtre}")
    [(line, column, path, message)] = issues_of(text)
    assert (line, path) == (line_of(text, "filtre"), "columns.age.control")
    assert column == text.splitlines()[line - 1].index("filtre") + 1
    assert "use one of: never, join_key, filter, group_by, aggregate, plain" in message


def test_all_issues_are_collected_in_line_order() -> None:
    text = (
        POLICY_YAML.replace("kinds: [sql_aggregate, he_aggregate]", "kinds: [sql_aggregate, r]")
        .replace("min_group_size: 10", "min_group_size: 1")
        .replace("period_days: 30", "period_days: thirty")
    )
    found = issues_of(text)
    assert [(line, path) for line, _, path, _ in found] == [
        (line_of(text, "kinds:"), "jobs.kinds[1]"),
        (line_of(text, "min_group_size"), "jobs.min_group_size"),
        (line_of(text, "thirty"), "privacy.budget.period_days"),
    ]


def test_missing_required_field() -> None:
    text = POLICY_YAML.replace("  purposes: [public-health-research]\n", "")
    assert issues_of(text) == [
        (line_of(text, "kinds:"), 3, "jobs.purposes", "missing required field 'purposes'")
    ]


def test_semantic_errors_are_located() -> None:
    text = POLICY_YAML.replace("clip: {lower: 0, upper: 60}", "clip: {lower: 60, upper: 0}")
    [(line, _, path, message)] = issues_of(text)
    assert (line, path) == (line_of(text, "lower: 60"), "columns.los_days.clip")
    assert message == "lower (60.0) must be less than upper (0.0)"


@pytest.mark.parametrize(
    ("replace", "by", "path", "needle"),
    [
        ("mode: manual", "mode: quorum", "jobs.approval", "mode: quorum"),
        ("epsilon_per_job_max: 1.0", "epsilon_per_job_max: 11", "privacy", "per_job_max: 11"),
        (
            "diagnosis: {control: never}",
            "diagnosis: {control: never, clip: {lower: 0, upper: 1}}",
            "columns.diagnosis",
            "control: never, clip",
        ),
    ],
)
def test_cross_field_rules(replace: str, by: str, path: str, needle: str) -> None:
    text = POLICY_YAML.replace(replace, by)
    [(line, _, got_path, _)] = issues_of(text)
    assert got_path == path
    assert line == line_of(text, needle)


def test_bad_time_zone_and_window() -> None:
    text = POLICY_YAML + (
        "  time_windows:\n"
        "    - {start: '08:00', end: '08:00'}\n"
        "    - {start: '08:00', end: '18:00', timezone: Mars/Olympus}\n"
    )
    text = text.replace("privacy:\n", "").replace(
        "  epsilon_per_job_max: 1.0\n  budget: {epsilon: 10, delta: 1.0e-6, period_days: 30}\n", ""
    )
    text += "privacy:\n  epsilon_per_job_max: 1.0\n  budget: {epsilon: 10, period_days: 30}\n"
    found = issues_of(text)
    assert [(line, path) for line, _, path, _ in found] == [
        (line_of(text, "end: '08:00'"), "jobs.time_windows[0]"),
        (line_of(text, "Mars"), "jobs.time_windows[1].timezone"),
    ]
    assert "unknown time zone 'Mars/Olympus'" in found[1][3]


def test_yaml_syntax_error_line() -> None:
    text = POLICY_YAML.replace("  age: {control: filter}\n", "  age: {control: filter\n")
    [(line, _, path, message)] = issues_of(text)
    assert path == ""
    assert line == line_of(text, "age: {control: filter") + 1
    assert "flow mapping" in message


def test_bad_indentation_line() -> None:
    text = POLICY_YAML.replace("  max_groups: 500\n", "   max_groups: 500\n")
    [(line, _, _, _)] = issues_of(text)
    assert line == line_of(text, "max_groups")


def test_duplicate_key() -> None:
    text = POLICY_YAML.replace("  max_groups: 500\n", "  max_groups: 500\n  max_groups: 7\n")
    assert issues_of(text) == [
        (line_of(text, "max_groups: 7"), 3, "jobs.max_groups", "duplicate key 'max_groups'")
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "document is empty"),
        ("# only a comment\n", "document is empty"),
        ("- 1\n- 2\n", "must be of type object, not list"),
        ("a: 1\n---\nb: 2\n", "expected a single document"),
        ("a: &x 1\nb: *x\n", "aliases are not allowed"),
        ("a: !!python/object:os.system 1\n", "is not supported"),
        ("[" * 5000, "nested too deeply"),
        ("a: \x00\n", "unacceptable character #x0000"),
        ("a: b\n" * 60000, "document is too large"),
    ],
)
def test_unreadable_documents(text: str, message: str) -> None:
    assert any(message in issue[3] for issue in issues_of(text))


def test_yaml_12_scalars() -> None:
    """``yes``/``on`` stay strings, ``09:30`` is not sexagesimal, ``1e-6`` is a number."""
    text = POLICY_YAML.replace("purposes: [public-health-research]", "purposes: [yes, on, 'no']")
    text += "  time_windows: [{start: 09:30, end: 17:00, timezone: Asia/Shanghai}]\n"
    text = text.replace("privacy:\n", "").replace("  epsilon_per_job_max: 1.0\n", "")
    text = text.replace("  budget: {epsilon: 10, delta: 1.0e-6, period_days: 30}\n", "")
    text += (
        "privacy: {epsilon_per_job_max: 1e-1,"
        " budget: {epsilon: 1e1, delta: 1e-6, period_days: 0x1e}}\n"
    )
    policy = load_policy(text)
    assert policy.jobs.purposes == ("yes", "on", "no")
    assert policy.jobs.time_windows[0].start == "09:30"
    assert policy.privacy.budget.delta == 1e-6
    assert policy.privacy.budget.period_days == 30


def test_non_string_input() -> None:
    with pytest.raises(PolicyDocumentError):
        load_policy(b"version: 1")  # type: ignore[arg-type]


def test_schema_is_valid_and_copied() -> None:
    schema = policy_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    schema["properties"].clear()
    assert policy_schema()["properties"]


def test_error_carries_pointer_and_code() -> None:
    text = POLICY_YAML.replace("age: {control: filter}", "age: {control: 7}")
    with pytest.raises(PolicyDocumentError) as caught:
        load_policy(text)
    assert caught.value.code == "policy_document_invalid"
    assert caught.value.issues[0].pointer == "/columns/age/control"
    assert "columns.age.control" in str(caught.value)


def test_odd_column_names_are_quoted_in_paths() -> None:
    text = POLICY_YAML.replace(
        "  ward: {control: plain}\n", '  "出院 日期": {control: sometimes}\n'
    )
    [(_, _, path, _)] = issues_of(text)
    assert path == 'columns["出院 日期"].control'


# Property tests --------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
CONTROLS = ["never", "join_key", "filter", "group_by", "aggregate", "plain"]


@st.composite
def column_rules(draw: st.DrawFn) -> dict[str, Any]:
    control = draw(st.sampled_from(CONTROLS))
    rule: dict[str, Any] = {"control": control}
    if control in ("aggregate", "plain") and draw(st.booleans()):
        lower = draw(st.integers(-1000, 1000))
        rule["clip"] = {"lower": lower, "upper": lower + draw(st.integers(1, 1000))}
    return rule


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    budget = draw(st.floats(0.1, 100, allow_nan=False))
    jobs: dict[str, Any] = {
        "kinds": draw(
            st.lists(st.sampled_from(["sql_aggregate", "he_aggregate", "he_linear"]), unique=True)
        ),
        "aggregates": draw(st.lists(st.sampled_from(["count", "sum", "avg", "max"]), unique=True)),
        "purposes": draw(st.lists(NAMES, unique=True, max_size=3)),
        "min_group_size": draw(st.integers(2, 100)),
        "max_rows_per_unit": draw(st.integers(1, 10)),
    }
    if draw(st.booleans()):
        required = draw(st.integers(1, 5))
        jobs["approval"] = {"mode": "quorum", "quorum": {"required": required, "of": required + 1}}
    if draw(st.booleans()):
        jobs["time_windows"] = [
            {"days": ["mon", "fri"], "start": "08:00", "end": "18:30", "timezone": "Asia/Shanghai"}
        ]
    return {
        "version": 1,
        "asset": draw(NAMES),
        "columns": draw(st.dictionaries(NAMES, column_rules(), max_size=6)),
        "jobs": jobs,
        "privacy": {
            "epsilon_per_job_max": budget / 2,
            "budget": {"epsilon": budget, "delta": 1e-6, "period_days": draw(st.integers(1, 365))},
        },
    }


def mapping_paths(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of the mappings in ``data`` that are field mappings (not the column-name map)."""
    found: list[tuple[Any, ...]] = []
    if isinstance(data, dict):
        if path != ("columns",):
            found.append(path)
        for key, value in data.items():
            found += mapping_paths(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += mapping_paths(value, (*path, index))
    return found


def render(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies())
def test_valid_policies_round_trip_through_yaml_and_schema(data: dict[str, Any]) -> None:
    policy = Policy.model_validate(data)
    dumped = policy.model_dump(mode="json", exclude_none=True)
    Draft202012Validator(policy_schema()).validate(dumped)
    assert load_policy(yaml.safe_dump(dumped, sort_keys=False)) == policy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.data(), st.booleans())
def test_unknown_field_line_matches_where_it_was_written(
    data: dict[str, Any], choice: st.DataObject, flow: bool
) -> None:
    target_path = choice.draw(st.sampled_from(mapping_paths(data)))
    spoiled = copy.deepcopy(data)
    node: Any = spoiled
    for part in target_path:
        node = node[part]
    node["zz_unknown"] = 1
    text = yaml.safe_dump(spoiled, sort_keys=False, default_flow_style=None if flow else False)
    with pytest.raises(PolicyDocumentError) as caught:
        load_policy(text)
    [issue] = [i for i in caught.value.issues if "zz_unknown" in i.message]
    assert issue.path == render((*target_path, "zz_unknown"))
    line = text.splitlines()[issue.line - 1]
    assert line[issue.column - 1 :].startswith("zz_unknown:")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_only_raises_document_errors(text: str) -> None:
    issues: tuple[PolicyIssue, ...] = ()
    try:
        load_policy(text)
    except PolicyDocumentError as exc:
        issues = exc.issues
        assert issues, "a document error always lists its issues"
    for issue in issues:
        assert issue.line >= 1
        assert issue.column >= 1
        assert issue.message
