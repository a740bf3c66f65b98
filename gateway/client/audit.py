"""The trace: entries, checkpoints, proofs and receipts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from gateway.client.transport import Transport


class AuditApi(Transport):
    """Read the tamper-evident trace and check what the gateway says about it."""

    def log_info(self) -> Any:
        """The log's origin, verifier key and current size."""
        return self.get("/v1/audit/log")

    def verifier_key(self) -> str:
        """The trace's checkpoint verifier key, as the gateway states it."""
        key: str = self.log_info()["verifier_key"]
        return key

    def entries_page(
        self,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        action: str | None = None,
        asset_id: str | None = None,
        actor_org: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Any:
        """One page of entries in log order (``items`` and ``next_cursor``)."""
        return self.get(
            "/v1/audit/entries",
            limit=limit,
            cursor=cursor,
            action=action,
            asset_id=asset_id,
            actor_org=actor_org,
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
        )

    def entries(self, *, page_size: int = 1000, **filters: Any) -> Iterator[Any]:
        """Every entry you may read, in log order, fetched page by page."""
        cursor: str | None = None
        while True:
            page = self.entries_page(limit=page_size, cursor=cursor, **filters)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def checkpoint(self) -> Any:
        """The latest signed checkpoint."""
        return self.get("/v1/audit/checkpoint")

    def sign_checkpoint(self) -> Any:
        """Sign a checkpoint at the current size now (auditors and admins)."""
        return self.post("/v1/audit/checkpoint")

    def checkpoints(self, *, after_size: int | None = None, limit: int = 1000) -> list[Any]:
        """Stored checkpoints in order of size, ``limit`` at most, after ``after_size``."""
        found: list[Any] = self.get("/v1/audit/checkpoints", after_size=after_size, limit=limit)
        return found

    def all_checkpoints(self) -> list[Any]:
        """Every stored checkpoint in order of size."""
        found = self.checkpoints()
        while found and len(found) % 1000 == 0:
            more = self.checkpoints(after_size=found[-1]["size"])
            if not more:
                break
            found += more
        return found

    def inclusion_proof(self, index: int, size: int) -> Any:
        return self.get("/v1/audit/proofs/inclusion", index=index, size=size)

    def consistency_proof(self, from_size: int, to_size: int) -> Any:
        return self.get("/v1/audit/proofs/consistency", **{"from": from_size, "to": to_size})

    def verify_receipt(self, receipt: dict[str, Any], verifier_key: str | None = None) -> Any:
        """Check a receipt (signature, leaf hash, inclusion proof); return its checkpoint.

        Pass a ``verifier_key`` obtained out of band to not rely on the gateway for it.
        Raises :class:`contracts.tlog.errors.TraceError` on any defect.
        """
        from gateway.audit.receipt import verify_receipt

        return verify_receipt(receipt, verifier_key or self.verifier_key())
