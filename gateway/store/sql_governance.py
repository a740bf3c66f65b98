"""The parts of a SQL transaction beyond identities and the catalogue: policies,
licences and the ledger, jobs, federated assets and the trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session

from contracts.tlog.merkle import NodeId
from gateway.domain import (
    BudgetCharge,
    FederatedAsset,
    Job,
    JobState,
    Licence,
    PendingTrace,
    PolicyVersion,
    StoredTrace,
    TraceRecord,
)
from gateway.store import governance as gov
from gateway.store import jobs as jobs_sql
from gateway.store import trace as trace_sql


class GovernanceTx:
    """Mixed into :class:`gateway.store.sql.SqlTx`, which provides the session and batch."""

    session: Session
    batch: trace_sql.TraceBatch | None

    def _flush(self) -> None:
        self.session.flush()

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
        return gov.add_policy(self.session, asset_id, document, by, at, statement, signature)

    def get_policy(self, asset_id: str, version: int | None = None) -> PolicyVersion | None:
        return gov.get_policy(self.session, asset_id, version)

    def list_policies(self, asset_id: str) -> list[PolicyVersion]:
        return gov.list_policies(self.session, asset_id)

    def add_licence(self, licence: Licence, asset_ids: Sequence[str]) -> None:
        gov.add_licence(self.session, licence, asset_ids)
        self._flush()

    def get_licence(self, licence_id: str, *, lock: bool = False) -> Licence | None:
        return gov.get_licence(self.session, licence_id, lock=lock)

    def list_licences(
        self,
        *,
        holder_org_id: str | None = None,
        operator_org_id: str | None = None,
        asset_id: str | None = None,
        after: str | None = None,
        limit: int = 1000,
    ) -> list[Licence]:
        return gov.list_licences(
            self.session,
            holder_org_id=holder_org_id,
            operator_org_id=operator_org_id,
            asset_id=asset_id,
            after=after,
            limit=limit,
        )

    def update_licence(self, licence_id: str, **values: Any) -> None:
        gov.update_licence(self.session, licence_id, **values)

    def add_charges(self, charges: Sequence[BudgetCharge]) -> None:
        gov.add_charges(self.session, charges)

    def lock_budget(self, asset_ids: list[str]) -> None:
        gov.lock_budget(self.session, asset_ids)

    def charges(self, **filters: Any) -> list[BudgetCharge]:
        return gov.charges(self.session, **filters)

    def mark_charges(self, job_ref: str, **values: Any) -> int:
        return gov.mark_charges(self.session, job_ref, **values)

    # jobs
    def add_job(self, job: Job, holders: Mapping[str, str]) -> None:
        jobs_sql.add_job(self.session, job, holders)
        self._flush()

    def get_job(self, job_id: str) -> Job | None:
        return jobs_sql.get_job(self.session, job_id)

    def job_holders(self, job_id: str) -> dict[str, str]:
        return jobs_sql.job_holders(self.session, job_id)

    def find_job(self, operator_org_id: str, idempotency_key: str) -> Job | None:
        return jobs_sql.find_job(self.session, operator_org_id, idempotency_key)

    def list_jobs(
        self,
        *,
        operator_org_id: str | None = None,
        holder_org_id: str | None = None,
        states: Sequence[JobState] | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        return jobs_sql.list_jobs(
            self.session,
            operator_org_id=operator_org_id,
            holder_org_id=holder_org_id,
            states=states,
            after=after,
            limit=limit,
        )

    def update_job(
        self,
        job_id: str,
        expected: Sequence[JobState],
        *,
        lease_owner: str | None = None,
        **values: Any,
    ) -> bool:
        return jobs_sql.update_job(
            self.session, job_id, expected, lease_owner=lease_owner, **values
        )

    def claim_next_job(self, owner: str, now: datetime, until: datetime) -> Job | None:
        return jobs_sql.claim_next(self.session, owner, now, until)

    def expired_running_jobs(self, now: datetime) -> list[Job]:
        return jobs_sql.expired_running(self.session, now)

    def expired_approval_jobs(self, now: datetime) -> list[Job]:
        return jobs_sql.expired_approvals(self.session, now)

    # federated assets
    def add_federated(self, fed: FederatedAsset) -> None:
        jobs_sql.add_federated(self.session, fed)
        self._flush()

    def get_federated(self, fed_id: str) -> FederatedAsset | None:
        return jobs_sql.get_federated(self.session, fed_id)

    def list_federated(self, *, after: str | None, limit: int) -> list[FederatedAsset]:
        return jobs_sql.list_federated(self.session, after=after, limit=limit)

    # trace
    def append_trace(self, record: TraceRecord) -> PendingTrace:
        if self.batch is None:
            raise RuntimeError("trace entries can only be appended in a write transaction")
        return self.batch.add(record)

    def trace_size(self) -> int:
        return trace_sql.trace_size(self.session)

    def trace_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        return trace_sql.fetch_nodes(self.session, ids)

    def trace_entries(self, *, after: int | None, limit: int, **filters: Any) -> list[StoredTrace]:
        return trace_sql.trace_entries(self.session, after=after, limit=limit, **filters)

    def add_checkpoint(self, size: int, note: str, at: datetime) -> None:
        trace_sql.add_checkpoint(self.session, size, note, at)

    def latest_checkpoint(self) -> tuple[int, str] | None:
        return trace_sql.latest_checkpoint(self.session)

    def checkpoints(self, *, after_size: int | None, limit: int) -> list[tuple[int, str]]:
        return trace_sql.checkpoints(self.session, after_size=after_size, limit=limit)
