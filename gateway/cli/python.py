"""``blindgate python``: Python jobs as syft-rds users write them.

``mock`` downloads an asset's mock data (or lays it out as a syft-rds dataset folder),
``test`` runs a job folder against it locally, ``submit`` sends it (printing its code
hash, which is what the holder approves), ``outputs`` writes a released job's files, and
``mock-set`` lets a holder upload the mock operators get.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from gateway.cli.connect import Session, gateway_command
from gateway.cli.output import fail

FOLDER = click.Path(exists=True, path_type=Path)


@click.group("python")
def python() -> None:
    """Python jobs: syft-rds job folders, mock data, local test runs, outputs."""


@python.command("mock")
@click.argument("asset_id")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the CSV here.")
@click.option(
    "--syft-rds",
    "syftbox",
    type=click.Path(file_okay=False, path_type=Path),
    help="Lay it out as a syft-rds dataset folder under this SyftBox folder.",
)
@click.option("--name", help="The dataset's name (default: the asset's).")
@gateway_command
def mock(
    s: Session, asset_id: str, out: Path | None, syftbox: Path | None, name: str | None
) -> None:
    """Download an asset's mock data (no privacy cost: it reads no data)."""
    if syftbox is not None:
        where = s.client.mock_dataset(asset_id, syftbox, name=name)
        click.echo(f"syft-rds dataset folder: {where}")
        return
    data = s.client.mock_files(asset_id)
    if out is None:
        sys.stdout.write(data.decode())
    else:
        out.write_bytes(data)
        click.echo(f"mock written: {out} ({len(data)} bytes)")


@python.command("mock-set")
@click.argument("asset_id")
@click.argument("csv_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@gateway_command
def mock_set(s: Session, asset_id: str, csv_file: Path) -> None:
    """Upload the mock operators get for one of your assets (holder)."""
    answer = s.client.upload_mock(asset_id, csv_file.read_bytes())
    s.show(answer, lambda m: click.echo(f"mock set: {m['asset_id']} ({m['sha256'][:16]})"))


@python.command("test")
@click.argument("folder", type=FOLDER)
@click.option(
    "--mock",
    "mock_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The mock CSV (blindgate python mock ASSET --out mock.csv).",
)
@click.option("--dataset", required=True, help="The dataset name the code resolves.")
def test(folder: Path, mock_file: Path, dataset: str) -> None:
    """Run a job folder locally against a mock, as a site lays it out (not sandboxed)."""
    from gateway.client.python_jobs import job_folder, run_locally
    from policies.jobs.jobfolder import pack_folder, read_folder

    code, out, err, outputs = run_locally(folder, mock_file.read_bytes(), dataset)
    sys.stdout.write(out)
    sys.stderr.write(err)
    with tempfile.TemporaryDirectory() as scratch:
        packed = read_folder(pack_folder(job_folder(folder, Path(scratch))))
    click.echo(f"exit status {code}; outputs in {outputs}")
    click.echo(f"code hash {packed.code_hash} (what the holder approves)")
    if code != 0:
        raise SystemExit(1)


@python.command("submit")
@click.argument("folder", type=FOLDER)
@click.option("--asset", "assets", multiple=True, required=True, help="Asset (repeatable).")
@click.option("--purpose", required=True, help="The purpose, as the licence names it.")
@click.option("--dataset", help="The dataset name the code resolves (default: the asset's).")
@click.option("--dry-run", is_flag=True, help="Only the decision; nothing is stored or run.")
@gateway_command
def submit(
    s: Session,
    folder: Path,
    assets: tuple[str, ...],
    purpose: str,
    dataset: str | None,
    dry_run: bool,
) -> None:
    """Submit a job folder (syft-rds's config.yaml, run.sh, code/) or a code folder."""
    answer = s.client.submit_python_job(
        folder, list(assets), purpose, dataset=dataset, dry_run=dry_run
    )

    def show(job: dict[str, object]) -> None:
        if dry_run:
            click.echo(json.dumps(job, indent=2))
            return
        spec = job.get("spec") or {}
        assert isinstance(spec, dict)
        click.echo(f"job {job['id']}: {job['state']}")
        click.echo(f"code hash {spec.get('code_hash')}")

    s.show(answer, show)


@python.command("outputs")
@click.argument("job_id")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder to write the outputs into.",
)
@gateway_command
def outputs(s: Session, job_id: str, out: Path) -> None:
    """Write a released job's outputs under OUT/<asset>/outputs/ (logs beside them)."""
    found = s.client.job_outputs(job_id, out)
    if not found:
        fail(f"job {job_id} has no released outputs")
    for asset, files in found.items():
        for path in sorted(files):
            shown = path[2:] if path.startswith("::") else f"outputs/{path}"
            click.echo(f"{out / asset / shown}")


COMMANDS = (python,)
