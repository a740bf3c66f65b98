"""The service layer: every use case, shared by every transport."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import Clock, IdFactory, OsRandom, RandomSource, SystemClock
from gateway.config import Settings
from gateway.service.assets import Assets
from gateway.service.context import ServiceContext
from gateway.service.identities import Identities
from gateway.service.sites import Sites
from gateway.store import Store


@dataclass(frozen=True, slots=True)
class Services:
    """All use cases of the gateway, wired to one store, clock and settings."""

    ctx: ServiceContext
    identities: Identities
    sites: Sites
    assets: Assets


def build_services(
    store: Store,
    settings: Settings,
    *,
    clock: Clock | None = None,
    random: RandomSource | None = None,
) -> Services:
    clock = clock or SystemClock()
    random = random or OsRandom()
    ctx = ServiceContext(
        store=store, clock=clock, ids=IdFactory(clock, random), random=random, settings=settings
    )
    return Services(ctx=ctx, identities=Identities(ctx), sites=Sites(ctx), assets=Assets(ctx))
