"""Python jobs as syft-rds data scientists write them: job folders, mock data, outputs.

``submit_python_job(code_path=..., assets=[...], purpose=...)`` takes what syft-rds's
``submit_python_job`` takes (a folder of code or one ``.py`` file, an optional
``entrypoint`` and ``dependencies``, a ``job_name``), or a job folder syft-rds already
wrote (``config.yaml``, ``run.sh``, ``code/``), packs it into a deterministic tar.gz and
submits it.  ``jobs`` lists jobs as for every kind; ``job_outputs`` writes a released
job's files where syft-rds puts a job's ``outputs/``; ``mock_files`` and
``mock_dataset`` fetch an asset's mock data, the second as a syft-rds dataset folder, so
that ``syft.resolve_dataset_file_path`` finds it when the job runs locally
(``blindgate python test``).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from gateway.client.jobs import JobsApi
from policies.jobs.jobfolder import pack_folder

RUN_SH = """#!/bin/bash
# Recorded for the record: Blindgate never runs run.sh (nothing is installed at a site).
set -euo pipefail
cd code
python {entrypoint}
"""


def _entrypoint(code: Path, entrypoint: str | None) -> str:
    if entrypoint is not None:
        return entrypoint
    for name in ("main.py", "run.py"):
        if (code / name).is_file():
            return name
    scripts = sorted(p.name for p in code.glob("*.py"))
    if len(scripts) == 1:
        return scripts[0]
    raise ValueError("name the entrypoint: the code has no main.py and several .py files")


def job_folder(
    code_path: str | Path,
    into: Path,
    *,
    job_name: str | None = None,
    entrypoint: str | None = None,
    dependencies: list[str] | None = None,
) -> Path:
    """The syft-rds job folder for ``code_path`` (returned as is when it is one already)."""
    source = Path(code_path)
    if (source / "config.yaml").is_file() and (source / "code").is_dir():
        return source
    root = into / (job_name or source.stem)
    code = root / "code"
    if source.is_dir():
        shutil.copytree(
            source, code, ignore=shutil.ignore_patterns("__pycache__", ".venv", "outputs")
        )
    else:
        code.mkdir(parents=True)
        shutil.copy2(source, code / source.name)
    chosen = _entrypoint(code, entrypoint if source.is_dir() else source.name)
    config = {
        "name": job_name or source.stem,
        "type": "python",
        "entrypoint": chosen,
        "dependencies": list(dependencies or []),
        "files": sorted(p.relative_to(code).as_posix() for p in code.rglob("*") if p.is_file()),
        "is_folder_submission": source.is_dir(),
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (root / "run.sh").write_text(RUN_SH.format(entrypoint=chosen), encoding="utf-8")
    return root


class PythonJobsApi(JobsApi):
    """Python jobs: syft-rds job folders, reviewed by the holders at their sites."""

    def submit_python_job(
        self,
        code_path: str | Path,
        assets: list[str],
        purpose: str,
        *,
        job_name: str | None = None,
        entrypoint: str | None = None,
        dependencies: list[str] | None = None,
        dataset: str | None = None,
        licence_ids: list[str] | None = None,
        dry_run: bool = False,
    ) -> Any:
        """Submit a Python job (or, with ``dry_run``, only ask for the decision).

        ``dataset`` is the name the code passes to ``syft.resolve_dataset_file_path``
        (default: the asset's name).  Returns the job; it waits for approval by code hash
        unless the holder approved the code in advance, then for the holders' review.
        """
        with tempfile.TemporaryDirectory() as scratch:
            folder = job_folder(
                code_path,
                Path(scratch),
                job_name=job_name,
                entrypoint=entrypoint,
                dependencies=dependencies,
            )
            archive = pack_folder(folder)
        body: dict[str, Any] = {
            "assets": assets,
            "purpose": purpose,
            "archive": base64.b64encode(archive).decode("ascii"),
        }
        if dataset is not None:
            body["dataset"] = dataset
        if licence_ids is not None:
            body["licence_ids"] = licence_ids
        return self.post("/v1/python/jobs" + ("/dry-run" if dry_run else ""), body)

    def job_outputs(self, job_id: str, into: str | Path | None = None) -> dict[str, Any]:
        """A released Python job's outputs per site (files decoded; the logs as
        ``::stdout.txt`` and ``::stderr.txt``), written when ``into`` is given as syft-rds
        lays out a reviewed job: ``into/<asset>/outputs/…`` and ``into/<asset>/stdout.txt``."""
        released = self.result(job_id)
        python = released.get("python") or {}
        found: dict[str, Any] = {}
        for site in python.get("sites", []):
            files = {f["path"]: base64.b64decode(f["content"]) for f in site["outputs"]}
            found[site["asset"]] = files
            if into is not None:
                target = (Path(into) / site["asset"]).resolve()
                for path, data in files.items():
                    relative = path[2:] if path.startswith("::") else f"outputs/{path}"
                    destination = (target / relative).resolve()
                    if not destination.is_relative_to(target):
                        raise ValueError("an output path leaves its folder")
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(data)
        return found

    def mock_files(self, asset_id: str) -> bytes:
        """The asset's mock data (CSV): the holder's upload, or generated from its card and
        policy (reads no data)."""
        mock = self.get(f"/v1/assets/{asset_id}/mock")
        return str(mock["csv"]).encode("utf-8")

    def upload_mock(self, asset_id: str, csv: bytes) -> Any:
        """A holder uploads the mock data operators get for the asset."""
        return self.request("PUT", f"/v1/assets/{asset_id}/mock", json={"csv": csv.decode()})

    def mock_dataset(
        self,
        asset_id: str,
        into: str | Path,
        *,
        name: str | None = None,
        datasite: str = "datasite@blindgate.invalid",
    ) -> Path:
        """The asset's mock as a syft-rds dataset folder under ``into`` (a SyftBox folder):
        ``<datasite>/public/syft_datasets/v1/<name>/`` with ``<name>.csv`` and
        ``dataset.yaml``, and the same file where a job running locally reads it."""
        mock = self.get(f"/v1/assets/{asset_id}/mock")
        data = str(mock["csv"]).encode("utf-8")
        return write_mock_dataset(Path(into), name or str(mock["name"]), datasite, data)


def write_mock_dataset(
    root: Path, name: str, datasite: str, data: bytes, summary: str = ""
) -> Path:
    """Lay ``data`` out as syft-rds lays a dataset out (mock under ``public/``, and a copy
    under ``private/`` for local test runs, which read it as a job would)."""
    public = root / datasite / "public" / "syft_datasets" / "v1" / name
    private = root / datasite / "private" / "syft_datasets" / "v1" / name
    for directory in (public, private):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.csv").write_bytes(data)
    metadata = {
        "name": name,
        "summary": summary or f"Mock data of {name} (Blindgate)",
        "mock_url": f"syft://{datasite}/public/syft_datasets/v1/{name}",
        "private_url": f"syft://{datasite}/private/syft_datasets/v1/{name}",
        "mock_files_urls": [f"syft://{datasite}/public/syft_datasets/v1/{name}/{name}.csv"],
        "tags": ["blindgate", "mock"],
    }
    (public / "dataset.yaml").write_text(yaml.safe_dump(metadata), encoding="utf-8")
    return public


def standin_path() -> Path:
    """Where the stand-in for syft's job helpers lives (what ``import syft`` finds)."""
    import sandbox.executors.syft_standin as standin

    return Path(standin.__file__).parent


def run_locally(
    code_path: str | Path,
    mock_csv: bytes,
    dataset: str,
    *,
    datasite: str = "datasite@blindgate.invalid",
    timeout: float = 600.0,
) -> tuple[int, str, str, Path]:
    """Run a job folder (or code folder) against mock data as a site would lay it out:
    the mock where ``syft.resolve_dataset_file_path(dataset)`` finds it inside a job, the
    stand-in as ``syft``, ``code/`` as the working directory.  Not sandboxed: it is your
    own code on your own machine.  Returns (exit status, stdout, stderr, outputs folder);
    the outputs are left in ``code/outputs/`` of the job folder, as syft-rds leaves them.
    """
    import os
    import subprocess
    import sys

    scratch = Path(tempfile.mkdtemp(prefix="blindgate-python-test-"))
    folder = job_folder(code_path, scratch / "folder")
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    write_mock_dataset(scratch / "syftbox", dataset, datasite, mock_csv)
    source_code = folder / "code"
    outputs = source_code / "outputs"
    outputs.mkdir(exist_ok=True)
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch),
        "SYFTBOX_FOLDER": str(scratch / "syftbox"),
        "SYFTBOX_EMAIL": datasite,
        "SYFT_IS_IN_JOB": "true",
        "PYTHONPATH": os.pathsep.join([str(standin_path()), str(source_code)]),
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, str(config["entrypoint"])],
        cwd=source_code,
        env=environment,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if folder != Path(code_path):
        kept = Path(code_path) / "outputs" if Path(code_path).is_dir() else scratch / "outputs"
        shutil.copytree(outputs, kept, dirs_exist_ok=True)
        outputs = kept
    return (
        done.returncode,
        done.stdout.decode(errors="replace"),
        done.stderr.decode(errors="replace"),
        outputs,
    )
