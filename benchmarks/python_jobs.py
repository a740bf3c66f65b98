"""What a Python job costs at a site, beside what the same work costs without Blindgate.

Measures, in the same run:

* the projection of a ``--rows`` asset to the permitted columns (DuckDB, with the keyed
  hashes of identifiers and quasi-identifier combinations for the output checks): once
  per asset version, then a lookup;
* a syft-rds job (read the dataset with ``syft.resolve_dataset_file_path``, write one
  JSON summary) run in the sandbox by the ``python`` executor, against the same script
  run as a plain subprocess on the same file (the baseline);
* the automatic output checks of a 1 MiB CSV output.

    .venv/bin/python benchmarks/python_jobs.py [--rows 100000] [--runs 10]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.agent.output_checks import check_outputs  # noqa: E402
from sandbox.agent.projection import Projections  # noqa: E402
from sandbox.config import RunnerConfig  # noqa: E402
from sandbox.runner import Runner  # noqa: E402
from sandbox.spec import FragmentSpec, Limits  # noqa: E402

JOB = """\
import csv, json, os
import syft as sy
path = sy.resolve_dataset_file_path("admissions")
stays = {}
with open(path, newline="") as handle:
    for row in csv.DictReader(handle):
        stays.setdefault(row["district"], []).append(float(row["los_days"]))
os.makedirs("outputs", exist_ok=True)
with open("outputs/mean_stay.json", "w") as out:
    json.dump({d: sum(v) / len(v) for d, v in sorted(stays.items())}, out)
"""
DISTRICTS = ("north", "south", "east", "west", "centre", "harbour")


def write_asset(path: Path, rows: int) -> None:
    rng = random.Random(7)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["patient_id", "district", "sex", "age", "los_days"])
        for n in range(rows):
            out.writerow(
                [
                    f"P{n:07d}",
                    rng.choice(DISTRICTS),
                    rng.choice("FM"),
                    rng.randint(0, 99),
                    rng.randint(1, 30),
                ]
            )


def ms(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:.1f} ms (min {min(values) * 1000:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        os.chmod(root, 0o755)
        asset = root / "admissions.csv"
        write_asset(asset, args.rows)
        os.chmod(asset, 0o644)
        projections = Projections(root / "projections", root / "state")
        columns = ("district", "sex", "age", "los_days")
        began = time.perf_counter()
        projection = projections.get(
            asset, "csv", columns, ("patient_id",), ("district", "sex", "age")
        )
        cold = time.perf_counter() - began
        began = time.perf_counter()
        projections.get(asset, "csv", columns, ("patient_id",), ("district", "sex", "age"))
        warm = time.perf_counter() - began
        print(
            f"projection of {args.rows:,} rows: {cold * 1000:.0f} ms once, then "
            f"{warm * 1000:.2f} ms per job"
        )

        folder = root / "job"
        (folder / "code" / "outputs").mkdir(parents=True)
        (folder / "code" / "main.py").write_text(JOB)
        for path in [folder, *folder.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        program = json.dumps(
            {
                "entrypoint": "main.py",
                "dataset": "admissions",
                "datasite": "datasite@blindgate.invalid",
                "outputs": {"max_files": 4, "max_file_bytes": 65536, "max_total_bytes": 65536},
            }
        )
        limits = Limits(cpu_seconds=60, wall_seconds=120.0)
        sandboxed = []
        with Runner(RunnerConfig()) as runner:
            level = runner.isolation_report().level.value
            for _ in range(args.runs):
                began = time.perf_counter()
                result = runner.run(
                    FragmentSpec(
                        "python",
                        program,
                        projection.path,
                        folder,
                        limits,
                        writable_input="code/outputs",
                    )
                )
                sandboxed.append(time.perf_counter() - began)
                assert result.ok, result.failure
        plain_dir = root / "plain"
        box = plain_dir / "syftbox" / "ds@x" / "private" / "syft_datasets" / "v1" / "admissions"
        box.mkdir(parents=True)
        (box / "admissions.csv").symlink_to(projection.path)
        (plain_dir / "outputs").mkdir()
        standin = ROOT / "sandbox" / "executors" / "syft_standin"
        env = {
            "SYFTBOX_FOLDER": str(plain_dir / "syftbox"),
            "SYFTBOX_EMAIL": "ds@x",
            "SYFT_IS_IN_JOB": "true",
            "PYTHONPATH": str(standin),
        }
        plain = []
        for _ in range(args.runs):
            began = time.perf_counter()
            subprocess.run(
                [sys.executable, str(folder / "code" / "main.py")],
                cwd=plain_dir,
                env=env,
                check=True,
            )
            plain.append(time.perf_counter() - began)
        ratio = statistics.median(sandboxed) / statistics.median(plain)
        print(f"syft-rds job on {args.rows:,} rows, sandboxed ({level}): {ms(sandboxed)}")
        print(f"same script, plain subprocess: {ms(plain)}; ratio {ratio:.2f}")

        rows = "\n".join(f"{d},{n},{n * 0.5}" for n in range(40_000) for d in ("north",))
        output = ("district,n,mean\n" + rows).encode()[: 1024 * 1024]
        began = time.perf_counter()
        verdict = check_outputs([("output", "table.csv", output)], ("csv",), projection.sensitive)
        took = time.perf_counter() - began
        print(
            f"automatic checks of a {len(output) / 1024:.0f} KiB CSV output: "
            f"{took * 1000:.0f} ms ({len(verdict.problems)} problems)"
        )


if __name__ == "__main__":
    main()
