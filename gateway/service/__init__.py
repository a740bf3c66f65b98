"""The service layer: every use case, shared by every transport."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.clock import Clock, IdFactory, OsRandom, RandomSource, SystemClock
from gateway.config import Settings
from gateway.metrics import GatewayMetrics
from gateway.service.brakes.service import Brakes
from gateway.service.catalogue.assets import Assets
from gateway.service.catalogue.claims import AgentProver
from gateway.service.catalogue.federated import FederatedAssets
from gateway.service.catalogue.sites import Sites
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Tracer
from gateway.service.governance.decisions import DecisionService
from gateway.service.governance.ledger import Ledger
from gateway.service.governance.licences import LicenceService
from gateway.service.governance.policies import PolicyService
from gateway.service.identity.service import Identities
from gateway.service.jobs.decide import JobDecider
from gateway.service.jobs.he_contexts import HeContexts
from gateway.service.jobs.he_workspace import HeWorkspace
from gateway.service.jobs.kinds import registry
from gateway.service.jobs.mocks import Mocks
from gateway.service.jobs.service import JobService
from gateway.service.trace.log import TraceKey, TraceLog, load_or_create_key
from gateway.service.trace.service import AuditService
from gateway.service.watch.alerts import MetricHistory
from gateway.service.watch.collector import StoreCollector
from gateway.service.watch.overview import Watch
from gateway.service.watch.sessions import ConsoleSessions
from gateway.siteclient.pool import GatewayTls, SitePool
from gateway.store import Store
from policies.jobs.jobfolder import MAX_ARCHIVE_BYTES
from sandbox.inputs import InputStore


@dataclass(frozen=True, slots=True)
class Services:
    """All use cases of the gateway, wired to one store, clock and settings."""

    ctx: ServiceContext
    tracer: Tracer
    identities: Identities
    sites: Sites
    assets: Assets
    audit: AuditService
    metrics: GatewayMetrics
    policies: PolicyService
    licences: LicenceService
    decisions: DecisionService
    ledger: Ledger
    site_pool: SitePool
    jobs: JobService
    federated: FederatedAssets
    he: HeContexts
    mocks: Mocks
    brakes: Brakes
    watch: Watch
    console: ConsoleSessions


def _gateway_tls(settings: Settings) -> GatewayTls | None:
    ca, cert, key = settings.site_tls_files()
    if ca.exists() and cert.exists() and key.exists():
        return GatewayTls.from_files(ca, cert, key)
    return None


def build_services(
    store: Store,
    settings: Settings,
    *,
    clock: Clock | None = None,
    random: RandomSource | None = None,
    trace_key: TraceKey | None = None,
    metrics: GatewayMetrics | None = None,
    site_pool: SitePool | None = None,
    prover: AgentProver | None = None,
) -> Services:
    """Every use case over ``store``; ``prover`` asks agents being registered to prove who
    they are (by default the site pool, over pinned mutual TLS)."""
    clock = clock or SystemClock()
    random = random or OsRandom()
    ctx = ServiceContext(
        store=store, clock=clock, ids=IdFactory(clock, random), random=random, settings=settings
    )
    tracer = Tracer(store, clock)
    if trace_key is None:
        trace_key = load_or_create_key(settings.resolved_trace_key_file(), settings.trace_origin)
    log = TraceLog(store, trace_key, clock, settings.checkpoint_file())
    audit = AuditService(ctx, tracer, log)
    metrics = metrics or GatewayMetrics()
    if site_pool is None:
        site_pool = SitePool(_gateway_tls(settings), metrics.registry)
    decisions = DecisionService(ctx, tracer, metrics)
    workspace = HeWorkspace(
        settings.data_dir / "he", minimum_isolation=settings.he_minimum_isolation
    )
    brakes = Brakes(ctx, tracer, metrics)
    archives = InputStore(
        settings.data_dir / "python" / "archives", MAX_ARCHIVE_BYTES, 4096 * 1024 * 1024
    )

    def holder_key(org_id: str) -> str | None:
        with store.read() as tx:
            org = tx.get_org(org_id)
        return org.public_key if org is not None else None

    decider = JobDecider(decisions, registry(workspace, archives, holder_key), brakes)
    jobs = JobService(ctx, tracer, decisions, decider, audit)
    identities = Identities(ctx, tracer)
    identities.refused = metrics.auth_failed
    collector = StoreCollector(ctx, log)
    metrics.collect_with("store", collector)
    watch = Watch(ctx, audit, log, site_pool, collector, MetricHistory(metrics.registry), brakes)
    return Services(
        ctx=ctx,
        tracer=tracer,
        metrics=metrics,
        identities=identities,
        sites=Sites(ctx, tracer, site_pool, prover),
        assets=Assets(ctx, tracer, audit),
        audit=audit,
        policies=PolicyService(ctx, tracer),
        licences=LicenceService(ctx, tracer),
        decisions=decisions,
        ledger=Ledger(ctx, tracer, metrics),
        site_pool=site_pool,
        jobs=jobs,
        federated=FederatedAssets(ctx, tracer),
        he=HeContexts(tracer, workspace),
        mocks=Mocks(ctx, tracer),
        brakes=brakes,
        watch=watch,
        console=ConsoleSessions(ctx, identities, tracer),
    )
