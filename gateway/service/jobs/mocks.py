"""Mock data for every asset: what an operator develops a Python job against.

A holder may upload the mock operators get (a CSV whose header is the asset's columns,
at most :data:`MAX_MOCK_BYTES`).  Without one, the gateway generates it from what it
knows without reading any data: the asset card's schema, the policy's clip bounds
(numbers are drawn inside them) and declared key domains (keys are drawn from them);
other text is made up per column, identifiers as ``MOCK00001``… .  A generated mock costs
no privacy: it depends on no row.  It is the same on every call (seeded by the asset's
id and the policy's version).  Every read and upload is traced.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from gateway.domain import Actor, Asset, Column, Role
from gateway.errors import Forbidden, PolicyInvalid, ValidationFailed
from gateway.service.catalogue.federated import expand
from gateway.service.catalogue.visibility import visible_asset
from gateway.service.core.access import require_role
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.policies import parse_for_asset
from gateway.store import Tx
from policies import Policy

MAX_MOCK_BYTES = 1024 * 1024
MOCK_ROWS = 1000


class MockIn(BaseModel):
    csv: str = Field(min_length=1, max_length=MAX_MOCK_BYTES)


class MockOut(BaseModel):
    asset_id: str
    name: str
    source: str = Field(description="holder (uploaded by the holder) or generated")
    columns: list[str]
    sha256: str
    csv: str


def _value(column: Column, policy: Policy | None, index: int, rng: random.Random) -> Any:
    rule = policy.columns.get(column.name) if policy is not None else None
    if rule is not None and rule.keys is not None:
        return rng.choice(rule.keys.keys())
    kind = str(column.type)
    if str(column.tag) == "identifier":
        return f"MOCK{index:05d}" if kind == "text" else 100000 + index
    low, high = (rule.clip.lower, rule.clip.upper) if rule and rule.clip else (0.0, 100.0)
    if kind in ("integer", "bigint"):
        return rng.randint(int(low), int(high))
    if kind in ("double", "decimal"):
        return round(rng.uniform(low, high), 2)
    if kind == "boolean":
        return rng.choice(["true", "false"])
    if kind == "date":
        return (date(2025, 1, 1) + timedelta(days=rng.randrange(365))).isoformat()
    return f"{column.name}_{rng.randrange(5)}"


def generate(asset: Asset, policy: Policy | None, seed: str, rows: int = MOCK_ROWS) -> str:
    """A mock of ``asset`` from its schema and policy alone (no data is read)."""
    rng = random.Random(hashlib.sha256(seed.encode()).digest())  # noqa: S311 - not secret
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in asset.columns])
    for index in range(1, rows + 1):
        writer.writerow([_value(c, policy, index, rng) for c in asset.columns])
    return out.getvalue()


class Mocks:
    """Use cases of assets' mock data."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.root = ctx.settings.data_dir / "mocks"

    def _path(self, asset_id: str) -> Path:
        return self.root / f"{asset_id}.csv"

    def get(self, actor: Actor, asset_id: str) -> MockOut:
        """The asset's mock (anyone who sees its card); for a federated asset, its first
        partition's (every partition has the same schema)."""
        require_role(actor, Role.OPERATOR, Role.HOLDER, Role.AUDITOR)

        def work(tx: Tx, note: Note) -> MockOut:
            partitions = expand(tx, [asset_id])
            asset = visible_asset(actor, tx, partitions[0] if partitions else asset_id, note)
            note.target["asset"] = asset.id
            path = self._path(asset.id)
            if path.is_file():
                text, source = path.read_text(encoding="utf-8"), "holder"
            else:
                policy, version = _policy(tx, asset)
                text, source = generate(asset, policy, f"{asset.id}:{version}"), "generated"
            digest = hashlib.sha256(text.encode()).hexdigest()
            note.detail = {"source": source, "sha256": digest}
            return MockOut(
                asset_id=asset.id,
                name=asset.name,
                source=source,
                columns=[c.name for c in asset.columns],
                sha256=digest,
                csv=text,
            )

        return self.tracer.read(actor, "asset.mock.read", work)

    def put(self, actor: Actor, asset_id: str, body: MockIn) -> MockOut:
        """The holder uploads the asset's mock (its header must be the asset's columns)."""
        require_role(actor, Role.HOLDER)

        def work(tx: Tx, note: Note) -> MockOut:
            asset = visible_asset(actor, tx, asset_id, note)
            note.target["asset"] = asset.id
            if asset.org_id != actor.org_id:
                raise Forbidden("only the asset's holder sets its mock")
            names = [c.name for c in asset.columns]
            try:
                header = next(csv.reader(io.StringIO(body.csv)))
            except (StopIteration, csv.Error):
                header = []
            if header != names:
                raise ValidationFailed(f"the mock's header must be the columns: {','.join(names)}")
            self.root.mkdir(parents=True, exist_ok=True)
            self._path(asset.id).write_text(body.csv, encoding="utf-8")
            digest = hashlib.sha256(body.csv.encode()).hexdigest()
            note.detail = {"sha256": digest, "bytes": len(body.csv.encode())}
            return MockOut(
                asset_id=asset.id,
                name=asset.name,
                source="holder",
                columns=names,
                sha256=digest,
                csv=body.csv,
            )

        return self.tracer.write(actor, "asset.mock.set", work)[0]


def _policy(tx: Tx, asset: Asset) -> tuple[Policy | None, int]:
    stored = tx.get_policy(asset.id)
    if stored is None:
        return None, 0
    try:
        return parse_for_asset(stored.document, asset), stored.version
    except PolicyInvalid:
        return None, stored.version
