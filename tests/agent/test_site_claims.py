"""Sites belong to their holder, provably: real agents over mutual TLS, both stores.

An agent starts only with an endorsement by one of its pinned holder keys; the gateway
registers a site only when the agent proves, over the pinned channel and for a fresh
challenge, that the registering organisation's registered key endorsed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from contracts import encode_public_key
from contracts.endorsement import (
    EndorsementError,
    dump_endorsement,
    endorse,
    parse_endorsement,
    verify_proof,
)
from gateway.config import Settings
from gateway.errors import Forbidden, ValidationFailed
from gateway.http import create_app
from gateway.service import Services, build_services
from gateway.service.catalogue.schemas import SiteCreate
from gateway.siteclient.client import SiteClient, SiteIdentityMismatch
from gateway.siteclient.pool import GatewayTls, SitePool
from gateway.store import SqlStore
from sandbox.agent.config import parse_config
from sandbox.agent.identity import IdentityError
from sandbox.agent.server import AgentServer
from sandbox.wire import AgentProof
from tests.agent.conftest import Pki, agent_document, agent_identity, running_agent
from tests.conftest import SeededRandom
from tests.server import running
from tests.world import StandInAgents, World, client, seed_world


@dataclass
class Claims:
    world: World
    services: Services
    pool: SitePool
    agents: StandInAgents
    address: str
    agent: AgentServer
    fingerprint: str


@pytest.fixture
def claims(
    store: SqlStore, settings: Settings, certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> Iterator[Claims]:
    """A seeded world whose holder A runs a real agent endorsed by its registered key."""
    pool = SitePool(
        GatewayTls(certs.ca, certs.gateway.cert, certs.gateway.key), CollectorRegistry()
    )
    agents = StandInAgents(fallback=pool)
    services = build_services(store, settings, random=SeededRandom(11), prover=agents)
    world = seed_world(services)
    identity = agent_identity(tmp_path / "a", world.holder_a.org_id, world.holder_a_signing)
    with running_agent(certs, assets, tmp_path / "a", identity) as agent:
        address = f"127.0.0.1:{agent.port}"
        yield Claims(world, services, pool, agents, address, agent, certs.site.fingerprint)
    pool.close()


def site(claims: Claims, name: str = "riverside", fingerprint: str | None = None) -> SiteCreate:
    return SiteCreate(
        name=name, grpc_address=claims.address, tls_fingerprint=fingerprint or claims.fingerprint
    )


def denials(claims: Claims) -> list[dict[str, Any]]:
    """Every ``site.register`` refusal, as an auditor reads them."""
    page = claims.services.audit.entries(
        claims.world.auditor, limit=1000, cursor=None, action="site.register"
    )
    return [item.entry for item in page.items if item.entry["decision"] == "deny"]


def test_the_holder_registers_its_own_agent(claims: Claims) -> None:
    world = claims.world
    registered = claims.services.sites.register(world.holder_a, site(claims))
    assert registered.org_id == world.holder_a.org_id
    assert registered.agent_key == claims.agent.service.identity.public_key
    events = [e.entry for e in claims.agent.service.log.entries()]
    assert [e["event"] for e in events] == ["start", "prove"]
    assert events[1]["tls_fingerprint"] == claims.fingerprint
    assert claims.agent.service.log.verify().ok
    entries = claims.services.audit.entries(
        world.holder_a, limit=100, cursor=None, action="site.register"
    ).items
    mine = [e.entry for e in entries if e.entry["target"].get("site") == registered.id]
    assert mine[0]["decision"] == "allow"
    assert mine[0]["detail"] == {"agent_key": registered.agent_key}


def test_another_organisation_cannot_claim_the_agent(claims: Claims) -> None:
    world = claims.world
    with pytest.raises(Forbidden) as refused:
        claims.services.sites.register(world.holder_b, site(claims, "mine-now"))
    assert (
        refused.value.detail == f"the agent at {claims.address} is endorsed by another organisation"
    )
    attempts = denials(claims)
    assert [e["actor"]["org"] for e in attempts] == [world.holder_b.org_id]
    assert attempts[0]["reasons"][0]["code"] == "forbidden"
    assert attempts[0]["target"] == {"address": claims.address}
    # the agent's holder sees the attempt on its agent
    seen = claims.services.audit.entries(
        world.holder_a, limit=1000, cursor=None, action="site.register"
    ).items
    assert [e.entry["actor"]["org"] for e in seen if e.entry["decision"] == "deny"] == [
        world.holder_b.org_id
    ]
    with world.services.ctx.store.read() as tx:
        assert tx.list_sites(org_id=world.holder_b.org_id, after=None, limit=10)[0].id == (
            world.site_b
        )
        assert len(tx.list_sites(org_id=None, after=None, limit=10)) == 2


def test_the_admin_cannot_register_sites(claims: Claims) -> None:
    world = claims.world
    with running(create_app(claims.services)) as url:
        body = site(claims).model_dump()
        admin = client(url, world.admin_key).post("/v1/sites", json=body)
        assert admin.status_code == 403
        assert admin.json()["error"]["code"] == "forbidden"
        other = client(url, world.holder_b_key).post("/v1/sites", json=body)
        assert other.status_code == 403
        assert other.json()["error"]["detail"].endswith("is endorsed by another organisation")
        own = client(url, world.holder_a_key).post("/v1/sites", json=body)
        assert own.status_code == 201
    assert [e["actor"]["role"] for e in denials(claims)] == ["admin", "holder"]


def test_an_organisation_without_a_key_cannot_register(claims: Claims) -> None:
    world = claims.world
    claims.services.identities.set_public_key(world.holder_a, world.holder_a.org_id, None)
    with pytest.raises(ValidationFailed, match="no registered signing key"):
        claims.services.sites.register(world.holder_a, site(claims))


def test_a_rotated_key_no_longer_vouches_for_the_agent(claims: Claims) -> None:
    world = claims.world
    new_key = encode_public_key(Ed25519PrivateKey.generate().public_key())
    claims.services.identities.set_public_key(world.holder_a, world.holder_a.org_id, new_key)
    with pytest.raises(Forbidden) as refused:
        claims.services.sites.register(world.holder_a, site(claims))
    assert refused.value.detail == (
        f"the agent at {claims.address} is endorsed by no organisation you hold keys for"
    )


def test_the_pinned_certificate_is_the_agents(claims: Claims, certs: Pki) -> None:
    with pytest.raises(SiteIdentityMismatch):
        claims.services.sites.register(
            claims.world.holder_a, site(claims, fingerprint=certs.impostor.fingerprint)
        )


def test_a_proof_cannot_be_replayed_for_a_new_challenge(claims: Claims, certs: Pki) -> None:
    with SiteClient(
        claims.address, certs.ca, certs.gateway.cert, certs.gateway.key, certs.site.fingerprint
    ) as agent:
        earlier = agent.prove(b"\x01" * 32)
    endorsement = parse_endorsement(earlier.endorsement)
    verify_proof(earlier.signature, b"\x01" * 32, certs.site.fingerprint, endorsement)
    with pytest.raises(EndorsementError):
        verify_proof(earlier.signature, b"\x02" * 32, certs.site.fingerprint, endorsement)
    with pytest.raises(EndorsementError):
        verify_proof(earlier.signature, b"\x01" * 32, certs.impostor.fingerprint, endorsement)

    class Replay:
        """Answers every challenge with the proof the agent gave earlier."""

        def prove(self, address: str, fingerprint: str, challenge: bytes) -> AgentProof:
            return earlier

    claims.services.sites.prover = Replay()
    with pytest.raises(Forbidden) as refused:
        claims.services.sites.register(claims.world.holder_a, site(claims))
    assert refused.value.detail == (
        f"the agent at {claims.address} did not prove it holds the endorsed key"
    )


def test_a_forged_endorsement_stops_the_agent(
    certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> None:
    forger = Ed25519PrivateKey.generate()
    identity = agent_identity(tmp_path, certs.holder_org, certs.holder_key)
    agent_key = parse_endorsement(Path(identity["identity"]["endorsement"]).read_bytes())
    forged = endorse(
        certs.holder_org, agent_key.terms.agent_key, forger, issued_at=datetime.now(UTC)
    )
    Path(identity["identity"]["endorsement"]).write_bytes(dump_endorsement(forged))
    document = {**agent_document(certs, assets, tmp_path / "cache"), **identity}
    document["tls"]["ca"] = str(certs.root / "ca" / "ca.crt")
    with pytest.raises(IdentityError, match=r"is not signed by any of holder\.keys"):
        AgentServer(parse_config(document, tmp_path))
    for_other = endorse(
        "org_elsewhere", agent_key.terms.agent_key, certs.holder_key, issued_at=datetime.now(UTC)
    )
    Path(identity["identity"]["endorsement"]).write_bytes(dump_endorsement(for_other))
    with pytest.raises(IdentityError, match=r"not for holder\.organisation"):
        AgentServer(parse_config(document, tmp_path))
    someone_else = endorse(
        certs.holder_org,
        Ed25519PrivateKey.generate().public_key(),
        certs.holder_key,
        issued_at=datetime.now(UTC),
    )
    Path(identity["identity"]["endorsement"]).write_bytes(dump_endorsement(someone_else))
    with pytest.raises(IdentityError, match="names agent key"):
        AgentServer(parse_config(document, tmp_path))


def test_a_forged_endorsement_cannot_register(
    claims: Claims, certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> None:
    """An agent whose site.yaml pins the forger's key starts, but the gateway checks the
    endorsement against the registering organisation's registered key."""
    world = claims.world
    forger = Ed25519PrivateKey.generate()
    identity = agent_identity(tmp_path / "forged", world.holder_a.org_id, forger)
    with running_agent(certs, assets, tmp_path / "forged", identity) as agent:
        body = SiteCreate(
            name="forged",
            grpc_address=f"127.0.0.1:{agent.port}",
            tls_fingerprint=certs.site.fingerprint,
        )
        with pytest.raises(Forbidden) as refused:
            claims.services.sites.register(world.holder_a, body)
    assert refused.value.detail == (
        f"the agent at 127.0.0.1:{agent.port} is endorsed by no organisation you hold keys for"
    )
    refused_entry = denials(claims)[-1]
    assert refused_entry["actor"]["org"] == world.holder_a.org_id
    assert refused_entry["reasons"][0]["message"] == refused.value.detail
