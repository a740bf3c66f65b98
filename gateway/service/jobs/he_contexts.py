"""HE context bundles: operators upload their public context once; jobs name it by SHA-256.

HE jobs themselves go through the one job pipeline (:mod:`gateway.service.jobs.service`)
as the kinds ``he_aggregate`` and ``he_linear`` (:mod:`gateway.service.jobs.kinds`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.domain import Actor, Role
from gateway.errors import ValidationFailed
from gateway.service.core.access import require_role
from gateway.service.core.tracing import Note, Tracer
from gateway.service.jobs.he_workspace import HeContextRefused, HeWorkspace
from gateway.service.jobs.schemas import HeContextOut
from gateway.store import Tx


class HeContexts:
    """Use cases of operators' public context bundles."""

    def __init__(self, tracer: Tracer, workspace: HeWorkspace) -> None:
        self.tracer = tracer
        self.workspace = workspace

    async def upload(
        self, actor: Actor, chunks: AsyncIterator[bytes], size: int, sha256: str
    ) -> HeContextOut:
        """Store an operator's public context bundle and check it in the sandbox."""
        require_role(actor, Role.OPERATOR)
        try:
            stored = await self.workspace.receive(chunks, size, sha256)
            schemes = await asyncio.to_thread(self.workspace.describe, sha256)
        except (HeContextRefused, ValidationFailed) as exc:
            note = Note(target={"context": sha256})
            self.tracer.deny(actor, "he.context.upload", exc, note)
            raise

        def work(tx: Tx, note: Note) -> None:
            note.target["context"] = sha256
            note.detail = {"size": size, "stored": stored, "schemes": sorted(schemes)}

        await asyncio.to_thread(self.tracer.write, actor, "he.context.upload", work)
        return HeContextOut(sha256=sha256, size=size, stored=stored, schemes=schemes)

    def context(self, actor: Actor, sha256: str) -> HeContextOut:
        """What the gateway knows of a stored bundle."""
        require_role(actor, Role.OPERATOR, Role.AUDITOR)
        schemes = self.workspace.describe(sha256)
        size = self.workspace.path(sha256).stat().st_size
        return HeContextOut(sha256=sha256, size=size, stored=False, schemes=schemes)
