"""Three hospitals, each with a site agent (real sandbox, mutual TLS) holding one
partition of a federated admissions asset; an operator licensed by all three."""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from contracts import LicenceTerms, countersign, encode_public_key, generate_keypair, sign_offer
from gateway import pki
from gateway.config import Settings
from gateway.domain import Actor, Role
from gateway.metrics import GatewayMetrics
from gateway.service import Services, build_services
from gateway.service.catalogue.schemas import AssetCreate, ColumnIn, RightsIn, SiteCreate
from gateway.service.identity.schemas import OrganisationCreate, PrincipalCreate
from gateway.service.jobs.runner import JobRunner, make_runner
from gateway.siteclient.pool import GatewayTls, SitePool
from gateway.store import SqlStore, open_store
from sandbox.agent.config import parse_config
from sandbox.agent.server import AgentServer

HOSPITALS = ("north-general", "east-clinic", "harbour-hospital")
DISTRICTS = ("north", "south", "east")

POLICY = """\
version: 1
asset: admissions
columns:
  patient_id: {control: join_key}
  district: {control: group_by}
  age: {control: filter}
  los_days:
    control: aggregate
    clip: {lower: 0, upper: 30}
jobs:
  kinds: [sql_aggregate]
  aggregates: [count, sum, avg]
  purposes: [research]
  min_group_size: 10
  max_rows_per_unit: 1
  approval: {mode: MODE}
privacy:
  epsilon_per_job_max: 5
  budget: {epsilon: 20, delta: 1.0e-6, period_days: 30}
"""


@dataclass
class Hospital:
    name: str
    actor: Actor
    asset_id: str
    rows: list[tuple[str, str, int, int]]


@dataclass
class Federation:
    services: Services
    runner: JobRunner
    operator: Actor
    operator_key: str
    auditor: Actor
    hospitals: list[Hospital]
    licences: list[str]

    @property
    def asset_ids(self) -> list[str]:
        return [h.asset_id for h in self.hospitals]

    def truth(self) -> dict[str, tuple[int, float]]:
        """Per district: (rows, mean los) over every partition."""
        out: dict[str, list[int]] = {}
        for h in self.hospitals:
            for _, district, _, los in h.rows:
                out.setdefault(district, []).append(los)
        return {d: (len(v), sum(v) / len(v)) for d, v in out.items()}


def _partition(seed: int, prefix: str, n: int) -> list[tuple[str, str, int, int]]:
    rng = random.Random(seed)
    return [
        (f"{prefix}{i:05d}", rng.choice(DISTRICTS), rng.randint(20, 90), rng.randint(1, 20))
        for i in range(n)
    ]


def build_federation(
    tmp: Path,
    store: SqlStore,
    mode: str = "auto",
    *,
    policy: str = POLICY,
    kinds: tuple[str, ...] = ("sql_aggregate",),
) -> tuple[Federation, list[AgentServer]]:
    ca = tmp / "pki" / "ca"
    pki.init_ca(ca)
    pki.issue(ca, "gateway", tmp / "pki", kind="client")
    gateway_fp = pki.fingerprint((tmp / "pki" / "gateway.crt").read_bytes())
    settings = Settings(data_dir=tmp / "data", dev_mode=True)
    metrics = GatewayMetrics(CollectorRegistry())
    tls = GatewayTls.from_files(
        ca / "ca.crt", tmp / "pki" / "gateway.crt", tmp / "pki" / "gateway.key"
    )
    services = build_services(
        store, settings, metrics=metrics, site_pool=SitePool(tls, metrics.registry)
    )
    ids = services.identities
    boot = ids.bootstrap_admin("Platform", "root")
    admin = Actor(boot.principal.id, boot.principal.org_id, Role.ADMIN)
    op_org = ids.create_org(admin, OrganisationCreate(name="Analytics Co")).id
    op = ids.create_principal(
        admin, PrincipalCreate(org_id=op_org, name="analyst", role=Role.OPERATOR)
    )
    operator = Actor(op.principal.id, op_org, Role.OPERATOR)
    aud_org = ids.create_org(admin, OrganisationCreate(name="Audit")).id
    aud = ids.create_principal(
        admin, PrincipalCreate(org_id=aud_org, name="aud", role=Role.AUDITOR)
    )
    op_keys = generate_keypair()
    ids.set_public_key(operator, op_org, encode_public_key(op_keys.public_key))
    agents: list[AgentServer] = []
    hospitals: list[Hospital] = []
    licences: list[str] = []
    now = datetime.now(UTC)
    for n, name in enumerate(HOSPITALS):
        org = ids.create_org(admin, OrganisationCreate(name=name)).id
        hp = ids.create_principal(
            admin, PrincipalCreate(org_id=org, name=f"{name}-steward", role=Role.HOLDER)
        )
        holder = Actor(hp.principal.id, org, Role.HOLDER)
        site_dir = tmp / name
        site_fp = pki.issue(ca, "site", site_dir / "tls", kind="server", hosts=["127.0.0.1"])
        rows = _partition(n, f"{name[0].upper()}", 400 + 100 * n)
        data = site_dir / "admissions.csv"
        data.write_text(
            "patient_id,district,age,los_days\n"
            + "".join(f"{p},{d},{a},{los}\n" for p, d, a, los in rows)
        )
        config = parse_config(
            {
                "listen": "127.0.0.1:0",
                "tls": {"cert": "tls/site.crt", "key": "tls/site.key", "ca": str(ca / "ca.crt")},
                "gateway_fingerprints": [gateway_fp],
                "assets": {"admissions.csv": {"path": "admissions.csv"}},
                "cache_dir": "cache",
                "pool_size": 1,
            },
            site_dir,
        )
        agent = AgentServer(config)
        port = agent.start()
        agents.append(agent)
        site = services.sites.register(
            holder,
            SiteCreate(
                name=f"{name}-site", grpc_address=f"127.0.0.1:{port}", tls_fingerprint=site_fp
            ),
        )
        asset = services.assets.register(
            holder,
            AssetCreate(
                name="admissions",
                domain="health",
                site_id=site.id,
                local_ref="admissions.csv",
                columns=[
                    ColumnIn(name="patient_id", type="text", tag="identifier"),
                    ColumnIn(name="district", type="text", tag="quasi_identifier"),
                    ColumnIn(name="age", type="integer", tag="quasi_identifier"),
                    ColumnIn(name="los_days", type="integer", tag="attribute"),
                ],
                privacy_unit="patient_id",
                row_count=len(rows),
                update_frequency="monthly",
                classification="important",
                rights=RightsIn(holding=name, processing_use=name, product_operation=name),
                content_digest="00" * 32,
            ),
        ).asset
        services.policies.set(holder, asset.id, policy.replace("MODE", mode))
        keys = generate_keypair()
        ids.set_public_key(holder, org, encode_public_key(keys.public_key))
        terms = LicenceTerms.model_validate(
            {
                "licence_id": f"lic-{name}",
                "holder_org_id": org,
                "operator_org_id": op_org,
                "asset_ids": [asset.id],
                "purposes": ["research"],
                "job_kinds": list(kinds),
                "valid_from": now - timedelta(days=1),
                "valid_until": now + timedelta(days=30),
                "fee": {"amount": "0", "currency": "CNY"},
            }
        )
        hsig = sign_offer(terms, keys.private_key)
        services.licences.offer(
            holder, json.loads(terms.model_dump_json()), base64.b64encode(hsig).decode()
        )
        services.licences.accept(
            operator,
            terms.licence_id,
            base64.b64encode(countersign(terms, hsig, op_keys.private_key)).decode(),
        )
        licences.append(terms.licence_id)
        hospitals.append(Hospital(name, holder, asset.id, rows))
    runner = make_runner(services, owner="test-runner")
    fed = Federation(
        services,
        runner,
        operator,
        op.api_key,
        Actor(aud.principal.id, aud_org, Role.AUDITOR),
        hospitals,
        licences,
    )
    return fed, agents


@pytest.fixture
def federation(tmp_path: Path, store_url: str) -> Iterator[Federation]:
    store = open_store(store_url)
    fed, agents = build_federation(tmp_path, store)
    try:
        yield fed
    finally:
        for agent in agents:
            agent.stop(grace=0.2)
        fed.services.site_pool.close()
        store.close()
