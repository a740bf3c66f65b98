"""Synthetic hospital admissions: the demo's partitions and the benchmarks' larger ones."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

DISTRICTS = ("north", "south", "east", "west", "centre", "harbour")
DIAGNOSES = ("I10", "E11", "J45", "I21", "N18", "C50", "F32", "K35")
COLUMNS = (
    ("patient_id", "text", "identifier"),
    ("age", "integer", "quasi_identifier"),
    ("sex", "text", "quasi_identifier"),
    ("district", "text", "quasi_identifier"),
    ("diagnosis", "text", "sensitive"),
    ("admitted", "date", "attribute"),
    ("los_days", "integer", "attribute"),
    ("cost", "double", "sensitive"),
)
"""The demo's admissions: one row per admission (a patient may be admitted several times)."""

Progress = Callable[[int], None]


def generate(path: Path, rows: int, seed: int, progress: Progress, prefix: str = "P") -> None:
    """Write ``rows`` synthetic admissions with :data:`COLUMNS` as CSV."""
    rng = random.Random(seed)  # noqa: S311 - synthetic sample data, not a secret
    path.parent.mkdir(parents=True, exist_ok=True)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    patients = max(1, rows * 2 // 3)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([name for name, _, _ in COLUMNS])
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


COMPACT_COLUMNS = (
    ("patient_id", "text", "identifier"),
    ("district", "text", "quasi_identifier"),
    ("age", "integer", "quasi_identifier"),
    ("los_days", "integer", "attribute"),
)
"""The benchmarks' admissions: one row per patient, written fast by DuckDB."""


def write_compact(path: Path, prefix: str, rows: int, seed: int) -> None:
    """``rows`` admissions with :data:`COMPACT_COLUMNS` and unique patient ids (CSV or
    Parquet by ``path``'s suffix)."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(
            """
            CREATE TEMP TABLE admissions AS
            SELECT $prefix || lpad(CAST(i AS VARCHAR), 8, '0') AS patient_id,
                   (['north', 'south', 'east'])[1 + CAST(hash(i, $seed, 1) % 3 AS INTEGER)]
                       AS district,
                   CAST(20 + hash(i, $seed, 2) % 71 AS INTEGER) AS age,
                   CAST(1 + hash(i, $seed, 3) % 20 AS INTEGER) AS los_days
            FROM range($rows) AS t(i)
            """,
            {"prefix": prefix, "seed": seed, "rows": rows},
        )
        table = con.table("admissions")
        if path.suffix == ".parquet":
            table.write_parquet(str(path))
        else:
            table.write_csv(str(path), header=True)


def stays_of_the_old(site_files: list[Path]) -> dict[str, tuple[int, float]]:
    """Per district, the admissions of patients aged 65 or more and their mean stay.

    The exact answer to the demo's query, computed from the demo's own generated files:
    only the demo can do this (it generated the data); no gateway code path reads rows.
    """
    stays: dict[str, list[int]] = {}
    for path in site_files:
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if int(row["age"]) >= 65:
                    stays.setdefault(row["district"], []).append(int(row["los_days"]))
    return {d: (len(v), sum(v) / len(v)) for d, v in sorted(stays.items())}
