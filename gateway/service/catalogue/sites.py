"""Registration of holders' sites (where their agents and data live).

Only a holder registers a site, and only a site whose agent proves that the holder's
organisation endorsed it (:mod:`gateway.service.catalogue.claims`): no other organisation,
and not the admin, can claim an agent.
"""

from __future__ import annotations

from contracts.endorsement import CHALLENGE_SIZE
from gateway.domain import Actor, Organisation, Role, Site
from gateway.errors import (
    BlindgateError,
    Conflict,
    Forbidden,
    NotFound,
    Unavailable,
    ValidationFailed,
)
from gateway.service.catalogue.claims import AgentProver, Claim, ClaimRefused, ask, verify_claim
from gateway.service.catalogue.schemas import SiteAssetOut, SiteCreate, SiteHealthOut, SiteOut
from gateway.service.core.access import hide_unless, require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.siteclient.pool import SitePool
from gateway.store import Tx

NO_KEY = (
    "your organisation has no registered signing key: register it (blindgate org set-key) "
    "and endorse the agent with it (blindgate site endorse)"
)


def site_out(site: Site) -> SiteOut:
    return SiteOut(
        id=site.id,
        org_id=site.org_id,
        name=site.name,
        grpc_address=site.grpc_address,
        tls_fingerprint=site.tls_fingerprint,
        agent_key=site.agent_key,
        created_at=site.created_at,
    )


class Sites:
    """Use cases for sites. Operators never see sites: they reveal where data lives."""

    def __init__(
        self,
        ctx: ServiceContext,
        tracer: Tracer,
        pool: SitePool | None,
        prover: AgentProver | None = None,
    ) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.pool = pool
        self.prover: AgentProver | None = prover or pool

    def register(self, actor: Actor, body: SiteCreate) -> SiteOut:
        """Register a site for the holder's organisation once its agent has proven that the
        organisation endorsed it; every refusal is traced."""
        note = Note(target={"address": body.grpc_address})
        try:
            if actor.role != Role.HOLDER:
                raise Forbidden(
                    "sites are registered by their holder: its agent proves the holder's key "
                    "endorsed it"
                )
            with self.ctx.store.read() as tx:
                org = tx.get_org(actor.org_id)
            if org is None:
                raise NotFound("no such organisation")
            claim = self._claim(org, body)
        except ClaimRefused as exc:
            note.subject_org = exc.owner
            self.tracer.deny(actor, "site.register", exc, note, request=body)
            raise
        except BlindgateError as exc:
            self.tracer.deny(actor, "site.register", exc, note, request=body)
            raise

        def work(tx: Tx, note: Note) -> SiteOut:
            current = tx.get_org(org.id)
            if current is None or current.public_key != org.public_key:
                raise Conflict("the organisation's signing key changed meanwhile; try again")
            site = Site(
                id=self.ctx.ids.new("site"),
                org_id=org.id,
                name=body.name,
                grpc_address=body.grpc_address,
                tls_fingerprint=body.tls_fingerprint,
                created_at=self.ctx.clock.now(),
                agent_key=claim.agent_key,
            )
            tx.add_site(site)
            note.target["site"] = site.id
            note.subject_org = org.id
            note.detail = {"agent_key": claim.agent_key}
            return site_out(site)

        return self.tracer.write(
            actor, "site.register", work, request=body, target={"address": body.grpc_address}
        )[0]

    def _claim(self, org: Organisation, body: SiteCreate) -> Claim:
        """Challenge the agent at the address being registered and check its proof."""
        if org.public_key is None:
            raise ValidationFailed(NO_KEY)
        if self.prover is None:
            raise Unavailable("site connections are not configured")
        challenge = self.ctx.random.bytes(CHALLENGE_SIZE)
        proof = ask(self.prover, body.grpc_address, body.tls_fingerprint, challenge)

        def key_of(org_id: str) -> str | None:
            with self.ctx.store.read() as tx:
                found = tx.get_org(org_id)
            return found.public_key if found is not None else None

        return verify_claim(
            proof,
            address=body.grpc_address,
            fingerprint=body.tls_fingerprint,
            challenge=challenge,
            org_id=org.id,
            org_key=org.public_key,
            key_of=key_of,
        )

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
