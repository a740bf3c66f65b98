"""The repository interface the service layer programs against.

A :class:`Store` hands out transactions; a :class:`Tx` offers typed reads and writes of
domain objects.  Everything done in one ``with store.write() as tx:`` block commits
together or not at all.  Uniqueness violations raise :class:`gateway.errors.Conflict`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from contracts.tlog.merkle import NodeId
from gateway.domain import (
    ApiKey,
    Asset,
    AssetStatus,
    BudgetCharge,
    FederatedAsset,
    Job,
    JobState,
    Licence,
    Organisation,
    PendingTrace,
    PolicyVersion,
    Principal,
    Site,
    StoredTrace,
    Suspension,
    SuspensionKind,
    TraceRecord,
)

R = TypeVar("R")


class Tx(Protocol):
    """One transaction's view of the store."""

    # organisations
    def add_org(self, org: Organisation) -> None: ...
    def get_org(self, org_id: str) -> Organisation | None: ...
    def list_orgs(self, *, after: str | None, limit: int) -> list[Organisation]: ...
    def set_org_public_key(self, org_id: str, public_key: str | None) -> None: ...

    # principals and keys
    def add_principal(self, principal: Principal) -> None: ...
    def get_principal(self, principal_id: str) -> Principal | None: ...
    def list_principals(
        self, *, org_id: str | None, after: str | None, limit: int
    ) -> list[Principal]: ...
    def set_principal_disabled(self, principal_id: str, disabled: bool) -> None: ...
    def add_api_key(self, key: ApiKey, key_hash: str) -> None: ...
    def find_api_key(self, key_hash: str) -> tuple[ApiKey, Principal] | None: ...
    def list_api_keys(self, principal_id: str) -> list[ApiKey]: ...
    def revoke_api_key(self, key_id: str, at: datetime) -> None: ...

    # sites
    def add_site(self, site: Site) -> None: ...
    def get_site(self, site_id: str) -> Site | None: ...
    def list_sites(self, *, org_id: str | None, after: str | None, limit: int) -> list[Site]: ...

    # assets
    def add_asset(self, asset: Asset) -> None: ...
    def get_asset(self, asset_id: str) -> Asset | None: ...
    def list_assets(
        self,
        *,
        org_id: str | None,
        statuses: Sequence[AssetStatus],
        after: str | None,
        limit: int,
    ) -> list[Asset]: ...
    def list_asset_revisions(
        self,
        *,
        org_id: str | None,
        statuses: Sequence[AssetStatus],
        after: str | None,
        limit: int,
    ) -> list[tuple[str, int]]:
        """Like :meth:`list_assets` but only ``(id, revision)``; the revision moves on
        every change of the stored asset, so it keys caches."""
        ...

    def get_assets(self, asset_ids: Sequence[str]) -> list[tuple[Asset, int]]:
        """The assets with these ids (in no particular order) and their revisions."""
        ...

    def update_asset(self, asset: Asset, *, expected_version: int) -> None:
        """Replace the asset if its stored version is ``expected_version``."""
        ...

    def next_serial(self, name: str) -> int: ...

    # policies, licences, ledger
    def add_policy(
        self,
        asset_id: str,
        document: str,
        by: str,
        at: datetime,
        statement: str | None = None,
        signature: str | None = None,
    ) -> int:
        """Store a new policy version of the asset (with the holder's signed statement, when
        signed); return its number (1, 2, ...)."""
        ...

    def get_policy(self, asset_id: str, version: int | None = None) -> PolicyVersion | None:
        """The given version of the asset's policy, or the latest one."""
        ...

    def list_policies(self, asset_id: str) -> list[PolicyVersion]: ...
    def add_licence(self, licence: Licence, asset_ids: Sequence[str]) -> None: ...
    def get_licence(self, licence_id: str, *, lock: bool = False) -> Licence | None:
        """The licence; ``lock`` serialises concurrent budget charges against it."""
        ...

    def list_licences(
        self,
        *,
        holder_org_id: str | None = None,
        operator_org_id: str | None = None,
        asset_id: str | None = None,
        after: str | None = None,
        limit: int = 1000,
    ) -> list[Licence]: ...
    def update_licence(self, licence_id: str, **values: Any) -> None: ...
    def add_charges(self, charges: Sequence[BudgetCharge]) -> None: ...
    def lock_budget(self, asset_ids: list[str]) -> None:
        """Serialise concurrent charges against these assets' shared budgets."""
        ...

    def charges(self, **filters: Any) -> list[BudgetCharge]:
        """Charges by licence_id, asset_id, since, job_ref (refunded ones excluded unless
        include_refunded)."""
        ...

    def mark_charges(self, job_ref: str, **values: Any) -> int: ...

    # jobs
    def add_job(self, job: Job, holders: Mapping[str, str]) -> None: ...
    def get_job(self, job_id: str) -> Job | None: ...
    def job_holders(self, job_id: str) -> dict[str, str]: ...
    def find_job(self, operator_org_id: str, idempotency_key: str) -> Job | None: ...
    def list_jobs(
        self,
        *,
        operator_org_id: str | None = None,
        holder_org_id: str | None = None,
        states: Sequence[JobState] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Job]: ...
    def update_job(
        self,
        job_id: str,
        expected: Sequence[JobState],
        *,
        lease_owner: str | None = None,
        **values: Any,
    ) -> bool:
        """Compare-and-set on the job's state (and lease owner); whether it was changed."""
        ...

    def claim_next_job(self, owner: str, now: datetime, until: datetime) -> Job | None:
        """Lease the oldest queued job to ``owner`` (SKIP LOCKED on PostgreSQL)."""
        ...

    def expired_running_jobs(self, now: datetime) -> list[Job]: ...
    def expired_approval_jobs(self, now: datetime) -> list[Job]:
        """Jobs pending approval whose approval window has passed."""
        ...

    # federated assets
    def add_federated(self, fed: FederatedAsset) -> None: ...
    def get_federated(self, fed_id: str) -> FederatedAsset | None: ...
    def list_federated(self, *, after: str | None, limit: int) -> list[FederatedAsset]: ...

    # trace
    def append_trace(self, record: TraceRecord) -> PendingTrace:
        """Append an entry; it commits with the transaction and gets its index then."""
        ...

    def trace_size(self) -> int: ...
    def trace_nodes(self, ids: Sequence[NodeId]) -> list[bytes]: ...
    def trace_entries(
        self, *, after: int | None, limit: int, **filters: Any
    ) -> list[StoredTrace]: ...
    def add_checkpoint(self, size: int, note: str, at: datetime) -> None: ...
    def latest_checkpoint(self) -> tuple[int, str] | None: ...
    def checkpoints(self, *, after_size: int | None, limit: int) -> list[tuple[int, str]]: ...

    # emergency suspensions
    def add_suspension(self, suspension: Suspension) -> None: ...
    def get_suspension(self, suspension_id: str) -> Suspension | None: ...
    def list_suspensions(
        self,
        *,
        active: bool | None = None,
        kind: SuspensionKind | None = None,
        target_id: str | None = None,
        limit: int = 1000,
    ) -> list[Suspension]: ...
    def lift_suspension(self, suspension_id: str, *, by: str, at: datetime, reason: str) -> bool:
        """Lift an active suspension; whether it was active."""
        ...

    # aggregates read at scrape time
    def job_counts(self) -> list[tuple[str, str, int]]:
        """``(kind, state, count)`` over every stored job."""
        ...

    def oldest_queued_at(self) -> datetime | None: ...
    def charge_totals(self, since: datetime) -> list[tuple[str, float, float]]:
        """``(asset_id, epsilon, delta)`` charged since ``since`` (refunds excluded)."""
        ...

    def last_checkpoint_at(self) -> datetime | None: ...


class Store(Protocol):
    """A transactional store of domain objects."""

    kind: str

    def read(self) -> AbstractContextManager[Tx]: ...
    def write(self) -> AbstractContextManager[Tx]: ...
    def transact(self, fn: Callable[[Any], R]) -> R:
        """Run ``fn(tx)`` in a group-committed write transaction; durable on return."""
        ...

    def append_trace(self, record: TraceRecord) -> PendingTrace:
        """Append one trace entry with group commit; durable on return."""
        ...

    def ping(self) -> None: ...
    def close(self) -> None: ...
