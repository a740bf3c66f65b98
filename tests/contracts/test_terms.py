"""Licence terms and their canonical bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts import (
    LicenceError,
    LicenceTerms,
    canonical_bytes,
    terms_digest,
    terms_from_canonical,
)


def terms_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "licence_id": "L-2025-0007",
        "holder_org_id": "org-city-hospitals",
        "operator_org_id": "org-health-analytics",
        "asset_ids": ["admissions", "claims"],
        "purposes": ["public-health-research"],
        "job_kinds": ["sql_aggregate", "he_aggregate"],
        "valid_from": datetime(2025, 1, 1, tzinfo=UTC),
        "valid_until": datetime(2026, 1, 1, tzinfo=UTC),
        "epsilon_cap": "20.0",
        "job_cap": 500,
        "fee": {"amount": "120000.00", "currency": "CNY", "revenue_share_percent": "7.5"},
    }
    data.update(changes)
    return data


def make(**changes: Any) -> LicenceTerms:
    return LicenceTerms.model_validate(terms_data(**changes))


def test_canonical_form_is_exact() -> None:
    assert canonical_bytes(make()) == (
        b'{"asset_ids":["admissions","claims"],"epsilon_cap":"20.0",'
        b'"fee":{"amount":"120000.00","currency":"CNY","revenue_share_percent":"7.5"},'
        b'"holder_org_id":"org-city-hospitals","job_cap":500,'
        b'"job_kinds":["he_aggregate","sql_aggregate"],"licence_id":"L-2025-0007",'
        b'"operator_org_id":"org-health-analytics","purposes":["public-health-research"],'
        b'"valid_from":"2025-01-01T00:00:00Z","valid_until":"2026-01-01T00:00:00Z","version":1}'
    )


def test_canonical_form_ignores_presentation() -> None:
    shanghai = timezone(timedelta(hours=8))
    same = make(
        asset_ids=["claims", "admissions", "claims"],
        job_kinds=["sql_aggregate", "he_aggregate"],
        valid_from=datetime(2025, 1, 1, 8, tzinfo=shanghai),
    )
    assert canonical_bytes(same) == canonical_bytes(make())
    assert terms_digest(same) == terms_digest(make())


def test_fractional_seconds_and_unicode() -> None:
    terms = make(
        valid_from=datetime(2025, 1, 1, 0, 0, 0, 250000, tzinfo=UTC), purposes=["公共卫生研究"]
    )
    data = canonical_bytes(terms)
    assert b'"valid_from":"2025-01-01T00:00:00.250000Z"' in data
    assert "公共卫生研究".encode() in data
    assert terms_from_canonical(data) == terms


def test_optional_caps_are_null() -> None:
    data = json.loads(canonical_bytes(make(epsilon_cap=None, job_cap=None)))
    assert data["epsilon_cap"] is None
    assert data["job_cap"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"valid_until": datetime(2024, 1, 1, tzinfo=UTC)},
        {"valid_until": datetime(2025, 1, 1, tzinfo=UTC)},
        {"valid_from": datetime(2025, 1, 1)},
        {"asset_ids": []},
        {"epsilon_cap": "0"},
        {"epsilon_cap": "NaN"},
        {"job_cap": 0},
        {"job_cap": True},
        {"fee": {"amount": "-1", "currency": "CNY"}},
        {"fee": {"amount": "1", "currency": "yuan"}},
        {"fee": {"amount": "1", "currency": "CNY", "revenue_share_percent": "100.1"}},
        {"surprise": 1},
    ],
)
def test_invalid_terms(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make(**changes)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"licence_id": "x"}',
    ],
)
def test_unreadable_canonical_bytes(data: bytes) -> None:
    with pytest.raises(LicenceError) as caught:
        terms_from_canonical(data)
    assert caught.value.code == "invalid_terms"


def test_non_canonical_bytes_are_refused() -> None:
    data = canonical_bytes(make())
    for spoiled in (
        json.dumps(json.loads(data)).encode(),  # whitespace
        data.replace(b'"epsilon_cap":"20.0"', b'"epsilon_cap":20.0'),  # number, not string
        data.replace(b'"job_cap":500', b'"job_cap":500,"job_cap":500'),  # duplicate key
        data.replace(b"00:00:00Z", b"00:00:00+00:00"),
    ):
        with pytest.raises(LicenceError) as caught:
            terms_from_canonical(spoiled)
        assert caught.value.code == "invalid_terms"


ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=100, deadline=None)
@given(
    ids,
    st.lists(ids, min_size=1, max_size=4),
    moments,
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3000)),
    st.none() | st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3),
    st.none() | st.integers(1, 10**6),
)
def test_canonical_round_trip(
    licence_id: str,
    assets: list[str],
    start: datetime,
    length: timedelta,
    cap: Decimal | None,
    jobs: int | None,
) -> None:
    terms = make(
        licence_id=licence_id,
        asset_ids=assets,
        valid_from=start,
        valid_until=start + length,
        epsilon_cap=cap,
        job_cap=jobs,
    )
    data = canonical_bytes(terms)
    assert terms_from_canonical(data) == terms
    assert canonical_bytes(terms_from_canonical(data)) == data
