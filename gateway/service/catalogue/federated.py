"""Federated assets: partitions of one dataset with one schema, held by several holders
at their own sites. A job names the federated asset (or its partitions) and runs on all."""

from __future__ import annotations

from gateway.domain import Actor, AssetStatus, FederatedAsset, Role
from gateway.errors import NotFound, ValidationFailed
from gateway.service.catalogue.schemas import FederatedAssetIn, FederatedAssetOut
from gateway.service.catalogue.visibility import asset_schema
from gateway.service.core.access import require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.store import Tx

PREFIX = "fed_"


def fed_out(fed: FederatedAsset) -> FederatedAssetOut:
    return FederatedAssetOut(
        id=fed.id,
        name=fed.name,
        description=fed.description,
        partitions=fed.partitions,
        created_by=fed.created_by,
        created_at=fed.created_at,
    )


def expand(tx: Tx, ids: list[str]) -> list[str]:
    """Asset ids with every federated asset replaced by its partitions (order kept)."""
    out: list[str] = []
    for asset_id in ids:
        if asset_id.startswith(PREFIX):
            fed = tx.get_federated(asset_id)
            if fed is None:
                raise NotFound(f"no such asset: {asset_id}")
            out.extend(fed.partitions)
        else:
            out.append(asset_id)
    return list(dict.fromkeys(out))


class FederatedAssets:
    """Use cases for federated assets (registered by an admin, visible to every role)."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer) -> None:
        self.ctx = ctx
        self.tracer = tracer

    def register(self, actor: Actor, body: FederatedAssetIn) -> FederatedAssetOut:
        def work(tx: Tx, note: Note) -> FederatedAssetOut:
            require_role(actor, Role.ADMIN)
            partitions = list(dict.fromkeys(body.partitions))
            if len(partitions) < 2:
                raise ValidationFailed("a federated asset has at least two partitions")
            assets = []
            for asset_id in partitions:
                asset = tx.get_asset(asset_id)
                if asset is None:
                    raise NotFound(f"no such asset: {asset_id}")
                if asset.status == AssetStatus.DISPOSED:
                    raise ValidationFailed(f"asset {asset_id} is disposed")
                assets.append(asset)
            asset_schema(assets)  # one schema, or a clear error
            fed = FederatedAsset(
                id=self.ctx.ids.new("fed"),
                name=body.name,
                description=body.description,
                partitions=partitions,
                created_by=actor.principal_id,
                created_at=self.ctx.clock.now(),
            )
            tx.add_federated(fed)
            note.target.update(federated_asset=fed.id, assets=partitions)
            return fed_out(fed)

        return self.tracer.write(actor, "federated_asset.register", work, request=body)[0]

    def get(self, actor: Actor, fed_id: str) -> FederatedAssetOut:
        with self.ctx.store.read() as tx:
            fed = tx.get_federated(fed_id)
        if fed is None:
            raise NotFound("no such federated asset")
        return fed_out(fed)

    def list(self, actor: Actor, page: PageRequest) -> PageOut[FederatedAssetOut]:
        with self.ctx.store.read() as tx:
            found = tx.list_federated(after=page.after, limit=page.limit)
        nxt = encode_cursor(found[-1].id) if len(found) == page.limit else None
        return PageOut[FederatedAssetOut](items=[fed_out(f) for f in found], next_cursor=nxt)
