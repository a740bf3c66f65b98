"""How a site decides a job for itself: verify a ticket, decide, derive its own fragment.

The agent takes nothing from the gateway on trust.  For each ticket it checks, in order:

1. the ticket is for an asset this agent's configuration serves, is fresh (issued no later
   than now plus a small clock skew, not expired) and was never admitted before;
2. the policy is signed by one of the holder keys pinned in ``site.yaml``, for this
   agent's organisation and this asset, its document is the one signed, and it is not
   older than the newest policy the site has seen for the asset;
3. every licence is an offer signed by a pinned holder key for this organisation, covers
   the asset and the operator, and has not been revoked (revocations the holder signed are
   remembered for good);
4. the job as the operator submitted it is analysed with the same code as the gateway's
   (:mod:`policies.jobs`), decided with the policy engine against the site's own ledger
   (budget, licence caps, rate limit), and, when the policy asks for approval, approved
   by enough of this holder's principals in approvals signed with a pinned key;
5. the fragment is derived here from the operator's job: the site never runs SQL text
   chosen by the gateway.

A refusal is a :class:`TicketRefused` with a stable code; the agent logs it and answers
with that code only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts import LicenceError, decode_public_key, terms_from_canonical, verify_offer
from contracts.terms import LicenceTerms
from contracts.tickets import (
    Ticket,
    decode_ticket,
    encode_ticket,
    sha256_hex,
    verify_statement,
)
from policies import (
    AssetContext,
    AssetFacts,
    Decision,
    EffectiveParameters,
    LicenceFacts,
    Policy,
    PolicyDocumentError,
    UsageCounters,
    evaluate,
    parsed_policy,
)
from policies.jobs import AssetSchema, JobError, PartialPlan, PlanCache, analyse
from policies.jobs.errors import Refusal
from policies.jobs.he import HePlan, analyse_spec, plan_spec
from policies.python import KIND as PYTHON_KIND
from policies.python import PythonFacts, PythonGrant
from sandbox.agent.config import SiteConfig
from sandbox.agent.ledger import Charge, SiteLedger

log = logging.getLogger(__name__)

PLANS = PlanCache()
"""This site's fragments by (query, schema, parameters); every ticket is still verified,
decided against the site's own ledger and charged afresh."""

CLOCK_SKEW = timedelta(minutes=2)
"""How far in the future a ticket's issue time may be (the gateway's clock may run ahead)."""
SQL_KIND = "sql_aggregate"
TEST_KIND = "python_test"
HE_KINDS = frozenset({"he_aggregate", "he_linear"})


class TicketRefused(Exception):
    """The site will not run this ticket; ``code`` is what it logs and answers."""

    def __init__(self, code: str, reasons: Sequence[str] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.reasons = tuple(reasons)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A ticket the site decided to run, with everything it derived itself."""

    ticket: Ticket
    digest: str
    params: EffectiveParameters
    schema: AssetSchema
    charges: list[Charge]
    budget: tuple[float, float, int]
    sql: PartialPlan | None = None
    he: HePlan | None = None
    attachments: dict[str, str] | None = None
    test_program: str | None = None
    """A ``python_test`` program (only with ``unsafe_enable_test_executor``)."""
    python: PythonGrant | None = None
    """A Python job's grant on this asset (columns, outputs, limits, release)."""

    @property
    def kind(self) -> str:
        return self.ticket.job.kind


_TEST_PARAMS = EffectiveParameters(
    job_kind="sql_aggregate",
    epsilon=1.0,
    delta=0.0,
    min_group_size=2,
    max_rows_per_unit=1,
    clip={},
    privacy_units={},
    approval_mode="auto",
    approvals={},
)


def pinned_keys(config: SiteConfig) -> tuple[Ed25519PublicKey, ...]:
    """The holder keys the agent trusts, from its own configuration."""
    if config.holder is None:
        return ()
    return tuple(decode_public_key(key) for key in config.holder.keys)


def read_ticket(data: bytes) -> tuple[Ticket, str]:
    """The ticket and its SHA-256 (what the log records); ``invalid_ticket`` otherwise."""
    try:
        ticket = decode_ticket(data)
    except LicenceError:
        raise TicketRefused("invalid_ticket") from None
    return ticket, sha256_hex(encode_ticket(ticket))


def admit(
    ticket: Ticket, digest: str, config: SiteConfig, ledger: SiteLedger, now: datetime
) -> Admitted:
    """Verify and decide ``ticket`` as this site; raises :class:`TicketRefused`."""
    if config.holder is None:
        raise TicketRefused("site_not_configured")
    organisation = config.holder.organisation
    keys = pinned_keys(config)
    if ticket.local_ref not in config.assets:
        raise TicketRefused("unknown_asset")
    if ticket.issued_at > now + CLOCK_SKEW or not now < ticket.expires_at:
        raise TicketRefused("ticket_expired")
    if ledger.admitted(ticket.fragment_id):
        raise TicketRefused("replayed")
    job = ticket.job
    if ticket.asset_id not in job.asset_ids:
        raise TicketRefused("asset_not_in_job")
    parsed, schema = _policy(ticket, organisation, keys, ledger)
    _revocations(ticket, organisation, keys, ledger, now)
    licences = _licences(ticket, organisation, keys)
    if not licences:
        raise TicketRefused("no_licence")
    budget = parsed.privacy.budget
    limits = (budget.epsilon, budget.delta, budget.period_days)
    if job.kind == TEST_KIND:
        # Signed like any ticket, but not decided: for the agent's own tests only.
        if not config.unsafe_enable_test_executor:
            raise TicketRefused("unknown_kind")
        log.warning("fragment %s: unsafe test program, not decided", ticket.fragment_id)
        return Admitted(ticket, digest, _TEST_PARAMS, schema, [], limits, test_program=job.sql)
    uses, group_keys, analysis = _analyse(ticket, schema)
    request = _request(ticket, parsed, schema, licences, uses, group_keys, ledger, now)
    if isinstance(analysis, PythonFacts):
        request["python"] = analysis
    decision = evaluate(request)
    if not decision.allow or decision.parameters is None:
        raise TicketRefused("policy_denied", decision.codes)
    params = decision.parameters
    _check_approvals(ticket, decision, organisation, keys)
    _note_policy(ticket, ledger)
    charges = [Charge(ticket.asset_id, licences[0].licence_id, job.epsilon, job.delta)]
    if isinstance(analysis, PythonFacts):
        granted = params.python.get(ticket.asset_id)
        if granted is None:
            raise TicketRefused("plan_refused", ("python_rules_missing",))
        charges = [Charge(ticket.asset_id, licences[0].licence_id, 0.0, 0.0)]
        return Admitted(ticket, digest, params, schema, charges, limits, python=granted)
    if job.kind == SQL_KIND:
        try:
            sql_plan = PLANS.plan(job.sql, schema, analysis, params)
        except JobError as exc:
            raise TicketRefused("plan_refused", exc.codes) from None
        return Admitted(ticket, digest, params, schema, charges, limits, sql=sql_plan)
    planned = plan_spec(job.kind, job.spec or {}, analysis, schema, params)
    if isinstance(planned, Refusal):
        raise TicketRefused("plan_refused", (planned.code,))
    attachments = _attachments(ticket) if job.kind == "he_linear" else None
    return Admitted(
        ticket, digest, params, schema, charges, limits, he=planned, attachments=attachments
    )


def _note_policy(ticket: Ticket, ledger: SiteLedger) -> None:
    """Keep the newest policy this site has decided under (written only when it changes),
    so an older signed policy is refused afterwards."""
    signed_at = ticket.policy.statement.signed_at
    if ledger.newest_policy(ticket.asset_id) != signed_at:
        ledger.note_policy(ticket.asset_id, signed_at)


def _policy(
    ticket: Ticket, organisation: str, keys: tuple[Ed25519PublicKey, ...], ledger: SiteLedger
) -> tuple[Policy, AssetSchema]:
    """The holder's policy: signed with a pinned key, for this asset, not stale."""
    policy = ticket.policy
    statement = policy.statement
    try:
        verify_statement(statement, policy.signature, keys)
    except LicenceError:
        raise TicketRefused("policy_signature") from None
    if statement.holder_org_id != organisation or statement.asset_id != ticket.asset_id:
        raise TicketRefused("policy_not_ours")
    if hashlib.sha256(policy.document.encode("utf-8")).hexdigest() != statement.document_sha256:
        raise TicketRefused("policy_altered")
    newest = ledger.newest_policy(ticket.asset_id)
    if newest is not None and statement.signed_at < newest:
        raise TicketRefused("stale_policy")
    try:
        parsed = parsed_policy(
            policy.document,
            statement.asset_id,
            statement.asset_name,
            tuple((name, kind, tag) for name, kind, tag in statement.columns),
            statement.privacy_unit,
        )
        schema = AssetSchema.build(
            statement.asset_id,
            statement.asset_name,
            list(statement.columns),  # type: ignore[arg-type]
            statement.privacy_unit,
        )
    except (PolicyDocumentError, ValueError):
        raise TicketRefused("policy_invalid") from None
    return parsed, schema


def _revocations(
    ticket: Ticket,
    organisation: str,
    keys: tuple[Ed25519PublicKey, ...],
    ledger: SiteLedger,
    now: datetime,
) -> None:
    """Remember, for good, every revocation this holder signed (a forged one is ignored)."""
    for revocation in ticket.revocations:
        try:
            verify_statement(revocation.statement, revocation.signature, keys)
        except LicenceError:
            continue
        if revocation.statement.holder_org_id == organisation:
            ledger.revoke(revocation.statement.licence_id, now)


def _request(
    ticket: Ticket,
    policy: Policy,
    schema: AssetSchema,
    licences: list[LicenceTerms],
    uses: list[Any],
    group_keys: list[Any],
    ledger: SiteLedger,
    now: datetime,
) -> dict[str, Any]:
    """The policy engine's request, with this site's own ledger as the usage."""
    job = ticket.job
    statement = ticket.policy.statement
    days = policy.privacy.budget.period_days
    spent = ledger.asset_spent(ticket.asset_id, now - timedelta(days=days))
    hour = now - timedelta(hours=1)
    revoked = ledger.revoked([t.licence_id for t in licences])
    return {
        "job_kind": job.kind,
        "purpose": job.purpose,
        "epsilon": job.epsilon,
        "delta": job.delta,
        "assets": (
            AssetContext(
                facts=AssetFacts.model_validate(
                    {
                        "asset_id": ticket.asset_id,
                        "status": "active",
                        "privacy_unit": statement.privacy_unit,
                        "column_tags": {name: tag for name, _, tag in statement.columns},
                    }
                ),
                policy=policy,
                policy_revision=1,
            ),
        ),
        "column_uses": tuple(
            {"asset": ticket.asset_id, "column": c, "usage": u, "function": f} for c, u, f in uses
        ),
        "licences": tuple(
            _facts(terms, ledger, revoked=terms.licence_id in revoked) for terms in licences
        ),
        "usage": UsageCounters(
            jobs_last_hour={
                t.licence_id: ledger.licence_spent(t.licence_id, hour).jobs for t in licences
            },
            epsilon_spent={ticket.asset_id: spent.epsilon},
            delta_spent={ticket.asset_id: spent.delta},
            budget_renews_at=(
                {ticket.asset_id: spent.oldest + timedelta(days=days)} if spent.oldest else {}
            ),
        ),
        "now": now,
        "group_keys": tuple(tuple(key) for key in group_keys),
    }


def _licences(
    ticket: Ticket, organisation: str, keys: tuple[Ed25519PublicKey, ...]
) -> list[LicenceTerms]:
    """The ticket's licences this holder offered, for this asset and the job's operator."""
    found = []
    for signed in ticket.licences:
        try:
            terms = terms_from_canonical(signed.terms.encode("utf-8"))
            signature = base64.b64decode(signed.holder_signature.encode("ascii"), validate=True)
        except (LicenceError, binascii.Error, ValueError, UnicodeEncodeError):
            raise TicketRefused("licence_invalid") from None
        if not any(_offered(terms, signature, key) for key in keys):
            raise TicketRefused("licence_signature")
        if terms.holder_org_id != organisation:
            raise TicketRefused("licence_not_ours")
        if terms.operator_org_id != ticket.job.operator_org_id:
            raise TicketRefused("licence_other_operator")
        if ticket.asset_id in terms.asset_ids and terms.licence_id in ticket.job.licence_ids:
            found.append(terms)
    return found


def _offered(terms: LicenceTerms, signature: bytes, key: Ed25519PublicKey) -> bool:
    try:
        verify_offer(terms, signature, key)
    except LicenceError:
        return False
    return True


def _facts(terms: LicenceTerms, ledger: SiteLedger, *, revoked: bool) -> LicenceFacts:
    """A licence as the policy engine sees it, with this site's own usage of it."""
    used = ledger.licence_spent(terms.licence_id)
    return LicenceFacts(
        licence_id=terms.licence_id,
        status="revoked" if revoked else "active",
        valid_from=terms.valid_from,
        valid_until=terms.valid_until,
        asset_ids=terms.asset_ids,
        purposes=terms.purposes,
        job_kinds=terms.job_kinds,
        epsilon_cap=float(terms.epsilon_cap) if terms.epsilon_cap is not None else None,
        epsilon_used=used.epsilon,
        job_cap=terms.job_cap,
        jobs_used=used.jobs,
    )


def _analyse(ticket: Ticket, schema: AssetSchema) -> tuple[list[Any], list[Any], Any]:
    """(column uses, group keys, analysis) of the job as submitted."""
    job = ticket.job
    if job.kind == SQL_KIND:
        try:
            analysis = analyse(job.sql, schema)
        except JobError as exc:
            raise TicketRefused("analysis_refused", exc.codes) from None
        if analysis.needs_permission:
            raise TicketRefused("analysis_refused", ("aggregate_not_allowed",))
        uses = [(u.column, u.usage, u.function) for u in analysis.column_uses]
        return uses, [key.columns for key in analysis.group_by], analysis
    if job.kind in HE_KINDS:
        he = analyse_spec(job.spec or {}, schema)
        if isinstance(he, Refusal):
            raise TicketRefused("analysis_refused", (he.code,))
        return he.uses, he.keys, he
    if job.kind == PYTHON_KIND:
        return [], [], python_facts(ticket)
    raise TicketRefused("unknown_kind")


def python_facts(ticket: Ticket) -> PythonFacts:
    """A Python job's code as its specification names it (checked against the archive
    when the job runs)."""
    spec = ticket.job.spec or {}
    try:
        return PythonFacts(
            code_hash=spec["code_hash"],
            files=dict(spec["code_files"]),
            operator_org_id=ticket.job.operator_org_id,
        )
    except (KeyError, TypeError, ValueError):
        raise TicketRefused("analysis_refused", ("python_spec_invalid",)) from None


def _check_approvals(
    ticket: Ticket, decision: Decision, organisation: str, keys: tuple[Ed25519PublicKey, ...]
) -> None:
    """When this holder's policy asks for approval, enough of its principals approved this
    job in statements signed with a pinned key; another holder's approval never counts."""
    params = decision.parameters
    assert params is not None
    rule = params.approvals.get(ticket.asset_id)
    if rule is None or rule.mode == "auto":
        return
    required = rule.quorum.required if rule.quorum is not None else 1
    principals = set()
    for approval in ticket.approvals:
        statement = approval.statement
        if statement.holder_org_id != organisation or statement.job_id != ticket.job.id:
            continue
        if statement.job_sha256 != ticket.job.digest:
            continue
        try:
            verify_statement(statement, approval.signature, keys)
        except LicenceError:
            continue
        principals.add(statement.principal_id)
    if len(principals) < required:
        raise TicketRefused("approval_missing")


def _attachments(ticket: Ticket) -> dict[str, str]:
    """The encrypted weights an ``he_linear`` job carries, checked against its digests."""
    spec = ticket.job.spec or {}
    out = {}
    for name in ("weights", "weights_outer"):
        text = ticket.attachments.get(name)
        digest = spec.get(f"{name}_sha256")
        if text is None or digest is None:
            raise TicketRefused("attachment_missing")
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise TicketRefused("attachment_invalid") from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise TicketRefused("attachment_invalid")
        out[name] = text
    return out


def describe(admitted: Admitted) -> dict[str, Any]:
    """What the site log records of an admitted ticket (digests and ids, never data)."""
    job = admitted.ticket.job
    if admitted.sql is not None:
        program = admitted.sql.sql
    elif admitted.test_program is not None:
        program = admitted.test_program
    elif admitted.python is not None:
        program = json.dumps(job.spec or {}, sort_keys=True)
    else:
        assert admitted.he is not None
        program = json.dumps(admitted.he.site_program(), sort_keys=True)
    described = {
        "job": job.id,
        "kind": job.kind,
        "epsilon": job.epsilon,
        "delta": job.delta,
        "job_sha256": job.digest,
        "program_sha256": hashlib.sha256(program.encode()).hexdigest(),
    }
    if admitted.python is not None:
        spec = job.spec or {}
        described["code_hash"] = spec.get("code_hash")
        described["pre_approved"] = admitted.python.pre_approved
    return described
