"""A Python job at the site: check its folder, run it on the projection, hold its outputs.

After the ticket is admitted (:func:`sandbox.agent.tickets.admit`: the policy's python
rules, the licence, approval of this code by the holder or by the signed policy), the
agent:

1. reads the job folder from the input the gateway uploaded, checks that its SHA-256 is
   the one the job names and that its code hash, files manifest hash, entrypoint and
   dependencies are the ones the job states (``python_archive_mismatch``), and that every
   dependency is the stand-in or on the site's allow-list (``python_dependency``): nothing
   is installed, and ``run.sh`` is kept for the record, never run;
2. lays the folder out read-only for the sandbox with an empty ``code/outputs/``;
3. projects the asset to the policy's columns (:mod:`sandbox.agent.projection`);
4. runs the entrypoint in the sandbox (``python`` executor) under the policy's limits,
   capped by the site's own;
5. checks the outputs (:mod:`sandbox.agent.output_checks`) and holds them
   (:mod:`sandbox.agent.held`): rejected by a failed check, released at once when the
   signed policy releases outputs of code it approved in advance and nothing needs a
   person's eyes, otherwise held for the holder's review.

The gateway is answered with the outputs' state only.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from policies.jobs.jobfolder import JobFolderError, read_folder, undeclared
from sandbox.agent.held import HELD, REJECTED, RELEASED, Held, HeldOutputs, OutputFile, outputs_hash
from sandbox.agent.output_checks import check_outputs
from sandbox.agent.projection import Projections, columns_tagged
from sandbox.agent.tickets import Admitted
from sandbox.inputs import DATA_FILE, InputStore
from sandbox.spec import FailureReason, FragmentResult, FragmentSpec, Limits, ResultTable
from sandbox.wire import REFUSED, FragmentOutcome

log = logging.getLogger(__name__)

LOG_BYTES = 64 * 1024
_SPEC_FIELDS = ("name", "entrypoint", "dependencies", "code_hash", "files_sha256")


class PythonRefused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclasses.dataclass(frozen=True)
class PythonSite:
    """What the Python step needs of the agent."""

    inputs: InputStore
    held: HeldOutputs
    projections: Projections
    jobs_dir: Path
    datasite: str
    dependencies: frozenset[str]
    ceiling: Limits
    clock: Callable[[], datetime]


def stated(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: spec.get(key) for key in _SPEC_FIELDS}


def prepare(site: PythonSite, admitted: Admitted, input_sha256: str, fragment_id: str) -> Path:
    """The job folder laid out for the sandbox; raises :class:`PythonRefused`."""
    spec = admitted.ticket.job.spec or {}
    if not input_sha256 or spec.get("archive_sha256") != input_sha256:
        raise PythonRefused("python_archive_mismatch")
    stored = site.inputs.directory(input_sha256)
    if stored is None:
        raise PythonRefused("python_archive_missing")
    try:
        folder = read_folder((stored / DATA_FILE).read_bytes())
    except JobFolderError as exc:
        raise PythonRefused(f"python_{exc.code}") from None
    described = folder.describe(input_sha256)
    if stated(described) != stated(spec) or described["code_files"] != spec.get("code_files"):
        raise PythonRefused("python_archive_mismatch")
    if undeclared(folder.dependencies, site.dependencies):
        raise PythonRefused("python_dependency")
    root = site.jobs_dir / fragment_id
    shutil.rmtree(root, ignore_errors=True)
    code = root / "code"
    (code / "outputs").mkdir(mode=0o755, parents=True)
    for path, data in folder.code.items():
        target = code / path
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, 0o644)
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        os.chmod(directory, 0o755)  # noqa: S103 - read by the sandbox uid
    return root


def limits_for(site: PythonSite, admitted: Admitted) -> Limits:
    grant = admitted.python
    assert grant is not None
    ceiling = site.ceiling
    caps = grant.outputs
    wanted_output = caps.max_total_bytes * 4 // 3 + 4 * LOG_BYTES + 64 * 1024
    return dataclasses.replace(
        ceiling,
        memory_bytes=min(grant.limits.memory_bytes, ceiling.memory_bytes),
        cpu_seconds=min(grant.limits.cpu_seconds, ceiling.cpu_seconds),
        wall_seconds=min(float(grant.limits.wall_seconds), ceiling.wall_seconds),
        output_bytes=min(wanted_output, ceiling.output_bytes),
        tmpfs_bytes=max(ceiling.tmpfs_bytes, caps.max_total_bytes + 2 * 1024 * 1024),
    )


def program(site: PythonSite, admitted: Admitted) -> str:
    spec = admitted.ticket.job.spec or {}
    grant = admitted.python
    assert grant is not None
    return json.dumps(
        {
            "entrypoint": spec["entrypoint"],
            "dataset": spec.get("dataset") or admitted.ticket.policy.statement.asset_name,
            "datasite": site.datasite,
            "outputs": grant.outputs.model_dump(include={"max_files", "max_file_bytes"})
            | {"max_total_bytes": grant.outputs.max_total_bytes},
            "log_bytes": LOG_BYTES,
        }
    )


def _files(table: ResultTable) -> tuple[list[tuple[str, str, bytes]], int]:
    files: list[tuple[str, str, bytes]] = []
    exit_code = -1
    for kind, path, size, _sha, content in table.rows:
        if kind == "exit":
            exit_code = int(size) if isinstance(size, int) else -1
            continue
        files.append((str(kind), str(path), base64.b64decode(str(content))))
    return files, exit_code


def run(
    site: PythonSite,
    admitted: Admitted,
    fragment_id: str,
    input_sha256: str,
    asset_path: Path,
    asset_format: str,
    execute: Callable[[FragmentSpec], FragmentResult],
) -> FragmentOutcome:
    """Prepare, run, check and hold one Python fragment."""
    grant = admitted.python
    assert grant is not None
    ticket = admitted.ticket
    try:
        folder = prepare(site, admitted, input_sha256, fragment_id)
    except PythonRefused as exc:
        log.info("fragment %s: python job refused: %s", fragment_id, exc.code)
        return FragmentOutcome.failed(fragment_id, REFUSED, reasons=(exc.code,))
    try:
        columns = ticket.policy.statement.columns
        projection = site.projections.get(
            asset_path,
            asset_format,
            grant.columns,
            columns_tagged(columns, "identifier"),
            columns_tagged(columns, "quasi_identifier"),
        )
        spec = FragmentSpec(
            "python",
            program(site, admitted),
            projection.path,
            folder,
            limits_for(site, admitted),
            writable_input="code/outputs",
        )
        result = execute(spec)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not result.ok or result.table is None:
        failure = (result.failure or FailureReason.INTERNAL).value
        return FragmentOutcome.failed(fragment_id, failure, result.elapsed_ms)
    files, exit_code = _files(result.table)
    verdict = check_outputs(files, grant.outputs.types, projection.sensitive)
    listed = [
        OutputFile(kind, path if kind == "output" else f"::{path}", len(data), _sha(data))
        for kind, path, data in files
    ]
    job_spec = ticket.job.spec or {}
    if verdict.problems:
        state, reason, reviewer = (
            REJECTED,
            "automatic check: " + ", ".join(verdict.problems),
            "site",
        )
    elif grant.release_without_review and not verdict.needs_review:
        state, reason, reviewer = RELEASED, "", "policy:" + ticket.policy.statement.document_sha256
    else:
        state, reason, reviewer = HELD, "", ""
    held = Held(
        fragment_id=fragment_id,
        job_id=ticket.job.id,
        job_sha256=ticket.job.digest,
        asset_id=ticket.asset_id,
        operator=ticket.job.operator_org_id,
        detail={
            "code_hash": job_spec.get("code_hash"),
            "files_sha256": job_spec.get("files_sha256"),
            "asset_sha256": projection.asset_sha256,
            "columns": list(grant.columns),
            "exit_code": exit_code,
            "checks": list(verdict.problems),
        },
        files=tuple(listed),
        outputs_sha256=outputs_hash(listed),
        state=state,
        reason=reason,
        reviewer=reviewer,
    )
    contents = {item.path: data for item, (_, _, data) in zip(listed, files, strict=True)}
    site.held.add(held, contents, site.clock())
    table = ResultTable(("state",), ("TEXT",), ((state,),))
    release = json.dumps({"python": {"state": state, "reason": reason}})
    return FragmentOutcome(fragment_id, True, table, elapsed_ms=result.elapsed_ms, release=release)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
