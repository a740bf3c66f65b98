"""Suspensions and the security aggregates in the store (SQLite and PostgreSQL), and the
migration that made trace entries filterable by decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from gateway.audit.entry import make_entry
from gateway.domain import Suspension, SuspensionKind
from gateway.store import SqlStore, make_engine, migrate

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def suspension(n: int, kind: SuspensionKind, target: str) -> Suspension:
    return Suspension(
        id=f"sus_{n:04d}",
        kind=kind,
        target_id=target,
        operator_org_id="org_op",
        reason="incident",
        created_by="prn_aud",
        created_at=T0 + timedelta(minutes=n),
    )


def test_suspensions_round_trip_filter_and_lift_once(store: SqlStore) -> None:
    with store.write() as tx:
        tx.add_suspension(suspension(1, SuspensionKind.ORG, "org_op"))
        tx.add_suspension(suspension(2, SuspensionKind.LICENCE, "lic_1"))
    with store.read() as tx:
        assert tx.get_suspension("sus_0001") == suspension(1, SuspensionKind.ORG, "org_op")
        assert tx.get_suspension("sus_9999") is None
        assert [s.id for s in tx.list_suspensions(active=True)] == ["sus_0001", "sus_0002"]
        found = tx.list_suspensions(active=True, kind=SuspensionKind.LICENCE, target_id="lic_1")
        assert [s.id for s in found] == ["sus_0002"]
        assert tx.list_suspensions(kind=SuspensionKind.PRINCIPAL) == []
    with store.write() as tx:
        assert tx.lift_suspension("sus_0001", by="prn_aud", at=T0, reason="cleared")
        assert not tx.lift_suspension("sus_0001", by="prn_aud", at=T0, reason="again")
    with store.read() as tx:
        lifted = tx.get_suspension("sus_0001")
        assert lifted is not None and not lifted.active
        assert lifted.lift_reason == "cleared" and lifted.lifted_at == T0
        assert [s.id for s in tx.list_suspensions(active=True)] == ["sus_0002"]
        assert [s.id for s in tx.list_suspensions(active=False)] == ["sus_0001"]


def test_trace_entries_filter_by_decision_principal_and_either_org(store: SqlStore) -> None:
    from gateway.domain import Actor, Role

    op = Actor("prn_op", "org_op", Role.OPERATOR)
    other = Actor("prn_x", "org_x", Role.OPERATOR)
    for actor, decision, subject in (
        (op, "deny", "org_h"),
        (op, "allow", "org_h"),
        (other, "deny", "org_op"),
    ):
        store.append_trace(
            make_entry(at=T0, actor=actor, action="job.submit", decision=decision,
                       subject_org=subject)
        )  # fmt: skip
    with store.read() as tx:
        denied = tx.trace_entries(after=None, limit=10, decision="deny")
        assert [e.index for e in denied] == [0, 2]
        mine = tx.trace_entries(after=None, limit=10, actor_principal="prn_op")
        assert [e.index for e in mine] == [0, 1]
        about = tx.trace_entries(after=None, limit=10, org="org_op")
        assert [e.index for e in about] == [0, 1, 2]
        newest = tx.trace_entries(after=None, limit=2, newest=True)
        assert [e.index for e in newest] == [2, 1]
        before = tx.trace_entries(after=None, limit=5, newest=True, before=1)
        assert [e.index for e in before] == [0]
        assert tx.job_counts() == []
        assert tx.oldest_queued_at() is None
        assert tx.charge_totals(T0) == []


def test_migration_fills_in_the_decision_of_older_entries(store_url: str) -> None:
    engine = make_engine(store_url)
    migrate(engine, "0006")
    leaf = make_entry(at=T0, actor=None, action="auth.authenticate", decision="deny").entry
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO trace_entry (idx, leaf, time, action) VALUES (0, :leaf, :t, :a)"),
            {"leaf": json.dumps(leaf).encode(), "t": T0, "a": "auth.authenticate"},
        )
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT decision FROM trace_entry")).scalar_one() == "deny"
    engine.dispose()
