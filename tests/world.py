"""A small seeded world: an admin, two holders, an operator and an auditor.

The holders' sites are registered as a holder registers one: the gateway challenges the
agent, which proves its holder endorsed it.  The world's agents are :class:`StandInAgents`
(each with its own identity key and its holder's endorsement, answering ``Prove`` as a real
agent does, without a socket); the site agent suites run real agents over mutual TLS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import encode_public_key, generate_keypair
from contracts.endorsement import (
    Endorsement,
    canonical_endorsement,
    encode_agent_key,
    endorse,
    sign_proof,
)
from gateway.domain import Actor, Role
from gateway.service import Services
from gateway.service.catalogue.claims import AgentProver
from gateway.service.catalogue.schemas import AssetCreate, ColumnIn, RightsIn, SiteCreate
from gateway.service.identity.schemas import OrganisationCreate, PrincipalCreate
from gateway.siteclient.client import SiteIdentityMismatch, SiteUnavailable
from sandbox.wire import AgentProof

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
class StandIn:
    """One stand-in agent: its certificate fingerprint, identity key and endorsement."""

    fingerprint: str
    key: Ed25519PrivateKey
    endorsement: Endorsement


@dataclass
class StandInAgents:
    """Agents by address that answer ``Prove`` with a real key and endorsement; other
    addresses go to ``fallback`` (a real site pool) when there is one."""

    fallback: AgentProver | None = None
    agents: dict[str, StandIn] = field(default_factory=dict)

    def add(
        self, address: str, fingerprint: str, org_id: str, holder_key: Ed25519PrivateKey
    ) -> StandIn:
        key = Ed25519PrivateKey.generate()
        endorsement = endorse(
            org_id, key.public_key(), holder_key, issued_at=datetime.now(UTC), name=address
        )
        self.agents[address] = StandIn(fingerprint, key, endorsement)
        return self.agents[address]

    def prove(self, address: str, fingerprint: str, challenge: bytes) -> AgentProof:
        agent = self.agents.get(address)
        if agent is None:
            if self.fallback is not None:
                return self.fallback.prove(address, fingerprint, challenge)
            raise SiteUnavailable(f"site {address} did not answer Prove")
        if agent.fingerprint != fingerprint:
            raise SiteIdentityMismatch(f"site {address} presented another certificate")
        return AgentProof(
            encode_agent_key(agent.key.public_key()),
            canonical_endorsement(agent.endorsement),
            sign_proof(agent.key, challenge, fingerprint, agent.endorsement),
            fingerprint,
        )


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
    holder_a_signing: Ed25519PrivateKey
    holder_b_signing: Ed25519PrivateKey


def seed_world(services: Services) -> World:
    """Seed the world; ``services`` must be built with ``prover=StandInAgents(...)``."""
    agents = services.sites.prover
    if not isinstance(agents, StandInAgents):
        raise TypeError("seed_world needs services built with prover=StandInAgents()")
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
    signing = {}
    for org, actor, address, fingerprint in (
        (org_a, ha, "127.0.0.1:50061", "aa" * 32),
        (org_b, hb, "127.0.0.1:50062", "bb" * 32),
    ):
        signing[org] = generate_keypair()
        ids.set_public_key(actor, org, encode_public_key(signing[org].public_key))
        agents.add(address, fingerprint, org, signing[org].private_key)
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
        signing[org_a].private_key,
        signing[org_b].private_key,
    )


def client(base_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=30)


__all__ = [
    "ColumnIn",
    "RightsIn",
    "StandInAgents",
    "World",
    "asset_body",
    "client",
    "seed_world",
]
