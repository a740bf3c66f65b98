"""Who may see an asset, and the one schema of partitions: rules every use case shares."""

from __future__ import annotations

from gateway.domain import Actor, Asset, AssetStatus, Role
from gateway.errors import NotFound, ValidationFailed
from gateway.service.core.tracing import Note
from gateway.store import Tx
from policies.jobs import AssetSchema

CATALOGUE = (AssetStatus.ACTIVE, AssetStatus.FROZEN)
"""The statuses an operator sees in the catalogue (a disposed asset is gone for them)."""


def can_see(actor: Actor, asset: Asset) -> bool:
    """Whether ``actor`` may see ``asset``'s card (holder: own; operator: catalogue; auditor)."""
    if actor.role == Role.AUDITOR:
        return True
    if actor.role == Role.HOLDER:
        return asset.org_id == actor.org_id
    return actor.role == Role.OPERATOR and asset.status in CATALOGUE


def visible_asset(actor: Actor, tx: Tx, asset_id: str, note: Note | None = None) -> Asset:
    """The asset if ``actor`` may see its card; anything else answers 404.

    ``note``, if given, records the asset and its holder on the trace entry, so the holder
    sees the access even when it is refused.
    """
    asset = tx.get_asset(asset_id)
    if asset is not None and note is not None:
        note.subject_org = asset.org_id
        note.asset_id = asset.id
    if asset is None or not can_see(actor, asset):
        raise NotFound("no such asset")
    return asset


def asset_schema(assets: list[Asset]) -> AssetSchema:
    """The schema the operator's SQL is checked against: the first asset's, by its name.

    Every partition of a federated asset must have the same columns, tags and unit.
    """
    first = assets[0]
    shape = [(c.name, str(c.type), str(c.tag)) for c in first.columns]
    for other in assets[1:]:
        if [(c.name, str(c.type), str(c.tag)) for c in other.columns] != shape or (
            other.privacy_unit != first.privacy_unit
        ):
            raise ValidationFailed(
                f"asset {other.id} does not have the schema of {first.id}: partitions of a "
                "federated asset must share columns, types, tags and privacy unit"
            )
    return AssetSchema.build(first.id, first.name, shape, first.privacy_unit)  # type: ignore[arg-type]
