"""One conformance suite for every store backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from gateway.domain import (
    ApiKey,
    Asset,
    AssetStatus,
    Classification,
    Column,
    ColumnTag,
    ColumnType,
    Disposal,
    Freeze,
    Organisation,
    Principal,
    Rights,
    Role,
    Site,
    UpdateFrequency,
)
from gateway.errors import Conflict, InvalidState
from gateway.store import SqlStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def org(i: int) -> Organisation:
    return Organisation(f"org_{i:04d}", f"Org {i}", "", None, T0)


def asset(i: int, org_id: str, site_id: str, status: AssetStatus = AssetStatus.ACTIVE) -> Asset:
    return Asset(
        id=f"ast_{i:04d}",
        org_id=org_id,
        site_id=site_id,
        local_ref="t.csv",
        name=f"asset {i}",
        description="d",
        domain="health",
        columns=(
            Column("pid", ColumnType.TEXT, ColumnTag.IDENTIFIER),
            Column("age", ColumnType.INTEGER, ColumnTag.QUASI_IDENTIFIER, "years"),
        ),
        privacy_unit="pid",
        row_count=10,
        update_frequency=UpdateFrequency.DAILY,
        classification=Classification.CORE,
        rights=Rights("a", "b", "c"),
        status=status,
        registration_number=f"BG-2026-{i:06d}",
        version=1,
        content_digest="00" * 32,
        created_at=T0,
        updated_at=T0,
    )


@pytest.fixture
def seeded(store: SqlStore) -> SqlStore:
    with store.write() as tx:
        tx.add_org(org(1))
        tx.add_org(org(2))
        tx.add_site(Site("site_0001", "org_0001", "s1", "h:1", "aa" * 32, T0))
        tx.add_site(Site("site_0002", "org_0002", "s2", "h:2", "bb" * 32, T0))
    return store


def test_schema_matches_the_migrations(store: SqlStore) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_organisations_round_trip_and_unique(seeded: SqlStore) -> None:
    with seeded.read() as tx:
        assert tx.get_org("org_0001") == org(1)
        assert tx.get_org("org_9999") is None
        assert [o.id for o in tx.list_orgs(after=None, limit=10)] == ["org_0001", "org_0002"]
        assert [o.id for o in tx.list_orgs(after="org_0001", limit=10)] == ["org_0002"]
    with pytest.raises(Conflict), seeded.write() as tx:
        tx.add_org(Organisation("org_0003", "Org 1", "", None, T0))
    with seeded.write() as tx:
        tx.set_org_public_key("org_0001", "A" * 43 + "=")
    with seeded.read() as tx:
        found = tx.get_org("org_0001")
        assert found is not None
        assert found.public_key == "A" * 43 + "="


def test_failed_write_rolls_back_everything(seeded: SqlStore) -> None:
    with pytest.raises(RuntimeError), seeded.write() as tx:
        tx.add_org(org(5))
        raise RuntimeError("boom")
    with seeded.read() as tx:
        assert tx.get_org("org_0005") is None


def test_principals_and_keys(seeded: SqlStore) -> None:
    p = Principal("prn_0001", "org_0001", "alice", Role.HOLDER, False, T0)
    with seeded.write() as tx:
        tx.add_principal(p)
        tx.add_api_key(ApiKey("key_0001", p.id, T0, None), "h" * 64)
    with seeded.read() as tx:
        found = tx.find_api_key("h" * 64)
        assert found == (ApiKey("key_0001", p.id, T0, None), p)
        assert tx.find_api_key("x" * 64) is None
        assert tx.list_principals(org_id="org_0002", after=None, limit=5) == []
    with seeded.write() as tx:
        tx.revoke_api_key("key_0001", T0 + timedelta(hours=1))
        tx.set_principal_disabled(p.id, True)
    with seeded.read() as tx:
        key, principal = tx.find_api_key("h" * 64) or (None, None)
        assert key is not None and key.revoked_at == T0 + timedelta(hours=1)
        assert principal is not None and principal.disabled
    with pytest.raises(Conflict), seeded.write() as tx:
        tx.add_principal(Principal("prn_0002", "org_0001", "alice", Role.OPERATOR, False, T0))
    with pytest.raises(Conflict), seeded.write() as tx:
        tx.add_api_key(ApiKey("key_0002", p.id, T0, None), "h" * 64)


def test_assets_round_trip_filters_and_pages(seeded: SqlStore) -> None:
    with seeded.write() as tx:
        for i in range(1, 6):
            tx.add_asset(asset(i, "org_0001", "site_0001"))
        tx.add_asset(asset(6, "org_0002", "site_0002", AssetStatus.DISPOSED))
    with seeded.read() as tx:
        assert tx.get_asset("ast_0001") == asset(1, "org_0001", "site_0001")
        active = (AssetStatus.ACTIVE, AssetStatus.FROZEN)
        everything = (*active, AssetStatus.DISPOSED)
        page1 = tx.list_assets(org_id=None, statuses=active, after=None, limit=3)
        page2 = tx.list_assets(org_id=None, statuses=active, after=page1[-1].id, limit=3)
        assert [a.id for a in page1 + page2] == [f"ast_{i:04d}" for i in range(1, 6)]
        assert [
            a.id
            for a in tx.list_assets(org_id="org_0002", statuses=everything, after=None, limit=9)
        ] == ["ast_0006"]
        assert tx.list_assets(org_id="org_0002", statuses=active, after=None, limit=9) == []


def test_asset_update_is_optimistic(seeded: SqlStore) -> None:
    a = asset(1, "org_0001", "site_0001")
    with seeded.write() as tx:
        tx.add_asset(a)
    frozen = Freeze("prn_x", Role.AUDITOR, T0, "incident")
    disposal = Disposal("prn_y", T0, "shred", "cd" * 32, "")
    b = _replace(a, freeze=frozen, disposal=disposal, status=AssetStatus.DISPOSED, version=2)
    with seeded.write() as tx:
        tx.update_asset(b, expected_version=1)
    with seeded.read() as tx:
        assert tx.get_asset(a.id) == b
    with pytest.raises(InvalidState), seeded.write() as tx:
        tx.update_asset(b, expected_version=1)


def _replace(a: Asset, **changes: object) -> Asset:
    import dataclasses

    return dataclasses.replace(a, **changes)  # type: ignore[arg-type]


def test_serials_are_unique_under_concurrency(store: SqlStore) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            with store.write() as tx:
                n = tx.next_serial("reg")
            with lock:
                got.append(n)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 51))
