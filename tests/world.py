"""A small seeded world: an admin, two holders, an operator and an auditor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from gateway.domain import Actor, Role
from gateway.service import Services
from gateway.service.catalogue.schemas import AssetCreate, ColumnIn, RightsIn, SiteCreate
from gateway.service.identity.schemas import OrganisationCreate, PrincipalCreate

DIGEST = "ab" * 32


def asset_body(site_id: str, name: str = "admissions") -> dict[str, Any]:
    return {
        "name": name,
        "description": "Inpatient admissions",
        "domain": "health",
        "site_id": site_id,
        "local_ref": "/srv/data/admissions.parquet",
        "columns": [
            {"name": "patient_id", "type": "text", "tag": "identifier"},
            {"name": "age", "type": "integer", "tag": "quasi_identifier"},
            {"name": "los_days", "type": "integer", "tag": "attribute"},
        ],
        "privacy_unit": "patient_id",
        "row_count": 1000,
        "update_frequency": "monthly",
        "classification": "important",
        "rights": {
            "holding": "Hospital A",
            "processing_use": "Hospital A",
            "product_operation": "Data Bureau",
        },
        "content_digest": DIGEST,
    }


@dataclass
class World:
    services: Services
    admin_key: str
    admin: Actor
    holder_a_key: str
    holder_a: Actor
    holder_b_key: str
    holder_b: Actor
    operator_key: str
    operator: Actor
    auditor_key: str
    auditor: Actor
    site_a: str
    site_b: str
    asset_a: str
    asset_b: str


def seed_world(services: Services) -> World:
    ids = services.identities
    boot = ids.bootstrap_admin("Platform", "root")
    admin = Actor(boot.principal.id, boot.principal.org_id, Role.ADMIN)

    def principal(org: str, name: str, role: Role) -> tuple[str, Actor]:
        created = ids.create_principal(admin, PrincipalCreate(org_id=org, name=name, role=role))
        return created.api_key, Actor(created.principal.id, org, role)

    org_a = ids.create_org(admin, OrganisationCreate(name="Hospital A")).id
    org_b = ids.create_org(admin, OrganisationCreate(name="Hospital B")).id
    org_op = ids.create_org(admin, OrganisationCreate(name="Operator Co")).id
    org_aud = ids.create_org(admin, OrganisationCreate(name="Audit Office")).id
    ka, ha = principal(org_a, "steward-a", Role.HOLDER)
    kb, hb = principal(org_b, "steward-b", Role.HOLDER)
    ko, op = principal(org_op, "analyst", Role.OPERATOR)
    kd, aud = principal(org_aud, "auditor", Role.AUDITOR)
    site_a = services.sites.register(
        ha, SiteCreate(name="site-a", grpc_address="127.0.0.1:50061", tls_fingerprint="aa" * 32)
    ).id
    site_b = services.sites.register(
        hb, SiteCreate(name="site-b", grpc_address="127.0.0.1:50062", tls_fingerprint="bb" * 32)
    ).id
    asset_a = services.assets.register(ha, AssetCreate.model_validate(asset_body(site_a))).asset.id
    asset_b = services.assets.register(hb, AssetCreate.model_validate(asset_body(site_b))).asset.id
    return World(
        services,
        boot.api_key,
        admin,
        ka,
        ha,
        kb,
        hb,
        ko,
        op,
        kd,
        aud,
        site_a,
        site_b,
        asset_a,
        asset_b,
    )


def client(base_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


__all__ = ["ColumnIn", "RightsIn", "World", "asset_body", "client", "seed_world"]
