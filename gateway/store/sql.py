"""The SQL implementation of the store: SQLite (WAL) by default, PostgreSQL by URL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, col, select

from gateway.domain import (
    ApiKey,
    Asset,
    AssetStatus,
    Organisation,
    PendingTrace,
    Principal,
    Site,
    TraceRecord,
)
from gateway.errors import Conflict, InvalidState
from gateway.store import trace as trace_sql
from gateway.store.mapping import (
    asset_from,
    asset_values,
    key_from,
    org_from,
    principal_from,
    site_from,
)
from gateway.store.models import (
    ApiKeyRow,
    AssetRow,
    CounterRow,
    OrganisationRow,
    PrincipalRow,
    SiteRow,
)
from gateway.store.security import SecurityTx
from gateway.store.sql_governance import GovernanceTx
from gateway.store.writer import GroupCommitWriter

log = logging.getLogger(__name__)
R = TypeVar("R")


def make_engine(url: str) -> Engine:
    """Create an engine with the settings Blindgate relies on for ``url``."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=8,
            max_overflow=8,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: DBAPIConnection, _rec: ConnectionPoolEntry) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            mode = "IMMEDIATE" if conn.get_execution_options().get("blindgate_write") else ""
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class SqlStore:
    """A :class:`gateway.store.repository.Store` over SQLAlchemy.

    Writes go through :meth:`transact` (group commit by one writer thread) or, for
    one-off work such as start-up, :meth:`write`. Both persist trace entries appended in
    the transaction in the same commit.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.kind = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
        self._sqlite_write_lock = threading.Lock() if self.kind == "sqlite" else None
        self.trace_writer = trace_sql.TraceWriter()
        self._writer: GroupCommitWriter[SqlTx] | None = None
        self._writer_lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[SqlTx]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield SqlTx(session)
            session.rollback()

    @contextmanager
    def batch_transaction(self) -> Iterator[SqlTx]:
        """One write transaction; appended trace entries are positioned and written at the end."""
        lock = self._sqlite_write_lock
        if lock is not None:
            lock.acquire()
        try:
            conn = self.engine.connect().execution_options(blindgate_write=True)
            try:
                with Session(bind=conn, expire_on_commit=False) as session:
                    tx = SqlTx(session, trace_sql.TraceBatch())
                    compact = None
                    try:
                        yield tx
                        assert tx.batch is not None
                        compact = self.trace_writer.finish(
                            session, tx.batch, postgres=self.kind == "postgresql"
                        )
                        session.commit()
                    except BaseException:
                        session.rollback()
                        self.trace_writer.forget()
                        raise
                    self.trace_writer.committed(compact)
            finally:
                conn.close()
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def write(self) -> Iterator[SqlTx]:
        """A write transaction in the calling thread (no group commit)."""
        try:
            with self.batch_transaction() as tx:
                yield tx
        except IntegrityError as exc:
            raise Conflict("a resource with the same unique name already exists") from exc

    def _group_writer(self) -> GroupCommitWriter[SqlTx]:
        with self._writer_lock:
            if self._writer is None:
                self._writer = GroupCommitWriter(self.batch_transaction)
            return self._writer

    def transact(self, fn: Callable[[SqlTx], R]) -> R:
        """Run ``fn`` in the writer thread's next batch; return once it is durable."""
        return self._group_writer().submit(fn)

    def append_trace(self, record: TraceRecord) -> PendingTrace:
        """Append one trace entry with group commit; return once it is durable."""
        return self._group_writer().append(record)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        self.engine.dispose()


class SqlTx(GovernanceTx, SecurityTx):
    """One transaction; see :class:`gateway.store.repository.Tx`."""

    def __init__(self, session: Session, batch: trace_sql.TraceBatch | None = None) -> None:
        self.session = session
        self.batch = batch

    def run_in_savepoint(self, fn: Callable[[SqlTx], Any]) -> tuple[bool, Any]:
        """Run ``fn`` in a savepoint: ``(True, result)``, or ``(False, error)`` rolled back."""
        assert self.batch is not None
        self.batch.mark()
        savepoint = self.session.begin_nested()
        try:
            result = fn(self)
            self.session.flush()
            savepoint.commit()
        except IntegrityError:
            savepoint.rollback()
            self.batch.rollback_to_mark()
            return False, Conflict("a resource with the same unique name already exists")
        except Exception as exc:
            savepoint.rollback()
            self.batch.rollback_to_mark()
            return False, exc
        self.batch.release()
        return True, result

    # organisations
    def add_org(self, org: Organisation) -> None:
        self.session.add(OrganisationRow(**asdict(org)))
        self._flush()

    def get_org(self, org_id: str) -> Organisation | None:
        row = self.session.get(OrganisationRow, org_id)
        return org_from(row) if row else None

    def list_orgs(self, *, after: str | None, limit: int) -> list[Organisation]:
        q = select(OrganisationRow).order_by(col(OrganisationRow.id)).limit(limit)
        if after is not None:
            q = q.where(col(OrganisationRow.id) > after)
        return [org_from(r) for r in self.session.exec(q)]

    def set_org_public_key(self, org_id: str, public_key: str | None) -> None:
        self.session.execute(
            update(OrganisationRow)
            .where(col(OrganisationRow.id) == org_id)
            .values(public_key=public_key)
        )

    # principals and keys
    def add_principal(self, principal: Principal) -> None:
        values = asdict(principal)
        values["role"] = str(principal.role)
        self.session.add(PrincipalRow(**values))
        self._flush()

    def get_principal(self, principal_id: str) -> Principal | None:
        row = self.session.get(PrincipalRow, principal_id)
        return principal_from(row) if row else None

    def list_principals(
        self, *, org_id: str | None, after: str | None, limit: int
    ) -> list[Principal]:
        q = select(PrincipalRow).order_by(col(PrincipalRow.id)).limit(limit)
        if org_id is not None:
            q = q.where(col(PrincipalRow.org_id) == org_id)
        if after is not None:
            q = q.where(col(PrincipalRow.id) > after)
        return [principal_from(r) for r in self.session.exec(q)]

    def set_principal_disabled(self, principal_id: str, disabled: bool) -> None:
        self.session.execute(
            update(PrincipalRow)
            .where(col(PrincipalRow.id) == principal_id)
            .values(disabled=disabled)
        )

    def add_api_key(self, key: ApiKey, key_hash: str) -> None:
        self.session.add(ApiKeyRow(**asdict(key), key_hash=key_hash))
        self._flush()

    def find_api_key(self, key_hash: str) -> tuple[ApiKey, Principal] | None:
        q = (
            select(ApiKeyRow, PrincipalRow)
            .join(PrincipalRow, col(PrincipalRow.id) == col(ApiKeyRow.principal_id))
            .where(col(ApiKeyRow.key_hash) == key_hash)
        )
        found = self.session.exec(q).first()
        if found is None:
            return None
        key_row, principal_row = found
        return key_from(key_row), principal_from(principal_row)

    def list_api_keys(self, principal_id: str) -> list[ApiKey]:
        q = (
            select(ApiKeyRow)
            .where(col(ApiKeyRow.principal_id) == principal_id)
            .order_by(col(ApiKeyRow.id))
        )
        return [key_from(r) for r in self.session.exec(q)]

    def revoke_api_key(self, key_id: str, at: datetime) -> None:
        self.session.execute(
            update(ApiKeyRow)
            .where(col(ApiKeyRow.id) == key_id, col(ApiKeyRow.revoked_at).is_(None))
            .values(revoked_at=at)
        )

    # sites
    def add_site(self, site: Site) -> None:
        self.session.add(SiteRow(**asdict(site)))
        self._flush()

    def get_site(self, site_id: str) -> Site | None:
        row = self.session.get(SiteRow, site_id)
        return site_from(row) if row else None

    def list_sites(self, *, org_id: str | None, after: str | None, limit: int) -> list[Site]:
        q = select(SiteRow).order_by(col(SiteRow.id)).limit(limit)
        if org_id is not None:
            q = q.where(col(SiteRow.org_id) == org_id)
        if after is not None:
            q = q.where(col(SiteRow.id) > after)
        return [site_from(r) for r in self.session.exec(q)]

    # assets
    def add_asset(self, asset: Asset) -> None:
        self.session.add(AssetRow(**asset_values(asset)))
        self._flush()

    def get_asset(self, asset_id: str) -> Asset | None:
        row = self.session.get(AssetRow, asset_id)
        return asset_from(row) if row else None

    def list_assets(
        self,
        *,
        org_id: str | None,
        statuses: Sequence[AssetStatus],
        after: str | None,
        limit: int,
    ) -> list[Asset]:
        q = select(AssetRow).order_by(col(AssetRow.id)).limit(limit)
        if org_id is not None:
            q = q.where(col(AssetRow.org_id) == org_id)
        q = q.where(col(AssetRow.status).in_([str(s) for s in statuses]))
        if after is not None:
            q = q.where(col(AssetRow.id) > after)
        return [asset_from(r) for r in self.session.exec(q)]

    def list_asset_revisions(
        self,
        *,
        org_id: str | None,
        statuses: Sequence[AssetStatus],
        after: str | None,
        limit: int,
    ) -> list[tuple[str, int]]:
        table = AssetRow.__table__  # type: ignore[attr-defined]
        q = (
            select(table.c.id, table.c.revision)
            .where(table.c.status.in_([str(s) for s in statuses]))
            .order_by(table.c.id)
            .limit(limit)
        )
        if org_id is not None:
            q = q.where(table.c.org_id == org_id)
        if after is not None:
            q = q.where(table.c.id > after)
        return [(r[0], r[1]) for r in self.session.execute(q)]

    def get_assets(self, asset_ids: Sequence[str]) -> list[tuple[Asset, int]]:
        if not asset_ids:
            return []
        q = select(AssetRow).where(col(AssetRow.id).in_(list(asset_ids)))
        return [(asset_from(r), r.revision) for r in self.session.exec(q)]

    def update_asset(self, asset: Asset, *, expected_version: int) -> None:
        values = asset_values(asset)
        values.pop("id")
        values["revision"] = AssetRow.revision + 1
        result = self.session.execute(
            update(AssetRow)
            .where(col(AssetRow.id) == asset.id, col(AssetRow.version) == expected_version)
            .values(**values)
        )
        if getattr(result, "rowcount", 1) != 1:
            raise InvalidState("the asset was changed concurrently; retry")

    def next_serial(self, name: str) -> int:
        dialect = self.session.get_bind().dialect.name
        insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
        upsert = (
            insert_fn(CounterRow)
            .values(name=name, value=1)
            .on_conflict_do_update(index_elements=["name"], set_={"value": CounterRow.value + 1})
            .returning(col(CounterRow.value))
        )
        return int(self.session.execute(upsert).scalar_one())

    def count_assets(self) -> int:
        return int(self.session.exec(select(func.count()).select_from(AssetRow)).one())
