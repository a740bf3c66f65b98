"""The demo: sample organisations, principals, a site and an asset with generated data."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway import pki
from gateway.demo_federation import license_partitions, partner_holders
from gateway.domain import Actor, Role
from gateway.service import Services
from gateway.service.catalogue.schemas import (
    AssetCard,
    AssetCreate,
    ColumnIn,
    FederatedAssetIn,
    RightsIn,
    SiteCreate,
    SiteOut,
)
from gateway.service.identity.schemas import OrganisationCreate, PrincipalCreate

MARKER = ".blindgate-demo"
DISTRICTS = ["north", "south", "east", "west", "centre", "harbour"]
DIAGNOSES = ["I10", "E11", "J45", "I21", "N18", "C50", "F32", "K35"]

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class DemoKeys:
    admin: str
    holder: str
    operator: str
    auditor: str
    asset_id: str
    site_id: str
    holder_org: str
    operator_org: str
    holder_principal: str
    operator_principal: str
    federated_assets: tuple[str, ...]
    federated_asset: str
    site_slugs: tuple[str, ...]
    licences: tuple[str, ...]


POLICY = """\
version: 1
asset: admissions
description: Inpatient admissions - aggregate statistics for public-health research only
columns:
  patient_id: {control: join_key}
  district: {control: group_by}
  sex: {control: group_by}
  age: {control: filter}
  admitted: {control: filter}
  los_days:
    control: aggregate
    clip: {lower: 0, upper: 60}
  cost:
    control: aggregate
    clip: {lower: 0, upper: 50000}
  diagnosis: {control: never}
jobs:
  kinds: [sql_aggregate, he_aggregate, he_linear]
  aggregates: [count, sum, avg]
  purposes: [public-health-research]
  min_group_size: 10
  max_rows_per_unit: 3
  approval: {mode: auto}
  rate_limit_per_hour: 30
privacy:
  epsilon_per_job_max: 1.0
  budget: {epsilon: 10, delta: 1.0e-6, period_days: 30}
"""


def write_examples(directory: Path, asset_id: str) -> None:
    """Sample files for the walkthrough: a policy and two job descriptions."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "admissions-policy.yaml").write_text(POLICY)

    def job(purpose: str, columns: list[dict[str, str]]) -> str:
        return (
            json.dumps(
                {
                    "kind": "sql_aggregate",
                    "purpose": purpose,
                    "epsilon": 0.5,
                    "assets": [asset_id],
                    "columns": [{"asset": asset_id, **c} for c in columns],
                },
                indent=2,
            )
            + "\n"
        )

    allowed = [
        {"column": "district", "usage": "group_by"},
        {"column": "age", "usage": "filter"},
        {"column": "los_days", "usage": "aggregate", "function": "avg"},
    ]
    (directory / "job-allowed.json").write_text(job("public-health-research", allowed))
    denied = [*allowed, {"column": "diagnosis", "usage": "group_by"}]
    (directory / "job-denied.json").write_text(job("marketing", denied))


def reset_demo_dir(data_dir: Path) -> None:
    """Start the demo from nothing; refuse to delete a directory the demo did not create."""
    if data_dir.exists():
        if not (data_dir / MARKER).exists():
            raise SystemExit(f"{data_dir} exists and is not a demo directory; not touching it")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("created by `blindgate demo`; deleted on the next demo run\n")


def generate_admissions(
    path: Path, rows: int, seed: int, progress: Progress, prefix: str = "P"
) -> str:
    """Write a synthetic hospital-admissions CSV; return its SHA-256 hex digest."""
    rng = random.Random(seed)  # noqa: S311 - synthetic sample data, not a secret
    path.parent.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    patients = max(1, rows * 2 // 3)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["patient_id", "age", "sex", "district", "diagnosis", "admitted", "los_days", "cost"]
        )
        for i in range(rows):
            age = min(100, max(0, int(rng.gauss(58, 20))))
            los = max(1, int(rng.expovariate(1 / (3 + age / 20))))
            out.writerow(
                [
                    f"{prefix}{rng.randrange(patients):07d}",
                    age,
                    rng.choice("FM"),
                    rng.choice(DISTRICTS),
                    rng.choice(DIAGNOSES),
                    (start + timedelta(days=rng.randrange(365))).date().isoformat(),
                    los,
                    round(800 + los * rng.uniform(300, 900), 2),
                ]
            )
            if i % 1000 == 999:
                progress(1000)
        progress(rows % 1000)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def init_pki(data_dir: Path) -> None:
    """A development CA and the gateway's client certificate for talking to site agents."""
    ca = data_dir / "pki" / "ca"
    pki.init_ca(ca)
    pki.issue(ca, "gateway", data_dir / "pki", kind="client")


def site_pki(data_dir: Path, site_dir: Path) -> str:
    """The site's server certificate; returns its fingerprint (what the holder registers)."""
    ca = data_dir / "pki" / "ca"
    return pki.issue(ca, "site", site_dir / "tls", kind="server", hosts=["127.0.0.1", "localhost"])


def write_site_config(data_dir: Path, site_dir: Path, port: int, level: str) -> Path:
    """The site agent's ``site.yaml``: it serves ``admissions.csv`` to the demo gateway only."""
    gateway_fp = pki.fingerprint((data_dir / "pki" / "gateway.crt").read_bytes())
    lines = [
        f"listen: 127.0.0.1:{port}",
        "tls:",
        "  cert: tls/site.crt",
        "  key: tls/site.key",
        f"  ca: {(data_dir / 'pki' / 'ca' / 'ca.crt').resolve()}",
        "gateway_fingerprints:",
        f"  - {gateway_fp}",
        "assets:",
        "  admissions.csv: {path: admissions.csv, format: csv}",
        "cache_dir: cache",
        "pool_size: 1",
        f"minimum_isolation: {level}",
    ]
    if level == "weak":
        lines.append("unsafe_allow_weak_isolation: true")
    path = site_dir / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def add_hospital(
    services: Services,
    holder: Actor,
    data_dir: Path,
    slug: str,
    name: str,
    port: int,
    rows: int,
    seed: int,
    progress: Progress,
) -> tuple[SiteOut, AssetCard]:
    """One hospital's site (certificate, registration) and its admissions partition."""
    site_dir = data_dir / "sites" / slug
    fingerprint = site_pki(data_dir, site_dir)
    site = services.sites.register(
        holder,
        SiteCreate(
            name=f"{slug}-site", grpc_address=f"127.0.0.1:{port}", tls_fingerprint=fingerprint
        ),
    )
    digest = generate_admissions(
        site_dir / "admissions.csv", rows, seed=seed, progress=progress, prefix=slug[:2].upper()
    )
    asset = services.assets.register(
        holder,
        AssetCreate(
            name="admissions",
            description="Inpatient admissions, one row per admission",
            domain="health",
            site_id=site.id,
            local_ref="admissions.csv",
            columns=[
                ColumnIn(name="patient_id", type="text", tag="identifier"),
                ColumnIn(name="age", type="integer", tag="quasi_identifier"),
                ColumnIn(name="sex", type="text", tag="quasi_identifier"),
                ColumnIn(name="district", type="text", tag="quasi_identifier"),
                ColumnIn(name="diagnosis", type="text", tag="sensitive"),
                ColumnIn(name="admitted", type="date", tag="attribute"),
                ColumnIn(name="los_days", type="integer", tag="attribute"),
                ColumnIn(name="cost", type="double", tag="sensitive"),
            ],
            privacy_unit="patient_id",
            row_count=rows,
            update_frequency="monthly",
            classification="important",
            rights=RightsIn(
                holding=name, processing_use=name, product_operation="Provincial Data Bureau"
            ),
            content_digest=digest,
        ),
    )
    return site, asset.asset


def seed(
    services: Services, data_dir: Path, rows: int, progress: Progress, site_port: int = 50061
) -> DemoKeys:
    """Seed the demo organisations, principals, site and asset through the service layer."""
    ids = services.identities
    admin_created = ids.bootstrap_admin("Blindgate Platform", "platform-admin")
    admin = Actor(admin_created.principal.id, admin_created.principal.org_id, Role.ADMIN)
    holder_org = ids.create_org(
        admin, OrganisationCreate(name="Riverside Hospital Group", description="Public hospitals")
    )
    operator_org = ids.create_org(
        admin, OrganisationCreate(name="Civic Analytics Ltd", description="Licensed operator")
    )
    auditor_org = ids.create_org(
        admin, OrganisationCreate(name="Provincial Data Bureau", description="Security team")
    )
    holder = ids.create_principal(
        admin, PrincipalCreate(org_id=holder_org.id, name="riverside-steward", role=Role.HOLDER)
    )
    operator = ids.create_principal(
        admin, PrincipalCreate(org_id=operator_org.id, name="civic-analyst", role=Role.OPERATOR)
    )
    auditor = ids.create_principal(
        admin, PrincipalCreate(org_id=auditor_org.id, name="bureau-auditor", role=Role.AUDITOR)
    )
    holder_actor = Actor(holder.principal.id, holder_org.id, Role.HOLDER)
    init_pki(data_dir)
    site, asset = add_hospital(
        services,
        holder_actor,
        data_dir,
        "riverside",
        "Riverside Hospital Group",
        site_port,
        rows,
        2026,
        progress,
    )
    operator_actor = Actor(operator.principal.id, operator_org.id, Role.OPERATOR)
    partitions = [("riverside", holder_actor, asset.id)]
    for n, (slug, name, partner) in enumerate(partner_holders(services, admin), start=1):
        _, part = add_hospital(
            services, partner, data_dir, slug, name, site_port + n, rows, 2026 + n, progress
        )
        partitions.append((slug, partner, part.id))
    licences = license_partitions(services, data_dir / "keys", operator_actor, partitions, POLICY)
    federated = services.federated.register(
        admin,
        FederatedAssetIn(
            name="admissions (Riverside, Eastside, Harbour)",
            description="Inpatient admissions of three hospital groups, one partition each",
            partitions=[p[2] for p in partitions],
        ),
    )
    return DemoKeys(
        admin=admin_created.api_key,
        holder=holder.api_key,
        operator=operator.api_key,
        auditor=auditor.api_key,
        asset_id=asset.id,
        site_id=site.id,
        holder_org=holder_org.id,
        operator_org=operator_org.id,
        holder_principal=holder.principal.id,
        operator_principal=operator.principal.id,
        federated_assets=tuple(p[2] for p in partitions),
        federated_asset=federated.id,
        site_slugs=tuple(p[0] for p in partitions),
        licences=tuple(licences),
    )


def write_env(path: Path, keys: DemoKeys, url: str) -> None:
    """Write the demo's keys as a shell file (mode 0600) for ``source``."""
    path.write_text(
        f"export BLINDGATE_URL={url}\n"
        f"export ADMIN_KEY={keys.admin}\n"
        f"export HOLDER_KEY={keys.holder}\n"
        f"export OPERATOR_KEY={keys.operator}\n"
        f"export AUDITOR_KEY={keys.auditor}\n"
        f"export ASSET_ID={keys.asset_id}\n"
        f"export SITE_ID={keys.site_id}\n"
        f"export HOLDER_ORG={keys.holder_org}\n"
        f"export OPERATOR_ORG={keys.operator_org}\n"
        f"export FEDERATED_ASSET={keys.federated_asset}\n"
        f"export FEDERATED_ASSETS='{' '.join(keys.federated_assets)}'\n"
        f"export PARTITIONS='{' '.join('--asset ' + a for a in keys.federated_assets)}'\n"
    )
    path.chmod(0o600)


def start_site_agent(data_dir: Path, site_port: int, slug: str = "riverside") -> tuple[Any, str]:
    """Start the demo's site agent in this process with the strongest isolation the host
    offers; return the running server and the level it got."""
    from sandbox.agent.config import load_config
    from sandbox.agent.server import AgentServer
    from sandbox.runner import IsolationError

    site_dir = data_dir / "sites" / slug
    for level in ("strong", "medium", "weak"):
        config = load_config(write_site_config(data_dir, site_dir, site_port, level))
        try:
            server = AgentServer(config)
        except IsolationError:
            continue
        server.start()
        return server, level
    raise RuntimeError("the site agent could not start")
