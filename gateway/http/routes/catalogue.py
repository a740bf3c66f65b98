"""Sites and assets (the catalogue of asset cards)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from gateway.domain import AssetStatus
from gateway.http.deps import Caller, Paging, Svc
from gateway.service.catalogue.schemas import (
    AssetCard,
    AssetCreate,
    AssetRegistered,
    AssetUpdate,
    DisposeIn,
    FreezeIn,
    SiteCreate,
    SiteHealthOut,
    SiteOut,
)
from gateway.service.core.schemas import PageOut

router = APIRouter(prefix="/v1")


@router.post("/sites", status_code=status.HTTP_201_CREATED, tags=["sites"])
def register_site(body: SiteCreate, svc: Svc, actor: Caller) -> SiteOut:
    return svc.sites.register(actor, body)


@router.get("/sites", tags=["sites"])
def list_sites(svc: Svc, actor: Caller, page: Paging) -> PageOut[SiteOut]:
    return svc.sites.list(actor, page)


@router.get("/sites/{site_id}", tags=["sites"])
def get_site(site_id: str, svc: Svc, actor: Caller) -> SiteOut:
    return svc.sites.get(actor, site_id)


@router.get("/sites/{site_id}/health", tags=["sites"])
def site_health(site_id: str, svc: Svc, actor: Caller) -> SiteHealthOut:
    """Ask the site agent (over pinned mutual TLS) for its health and isolation layers."""
    return svc.sites.health(actor, site_id)


@router.post("/assets", status_code=status.HTTP_201_CREATED, tags=["assets"])
def register_asset(body: AssetCreate, svc: Svc, actor: Caller) -> AssetRegistered:
    return svc.assets.register(actor, body)


@router.get("/assets", tags=["assets"], response_model=PageOut[AssetCard])
def list_assets(
    svc: Svc, actor: Caller, page: Paging, status: AssetStatus | None = None
) -> Response:
    # Cards are already validated models: serialise once, without re-validating them.
    return Response(
        svc.assets.list(actor, page, status).model_dump_json(), media_type="application/json"
    )


@router.get("/assets/{asset_id}", tags=["assets"])
def get_asset(asset_id: str, svc: Svc, actor: Caller) -> AssetCard:
    return svc.assets.get(actor, asset_id)


@router.patch("/assets/{asset_id}", tags=["assets"])
def update_asset(asset_id: str, body: AssetUpdate, svc: Svc, actor: Caller) -> AssetCard:
    return svc.assets.update(actor, asset_id, body)


@router.post("/assets/{asset_id}/freeze", tags=["assets"])
def freeze_asset(asset_id: str, body: FreezeIn, svc: Svc, actor: Caller) -> AssetCard:
    return svc.assets.freeze(actor, asset_id, body)


@router.post("/assets/{asset_id}/unfreeze", tags=["assets"])
def unfreeze_asset(asset_id: str, svc: Svc, actor: Caller) -> AssetCard:
    return svc.assets.unfreeze(actor, asset_id)


@router.post("/assets/{asset_id}/dispose", tags=["assets"])
def dispose_asset(asset_id: str, body: DisposeIn, svc: Svc, actor: Caller) -> AssetCard:
    return svc.assets.dispose(actor, asset_id, body)
