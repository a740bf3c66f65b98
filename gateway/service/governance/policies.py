"""Policy documents: holders write versioned YAML policies; every version is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts import LicenceError, decode_public_key
from contracts.tickets import PolicyStatement, canonical, policy_statement, verify_statement
from gateway.domain import Actor, Asset, AssetStatus, PolicyVersion, Role
from gateway.errors import AssetDisposed, Forbidden, NotFound, PolicyInvalid, ValidationFailed
from gateway.service.catalogue.visibility import visible_asset
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.schemas import PolicyVersionOut, PolicyVersionSummary
from gateway.store import Tx
from policies import AssetShape, Policy, PolicyDocumentError, parsed_policy, policy_schema


def shape_of(asset: Asset) -> AssetShape:
    """What a policy is checked against: the asset's id and name, columns and unit."""
    return AssetShape(
        names=(asset.id, asset.name),
        columns={c.name: (str(c.type), str(c.tag)) for c in asset.columns},
        privacy_unit=asset.privacy_unit,
    )


def parse_for_asset(document: str, asset: Asset) -> Policy:
    """Validate ``document`` against ``asset`` and bind it to the asset's id.

    Every problem is reported with the line and column it was written at (see
    :func:`policies.load_policy_for`).  The parse is a pure function of the document and
    the asset's shape, so it is kept (:func:`_parsed`, frozen models) for the decisions
    that read the same policy version again; an invalid document is never kept.
    """
    columns = tuple(sorted((c.name, str(c.type), str(c.tag)) for c in asset.columns))
    return _parsed(document, asset.id, asset.name, columns, asset.privacy_unit)


def _parsed(
    document: str,
    asset_id: str,
    asset_name: str,
    columns: tuple[tuple[str, str, str], ...],
    privacy_unit: str,
) -> Policy:
    try:
        return parsed_policy(document, asset_id, asset_name, columns, privacy_unit)
    except PolicyDocumentError as exc:
        issues = [
            {"line": i.line, "column": i.column, "path": i.path, "message": i.message}
            for i in exc.issues
        ]
        raise PolicyInvalid(
            f"{len(issues)} problem(s) in the policy document", issues=issues
        ) from None


def statement_for(asset: Asset, document: str, signed_at: datetime) -> PolicyStatement:
    """What the asset's holder signs for ``document``: the asset's schema and the
    document's digest (see :mod:`contracts.tickets`)."""
    return policy_statement(
        holder_org_id=asset.org_id,
        asset_id=asset.id,
        asset_name=asset.name,
        privacy_unit=asset.privacy_unit,
        columns=[(c.name, str(c.type), str(c.tag)) for c in asset.columns],
        document=document,
        signed_at=signed_at,
    )


def _out(version: PolicyVersion) -> PolicyVersionOut:
    return PolicyVersionOut(
        signed=version.signature is not None,
        asset_id=version.asset_id,
        version=version.version,
        document=version.document,
        created_by=version.created_by,
        created_at=version.created_at,
    )


class PolicyService:
    """Use cases for policy documents."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer) -> None:
        self.ctx = ctx
        self.tracer = tracer

    @staticmethod
    def schema() -> dict[str, Any]:
        return policy_schema()

    def set(
        self,
        actor: Actor,
        asset_id: str,
        document: str,
        *,
        signature: str | None = None,
        signed_at: datetime | None = None,
    ) -> PolicyVersionOut:
        """Store a new version of the asset's policy (the asset's holder only).

        With ``signature`` (the holder organisation's signature over
        :func:`statement_for`, made at ``signed_at``) the version can be sent to the
        asset's site, which accepts only policies its holder signed; an unsigned version
        is stored, but no job runs on the asset until a signed one replaces it.
        """

        def work(tx: Tx, note: Note) -> PolicyVersionOut:
            asset = visible_asset(actor, tx, asset_id, note)
            if actor.role != Role.HOLDER:
                raise Forbidden("only the asset's holder writes its policy")
            if asset.status == AssetStatus.DISPOSED:
                raise AssetDisposed()
            parse_for_asset(document, asset)
            statement = None
            if signature is not None or signed_at is not None:
                if signature is None or signed_at is None:
                    raise ValidationFailed("a signed policy needs both signature and signed_at")
                made = statement_for(asset, document, signed_at)
                org = tx.get_org(asset.org_id)
                key = org.public_key if org is not None else None
                try:
                    if key is None:
                        raise LicenceError("bad_key")
                    verify_statement(made, signature, (decode_public_key(key),))
                except LicenceError:
                    raise ValidationFailed(
                        "the signature does not verify under your organisation's registered key"
                    ) from None
                statement = canonical(made).decode("utf-8")
            now = self.ctx.clock.now()
            version = tx.add_policy(
                asset.id, document, actor.principal_id, now, statement, signature
            )
            note.detail = {"policy_version": version, "signed": statement is not None}
            stored = tx.get_policy(asset.id, version)
            assert stored is not None
            return _out(stored)

        return self.tracer.write(
            actor,
            "policy.set",
            work,
            request=document.encode("utf-8"),
            target={"asset": asset_id},
        )[0]

    def get(self, actor: Actor, asset_id: str, version: int | None = None) -> PolicyVersionOut:
        with self.ctx.store.read() as tx:
            visible_asset(actor, tx, asset_id)
            found = tx.get_policy(asset_id, version)
        if found is None:
            raise NotFound("no such policy version")
        return _out(found)

    def versions(self, actor: Actor, asset_id: str) -> list[PolicyVersionSummary]:
        with self.ctx.store.read() as tx:
            visible_asset(actor, tx, asset_id)
            found = tx.list_policies(asset_id)
        return [
            PolicyVersionSummary(
                asset_id=v.asset_id,
                version=v.version,
                created_by=v.created_by,
                created_at=v.created_at,
            )
            for v in found
        ]
