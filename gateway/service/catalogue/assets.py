"""Assets and their cards: register, browse, update, freeze, dispose."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gateway.domain import (
    Actor,
    Asset,
    AssetStatus,
    Column,
    ColumnTag,
    Disposal,
    Freeze,
    Rights,
    Role,
)
from gateway.errors import AssetDisposed, Forbidden, InvalidState, ValidationFailed
from gateway.service.catalogue.schemas import (
    AssetCard,
    AssetCreate,
    AssetRegistered,
    AssetUpdate,
    BasicSection,
    ColumnOut,
    DisposalOut,
    DisposeIn,
    FreezeIn,
    FreezeOut,
    LocationSection,
    ManagementSection,
    RightsSection,
    UsageSection,
)
from gateway.service.catalogue.visibility import CATALOGUE, visible_asset
from gateway.service.core.access import hide_unless, require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.service.trace.service import AuditService
from gateway.store import Tx

_ALL = (AssetStatus.ACTIVE, AssetStatus.FROZEN, AssetStatus.DISPOSED)
_CARD_CACHE_SIZE = 4096


def asset_card(asset: Asset, *, with_location: bool) -> AssetCard:
    """The asset card; ``with_location`` only for the holder and auditors."""
    freeze = asset.freeze
    disposal = asset.disposal
    return AssetCard(
        id=asset.id,
        basic=BasicSection(
            name=asset.name,
            description=asset.description,
            domain=asset.domain,
            columns=[
                ColumnOut(name=c.name, type=c.type, tag=c.tag, description=c.description)
                for c in asset.columns
            ],
            privacy_unit=asset.privacy_unit,
            row_count=asset.row_count,
            update_frequency=asset.update_frequency,
            classification=asset.classification,
        ),
        rights=RightsSection(
            holder_org_id=asset.org_id,
            holding=asset.rights.holding,
            processing_use=asset.rights.processing_use,
            product_operation=asset.rights.product_operation,
        ),
        usage=UsageSection(
            jobs_run=asset.jobs_run, operators=len(asset.operators), last_access=asset.last_access
        ),
        management=ManagementSection(
            status=asset.status,
            registration_number=asset.registration_number,
            version=asset.version,
            content_digest=asset.content_digest,
            registered_at=asset.created_at,
            updated_at=asset.updated_at,
            freeze=FreezeOut(**dataclasses.asdict(freeze)) if freeze else None,
            disposal=DisposalOut(**dataclasses.asdict(disposal)) if disposal else None,
        ),
        location=LocationSection(site_id=asset.site_id, local_ref=asset.local_ref)
        if with_location
        else None,
    )


def _check_schema(body: AssetCreate) -> tuple[Column, ...]:
    names = [c.name for c in body.columns]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationFailed(f"duplicate column names: {', '.join(duplicates)}")
    by_name = {c.name: c for c in body.columns}
    unit = by_name.get(body.privacy_unit)
    if unit is None:
        raise ValidationFailed("privacy_unit must name one of the columns")
    if unit.tag != ColumnTag.IDENTIFIER:
        raise ValidationFailed("the privacy_unit column must be tagged 'identifier'")
    return tuple(Column(c.name, c.type, c.tag, c.description) for c in body.columns)


class Assets:
    """Use cases for assets.

    Visibility: a holder sees only its organisation's assets; an operator sees the
    catalogue (active and frozen cards, never the location); an auditor sees everything.
    Anything not visible answers 404.
    """

    def __init__(self, ctx: ServiceContext, tracer: Tracer, audit: AuditService) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.audit = audit
        self._cards: OrderedDict[tuple[str, int, bool], AssetCard] = OrderedDict()
        self._cards_lock = threading.Lock()

    def _cached_cards(
        self, tx: Tx, keys: list[tuple[str, int]], with_location: bool
    ) -> list[AssetCard]:
        """Cards for ``keys`` from the cache, loading only the ones not cached yet."""
        out: dict[str, AssetCard] = {}
        with self._cards_lock:
            for asset_id, revision in keys:
                hit = self._cards.get((asset_id, revision, with_location))
                if hit is not None:
                    out[asset_id] = hit
        missing = [k[0] for k in keys if k[0] not in out]
        for asset, revision in tx.get_assets(missing):
            card = asset_card(asset, with_location=with_location)
            out[asset.id] = card
            with self._cards_lock:
                self._cards[(asset.id, revision, with_location)] = card
                while len(self._cards) > _CARD_CACHE_SIZE:
                    self._cards.popitem(last=False)
        return [out[k[0]] for k in keys if k[0] in out]

    def _card(self, actor: Actor, asset: Asset) -> AssetCard:
        return asset_card(asset, with_location=actor.role in (Role.HOLDER, Role.AUDITOR))

    def register(self, actor: Actor, body: AssetCreate) -> AssetRegistered:
        """Register an asset; the answer carries the card and the trace receipt."""

        def work(tx: Tx, note: Note) -> AssetCard:
            require_role(actor, Role.HOLDER)
            columns = _check_schema(body)
            now = self.ctx.clock.now()
            site = tx.get_site(body.site_id)
            hide_unless(site is not None and site.org_id == actor.org_id, "site")
            serial = tx.next_serial(f"registration-{now.year}")
            asset = Asset(
                id=self.ctx.ids.new("ast"),
                org_id=actor.org_id,
                site_id=body.site_id,
                local_ref=body.local_ref,
                name=body.name,
                description=body.description,
                domain=body.domain,
                columns=columns,
                privacy_unit=body.privacy_unit,
                row_count=body.row_count,
                update_frequency=body.update_frequency,
                classification=body.classification,
                rights=Rights(**body.rights.model_dump()),
                status=AssetStatus.ACTIVE,
                registration_number=f"BG-{now.year}-{serial:06d}",
                version=1,
                content_digest=body.content_digest,
                created_at=now,
                updated_at=now,
            )
            tx.add_asset(asset)
            note.target["asset"] = note.asset_id = asset.id
            note.subject_org = asset.org_id
            note.detail = {"registration_number": asset.registration_number, "version": 1}
            return self._card(actor, asset)

        card, pending = self.tracer.write(actor, "asset.register", work, request=body)
        return AssetRegistered(asset=card, receipt=self.audit.receipt(pending))

    def get(self, actor: Actor, asset_id: str) -> AssetCard:
        def work(tx: Tx, note: Note) -> AssetCard:
            asset = visible_asset(actor, tx, asset_id, note)
            require_role(actor, Role.HOLDER, Role.OPERATOR, Role.AUDITOR)
            note.detail = {"version": asset.version}
            return self._card(actor, asset)

        return self.tracer.read(actor, "asset.read", work, target={"asset": asset_id})

    def list(
        self, actor: Actor, page: PageRequest, status: AssetStatus | None = None
    ) -> PageOut[AssetCard]:
        def work(tx: Tx, note: Note) -> PageOut[AssetCard]:
            require_role(actor, Role.HOLDER, Role.OPERATOR, Role.AUDITOR)
            org_id = actor.org_id if actor.role == Role.HOLDER else None
            allowed = CATALOGUE if actor.role == Role.OPERATOR else _ALL
            statuses = tuple(s for s in allowed if status is None or s == status)
            with_location = actor.role in (Role.HOLDER, Role.AUDITOR)
            keys = tx.list_asset_revisions(
                org_id=org_id, statuses=statuses, after=page.after, limit=page.limit
            )
            cards = self._cached_cards(tx, keys, with_location)
            note.target["assets"] = [k[0] for k in keys]
            nxt = encode_cursor(keys[-1][0]) if len(keys) == page.limit else None
            return PageOut[AssetCard](items=cards, next_cursor=nxt)

        return self.tracer.read(actor, "asset.list", work)

    def _mutate(
        self,
        actor: Actor,
        action: str,
        asset_id: str,
        roles: tuple[Role, ...],
        change: Callable[[Asset], Asset],
        request: Any = None,
    ) -> AssetCard:
        def work(tx: Tx, note: Note) -> AssetCard:
            asset = visible_asset(actor, tx, asset_id, note)
            if actor.role not in roles:
                raise Forbidden(f"requires role {' or '.join(str(r) for r in roles)}")
            if asset.status == AssetStatus.DISPOSED:
                raise AssetDisposed()
            updated = change(asset)
            tx.update_asset(updated, expected_version=asset.version)
            note.detail = {"version": updated.version, "status": str(updated.status)}
            return self._card(actor, updated)

        target: dict[str, str | list[str]] = {"asset": asset_id}
        return self.tracer.write(actor, action, work, request=request, target=target)[0]

    def update(self, actor: Actor, asset_id: str, body: AssetUpdate) -> AssetCard:
        changes = body.model_dump(exclude_unset=True)
        if not changes:
            raise ValidationFailed("nothing to update")
        if any(v is None for v in changes.values()):
            raise ValidationFailed("fields cannot be set to null")
        if "rights" in changes:
            changes["rights"] = Rights(**changes["rights"])

        def change(asset: Asset) -> Asset:
            return dataclasses.replace(
                asset, **changes, version=asset.version + 1, updated_at=self.ctx.clock.now()
            )

        return self._mutate(actor, "asset.update", asset_id, (Role.HOLDER,), change, body)

    def freeze(self, actor: Actor, asset_id: str, body: FreezeIn) -> AssetCard:
        """Stop all new use at once (holder of the asset, or an auditor in an emergency)."""

        def change(asset: Asset) -> Asset:
            if asset.status == AssetStatus.FROZEN:
                raise InvalidState("the asset is already frozen")
            now = self.ctx.clock.now()
            return dataclasses.replace(
                asset,
                status=AssetStatus.FROZEN,
                freeze=Freeze(actor.principal_id, actor.role, now, body.reason),
                updated_at=now,
                version=asset.version + 1,
            )

        roles = (Role.HOLDER, Role.AUDITOR)
        return self._mutate(actor, "asset.freeze", asset_id, roles, change, body)

    def unfreeze(self, actor: Actor, asset_id: str) -> AssetCard:
        """Lift a freeze. A freeze an auditor imposed can be lifted only by an auditor."""

        def change(asset: Asset) -> Asset:
            if asset.status != AssetStatus.FROZEN or asset.freeze is None:
                raise InvalidState("the asset is not frozen")
            if asset.freeze.frozen_role == Role.AUDITOR and actor.role != Role.AUDITOR:
                raise Forbidden("an auditor's freeze can be lifted only by an auditor")
            now = self.ctx.clock.now()
            return dataclasses.replace(
                asset,
                status=AssetStatus.ACTIVE,
                freeze=None,
                updated_at=now,
                version=asset.version + 1,
            )

        return self._mutate(actor, "asset.unfreeze", asset_id, (Role.HOLDER, Role.AUDITOR), change)

    def dispose(self, actor: Actor, asset_id: str, body: DisposeIn) -> AssetCard:
        """Record the secure destruction of the asset's data; it can never be used again."""

        def change(asset: Asset) -> Asset:
            now = self.ctx.clock.now()
            return dataclasses.replace(
                asset,
                status=AssetStatus.DISPOSED,
                disposal=Disposal(
                    actor.principal_id, now, body.method, body.destroyed_digest, body.note
                ),
                updated_at=now,
                version=asset.version + 1,
            )

        return self._mutate(actor, "asset.dispose", asset_id, (Role.HOLDER,), change, body)
