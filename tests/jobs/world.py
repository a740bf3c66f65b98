"""A hospital-admissions asset for the job tests: schema, parameters and generated rows."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

from policies import Approval, ClipBounds, EffectiveParameters
from policies.jobs import AssetSchema

SCHEMA = AssetSchema.build(
    "admissions",
    "admissions",
    [
        ("patient_id", "bigint", "identifier"),
        ("district", "text", "quasi_identifier"),
        ("age", "integer", "quasi_identifier"),
        ("los", "double", "sensitive"),
        ("cost", "decimal(12,2)", "sensitive"),
        ("diagnosis", "text", "sensitive"),
        ("admitted", "date", "attribute"),
        ("readmitted", "boolean", "attribute"),
    ],
    "patient_id",
)

COLUMNS_SQL = (
    "patient_id BIGINT, district VARCHAR, age INTEGER, los DOUBLE, cost DECIMAL(12,2), "
    "diagnosis VARCHAR, admitted DATE, readmitted BOOLEAN"
)

DISTRICTS = ("north", "south", "east", "west")


def params(
    *,
    epsilon: float = 1.0,
    delta: float = 1e-6,
    k: int = 5,
    c: int = 1,
    clip: Mapping[str, tuple[float, float]] | None = None,
    keys: Mapping[str, tuple[Any, ...]] | None = None,
    share: float = 0.5,
    max_groups: int | None = None,
) -> EffectiveParameters:
    bounds = clip if clip is not None else {"los": (0, 60), "cost": (0, 100_000), "age": (0, 120)}
    return EffectiveParameters(
        job_kind="sql_aggregate",
        epsilon=epsilon,
        delta=delta,
        min_group_size=k,
        max_rows_per_unit=c,
        clip={"admissions": {n: ClipBounds(lower=lo, upper=hi) for n, (lo, hi) in bounds.items()}},
        privacy_units={"admissions": "patient_id"},
        approval_mode="auto",
        approvals={"admissions": Approval(mode="auto")},
        key_domains=dict(keys or {}),
        keys_declared=bool(keys),
        threshold_share=share,
        max_groups=max_groups,
    )


def generate_rows(units: int, rows_per_unit: int, seed: int) -> list[tuple[Any, ...]]:
    """Rows with ``rows_per_unit`` admissions per patient; values inside the clip bounds."""
    rng = random.Random(seed)
    rows: list[tuple[Any, ...]] = []
    for unit in range(1, units + 1):
        for _ in range(rows_per_unit):
            rows.append(
                (
                    unit,
                    rng.choice(DISTRICTS),
                    rng.randint(0, 100),
                    round(rng.uniform(0, 60), 1),
                    round(rng.uniform(0, 100_000), 2),
                    rng.choice(["A10", "B20", "C30", None]),
                    date(2020, 1, 1) + timedelta(days=rng.randint(0, 1500)),
                    rng.random() < 0.2,
                )
            )
    return rows


def write_table(path: Path, rows: list[tuple[Any, ...]], *, fmt: str = "parquet") -> Path:
    """Write ``rows`` with the asset's columns to a Parquet or CSV file."""
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({COLUMNS_SQL})")
    if rows:
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    option = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
    con.execute(f"COPY t TO '{path}' {option}")
    con.close()
    return path


def run_fragment(sql: str, path: Path) -> list[dict[str, Any]]:
    """Run a fragment the way a site does: the asset file exposed as the view ``asset``."""
    con = duckdb.connect()
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    con.execute(f"SET allowed_paths = ['{path}']")
    con.execute("SET enable_external_access = false")
    con.execute(f"CREATE VIEW asset AS SELECT * FROM {reader}('{path}')")
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    result = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    con.close()
    return result


def run_direct(sql: str, path: Path) -> list[tuple[Any, ...]]:
    """Run the operator's original SQL over the whole file, as if it were the table."""
    con = duckdb.connect()
    reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
    con.execute(f"CREATE VIEW {SCHEMA.table} AS SELECT * FROM {reader}('{path}')")
    rows = con.execute(sql).fetchall()
    con.close()
    return rows
