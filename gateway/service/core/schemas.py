"""Request and response bodies shared by every use case."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

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


def unusable_text(value: Any) -> bool:
    """Whether ``value`` holds, at any depth, a string with a NUL character or an unpaired
    surrogate: no store keeps either (PostgreSQL refuses NUL in text)."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(unusable_text(k) or unusable_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(unusable_text(v) for v in value)
    return False


class Strict(BaseModel):
    """Base for request bodies: unknown fields are errors; text is storable, whatever the
    transport (no NUL characters, no unpaired surrogates)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable_text(cls, value: Any) -> Any:
        if unusable_text(value):
            raise ValueError("text must not contain NUL characters or unpaired surrogates")
        return value


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None
