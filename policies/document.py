"""Loading policy documents: YAML text to a validated :class:`~policies.model.Policy`.

Three layers run in order and every problem found is reported with its line and
column: the YAML reader (syntax, duplicate keys, unsupported tags), the shipped JSON
Schema (structure, types, unknown fields) and the models (cross-field rules such as
``clip.lower < clip.upper``).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator  # type: ignore[import-untyped,unused-ignore]
from pydantic import ValidationError

from policies.errors import Path, PolicyDocumentError, PolicyIssue, json_pointer, render_path
from policies.model import KeyDomain, Policy
from policies.yaml_source import SourceMap, read_yaml

SCHEMA_RESOURCE: Final = "policy.schema.json"
_MAX_MESSAGE: Final = 300


@functools.cache
def _schema_text() -> str:
    return resources.files("policies").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


@functools.cache
def _validator() -> Any:
    return Draft202012Validator(_schema())


def policy_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of policy documents, as a fresh dict."""
    return copy.deepcopy(_schema())


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _schema_issues(error: Any, source: SourceMap) -> list[PolicyIssue]:
    """Turn one jsonschema error into located, readable issues."""
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        known = set(schema.get("properties", {}))
        extra = sorted(name for name in error.instance if name not in known)
        return [source.issue((*path, name), f"unknown field '{name}'", key=True) for name in extra]
    if kind == "required" and isinstance(error.instance, dict):
        line, column = source.locate(path)
        return [
            PolicyIssue(
                line,
                column,
                render_path((*path, name)),
                json_pointer((*path, name)),
                f"missing required field '{name}'",
            )
            for name in error.validator_value
            if name not in error.instance
        ]
    if kind == "propertyNames":
        name = str(error.instance)
        return [source.issue((*path, name), f"invalid name {name!r}", key=True)]
    if kind == "enum":
        allowed = ", ".join(str(value) for value in error.validator_value)
        message = f"{error.instance!r} is not allowed; use one of: {allowed}"
    elif kind == "const":
        message = f"must be {error.validator_value!r}"
    elif kind == "type":
        message = f"must be of type {error.validator_value}, not {type(error.instance).__name__}"
    elif kind == "pattern":
        hint = schema.get("description")
        message = f"{error.instance!r} is not in the expected format"
        message += f" ({hint})" if hint else f" (pattern {error.validator_value})"
    elif kind == "uniqueItems":
        message = "items must be unique"
    else:
        message = str(error.message)
    return [source.issue(path, _short(message))]


def _model_issues(exc: ValidationError, source: SourceMap) -> list[PolicyIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        path: Path = tuple(segment for segment in error["loc"] if isinstance(segment, str | int))
        message = str(error["msg"]).removeprefix("Value error, ")
        issues.append(source.issue(path, _short(message)))
    return issues


def _load(text: str) -> tuple[Policy, SourceMap]:
    if not isinstance(text, str):
        raise PolicyDocumentError([PolicyIssue(1, 1, "", "", "a policy document must be text")])
    data, source, issues = read_yaml(text)
    if data is None and issues:
        raise PolicyDocumentError(issues)
    reported = {issue.pointer for issue in issues}
    for error in _validator().iter_errors(data):
        issues.extend(i for i in _schema_issues(error, source) if i.pointer not in reported)
    if issues:
        raise PolicyDocumentError(list(dict.fromkeys(issues)))
    try:
        return Policy.model_validate(data), source
    except ValidationError as exc:
        raise PolicyDocumentError(_model_issues(exc, source)) from None


def load_policy(text: str) -> Policy:
    """Parse and validate a policy document.

    Raises :class:`PolicyDocumentError` listing every issue (line, column, path,
    message) if the text is not a valid version-1 policy.
    """
    return _load(text)[0]


@dataclass(frozen=True, slots=True)
class AssetShape:
    """What a policy is checked against: the asset's ids, columns and privacy unit."""

    names: tuple[str, ...]
    """The ids and names the policy's ``asset`` field may give."""
    columns: Mapping[str, tuple[str, str]]
    """Column name -> (type, tag)."""
    privacy_unit: str


_TEXT_TYPES: Final = frozenset({"text"})
_INTEGER_TYPES: Final = frozenset({"integer", "bigint"})
_DATE_TYPES: Final = frozenset({"date"})


def load_policy_for(text: str, asset: AssetShape) -> Policy:
    """Parse a policy and check it against the asset it governs; every issue is located.

    Besides :func:`load_policy`'s checks: the ``asset`` field names the asset; every
    column exists; an ``identifier`` column is never ``plain`` nor ``group_by``, a
    ``sensitive`` one never ``plain``; a declared key domain fits the column's type.
    The privacy unit may have any control, ``never`` included: the gateway and the
    sites always use it to bound and count people, whatever an operator may do with it.
    """
    policy, source = _load(text)
    issues: list[PolicyIssue] = []
    if policy.asset not in asset.names:
        names = " or ".join(repr(n) for n in asset.names)
        issues.append(source.issue(("asset",), f"the policy's asset must be {names}"))
    for name, rule in policy.columns.items():
        found = asset.columns.get(name)
        if found is None:
            issues.append(
                source.issue(("columns", name), "no such column in the asset's schema", key=True)
            )
            continue
        kind, tag = found
        where = ("columns", name, "control")
        if tag == "identifier" and rule.control in ("plain", "group_by"):
            issues.append(
                source.issue(
                    where,
                    f"'{name}' is an identifier: control '{rule.control}' would release one "
                    "value or group per person; use join_key, filter, aggregate or never",
                )
            )
        elif tag == "sensitive" and rule.control == "plain":
            issues.append(
                source.issue(
                    where,
                    f"'{name}' is sensitive: control 'plain' would release its row values; "
                    "use aggregate, group_by, filter or never",
                )
            )
        if rule.keys is not None:
            problem = _domain_problem(rule.keys, kind)
            if problem:
                issues.append(source.issue(("columns", name, "keys"), problem))
    if policy.python is not None:
        for index, name in enumerate(policy.python.columns):
            found = asset.columns.get(name)
            spot: tuple[str | int, ...] = ("python", "columns", index)
            if found is None:
                issues.append(source.issue(spot, f"'{name}' is not a column of the asset"))
            elif found[1] == "identifier":
                issues.append(
                    source.issue(
                        spot,
                        f"'{name}' is an identifier: a Python job's copy of the asset never "
                        "holds one (its code could write it out row by row)",
                    )
                )
    if issues:
        raise PolicyDocumentError(issues)
    return policy


@functools.lru_cache(maxsize=512)
def parsed_policy(
    document: str,
    asset_id: str,
    asset_name: str,
    columns: tuple[tuple[str, str, str], ...],
    privacy_unit: str,
) -> Policy:
    """:func:`load_policy_for` against the asset given by its id, name, ``(name, type,
    tag)`` columns and unit, bound to the asset's id; kept per version.

    Parsing is a pure function of these arguments and the result is frozen, so a policy
    version is parsed once for every decision that reads it (an invalid document raises
    :class:`PolicyDocumentError` each time and is never kept)."""
    shape = AssetShape(
        names=(asset_id, asset_name),
        columns={name: (kind, tag) for name, kind, tag in columns},
        privacy_unit=privacy_unit,
    )
    return load_policy_for(document, shape).model_copy(update={"asset": asset_id})


def _domain_problem(domain: KeyDomain, kind: str) -> str | None:
    """Why ``domain`` cannot hold keys of a column of type ``kind``, if it cannot."""
    if domain.range is not None and kind not in _INTEGER_TYPES:
        return f"an integer range cannot hold keys of a {kind} column"
    if domain.dates is not None and kind not in _DATE_TYPES:
        return f"dates cannot be keys of a {kind} column"
    values = domain.values or ()
    if kind in _INTEGER_TYPES and not all(isinstance(v, int) for v in values):
        return f"keys of an {kind} column must be integers"
    if kind in _TEXT_TYPES and not all(isinstance(v, str) for v in values):
        return "keys of a text column must be strings"
    if kind in _DATE_TYPES and not all(isinstance(v, str) and _is_date(v) for v in values):
        return "keys of a date column must be YYYY-MM-DD dates"
    if kind not in _TEXT_TYPES | _INTEGER_TYPES | _DATE_TYPES:
        return f"a {kind} column cannot have declared keys; group by a text, integer or date column"
    return None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
