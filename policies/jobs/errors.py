"""Structured refusals of SQL aggregate jobs: every reason has a stable code and a fix.

A job is refused at one of three stages: analysis of the operator's SQL
(:class:`AnalysisError`), planning the per-site fragments under the policy's parameters
(:class:`PlanError`) or releasing the combined result (:class:`ReleaseError`). Each
carries every reason found, not only the first, so an operator can fix a query in one go.
Messages and constructs quote only the operator's own query and the asset's schema, never
data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from policies import ColumnUse

#: Longest construct quoted back in a reason.
_CONSTRUCT_MAX: Final = 120


@dataclass(frozen=True, slots=True)
class Refusal:
    """One reason a job is refused: ``code`` is stable, ``construct`` the offending part."""

    code: str
    construct: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "construct": self.construct,
            "message": self.message,
            "fix": self.fix,
        }


def clip_construct(text: str) -> str:
    """A construct shortened for quoting in a reason."""
    text = " ".join(text.split())
    if len(text) <= _CONSTRUCT_MAX:
        return text
    return text[: _CONSTRUCT_MAX - 1] + "…"


class Refusals:
    """An ordered collector of refusals; one per code and construct."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str], Refusal] = {}

    def add(self, code: str, construct: str, message: str, fix: str) -> None:
        item = Refusal(code, clip_construct(construct), message, fix)
        self._items.setdefault((item.code, item.construct), item)

    def extend(self, items: Iterable[Refusal]) -> None:
        for item in items:
            self._items.setdefault((item.code, item.construct), item)

    def items(self) -> tuple[Refusal, ...]:
        return tuple(self._items.values())

    def __bool__(self) -> bool:
        return bool(self._items)


class JobError(Exception):
    """Root of the refusals of this package; ``reasons`` is never empty."""

    stage: str = "job"

    def __init__(
        self, reasons: Iterable[Refusal], *, column_uses: Iterable[ColumnUse] = ()
    ) -> None:
        self.reasons: tuple[Refusal, ...] = tuple(reasons)
        if not self.reasons:
            raise ValueError("a refusal needs at least one reason")
        self.column_uses: tuple[ColumnUse, ...] = tuple(column_uses)
        super().__init__("; ".join(f"{r.code}: {r.message}" for r in self.reasons))

    @property
    def codes(self) -> tuple[str, ...]:
        """The reason codes, in order, without repeats."""
        return tuple(dict.fromkeys(reason.code for reason in self.reasons))

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "reasons": [reason.to_dict() for reason in self.reasons]}


class AnalysisError(JobError):
    """The SQL is refused before any policy is consulted.

    ``column_uses`` holds the column uses found before the refusal (best effort), so a
    refusal can still be traced with the columns it touched.
    """

    stage = "analysis"


class PlanError(JobError):
    """The analysed query cannot be planned under the policy's parameters."""

    stage = "plan"


class ReleaseError(JobError):
    """The combined result cannot be released under the policy's parameters."""

    stage = "release"
