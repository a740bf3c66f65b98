"""Licences: the holder offers signed terms, the operator countersigns; revocation and
expiry take effect at once. Private keys never reach the gateway: both parties sign
locally (``blindgate licence offer|accept``) and the gateway verifies."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from contracts import LicenceError, LicenceTerms
from contracts.signing import (
    decode_public_key,
    verify_agreement,
    verify_offer,
    verify_signatures,
)
from contracts.terms import canonical_bytes, terms_from_canonical
from contracts.tickets import RevocationStatement, canonical, verify_statement
from gateway.domain import (
    TERMINAL_STATES,
    Actor,
    AssetStatus,
    JobState,
    Licence,
    LicenceStatus,
    Role,
)
from gateway.errors import Forbidden, InvalidState, LicenceInvalid, NotFound, ValidationFailed
from gateway.service.core.access import hide_unless, require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.schemas import LicenceOut
from gateway.store import Tx

JOB_KINDS = {"sql_aggregate", "he_aggregate", "he_linear", "python"}
_LICENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,99}$")


def _sig(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise LicenceInvalid(f"{what} is not valid base64") from None


def _pub(tx: Tx, org_id: str, who: str) -> Ed25519PublicKey:
    org = tx.get_org(org_id)
    if org is None or org.public_key is None:
        raise LicenceInvalid(f"the {who} organisation has no registered public key")
    try:
        return decode_public_key(org.public_key)
    except LicenceError as exc:
        raise LicenceInvalid(f"the {who} organisation's public key: {exc.detail}") from None


def effective_status(licence: Licence, now: datetime) -> str:
    """``offered``/``active``/``revoked``, or ``expired`` once past ``valid_until``."""
    if licence.status == LicenceStatus.REVOKED:
        return "revoked"
    terms = terms_from_canonical(licence.terms.encode())
    if now >= terms.valid_until:
        return "expired"
    return str(licence.status)


KEY_ROTATED = "key_rotated"
"""The status of an active licence whose signatures no longer verify under its
organisations' registered keys: one of them replaced (or removed) its key since."""


def signed_under_current_keys(tx: Tx, licence: Licence) -> bool:
    """Whether the licence's signatures verify under the keys its holder and (once it is
    accepted) its operator have registered now. After a key is replaced, licences signed
    with the old one stop authorising jobs until they are offered and countersigned again
    (or the old key is registered again)."""
    holder = tx.get_org(licence.holder_org_id)
    operator = tx.get_org(licence.operator_org_id)
    return _verifies(
        licence.terms,
        licence.holder_signature,
        licence.operator_signature,
        holder.public_key if holder else None,
        operator.public_key if operator else None,
    )


@functools.lru_cache(maxsize=4096)
def _verifies(
    terms_text: str,
    holder_signature: str,
    operator_signature: str | None,
    holder_key: str | None,
    operator_key: str | None,
) -> bool:
    """Signature checks, memoised by everything they depend on (so always current)."""
    if holder_key is None or (operator_signature is not None and operator_key is None):
        return False
    try:
        terms = terms_from_canonical(terms_text.encode())
        held = base64.b64decode(holder_signature, validate=True)
        if operator_signature is None:
            verify_offer(terms, held, decode_public_key(holder_key))
        else:
            assert operator_key is not None
            verify_signatures(
                terms,
                held,
                base64.b64decode(operator_signature, validate=True),
                decode_public_key(holder_key),
                decode_public_key(operator_key),
            )
    except (LicenceError, ValueError, binascii.Error):
        return False
    return True


class LicenceService:
    """Use cases for licences."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer) -> None:
        self.ctx = ctx
        self.tracer = tracer

    def _out(self, tx: Tx, licence: Licence) -> LicenceOut:
        holder = tx.get_org(licence.holder_org_id)
        status = effective_status(licence, self.ctx.clock.now())
        if status == str(LicenceStatus.ACTIVE) and not signed_under_current_keys(tx, licence):
            status = KEY_ROTATED
        return LicenceOut(
            id=licence.id,
            status=status,
            holder_org_id=licence.holder_org_id,
            operator_org_id=licence.operator_org_id,
            terms=json.loads(licence.terms),
            canonical_terms=licence.terms,
            holder_signature=licence.holder_signature,
            operator_signature=licence.operator_signature,
            holder_public_key=holder.public_key if holder else None,
            created_at=licence.created_at,
            accepted_at=licence.accepted_at,
            revoked_at=licence.revoked_at,
            revoke_reason=licence.revoke_reason,
        )

    @staticmethod
    def visible(actor: Actor, licence: Licence | None) -> Licence:
        ok = licence is not None and (
            actor.role == Role.AUDITOR
            or (actor.role == Role.HOLDER and licence.holder_org_id == actor.org_id)
            or (actor.role == Role.OPERATOR and licence.operator_org_id == actor.org_id)
        )
        hide_unless(ok, "licence")
        assert licence is not None
        return licence

    def offer(
        self, actor: Actor, terms_data: dict[str, object], holder_signature: str
    ) -> LicenceOut:
        """Record a holder's signed offer after checking terms, ownership and signature."""
        require_role(actor, Role.HOLDER)
        licence_id = terms_data.get("licence_id")
        if not isinstance(licence_id, str) or not _LICENCE_ID.match(licence_id):
            raise LicenceInvalid("licence_id must be 3-100 letters, digits, '.', '_' or '-'")
        try:
            terms = LicenceTerms.model_validate(terms_data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise LicenceInvalid(f"invalid terms at '{where}': {first.get('msg')}") from None
        signature = _sig(holder_signature, "holder_signature")

        def work(tx: Tx, note: Note) -> LicenceOut:
            note.target["licence"] = terms.licence_id
            note.subject_org = actor.org_id
            if terms.holder_org_id != actor.org_id:
                raise LicenceInvalid("holder_org_id must be your organisation")
            if tx.get_org(terms.operator_org_id) is None:
                raise LicenceInvalid("operator_org_id is not a known organisation")
            unknown_kinds = sorted(set(terms.job_kinds) - JOB_KINDS)
            if unknown_kinds:
                raise LicenceInvalid(f"unknown job kinds: {', '.join(unknown_kinds)}")
            for asset_id in terms.asset_ids:
                asset = tx.get_asset(asset_id)
                if asset is None or asset.org_id != actor.org_id:
                    raise NotFound(f"no such asset: {asset_id}")
                if asset.status == AssetStatus.DISPOSED:
                    raise LicenceInvalid(f"asset {asset_id} is disposed")
            if terms.valid_until <= self.ctx.clock.now():
                raise LicenceInvalid("the licence would already have expired")
            try:
                verify_offer(terms, signature, _pub(tx, actor.org_id, "holder"))
            except LicenceError as exc:
                raise LicenceInvalid(f"{exc.code}: {exc.detail}") from None
            licence = Licence(
                id=terms.licence_id,
                holder_org_id=actor.org_id,
                operator_org_id=terms.operator_org_id,
                terms=canonical_bytes(terms).decode("utf-8"),
                holder_signature=holder_signature,
                operator_signature=None,
                status=LicenceStatus.OFFERED,
                created_at=self.ctx.clock.now(),
            )
            tx.add_licence(licence, terms.asset_ids)
            note.detail = {"operator_org": terms.operator_org_id, "assets": list(terms.asset_ids)}
            return self._out(tx, licence)

        return self.tracer.write(actor, "licence.offer", work, request=terms_data)[0]

    def accept(self, actor: Actor, licence_id: str, operator_signature: str) -> LicenceOut:
        """Countersign an offer: both signatures are verified against registered keys."""
        signature = _sig(operator_signature, "operator_signature")

        def work(tx: Tx, note: Note) -> LicenceOut:
            licence = self.visible(actor, tx.get_licence(licence_id, lock=True))
            note.subject_org = licence.holder_org_id
            if actor.role != Role.OPERATOR:
                raise Forbidden("only the operator named in the licence accepts it")
            if licence.status != LicenceStatus.OFFERED:
                raise InvalidState(f"the licence is {licence.status}, not offered")
            terms = terms_from_canonical(licence.terms.encode())
            try:
                verify_agreement(
                    terms,
                    _sig(licence.holder_signature, "holder_signature"),
                    signature,
                    _pub(tx, licence.holder_org_id, "holder"),
                    _pub(tx, actor.org_id, "operator"),
                    now=self.ctx.clock.now(),
                )
            except LicenceError as exc:
                raise LicenceInvalid(f"{exc.code}: {exc.detail}") from None
            now = self.ctx.clock.now()
            tx.update_licence(
                licence_id,
                status=LicenceStatus.ACTIVE,
                operator_signature=operator_signature,
                accepted_at=now,
            )
            updated = tx.get_licence(licence_id)
            assert updated is not None
            return self._out(tx, updated)

        return self.tracer.write(actor, "licence.accept", work, target={"licence": licence_id})[0]

    def revoke(
        self,
        actor: Actor,
        licence_id: str,
        reason: str,
        *,
        signature: str | None = None,
        signed_at: datetime | None = None,
    ) -> LicenceOut:
        """Revoke at once (the holder, or an auditor): no new job starts under it.

        With the holder organisation's ``signature`` of the revocation (made at
        ``signed_at``), the revocation also travels to the holder's sites, which then
        refuse the licence for good whatever the gateway says later.
        """

        def work(tx: Tx, note: Note) -> LicenceOut:
            licence = self.visible(actor, tx.get_licence(licence_id, lock=True))
            note.subject_org = licence.holder_org_id
            if actor.role not in (Role.HOLDER, Role.AUDITOR):
                raise Forbidden("only the holder or an auditor revokes a licence")
            if licence.status == LicenceStatus.REVOKED:
                raise InvalidState("the licence is already revoked")
            revocation = None
            if signature is not None or signed_at is not None:
                revocation = self._signed_revocation(tx, licence, signature, signed_at)
            now = self.ctx.clock.now()
            tx.update_licence(
                licence_id,
                status=LicenceStatus.REVOKED,
                revoked_at=now,
                revoke_reason=reason,
                revocation=revocation,
            )
            # No new job starts under it, and jobs not yet released under it are cancelled.
            live = [s for s in JobState if s not in TERMINAL_STATES]
            cancelled = []
            for job in tx.list_jobs(
                operator_org_id=licence.operator_org_id, states=live, limit=100_000
            ):
                if licence_id in job.licence_ids and tx.update_job(
                    job.id,
                    live,
                    state=JobState.CANCELLED,
                    error_code="licence_revoked",
                    updated_at=now,
                ):
                    cancelled.append(job.id)
            note.detail = {"cancelled_jobs": cancelled}
            updated = tx.get_licence(licence_id)
            assert updated is not None
            return self._out(tx, updated)

        return self.tracer.write(
            actor,
            "licence.revoke",
            work,
            request={"reason": reason},
            target={"licence": licence_id},
        )[0]

    @staticmethod
    def _signed_revocation(
        tx: Tx, licence: Licence, signature: str | None, signed_at: datetime | None
    ) -> str:
        """The revocation as the holder's sites will check it (JSON of statement and
        signature); its signature must verify under the holder organisation's key."""
        if signature is None or signed_at is None:
            raise ValidationFailed("a signed revocation needs both signature and signed_at")
        statement = RevocationStatement(
            holder_org_id=licence.holder_org_id, licence_id=licence.id, signed_at=signed_at
        )
        try:
            verify_statement(statement, signature, (_pub(tx, licence.holder_org_id, "holder"),))
        except LicenceError:
            raise ValidationFailed(
                "the revocation's signature does not verify under the holder's key"
            ) from None
        return json.dumps(
            {"statement": canonical(statement).decode("utf-8"), "signature": signature}
        )

    def get(self, actor: Actor, licence_id: str) -> LicenceOut:
        with self.ctx.store.read() as tx:
            return self._out(tx, self.visible(actor, tx.get_licence(licence_id)))

    def list(self, actor: Actor, page: PageRequest) -> PageOut[LicenceOut]:
        require_role(actor, Role.HOLDER, Role.OPERATOR, Role.AUDITOR)
        holder = actor.org_id if actor.role == Role.HOLDER else None
        operator = actor.org_id if actor.role == Role.OPERATOR else None
        with self.ctx.store.read() as tx:
            found = tx.list_licences(
                holder_org_id=holder,
                operator_org_id=operator,
                after=page.after,
                limit=page.limit,
            )
            items = [self._out(tx, lic) for lic in found]
        nxt = encode_cursor(found[-1].id) if len(found) == page.limit else None
        return PageOut[LicenceOut](items=items, next_cursor=nxt)
