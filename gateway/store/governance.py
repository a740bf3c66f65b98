"""SQL persistence of policy versions, licences and the privacy-budget ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from gateway.domain import BudgetCharge, Licence, LicenceStatus, PolicyVersion
from gateway.store.models import (
    AssetRow,
    BudgetChargeRow,
    LicenceAssetRow,
    LicenceRow,
    PolicyVersionRow,
)

_policy = PolicyVersionRow.__table__  # type: ignore[attr-defined]
_licence = LicenceRow.__table__  # type: ignore[attr-defined]
_licence_asset = LicenceAssetRow.__table__  # type: ignore[attr-defined]
_charge = BudgetChargeRow.__table__  # type: ignore[attr-defined]


def add_policy(
    session: Session,
    asset_id: str,
    document: str,
    by: str,
    at: datetime,
    statement: str | None = None,
    signature: str | None = None,
) -> int:
    """Store a new version of the asset's policy (with the holder's signed statement, when
    signed) and return its number."""
    latest = session.execute(
        select(func.max(_policy.c.version)).where(_policy.c.asset_id == asset_id)
    ).scalar_one()
    version = int(latest or 0) + 1
    session.execute(
        insert(PolicyVersionRow).values(
            asset_id=asset_id,
            version=version,
            document=document,
            created_by=by,
            created_at=at,
            statement=statement,
            signature=signature,
        )
    )
    return version


def get_policy(session: Session, asset_id: str, version: int | None) -> PolicyVersion | None:
    q = select(_policy).where(_policy.c.asset_id == asset_id)
    q = (
        q.where(_policy.c.version == version)
        if version is not None
        else q.order_by(_policy.c.version.desc()).limit(1)
    )
    row = session.execute(q).mappings().first()
    return PolicyVersion(**row) if row else None


def list_policies(session: Session, asset_id: str) -> list[PolicyVersion]:
    q = select(_policy).where(_policy.c.asset_id == asset_id).order_by(_policy.c.version)
    return [PolicyVersion(**row) for row in session.execute(q).mappings()]


def _licence_from(row: dict[str, object]) -> Licence:
    values = dict(row)
    values["status"] = LicenceStatus(str(values["status"]))
    return Licence(**values)  # type: ignore[arg-type]


def add_licence(session: Session, licence: Licence, asset_ids: Sequence[str]) -> None:
    values = asdict(licence)
    values["status"] = str(licence.status)
    session.execute(insert(LicenceRow).values(**values))
    session.execute(
        insert(LicenceAssetRow), [{"licence_id": licence.id, "asset_id": a} for a in asset_ids]
    )


def get_licence(session: Session, licence_id: str, *, lock: bool = False) -> Licence | None:
    q = select(_licence).where(_licence.c.id == licence_id)
    if lock and session.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    row = session.execute(q).mappings().first()
    return _licence_from(dict(row)) if row else None


def lock_budget(session: Session, asset_ids: list[str]) -> None:
    """Serialise charges against ``asset_ids``' shared budgets (their rows, in id order, so
    two transactions never wait on each other in a cycle); SQLite's single writer already
    serialises every write transaction."""
    if session.get_bind().dialect.name != "postgresql" or not asset_ids:
        return
    table = AssetRow.__table__  # type: ignore[attr-defined]
    q = (
        select(table.c.id)
        .where(table.c.id.in_(sorted(set(asset_ids))))
        .order_by(table.c.id)
        .with_for_update()
    )
    session.execute(q).all()


def list_licences(
    session: Session,
    *,
    holder_org_id: str | None,
    operator_org_id: str | None,
    asset_id: str | None,
    after: str | None,
    limit: int,
) -> list[Licence]:
    q = select(_licence).order_by(_licence.c.id).limit(limit)
    if holder_org_id is not None:
        q = q.where(_licence.c.holder_org_id == holder_org_id)
    if operator_org_id is not None:
        q = q.where(_licence.c.operator_org_id == operator_org_id)
    if asset_id is not None:
        q = q.where(
            _licence.c.id.in_(
                select(_licence_asset.c.licence_id).where(_licence_asset.c.asset_id == asset_id)
            )
        )
    if after is not None:
        q = q.where(_licence.c.id > after)
    return [_licence_from(dict(r)) for r in session.execute(q).mappings()]


def update_licence(session: Session, licence_id: str, **values: object) -> None:
    if "status" in values:
        values["status"] = str(values["status"])
    session.execute(update(_licence).where(_licence.c.id == licence_id).values(**values))


def add_charges(session: Session, charges: Sequence[BudgetCharge]) -> None:
    if charges:
        session.execute(insert(BudgetChargeRow), [asdict(c) for c in charges])


def charges(
    session: Session,
    *,
    licence_id: str | None = None,
    asset_id: str | None = None,
    since: datetime | None = None,
    job_ref: str | None = None,
    include_refunded: bool = False,
) -> list[BudgetCharge]:
    q = select(_charge).order_by(_charge.c.at, _charge.c.id)
    if licence_id is not None:
        q = q.where(_charge.c.licence_id == licence_id)
    if asset_id is not None:
        q = q.where(_charge.c.asset_id == asset_id)
    if since is not None:
        q = q.where(_charge.c.at > since)
    if job_ref is not None:
        q = q.where(_charge.c.job_ref == job_ref)
    if not include_refunded:
        q = q.where(_charge.c.refunded_at.is_(None))
    return [BudgetCharge(**row) for row in session.execute(q).mappings()]


def mark_charges(session: Session, job_ref: str, **values: object) -> int:
    result = session.execute(
        update(_charge)
        .where(_charge.c.job_ref == job_ref, _charge.c.refunded_at.is_(None))
        .values(**values)
    )
    return int(getattr(result, "rowcount", 0) or 0)
