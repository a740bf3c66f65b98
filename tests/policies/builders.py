"""Builders for valid policies and job descriptions that tests then spoil one way at a time."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from policies import EvaluationRequest, Policy

NOW = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)  # a Tuesday, 18:30 in Shanghai

POLICY_YAML = """\
version: 1
asset: admissions
description: Hospital admissions, one row per stay
columns:
  patient_id: {control: join_key}
  district: {control: group_by}
  age: {control: filter}
  los_days:
    control: aggregate
    clip: {lower: 0, upper: 60}
  cost:
    control: plain
    clip: {lower: 0, upper: 100000}
  diagnosis: {control: never}
  ward: {control: plain}
jobs:
  kinds: [sql_aggregate, he_aggregate]
  aggregates: [count, sum, avg]
  purposes: [public-health-research]
  min_group_size: 10
  max_rows_per_unit: 2
  max_groups: 500
  approval:
    mode: manual
    expires_after_hours: 72
  rate_limit_per_hour: 20
privacy:
  epsilon_per_job_max: 1.0
  budget: {epsilon: 10, delta: 1.0e-6, period_days: 30}
"""


def policy_dict(asset: str = "admissions") -> dict[str, Any]:
    """A valid policy as plain data."""
    return {
        "version": 1,
        "asset": asset,
        "columns": {
            "patient_id": {"control": "join_key"},
            "district": {"control": "group_by"},
            "age": {"control": "filter"},
            "los_days": {"control": "aggregate", "clip": {"lower": 0, "upper": 60}},
            "cost": {"control": "plain", "clip": {"lower": 0, "upper": 100000}},
            "diagnosis": {"control": "never"},
            "ward": {"control": "plain"},
        },
        "jobs": {
            "kinds": ["sql_aggregate", "he_aggregate"],
            "aggregates": ["count", "sum", "avg"],
            "purposes": ["public-health-research"],
            "min_group_size": 10,
            "max_rows_per_unit": 2,
            "max_groups": 500,
            "approval": {"mode": "manual", "expires_after_hours": 72},
            "rate_limit_per_hour": 20,
        },
        "privacy": {
            "epsilon_per_job_max": 1.0,
            "budget": {"epsilon": 10, "delta": 1e-6, "period_days": 30},
        },
    }


def facts_dict(asset: str = "admissions") -> dict[str, Any]:
    """Facts for the asset of :func:`policy_dict`."""
    return {
        "asset_id": asset,
        "status": "active",
        "privacy_unit": "patient_id",
        "column_tags": {
            "patient_id": "identifier",
            "district": "quasi_identifier",
            "age": "quasi_identifier",
            "los_days": "attribute",
            "cost": "sensitive",
            "diagnosis": "sensitive",
            "ward": "attribute",
        },
    }


def licence_dict(
    licence_id: str = "L-1", assets: tuple[str, ...] = ("admissions",)
) -> dict[str, Any]:
    """An active licence covering ``assets``."""
    return {
        "licence_id": licence_id,
        "status": "active",
        "valid_from": "2025-01-01T00:00:00Z",
        "valid_until": "2026-01-01T00:00:00Z",
        "asset_ids": list(assets),
        "purposes": ["public-health-research"],
        "job_kinds": ["sql_aggregate", "he_aggregate"],
        "epsilon_cap": 50.0,
        "epsilon_used": 3.0,
        "job_cap": 100,
        "jobs_used": 7,
    }


def request_dict() -> dict[str, Any]:
    """A job on one asset that every rule allows."""
    return {
        "job_kind": "sql_aggregate",
        "purpose": "public-health-research",
        "epsilon": 0.5,
        "assets": [{"facts": facts_dict(), "policy": policy_dict(), "policy_revision": 3}],
        "column_uses": [
            {"asset": "admissions", "column": "district", "usage": "group_by"},
            {"asset": "admissions", "column": "age", "usage": "filter"},
            {"asset": "admissions", "column": "los_days", "usage": "aggregate", "function": "avg"},
            {
                "asset": "admissions",
                "column": "patient_id",
                "usage": "aggregate",
                "function": "count",
            },
        ],
        "licences": [licence_dict()],
        "usage": {"jobs_last_hour": {"L-1": 2}, "epsilon_spent": {"admissions": 4.0}},
        "now": NOW,
    }


def two_asset_request() -> dict[str, Any]:
    """A job joining two holders' assets, both allowing it."""
    req = request_dict()
    other = policy_dict("claims")
    other["jobs"]["min_group_size"] = 25
    other["jobs"]["max_rows_per_unit"] = 1
    other["jobs"]["approval"] = {"mode": "quorum", "quorum": {"required": 2, "of": 3}}
    other["privacy"]["epsilon_per_job_max"] = 0.8
    req["assets"].append({"facts": facts_dict("claims"), "policy": other, "policy_revision": 1})
    req["column_uses"].append({"asset": "claims", "column": "patient_id", "usage": "join_key"})
    req["column_uses"].append({"asset": "admissions", "column": "patient_id", "usage": "join_key"})
    req["licences"].append(licence_dict("L-2", ("claims",)))
    req["usage"]["jobs_last_hour"]["L-2"] = 0
    req["usage"]["epsilon_spent"]["claims"] = 0.0
    return req


def build(data: dict[str, Any]) -> EvaluationRequest:
    """Validate request data into a model."""
    return EvaluationRequest.model_validate(copy.deepcopy(data))


def policy(data: dict[str, Any] | None = None) -> Policy:
    """Validate policy data into a model."""
    return Policy.model_validate(copy.deepcopy(data or policy_dict()))
