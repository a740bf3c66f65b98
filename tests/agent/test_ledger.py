"""The site's own ledger: charges within the holder's budget, all or nothing, durable."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandbox.agent.ledger import Charge, LedgerRefused, SiteLedger

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BUDGET = (3.0, 1e-6, 30)


def _admit(
    ledger: SiteLedger,
    fragment: str,
    epsilon: float = 1.0,
    delta: float = 0.0,
    now: datetime = NOW,
    licence: str = "lic",
) -> None:
    ledger.admit(
        fragment,
        "0" * 64,
        f"job-{fragment}",
        "ast",
        [Charge("ast", licence, epsilon, delta)],
        now=now,
        budget=BUDGET,
    )


def test_charges_add_up_to_the_budget_and_no_further(tmp_path: Path) -> None:
    ledger = SiteLedger(tmp_path / "ledger.db")
    for n in range(3):
        _admit(ledger, f"f{n}")
    with pytest.raises(LedgerRefused) as refused:
        _admit(ledger, "f3", epsilon=0.1)
    assert refused.value.code == "site_budget_exhausted"
    assert not ledger.admitted("f3")
    spent = ledger.asset_spent("ast", NOW - timedelta(days=30))
    assert (spent.epsilon, spent.jobs) == (3.0, 3)


def test_delta_has_its_own_budget(tmp_path: Path) -> None:
    ledger = SiteLedger(tmp_path / "ledger.db")
    _admit(ledger, "f1", epsilon=0.1, delta=6e-7)
    with pytest.raises(LedgerRefused):
        _admit(ledger, "f2", epsilon=0.1, delta=6e-7)
    _admit(ledger, "f3", epsilon=0.1, delta=4e-7)


def test_the_budget_renews_after_its_period(tmp_path: Path) -> None:
    ledger = SiteLedger(tmp_path / "ledger.db")
    _admit(ledger, "old", epsilon=3.0, now=NOW - timedelta(days=31))
    _admit(ledger, "new", epsilon=3.0)
    with pytest.raises(LedgerRefused):
        _admit(ledger, "more", epsilon=0.5)


def test_a_fragment_is_admitted_once(tmp_path: Path) -> None:
    ledger = SiteLedger(tmp_path / "ledger.db")
    _admit(ledger, "f1")
    with pytest.raises(LedgerRefused) as refused:
        _admit(ledger, "f1")
    assert refused.value.code == "replayed"
    assert ledger.asset_spent("ast", NOW - timedelta(days=1)).epsilon == 1.0


def test_parallel_admissions_never_overspend(tmp_path: Path) -> None:
    ledger = SiteLedger(tmp_path / "ledger.db")

    def attempt(n: int) -> bool:
        try:
            _admit(ledger, f"p{n}", epsilon=0.25)
        except LedgerRefused:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        admitted = sum(pool.map(attempt, range(40)))
    assert admitted == 12
    assert ledger.asset_spent("ast", NOW - timedelta(days=1)).epsilon == pytest.approx(3.0)


def test_what_the_ledger_knows_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    ledger = SiteLedger(path)
    _admit(ledger, "f1", epsilon=2.5)
    ledger.revoke("lic-gone", NOW)
    ledger.note_policy("ast", NOW)
    ledger.note_policy("ast", NOW - timedelta(days=1))
    ledger.close()
    again = SiteLedger(path)
    assert again.admitted("f1")
    assert again.revoked(["lic-gone", "lic-kept"]) == {"lic-gone"}
    assert again.newest_policy("ast") == NOW
    with pytest.raises(LedgerRefused):
        _admit(again, "f2", epsilon=1.0)
    assert again.licence_spent("lic").jobs == 1
