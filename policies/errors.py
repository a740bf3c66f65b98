"""Errors raised while reading a policy document, each located in the source text."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

PathSegment = str | int
Path = tuple[PathSegment, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def render_path(path: Path) -> str:
    """Dotted form of a document path: ``columns.age.control``, ``jobs.time_windows[0].start``.

    Names that are not plain identifiers are quoted: ``columns["出院 日期"].control``.
    """
    out: list[str] = []
    for segment in path:
        if isinstance(segment, int):
            out.append(f"[{segment}]")
        elif _IDENTIFIER.match(segment):
            out.append(f".{segment}" if out else segment)
        else:
            out.append(f"[{json.dumps(segment, ensure_ascii=False)}]")
    return "".join(out)


def json_pointer(path: Path) -> str:
    """RFC 6901 JSON pointer for a document path (``""`` is the whole document)."""
    return "".join("/" + str(segment).replace("~", "~0").replace("/", "~1") for segment in path)


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy document; ``line`` and ``column`` are 1-based."""

    line: int
    column: int
    path: str
    pointer: str
    message: str

    def __str__(self) -> str:
        where = f" {self.path}" if self.path else ""
        return f"{self.line}:{self.column}{where}: {self.message}"


class PolicyDocumentError(ValueError):
    """A policy document could not be loaded; ``issues`` lists every problem found."""

    code = "policy_document_invalid"

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues: tuple[PolicyIssue, ...] = tuple(
            sorted(issues, key=lambda issue: (issue.line, issue.column, issue.path))
        )
        summary = "; ".join(str(issue) for issue in self.issues[:5])
        more = len(self.issues) - 5
        if more > 0:
            summary += f"; and {more} more"
        super().__init__(f"invalid policy document: {summary}")
