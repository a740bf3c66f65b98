"""Three hospitals, each with a site agent (real sandbox, mutual TLS) holding one
partition of a federated admissions asset; an operator licensed by all three."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from blindgate_demo.federation import Federation as Built
from blindgate_demo.federation import (
    Licensing,
    Party,
    Table,
    ThreadAgents,
    build,
    gateway_tls,
    init_pki,
    set_signed_policy,
)
from contracts.tickets import ApprovalStatement, job_statement, sign_statement
from gateway.config import Settings
from gateway.domain import Actor
from gateway.metrics import GatewayMetrics
from gateway.service import Services, build_services
from gateway.service.jobs.runner import JobRunner, make_runner
from gateway.service.jobs.schemas import ApprovalIn, JobOut
from gateway.siteclient.pool import SitePool
from gateway.store import SqlStore, open_store

COLUMNS = (
    ("patient_id", "text", "identifier"),
    ("district", "text", "quasi_identifier"),
    ("age", "integer", "quasi_identifier"),
    ("los_days", "integer", "attribute"),
)
HOSPITALS = ("north-general", "east-clinic", "harbour-hospital")
DISTRICTS = ("north", "south", "east")

POLICY = """\
version: 1
asset: admissions
columns:
  patient_id: {control: join_key}
  district:
    control: group_by
    keys: {values: [north, south, east]}
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
    built: Built

    @property
    def asset_ids(self) -> list[str]:
        return [h.asset_id for h in self.hospitals]

    def set_policy(self, text: str) -> None:
        """Every hospital sets ``text`` as its partition's policy, signed with its key."""
        for holder in self.built.holders:
            set_signed_policy(
                self.services, holder.actor, holder.signing_key, holder.assets["admissions"], text
            )

    def approve(self, index: int, job_id: str, reason: str = "ok") -> JobOut:
        """Hospital ``index`` approves the job, signed with its organisation's key."""
        holder = self.built.holders[index]
        job = self.services.jobs.get(holder.actor, job_id)
        signed_at = self.services.ctx.clock.now()
        statement = ApprovalStatement(
            holder_org_id=holder.actor.org_id,
            principal_id=holder.actor.principal_id,
            job_id=job_id,
            job_sha256=job_statement(job.model_dump()).digest,
            signed_at=signed_at,
        )
        body = ApprovalIn(
            reason=reason,
            signature=sign_statement(statement, holder.signing_key),
            signed_at=signed_at,
        )
        return self.services.jobs.approve(holder.actor, job_id, body, approve=True)

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
    table_name: str = "admissions",
    job_cap: int | None = None,
) -> tuple[Federation, list[Any]]:
    """The three hospitals (the shared federation builder), with a job runner not started."""
    init_pki(tmp)
    settings = Settings(data_dir=tmp / "data", dev_mode=True)
    metrics = GatewayMetrics(CollectorRegistry())
    services = build_services(
        store, settings, metrics=metrics, site_pool=SitePool(gateway_tls(tmp), metrics.registry)
    )
    partitions: dict[str, list[tuple[str, str, int, int]]] = {}

    def write(path: Path, n: int, slug: str) -> int:
        rows = partitions[slug] = _partition(n, slug[0].upper(), 400 + 100 * n)
        path.write_text(
            "patient_id,district,age,los_days\n"
            + "".join(f"{p},{d},{a},{los}\n" for p, d, a, los in rows)
        )
        return len(rows)

    table = Table(
        name=table_name,
        file="admissions.csv",
        columns=COLUMNS,
        policy=lambda asset_id: policy.replace("MODE", mode).replace(
            "asset: admissions", f"asset: {asset_id}"
        ),
        write=write,
    )
    built = build(
        tmp,
        services,
        holders=[Party(name, name) for name in HOSPITALS],
        tables=[table],
        licensing=Licensing(job_kinds=kinds, purposes=["research"], job_cap=job_cap),
        agents=ThreadAgents(),
    )
    hospitals = [
        Hospital(h.party.slug, h.actor, h.assets[table_name], partitions[h.party.slug])
        for h in built.holders
    ]
    fed = Federation(
        services,
        make_runner(services, owner="test-runner"),
        built.operator,
        built.operator_key,
        built.auditor,
        hospitals,
        built.licences,
        built,
    )
    return fed, [h.agent for h in built.holders]


@pytest.fixture
def federation(tmp_path: Path, store_url: str) -> Iterator[Federation]:
    store = open_store(store_url)
    fed, agents = build_federation(tmp_path, store)
    try:
        yield fed
    finally:
        for agent in agents:
            agent.stop()
        fed.services.site_pool.close()
        store.close()
