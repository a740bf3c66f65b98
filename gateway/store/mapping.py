"""Mapping between store rows and domain objects."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

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
from gateway.store.models import ApiKeyRow, AssetRow, OrganisationRow, PrincipalRow, SiteRow


def org_from(row: OrganisationRow) -> Organisation:
    return Organisation(row.id, row.name, row.description, row.public_key, row.created_at)


def principal_from(row: PrincipalRow) -> Principal:
    return Principal(row.id, row.org_id, row.name, Role(row.role), row.disabled, row.created_at)


def key_from(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.principal_id, row.created_at, row.revoked_at)


def site_from(row: SiteRow) -> Site:
    return Site(
        row.id,
        row.org_id,
        row.name,
        row.grpc_address,
        row.tls_fingerprint,
        row.created_at,
        row.agent_key,
    )


def _dt(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def asset_from(row: AssetRow) -> Asset:
    freeze = None
    if row.freeze:
        f = row.freeze
        freeze = Freeze(f["frozen_by"], Role(f["frozen_role"]), _dt(f["frozen_at"]), f["reason"])
    disposal = None
    if row.disposal:
        d = row.disposal
        disposal = Disposal(
            d["disposed_by"], _dt(d["disposed_at"]), d["method"], d["destroyed_digest"], d["note"]
        )
    return Asset(
        id=row.id,
        org_id=row.org_id,
        site_id=row.site_id,
        local_ref=row.local_ref,
        name=row.name,
        description=row.description,
        domain=row.domain,
        columns=tuple(
            Column(c["name"], ColumnType(c["type"]), ColumnTag(c["tag"]), c.get("description", ""))
            for c in row.columns
        ),
        privacy_unit=row.privacy_unit,
        row_count=row.row_count,
        update_frequency=UpdateFrequency(row.update_frequency),
        classification=Classification(row.classification),
        rights=Rights(**row.rights),
        status=AssetStatus(row.status),
        registration_number=row.registration_number,
        version=row.version,
        content_digest=row.content_digest,
        created_at=row.created_at,
        updated_at=row.updated_at,
        jobs_run=row.jobs_run,
        operators=tuple(row.operators),
        last_access=row.last_access,
        freeze=freeze,
        disposal=disposal,
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    return obj


def asset_values(asset: Asset) -> dict[str, Any]:
    return {
        "id": asset.id,
        "org_id": asset.org_id,
        "site_id": asset.site_id,
        "local_ref": asset.local_ref,
        "name": asset.name,
        "description": asset.description,
        "domain": asset.domain,
        "columns": [
            {"name": c.name, "type": str(c.type), "tag": str(c.tag), "description": c.description}
            for c in asset.columns
        ],
        "privacy_unit": asset.privacy_unit,
        "row_count": asset.row_count,
        "update_frequency": str(asset.update_frequency),
        "classification": str(asset.classification),
        "rights": asdict(asset.rights),
        "status": str(asset.status),
        "registration_number": asset.registration_number,
        "version": asset.version,
        "content_digest": asset.content_digest,
        "created_at": asset.created_at,
        "updated_at": asset.updated_at,
        "jobs_run": asset.jobs_run,
        "operators": list(asset.operators),
        "last_access": asset.last_access,
        "freeze": _jsonable(asdict(asset.freeze)) if asset.freeze else None,
        "disposal": _jsonable(asdict(asset.disposal)) if asset.disposal else None,
    }
