"""The demo's world: three hospitals, their site agents, partitions, policies and licences,
an operator and an auditor, seeded through the service layer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from blindgate_demo import admissions
from blindgate_demo.federation import (
    Federation,
    Licensing,
    Party,
    Table,
    ThreadAgents,
    build,
)
from gateway.service import Services

MARKER = ".blindgate-demo"
PURPOSE = "public-health-research"
HOSPITALS = (
    Party("riverside", "Riverside Hospital Group"),
    Party("eastside", "Eastside Medical Centre"),
    Party("harbour", "Harbour Hospital"),
)

POLICY = """\
version: 1
asset: admissions
description: Inpatient admissions - aggregate statistics for public-health research only
columns:
  patient_id: {control: join_key}
  district:
    control: group_by
    keys: {values: [north, south, east, west, centre, harbour]}
  sex:
    control: group_by
    keys: {values: [F, M]}
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
  kinds: [sql_aggregate, he_aggregate, he_linear, python]
  aggregates: [count, sum, avg]
  purposes: [public-health-research]
  min_group_size: 10
  max_rows_per_unit: 3
  approval: {mode: auto}
  rate_limit_per_hour: 30
privacy:
  epsilon_per_job_max: 1.0
  budget: {epsilon: 10, delta: 1.0e-6, period_days: 30}
python:                          # syft-rds job folders, reviewed by the hospital
  columns: [district, sex, age, admitted, los_days, cost]
  outputs: {types: [csv, json, txt], max_files: 10, max_file_bytes: 1048576}
  limits: {wall_seconds: 120, cpu_seconds: 60, memory_bytes: 536870912}
  release: review
"""

PYSYFT_JOB = """\
import csv
import json
import os

import syft as sy

path = sy.resolve_dataset_file_path("admissions")
stays = {}
with open(path, newline="") as handle:
    for row in csv.DictReader(handle):
        stays.setdefault(row["district"], []).append(float(row["los_days"]))
os.makedirs("outputs", exist_ok=True)
summary = {d: round(sum(v) / len(v), 1) for d, v in sorted(stays.items()) if len(v) >= 50}
with open("outputs/mean_stay.json", "w") as out:
    json.dump(summary, out, indent=1)
print("districts summarised:", len(summary))
"""


def reset_demo_dir(data_dir: Path) -> None:
    """Start the demo from nothing; refuse to delete a directory the demo did not create."""
    if data_dir.exists():
        if not (data_dir / MARKER).exists():
            raise SystemExit(f"{data_dir} exists and is not a demo directory; not touching it")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).write_text("created by `blindgate demo`; deleted on the next demo run\n")


def seed(
    services: Services,
    data_dir: Path,
    rows: int,
    progress: Callable[[int], None],
    *,
    site_port: int = 50061,
    step: Callable[[str], None] = lambda message: None,
) -> Federation:
    """Seed the demo's organisations, sites, partitions, policies and licences.

    Each hospital's partition has ``rows`` generated admissions; its site agent runs in
    this process on ``site_port + n`` with the strongest isolation the host offers.
    """

    def write(path: Path, n: int, slug: str) -> int:
        admissions.generate(path, rows, seed=2026 + n, progress=progress, prefix=slug[:2].upper())
        return rows

    table = Table(
        name="admissions",
        file="admissions.csv",
        columns=admissions.COLUMNS,
        policy=lambda asset_id: POLICY,
        write=write,
        description="Inpatient admissions, one row per admission",
    )
    return build(
        data_dir,
        services,
        holders=HOSPITALS,
        tables=[table],
        licensing=Licensing(
            job_kinds=["sql_aggregate", "he_aggregate", "he_linear", "python"],
            purposes=[PURPOSE],
            prefix="lic-demo-",
            valid_days=90,
            epsilon_cap="20",
            fee={"amount": "1000", "currency": "CNY", "revenue_share_percent": "10"},
        ),
        agents=ThreadAgents(levels=("strong", "medium", "weak")),
        port=lambda n: site_port + n,
        keys_dir=data_dir / "keys",
        federate="admissions (Riverside, Eastside, Harbour)",
        progress=step,
    )


def write_examples(directory: Path, asset_id: str) -> None:
    """Sample files for the walkthrough: a policy, two job descriptions and a PySyft
    job's code."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "admissions-policy.yaml").write_text(POLICY)
    code = directory / "pysyft-job"
    code.mkdir(exist_ok=True)
    (code / "main.py").write_text(PYSYFT_JOB)

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
    (directory / "job-allowed.json").write_text(job(PURPOSE, allowed))
    denied = [*allowed, {"column": "diagnosis", "usage": "group_by"}]
    (directory / "job-denied.json").write_text(job("marketing", denied))


def write_env(path: Path, fed: Federation, url: str) -> None:
    """Write the demo's keys and ids as a shell file (mode 0600) for ``source``."""
    first = fed.holders[0]
    partitions = fed.assets("admissions")
    keys = path.parent / "keys"
    path.write_text(
        f"export BLINDGATE_URL={url}\n"
        f"export ADMIN_KEY={fed.admin_key}\n"
        f"export HOLDER_KEY={first.api_key}\n"
        + "".join(f"export {h.party.slug.upper()}_KEY={h.api_key}\n" for h in fed.holders)
        + f"export OPERATOR_KEY={fed.operator_key}\n"
        f"export AUDITOR_KEY={fed.auditor_key}\n"
        f"export ASSET_ID={first.assets['admissions']}\n"
        f"export SITE_ID={first.site_id}\n"
        f"export SITE_CONFIG={first.site_dir / 'site.yaml'}\n"
        f"export HOLDER_ORG={first.actor.org_id}\n"
        f"export OPERATOR_ORG={fed.operator.org_id}\n"
        f"export HOLDER_SIGNING_KEY={keys / (first.party.slug + '.pem')}\n"
        f"export OPERATOR_SIGNING_KEY={keys / 'operator.pem'}\n"
        f"export FEDERATED_ASSET={fed.federated['admissions']}\n"
        f"export FEDERATED_ASSETS='{' '.join(partitions)}'\n"
        f"export PARTITIONS='{' '.join('--asset ' + a for a in partitions)}'\n"
    )
    path.chmod(0o600)
