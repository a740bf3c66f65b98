"""Emergency suspensions and the trace as a feed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from gateway.client.transport import Transport

FEED_FILTERS = ("principal", "org", "asset_id", "action", "decision")


class SecurityApi(Transport):
    """What a security team does through the API: suspend, lift, follow the trace."""

    def suspend(self, kind: str, target_id: str, reason: str) -> Any:
        """Suspend an operator organisation (``org``), a ``principal`` or a ``licence``."""
        return self.post(
            "/v1/suspensions", {"kind": kind, "target_id": target_id, "reason": reason}
        )

    def suspensions(self, *, active: bool | None = None) -> list[Any]:
        found: list[Any] = self.get("/v1/suspensions", active=active)
        return found

    def lift_suspension(self, suspension_id: str, reason: str) -> Any:
        return self.post(f"/v1/suspensions/{suspension_id}/lift", {"reason": reason})

    def newest_entries(self, limit: int = 20, **filters: Any) -> list[Any]:
        """The newest ``limit`` entries matching ``filters``, oldest first."""
        page = self.get("/v1/audit/entries", limit=limit, order="newest", **filters)
        return list(reversed(page["items"]))

    def follow(
        self,
        *,
        after: int | None,
        poll: float = 2.0,
        stop: Callable[[], bool] = lambda: False,
        **filters: Any,
    ) -> Iterator[Any]:
        """Entries after index ``after`` as they are written, polling every ``poll``
        seconds until ``stop()`` says so."""
        cursor = None if after is None else str(after)
        while not stop():
            page = self.get("/v1/audit/entries", limit=500, cursor=cursor, **filters)
            for item in page["items"]:
                cursor = str(item["index"])
                yield item
            if not page.get("next_cursor"):
                time.sleep(poll)
