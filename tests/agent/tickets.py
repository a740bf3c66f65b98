"""Tickets for the agent suite: a holder key the suite's agent pins, its policy for the
test asset, and the minter that signs with them (or with another key, to play a forger)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blindgate_demo import tickets as _tickets
from blindgate_demo.tickets import asset_id, fresh_id, release_of, request

__all__ = ["GROUPED", "HOLDER", "Minter", "asset_id", "fresh_id", "release_of", "request"]

HOLDER = Ed25519PrivateKey.generate()
ORGANISATION = "org_riverside"
OPERATOR = "org_analytics"
LICENCE = "lic-agent"
COLUMNS = [
    ("patient_id", "text", "identifier"),
    ("district", "text", "quasi_identifier"),
    ("los", "integer", "attribute"),
    ("diagnosis", "text", "sensitive"),
]
POLICY = """\
version: 1
asset: admissions
columns:
  patient_id: {control: join_key}
  district:
    control: group_by
    keys: {values: [north, south, east]}
  los:
    control: aggregate
    clip: {lower: 0, upper: 10}
  diagnosis: {control: never}
jobs:
  kinds: [sql_aggregate, he_aggregate, he_linear]
  aggregates: [count, sum, avg]
  purposes: [research]
  min_group_size: 2
  max_rows_per_unit: 1
  approval: {mode: auto}
privacy:
  epsilon_per_job_max: 50
  budget: {epsilon: 1000000, delta: 1.0e-6, period_days: 30}
"""
GROUPED = "SELECT district, COUNT(*) AS n, SUM(los) AS total FROM admissions GROUP BY district"


@dataclass
class Minter(_tickets.Minter):
    """A minter with the suite's holder key, organisation, policy and columns."""

    key: Ed25519PrivateKey = HOLDER
    organisation: str = ORGANISATION
    operator: str = OPERATOR
    policy: str = POLICY
    columns: list[tuple[str, str, str]] = field(default_factory=lambda: list(COLUMNS))
    licence_id: str = LICENCE
    default_sql: str = GROUPED
    local_ref: str = "admissions-csv"


def holder_section() -> dict[str, Any]:
    """``site.yaml``'s ``holder`` section for an agent that trusts :data:`HOLDER`."""
    return Minter().holder_section()
