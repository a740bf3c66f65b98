"""Contribution bounding once per asset version, with a secret seed kept at the site.

A SQL fragment does not rank each person's rows anew for every job: the sandbox serving
an asset computes its *bounded view* once — each privacy unit keeps at most the policy's
``max_rows_per_unit`` rows, those ranked first by a keyed hash of the whole row under a
seed that is secret to the site and fixed for that version of the asset (a file's device,
inode, size and modification time) — and every fragment runs over that view
(:attr:`policies.jobs.PartialPlan.bounded_sql`).  Which rows a person keeps is therefore a
fixed function of their own rows: the same in every job on that version, whatever the
job's filter, so repeating a query cannot draw a person's other rows.  The seed lives in
the site's ledger; a new version of the asset gets a new seed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from sandbox.agent.ledger import SiteLedger
from sandbox.spec import Bound


def asset_version(asset_id: str, path: Path) -> str:
    """The version of a file asset: its id with the file's identity."""
    info = os.stat(path)
    return f"{asset_id}:{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


class Bounding:
    """Seeds and bounds per asset version, cached in memory over the site's ledger."""

    def __init__(self, ledger: SiteLedger) -> None:
        self._ledger = ledger
        self._lock = threading.Lock()
        self._seeds: dict[str, str] = {}
        self._noted: dict[str, tuple[str, int]] = {}

    def bound(self, asset_id: str, path: Path, unit: str, max_rows: int) -> Bound:
        """The bound for a fragment on ``path`` under the policy's ``unit`` and rows."""
        version = asset_version(asset_id, path)
        with self._lock:
            seed = self._seeds.get(version)
            noted = self._noted.get(asset_id)
        if seed is None:
            seed = self._ledger.bounding_seed(version)
            with self._lock:
                self._seeds[version] = seed
        if noted != (unit, max_rows):
            self._ledger.note_bound(asset_id, unit, max_rows)
            with self._lock:
                self._noted[asset_id] = (unit, max_rows)
        return Bound(unit, max_rows, seed)

    def known(self, asset_id: str, path: Path) -> Bound | None:
        """The bound last used for ``asset_id``, for preparing its sandbox at start-up."""
        seen = self._ledger.bounds().get(asset_id)
        if seen is None:
            return None
        return self.bound(asset_id, path, *seen)
