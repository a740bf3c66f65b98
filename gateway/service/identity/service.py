"""Organisations, principals and API keys."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import NoReturn

from gateway.domain import Actor, ApiKey, Organisation, Principal, Role
from gateway.errors import Conflict, InvalidState, NotFound, Unauthenticated, ValidationFailed
from gateway.service.core.access import hide_unless, require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.service.identity.failures import AuthFailures
from gateway.service.identity.schemas import (
    ApiKeyOut,
    IssuedKey,
    OrganisationCreate,
    OrganisationOut,
    PrincipalCreate,
    PrincipalCreated,
    PrincipalOut,
    WhoAmI,
)
from gateway.store import Tx

KEY_PREFIX = "bg_"
_KEY_BYTES = 32


def hash_key(api_key: str) -> str:
    """The stored form of an API key: SHA-256 hex (keys carry 256 random bits)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def org_out(org: Organisation) -> OrganisationOut:
    return OrganisationOut(
        id=org.id,
        name=org.name,
        description=org.description,
        public_key=org.public_key,
        created_at=org.created_at,
    )


def principal_out(p: Principal) -> PrincipalOut:
    return PrincipalOut(
        id=p.id,
        org_id=p.org_id,
        name=p.name,
        role=p.role,
        disabled=p.disabled,
        created_at=p.created_at,
    )


def key_out(k: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=k.id, principal_id=k.principal_id, created_at=k.created_at, revoked_at=k.revoked_at
    )


def validate_ed25519_public_key(value: str) -> str:
    """Check that ``value`` is 32 raw bytes in standard base64 and return it normalised."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed("public_key must be standard base64") from None
    if len(raw) != 32:
        raise ValidationFailed("public_key must be a 32-byte Ed25519 public key")
    return base64.b64encode(raw).decode("ascii")


class Identities:
    """Use cases for organisations, principals and keys."""

    refused: Callable[[str | None, str | None], None] | None = None
    """Told of each failed authentication (key hash, key id): the metrics hook."""

    def __init__(
        self, ctx: ServiceContext, tracer: Tracer, failures: AuthFailures | None = None
    ) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.failures = failures or AuthFailures(
            tracer,
            ctx.clock,
            interval=ctx.settings.auth_failure_interval_seconds,
            limit=ctx.settings.auth_failures_per_source,
        )

    # keys ------------------------------------------------------------------------------
    def _issue_key(self, tx: Tx, principal_id: str) -> IssuedKey:
        secret = base64.b32encode(self.ctx.random.bytes(_KEY_BYTES)).decode().rstrip("=").lower()
        api_key = f"{KEY_PREFIX}{secret}"
        key = ApiKey(
            id=self.ctx.ids.new("key"),
            principal_id=principal_id,
            created_at=self.ctx.clock.now(),
            revoked_at=None,
        )
        tx.add_api_key(key, hash_key(api_key))
        return IssuedKey(key=key_out(key), api_key=api_key)

    def authenticate(self, authorization: str | None, source: str | None = None) -> Actor:
        """Resolve an ``Authorization: Bearer`` header to an actor, or raise 401 (429 for a
        ``source`` address that failed too often; see :class:`AuthFailures`)."""
        if not authorization:
            self._refuse(source, "missing Authorization header", None)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
            self._refuse(source, "expected 'Authorization: Bearer bg_...'", None)
        digest = hash_key(token)
        with self.ctx.store.read() as tx:
            found = tx.find_api_key(digest)
        if found is None:
            self._refuse(source, "unknown API key", digest)
        key, principal = found
        if key.revoked_at is not None or principal.disabled:
            why = "the API key is revoked or its principal is disabled"
            self._refuse(source, why, digest, key.id)
        return Actor(principal.id, principal.org_id, principal.role, key.id)

    def _refuse(
        self, source: str | None, why: str, key_hash: str | None, key_id: str | None = None
    ) -> NoReturn:
        """Record an authentication failure (with at most a key id or hash prefix), then
        answer 401 (or 429)."""
        error = self.failures.refuse(source, why, key_hash=key_hash, key_id=key_id)
        if self.refused is not None:
            self.refused(key_hash, key_id)
        raise error

    # bootstrap -------------------------------------------------------------------------
    def bootstrap_admin(self, org_name: str, admin_name: str) -> PrincipalCreated:
        """Create the first organisation and its admin; refuse once any exists."""

        def work(tx: Tx, note: Note) -> PrincipalCreated:
            if tx.list_orgs(after=None, limit=1):
                raise Conflict("already initialised")
            org = Organisation(
                self.ctx.ids.new("org"),
                org_name,
                "Platform administration",
                None,
                self.ctx.clock.now(),
            )
            tx.add_org(org)
            created = self._add_principal(tx, org.id, admin_name, Role.ADMIN)
            note.target.update(org=org.id, principal=created.principal.id, key=created.key.id)
            note.subject_org = org.id
            return created

        return self.tracer.write(None, "admin.bootstrap", work)[0]

    # organisations ---------------------------------------------------------------------
    def create_org(self, actor: Actor, body: OrganisationCreate) -> OrganisationOut:
        def work(tx: Tx, note: Note) -> OrganisationOut:
            require_role(actor, Role.ADMIN)
            org = Organisation(
                self.ctx.ids.new("org"), body.name, body.description, None, self.ctx.clock.now()
            )
            tx.add_org(org)
            note.target["org"] = note.subject_org = org.id
            return org_out(org)

        return self.tracer.write(actor, "org.create", work, request=body)[0]

    def _sees_all(self, actor: Actor) -> bool:
        return actor.role in (Role.ADMIN, Role.AUDITOR)

    def get_org(self, actor: Actor, org_id: str) -> OrganisationOut:
        hide_unless(self._sees_all(actor) or actor.org_id == org_id, "organisation")
        with self.ctx.store.read() as tx:
            org = tx.get_org(org_id)
        hide_unless(org is not None, "organisation")
        assert org is not None
        return org_out(org)

    def list_orgs(self, actor: Actor, page: PageRequest) -> PageOut[OrganisationOut]:
        with self.ctx.store.read() as tx:
            if self._sees_all(actor):
                orgs = tx.list_orgs(after=page.after, limit=page.limit)
            else:
                own = tx.get_org(actor.org_id)
                orgs = [own] if own and (page.after is None or own.id > page.after) else []
        nxt = encode_cursor(orgs[-1].id) if len(orgs) == page.limit else None
        return PageOut[OrganisationOut](items=[org_out(o) for o in orgs], next_cursor=nxt)

    def set_public_key(self, actor: Actor, org_id: str, public_key: str | None) -> OrganisationOut:
        """Register (or remove) the organisation's Ed25519 public key for signing licences."""

        def work(tx: Tx, note: Note) -> OrganisationOut:
            hide_unless(self._sees_all(actor) or actor.org_id == org_id, "organisation")
            require_role(actor, Role.ADMIN, Role.HOLDER, Role.OPERATOR)
            normal = validate_ed25519_public_key(public_key) if public_key is not None else None
            if tx.get_org(org_id) is None:
                raise NotFound("no such organisation")
            note.subject_org = org_id
            tx.set_org_public_key(org_id, normal)
            org = tx.get_org(org_id)
            assert org is not None
            return org_out(org)

        return self.tracer.write(
            actor,
            "org.public_key.set",
            work,
            request={"public_key": public_key},
            target={"org": org_id},
        )[0]

    # principals ------------------------------------------------------------------------
    def _add_principal(self, tx: Tx, org_id: str, name: str, role: Role) -> PrincipalCreated:
        principal = Principal(
            self.ctx.ids.new("prn"), org_id, name, role, False, self.ctx.clock.now()
        )
        tx.add_principal(principal)
        issued = self._issue_key(tx, principal.id)
        return PrincipalCreated(
            principal=principal_out(principal), key=issued.key, api_key=issued.api_key
        )

    def create_principal(self, actor: Actor, body: PrincipalCreate) -> PrincipalCreated:
        def work(tx: Tx, note: Note) -> PrincipalCreated:
            require_role(actor, Role.ADMIN)
            if tx.get_org(body.org_id) is None:
                raise NotFound("no such organisation")
            note.subject_org = body.org_id
            created = self._add_principal(tx, body.org_id, body.name, body.role)
            note.target.update(principal=created.principal.id, key=created.key.id)
            return created

        return self.tracer.write(actor, "principal.create", work, request=body)[0]

    def _visible_principal(self, actor: Actor, tx: Tx, principal_id: str) -> Principal:
        principal = tx.get_principal(principal_id)
        visible = principal is not None and (
            self._sees_all(actor) or principal.id == actor.principal_id
        )
        hide_unless(visible, "principal")
        assert principal is not None
        return principal

    def get_principal(self, actor: Actor, principal_id: str) -> PrincipalOut:
        with self.ctx.store.read() as tx:
            return principal_out(self._visible_principal(actor, tx, principal_id))

    def list_principals(
        self, actor: Actor, org_id: str | None, page: PageRequest
    ) -> PageOut[PrincipalOut]:
        with self.ctx.store.read() as tx:
            if self._sees_all(actor):
                items = tx.list_principals(org_id=org_id, after=page.after, limit=page.limit)
            else:
                me = tx.get_principal(actor.principal_id)
                items = [me] if me and (page.after is None or me.id > page.after) else []
                if org_id is not None and org_id != actor.org_id:
                    items = []
        nxt = encode_cursor(items[-1].id) if len(items) == page.limit else None
        return PageOut[PrincipalOut](items=[principal_out(p) for p in items], next_cursor=nxt)

    def set_disabled(self, actor: Actor, principal_id: str, disabled: bool) -> PrincipalOut:
        def work(tx: Tx, note: Note) -> PrincipalOut:
            require_role(actor, Role.ADMIN)
            if principal_id == actor.principal_id and disabled:
                raise InvalidState("an admin cannot disable itself")
            note.subject_org = self._visible_principal(actor, tx, principal_id).org_id
            tx.set_principal_disabled(principal_id, disabled)
            updated = tx.get_principal(principal_id)
            assert updated is not None
            return principal_out(updated)

        action = "principal.disable" if disabled else "principal.enable"
        return self.tracer.write(actor, action, work, target={"principal": principal_id})[0]

    def whoami(self, actor: Actor) -> WhoAmI:
        with self.ctx.store.read() as tx:
            principal = tx.get_principal(actor.principal_id)
            org = tx.get_org(actor.org_id)
        if principal is None or org is None:
            raise Unauthenticated("unknown principal")
        return WhoAmI(
            principal=principal_out(principal), organisation=org_out(org), key_id=actor.key_id
        )

    # API keys --------------------------------------------------------------------------
    def _may_manage_keys(self, actor: Actor, principal_id: str) -> bool:
        return actor.role == Role.ADMIN or actor.principal_id == principal_id

    def rotate_key(self, actor: Actor, principal_id: str, revoke_existing: bool) -> IssuedKey:
        """Issue a new key; by default revoke every other active key of the principal."""

        def work(tx: Tx, note: Note) -> IssuedKey:
            note.subject_org = self._visible_principal(actor, tx, principal_id).org_id
            hide_unless(self._may_manage_keys(actor, principal_id), "principal")
            now = self.ctx.clock.now()
            revoked = []
            if revoke_existing:
                for key in tx.list_api_keys(principal_id):
                    if key.revoked_at is None:
                        tx.revoke_api_key(key.id, now)
                        revoked.append(key.id)
            issued = self._issue_key(tx, principal_id)
            note.target.update(key=issued.key.id, revoked=revoked)
            return issued

        return self.tracer.write(actor, "key.rotate", work, target={"principal": principal_id})[0]

    def list_keys(self, actor: Actor, principal_id: str) -> list[ApiKeyOut]:
        with self.ctx.store.read() as tx:
            self._visible_principal(actor, tx, principal_id)
            hide_unless(self._may_manage_keys(actor, principal_id), "principal")
            return [key_out(k) for k in tx.list_api_keys(principal_id)]

    def revoke_key(self, actor: Actor, principal_id: str, key_id: str) -> ApiKeyOut:
        def work(tx: Tx, note: Note) -> ApiKeyOut:
            note.subject_org = self._visible_principal(actor, tx, principal_id).org_id
            hide_unless(self._may_manage_keys(actor, principal_id), "principal")
            keys = {k.id: k for k in tx.list_api_keys(principal_id)}
            hide_unless(key_id in keys, "key")
            tx.revoke_api_key(key_id, self.ctx.clock.now())
            return key_out({k.id: k for k in tx.list_api_keys(principal_id)}[key_id])

        target: dict[str, str | list[str]] = {"principal": principal_id, "key": key_id}
        return self.tracer.write(actor, "key.revoke", work, target=target)[0]
