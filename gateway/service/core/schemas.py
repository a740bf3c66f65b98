"""Request and response bodies shared by every use case."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$"
    ),
]
"""A display name: no control characters (no line breaks, no NUL)."""


Text = Annotated[str, StringConstraints(max_length=4000)]


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


T = TypeVar("T")


class Strict(BaseModel):
    """Base for request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
