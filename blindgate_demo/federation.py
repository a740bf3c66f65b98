"""One federation builder for the demo, the tests and the benchmarks.

A *federation* is what Blindgate is for: several holders, each with a site agent next to
its data (a real sandbox, mutual TLS), holding one partition of every table; a policy on
every partition; an operator licensed by every holder under licences both sides signed;
an auditor.  Everything is set up through the service layer, as the REST API would.

The builder makes a development PKI (a CA, the gateway's client certificate and each
site's server certificate) under ``<root>/pki``, gives each agent an identity key endorsed
by its holder's signing key (as ``blindgate site init`` and ``blindgate site endorse`` do),
writes each agent's ``site.yaml`` under ``<root>/sites/<slug>`` (naming the holder's
organisation and key) and starts the agents with an :class:`AgentLauncher`: in this
process (:class:`ThreadAgents`, for the demo and the tests) or as processes of their own
(:class:`ProcessAgents`, for the benchmarks, so that their memory and CPU are measured
apart from the gateway's).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import (
    LicenceTerms,
    countersign,
    encode_public_key,
    generate_keypair,
    private_key_to_pem,
    sign_offer,
)
from contracts.endorsement import dump_endorsement, encode_agent_key, endorse
from contracts.tickets import sign_statement
from gateway import pki
from gateway.domain import Actor, Role
from gateway.service import Services
from gateway.service.catalogue.schemas import (
    AssetCreate,
    ColumnIn,
    FederatedAssetIn,
    RightsIn,
    SiteCreate,
)
from gateway.service.governance.policies import statement_for
from gateway.service.identity.schemas import OrganisationCreate, PrincipalCreate
from gateway.siteclient.client import SiteClient
from gateway.siteclient.pool import GatewayTls


@dataclass(frozen=True, slots=True)
class Table:
    """An asset every site holds: one partition file per site, its columns and its policy.

    ``write(path, n, slug)`` writes site number ``n``'s partition and returns its row
    count; ``policy(asset_id)`` gives the policy document; ``columns`` are
    (name, type, tag) triples.
    """

    name: str
    file: str
    columns: Sequence[tuple[str, str, str]]
    policy: Callable[[str], str]
    write: Callable[[Path, int, str], int]
    privacy_unit: str = "patient_id"
    description: str = ""
    domain: str = "health"


@dataclass(frozen=True, slots=True)
class Party:
    """An organisation and its one principal, as the builder creates them."""

    slug: str
    name: str
    principal: str = ""

    @property
    def principal_name(self) -> str:
        return self.principal or f"{self.slug}-steward"


@dataclass
class Holder:
    """One holder: its organisation, principal, signing key, site and partitions."""

    party: Party
    actor: Actor
    api_key: str
    signing_key: Ed25519PrivateKey
    site_id: str
    site_dir: Path
    port: int
    agent: Any
    files: dict[str, Path] = field(default_factory=dict)
    """Table name -> this site's partition file."""
    assets: dict[str, str] = field(default_factory=dict)
    """Table name -> asset id."""
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class Federation:
    """Everything the builder set up; :meth:`close` stops the agents."""

    services: Services
    root: Path
    admin: Actor
    admin_key: str
    operator: Actor
    operator_key: str
    operator_signing_key: Ed25519PrivateKey
    auditor: Actor
    auditor_key: str
    holders: list[Holder]
    licences: list[str]
    federated: dict[str, str] = field(default_factory=dict)
    """Table name -> the federated asset over its partitions (when one was registered)."""
    isolation: str = ""
    """The isolation level the agents started with."""

    def assets(self, table: str) -> list[str]:
        """The ids of ``table``'s partitions, one per holder."""
        return [h.assets[table] for h in self.holders]

    def files(self, table: str) -> list[Path]:
        """``table``'s partition files, one per holder."""
        return [h.files[table] for h in self.holders]

    def close(self) -> None:
        """Stop every agent."""
        for holder in self.holders:
            holder.agent.stop()


class AgentLauncher(Protocol):
    """Starts a site agent from its ``site.yaml``; returns a handle (``stop()``) and the
    isolation level it runs at."""

    def start(self, config: Path) -> tuple[Any, str]: ...


class ThreadAgents:
    """Agents in this process (gRPC servers on their own threads).

    ``levels`` are the minimum isolation levels to try in order, the first an agent
    starts with wins (the demo falls back from ``strong`` on hosts without namespaces);
    ``None`` keeps the agent's default (``strong``).
    """

    def __init__(self, levels: Sequence[str] | None = None) -> None:
        self.levels = levels

    def start(self, config: Path) -> tuple[Any, str]:
        from sandbox.agent.config import load_config
        from sandbox.agent.server import AgentServer
        from sandbox.runner import IsolationError

        levels: Sequence[str | None] = self.levels or [None]
        for level in levels:
            if level is not None:
                _set_isolation(config, level)
            try:
                server = AgentServer(load_config(config))
            except IsolationError:
                continue
            server.start()
            return _ThreadAgent(server), server.runner.isolation_report().level.value
        raise RuntimeError(f"no site agent could start with {config}")


class _ThreadAgent:
    def __init__(self, server: Any) -> None:
        self.server = server

    def stop(self, grace: float = 0.2) -> None:
        self.server.stop(grace=grace)


class ProcessAgents:
    """Agents as processes of their own (``blindgate site serve``), logging to
    ``agent.log`` beside their ``site.yaml`` at ``log_level``."""

    def __init__(self, log_level: str = "info") -> None:
        self.log_level = log_level

    def start(self, config: Path) -> tuple[Any, str]:
        with open(config.parent / "agent.log", "wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli.main",
                    "site",
                    "serve",
                    "--config",
                    str(config),
                    "--log-level",
                    self.log_level,
                ],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        return _ProcessAgent(process, config.parent / "agent.log"), "unknown"


class _ProcessAgent:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _set_isolation(config: Path, level: str) -> None:
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["minimum_isolation"] = level
    if level == "weak":
        data["unsafe_allow_weak_isolation"] = True
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def free_port() -> int:
    """A TCP port free on the loopback interface now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class People:
    """Who the builder creates besides the holders."""

    platform: Party = Party("platform", "Blindgate Platform", "platform-admin")
    operator: Party = Party("operator", "Civic Analytics Ltd", "civic-analyst")
    auditor: Party = Party("auditor", "Provincial Data Bureau", "bureau-auditor")


@dataclass(frozen=True, slots=True)
class Licensing:
    """The licence every holder offers the operator on all its partitions."""

    job_kinds: Sequence[str]
    purposes: Sequence[str]
    prefix: str = "lic-"
    valid_days: int = 30
    epsilon_cap: str | None = None
    fee: dict[str, str] = field(default_factory=lambda: {"amount": "0", "currency": "CNY"})


def save_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a private signing key as PEM, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(key))


def gateway_tls(root: Path) -> GatewayTls:
    """The gateway's client identity for talking to the sites (made by :func:`init_pki`)."""
    ca = root / "pki" / "ca"
    return GatewayTls.from_files(
        ca / "ca.crt", root / "pki" / "gateway.crt", root / "pki" / "gateway.key"
    )


def init_pki(root: Path) -> str:
    """A development CA and the gateway's client certificate; the gateway's fingerprint."""
    ca = root / "pki" / "ca"
    if not (ca / "ca.crt").exists():
        pki.init_ca(ca)
        pki.issue(ca, "gateway", root / "pki", kind="client")
    return pki.fingerprint((root / "pki" / "gateway.crt").read_bytes())


def build(
    root: Path,
    services: Services,
    *,
    holders: Sequence[Party],
    tables: Sequence[Table],
    licensing: Licensing,
    agents: AgentLauncher,
    people: People = People(),
    port: Callable[[int], int] = lambda n: 0,
    pool_size: int = 1,
    keys_dir: Path | None = None,
    federate: str | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> Federation:
    """Set up a federation over ``services`` (whose site pool uses ``<root>/pki``).

    ``port(n)`` is site ``n``'s agent port (0: any free port, for agents in this
    process); ``keys_dir`` keeps the organisations' signing keys as files (mode 0600);
    ``federate`` names a federated asset registered over the first table's partitions.
    """
    gateway_fp = init_pki(root)
    ids = services.identities
    boot = ids.bootstrap_admin(people.platform.name, people.platform.principal_name)
    admin = Actor(boot.principal.id, boot.principal.org_id, Role.ADMIN)

    def party(who: Party, role: Role) -> tuple[Actor, str]:
        org = ids.create_org(admin, OrganisationCreate(name=who.name)).id
        made = ids.create_principal(
            admin, PrincipalCreate(org_id=org, name=who.principal_name, role=role)
        )
        return Actor(made.principal.id, org, role), made.api_key

    operator, operator_key = party(people.operator, Role.OPERATOR)
    auditor, auditor_key = party(people.auditor, Role.AUDITOR)
    operator_keys = generate_keypair()
    ids.set_public_key(operator, operator.org_id, encode_public_key(operator_keys.public_key))
    if keys_dir is not None:
        save_key(keys_dir / "operator.pem", operator_keys.private_key)
    fed = Federation(
        services=services,
        root=root,
        admin=admin,
        admin_key=boot.api_key,
        operator=operator,
        operator_key=operator_key,
        operator_signing_key=operator_keys.private_key,
        auditor=auditor,
        auditor_key=auditor_key,
        holders=[],
        licences=[],
    )
    try:
        for n, who in enumerate(holders):
            progress(f"{who.name}: site agent, partitions, policy and licence")
            holder = _holder(
                fed, n, who, tables, gateway_fp, agents, port(n), pool_size, people.auditor.name
            )
            fed.holders.append(holder)
            if keys_dir is not None:
                save_key(keys_dir / f"{who.slug}.pem", holder.signing_key)
            _license(fed, holder, licensing)
        if federate is not None:
            fed.federated[tables[0].name] = services.federated.register(
                admin, FederatedAssetIn(name=federate, partitions=fed.assets(tables[0].name))
            ).id
        wait_for_agents(fed)
    except BaseException:
        fed.close()
        raise
    return fed


def _holder(
    fed: Federation,
    n: int,
    who: Party,
    tables: Sequence[Table],
    gateway_fp: str,
    agents: AgentLauncher,
    port: int,
    pool_size: int,
    bureau: str,
) -> Holder:
    services, root = fed.services, fed.root
    org = services.identities.create_org(fed.admin, OrganisationCreate(name=who.name)).id
    made = services.identities.create_principal(
        fed.admin, PrincipalCreate(org_id=org, name=who.principal_name, role=Role.HOLDER)
    )
    actor = Actor(made.principal.id, org, Role.HOLDER)
    keys = generate_keypair()
    services.identities.set_public_key(actor, org, encode_public_key(keys.public_key))
    site_dir = root / "sites" / who.slug
    site_dir.mkdir(parents=True, exist_ok=True)
    ca = root / "pki" / "ca"
    site_fp = pki.issue(
        ca, "site", site_dir / "tls", kind="server", hosts=["127.0.0.1", "localhost"]
    )
    files = {t.name: site_dir / t.file for t in tables}
    rows = {t.name: t.write(files[t.name], n, who.slug) for t in tables}
    config = site_dir / "site.yaml"
    port = port or (free_port() if isinstance(agents, ProcessAgents) else 0)
    identity = endorse_agent(site_dir, org, keys.private_key, f"{who.slug}-site")
    config.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "tls": {
                    "cert": "tls/site.crt",
                    "key": "tls/site.key",
                    "ca": str((ca / "ca.crt").resolve()),
                },
                "gateway_fingerprints": [gateway_fp],
                "assets": {f.name: {"path": f.name} for f in files.values()},
                "cache_dir": "cache",
                "pool_size": pool_size,
                **identity,
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    agent, level = agents.start(config)
    fed.isolation = level
    if port == 0:
        port = agent.server.port
    _wait_for_agent(services, f"127.0.0.1:{port}", site_fp, agent, who.slug)
    site = services.sites.register(
        actor,
        SiteCreate(
            name=f"{who.slug}-site", grpc_address=f"127.0.0.1:{port}", tls_fingerprint=site_fp
        ),
    )
    holder = Holder(who, actor, made.api_key, keys.private_key, site.id, site_dir, port, agent)
    holder.files, holder.rows = files, rows
    for table in tables:
        asset = services.assets.register(
            actor,
            AssetCreate(
                name=table.name,
                description=table.description,
                domain=table.domain,
                site_id=site.id,
                local_ref=files[table.name].name,
                columns=[ColumnIn(name=c, type=t, tag=g) for c, t, g in table.columns],
                privacy_unit=table.privacy_unit,
                row_count=rows[table.name],
                update_frequency="monthly",
                classification="important",
                rights=RightsIn(
                    holding=who.name,
                    processing_use=who.name,
                    product_operation=bureau,
                ),
                content_digest=_digest(files[table.name]),
            ),
        ).asset
        set_signed_policy(services, actor, keys.private_key, asset.id, table.policy(asset.id))
        holder.assets[table.name] = asset.id
    return holder


def set_signed_policy(
    services: Services, holder: Actor, key: Ed25519PrivateKey, asset_id: str, document: str
) -> None:
    """Set ``document`` as the asset's policy, signed with the holder organisation's key (a
    site accepts only policies its holder signed)."""
    with services.ctx.store.read() as tx:
        asset = tx.get_asset(asset_id)
    assert asset is not None
    signed_at = services.ctx.clock.now()
    statement = statement_for(asset, document, signed_at)
    services.policies.set(
        holder,
        asset_id,
        document,
        signature=sign_statement(statement, key),
        signed_at=signed_at,
    )


def endorse_agent(
    site_dir: Path, org_id: str, holder_key: Ed25519PrivateKey, name: str
) -> dict[str, Any]:
    """Give the agent in ``site_dir`` an identity key (kept if there is one) and the holder's
    endorsement of it; return ``site.yaml``'s ``holder`` and ``identity`` sections."""
    from sandbox.agent.identity import (
        ENDORSEMENT_FILE,
        IDENTITY_FILE,
        create_identity,
        read_identity_key,
    )

    key_file = site_dir / IDENTITY_FILE
    if key_file.exists():
        agent_key = encode_agent_key(read_identity_key(key_file).public_key())
    else:
        agent_key = create_identity(site_dir)
    endorsement = endorse(
        org_id, agent_key, holder_key, issued_at=datetime.now(UTC).replace(microsecond=0), name=name
    )
    (site_dir / ENDORSEMENT_FILE).write_bytes(dump_endorsement(endorsement))
    return {
        "holder": {
            "organisation": org_id,
            "keys": [encode_public_key(holder_key.public_key())],
        },
        "identity": {"key": IDENTITY_FILE, "endorsement": ENDORSEMENT_FILE},
    }


def _wait_for_agent(
    services: Services, address: str, fingerprint: str, agent: Any, slug: str, timeout: float = 60
) -> None:
    """Block until the agent at ``address`` answers ``Health`` (before it is registered)."""
    tls = services.site_pool.tls
    if tls is None:
        raise RuntimeError("the gateway has no client certificate for site agents")
    deadline = time.monotonic() + timeout
    with SiteClient(
        address, tls.ca_pem, tls.cert_pem, tls.key_pem, fingerprint, site=slug, attempts=1
    ) as client:
        while not client.healthy(timeout=1.0):
            process = getattr(agent, "process", None)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"site agent {slug} exited ({process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"site agent {slug} did not answer")
            time.sleep(0.1)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _license(fed: Federation, holder: Holder, licensing: Licensing) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    terms = LicenceTerms.model_validate(
        {
            "licence_id": f"{licensing.prefix}{holder.party.slug}",
            "holder_org_id": holder.actor.org_id,
            "operator_org_id": fed.operator.org_id,
            "asset_ids": list(holder.assets.values()),
            "purposes": list(licensing.purposes),
            "job_kinds": list(licensing.job_kinds),
            "valid_from": now - timedelta(minutes=5),
            "valid_until": now + timedelta(days=licensing.valid_days),
            "epsilon_cap": licensing.epsilon_cap,
            "fee": licensing.fee,
        }
    )
    offer = sign_offer(terms, holder.signing_key)
    fed.services.licences.offer(
        holder.actor, json.loads(terms.model_dump_json()), base64.b64encode(offer).decode()
    )
    accept = countersign(terms, offer, fed.operator_signing_key)
    fed.services.licences.accept(fed.operator, terms.licence_id, base64.b64encode(accept).decode())
    fed.licences.append(terms.licence_id)


def wait_for_agents(fed: Federation, timeout: float = 60.0) -> None:
    """Block until every site answers ``Health`` with its registered certificate."""
    deadline = time.monotonic() + timeout
    with fed.services.ctx.store.read() as tx:
        sites = {s.id: s for s in tx.list_sites(org_id=None, after=None, limit=10_000)}
    for holder in fed.holders:
        client = fed.services.site_pool.client(sites[holder.site_id])
        while not client.healthy(timeout=1.0):
            process = getattr(holder.agent, "process", None)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"site agent {holder.party.slug} exited ({process.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"site agent {holder.party.slug} did not answer")
            time.sleep(0.1)
