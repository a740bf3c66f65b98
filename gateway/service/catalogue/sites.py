"""Registration of holders' sites (where their agents and data live)."""

from __future__ import annotations

from gateway.domain import Actor, Role, Site
from gateway.errors import BlindgateError, NotFound, Unavailable, ValidationFailed
from gateway.service.catalogue.schemas import SiteAssetOut, SiteCreate, SiteHealthOut, SiteOut
from gateway.service.core.access import hide_unless, require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.siteclient.pool import SitePool
from gateway.store import Tx


def site_out(site: Site) -> SiteOut:
    return SiteOut(
        id=site.id,
        org_id=site.org_id,
        name=site.name,
        grpc_address=site.grpc_address,
        tls_fingerprint=site.tls_fingerprint,
        created_at=site.created_at,
    )


class Sites:
    """Use cases for sites. Operators never see sites: they reveal where data lives."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer, pool: SitePool | None) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.pool = pool

    def register(self, actor: Actor, body: SiteCreate) -> SiteOut:
        def work(tx: Tx, note: Note) -> SiteOut:
            require_role(actor, Role.HOLDER, Role.ADMIN)
            if actor.role == Role.HOLDER:
                if body.org_id not in (None, actor.org_id):
                    raise NotFound("no such organisation")
                org_id = actor.org_id
            else:
                if body.org_id is None:
                    raise ValidationFailed("org_id is required when an admin registers a site")
                org_id = body.org_id
            if tx.get_org(org_id) is None:
                raise NotFound("no such organisation")
            site = Site(
                id=self.ctx.ids.new("site"),
                org_id=org_id,
                name=body.name,
                grpc_address=body.grpc_address,
                tls_fingerprint=body.tls_fingerprint,
                created_at=self.ctx.clock.now(),
            )
            tx.add_site(site)
            note.target["site"] = site.id
            note.subject_org = org_id
            return site_out(site)

        return self.tracer.write(actor, "site.register", work, request=body)[0]

    def _scope(self, actor: Actor) -> str | None:
        require_role(actor, Role.HOLDER, Role.ADMIN, Role.AUDITOR)
        return actor.org_id if actor.role == Role.HOLDER else None

    def health(self, actor: Actor, site_id: str) -> SiteHealthOut:
        """Ask the site's agent, over pinned mutual TLS, how it is and how it isolates jobs."""
        scope = self._scope(actor)
        with self.ctx.store.read() as tx:
            site = tx.get_site(site_id)
        hide_unless(site is not None and scope in (None, site.org_id), "site")
        assert site is not None
        now = self.ctx.clock.now()
        if self.pool is None:
            raise Unavailable("site connections are not configured")
        try:
            report = self.pool.check(site)
        except BlindgateError as exc:
            return SiteHealthOut(site_id=site.id, reachable=False, checked_at=now, error=exc.code)
        except Exception:
            return SiteHealthOut(
                site_id=site.id, reachable=False, checked_at=now, error="unavailable"
            )
        return SiteHealthOut(
            site_id=site.id,
            reachable=True,
            checked_at=now,
            agent_version=report.agent_version,
            isolation_level=report.isolation_level,
            isolation_backend=report.isolation_backend,
            layers=dict(report.layers),
            assets=[SiteAssetOut(asset=a.id, ready=a.ready) for a in report.assets],
            executors=list(report.executors),
        )

    def get(self, actor: Actor, site_id: str) -> SiteOut:
        scope = self._scope(actor)
        with self.ctx.store.read() as tx:
            site = tx.get_site(site_id)
        hide_unless(site is not None and scope in (None, site.org_id), "site")
        assert site is not None
        return site_out(site)

    def list(self, actor: Actor, page: PageRequest) -> PageOut[SiteOut]:
        scope = self._scope(actor)
        with self.ctx.store.read() as tx:
            sites = tx.list_sites(org_id=scope, after=page.after, limit=page.limit)
        nxt = encode_cursor(sites[-1].id) if len(sites) == page.limit else None
        return PageOut[SiteOut](items=[site_out(s) for s in sites], next_cursor=nxt)
