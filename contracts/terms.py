"""Licence terms and their canonical byte form, which is what gets signed.

Canonical form: JSON with sorted keys, no insignificant whitespace, UTF-8, decimals as
strings (exactly as given), timestamps as RFC 3339 UTC with a ``Z`` suffix and
identifier lists sorted and de-duplicated. Parsing canonical bytes and encoding the
result again gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.errors import LicenceError

Identifier = Annotated[str, Field(min_length=1, max_length=200)]
_Ids = Annotated[tuple[Identifier, ...], Field(min_length=1, max_length=1000)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class FeeTerms(_Frozen):
    """What the operator pays: a fixed amount and a share of its revenue from the data."""

    amount: Decimal = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    revenue_share_percent: Decimal = Field(default=Decimal(0), ge=0, le=100)


class LicenceTerms(_Frozen):
    """A data-use agreement offered by a holder to an operator.

    ``epsilon_cap`` and ``job_cap`` bound the licence's whole life; ``None`` means the
    licence itself sets no cap (asset policies still do).
    """

    version: Literal[1] = 1
    licence_id: Identifier
    holder_org_id: Identifier
    operator_org_id: Identifier
    asset_ids: _Ids
    purposes: _Ids
    job_kinds: _Ids
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    epsilon_cap: Decimal | None = Field(default=None, gt=0)
    job_cap: int | None = Field(default=None, ge=1, strict=True)
    fee: FeeTerms

    @field_validator("asset_ids", "purposes", "job_kinds")
    @classmethod
    def _as_set(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(values)))

    @model_validator(mode="after")
    def _period(self) -> LicenceTerms:
        if not self.valid_from < self.valid_until:
            raise ValueError("valid_from must be before valid_until")
        return self


def rfc3339_utc(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, datetime):
        return rfc3339_utc(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def canonical_bytes(terms: LicenceTerms) -> bytes:
    """The deterministic encoding of ``terms`` that signatures cover."""
    return json.dumps(
        _plain(terms), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def terms_digest(terms: LicenceTerms) -> bytes:
    """SHA-256 of the canonical bytes (32 bytes)."""
    return hashlib.sha256(canonical_bytes(terms)).digest()


def terms_from_canonical(data: bytes) -> LicenceTerms:
    """Parse canonical bytes back into terms; anything not exactly canonical is refused."""
    try:
        terms = LicenceTerms.model_validate(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, ValidationError) as exc:
        raise LicenceError("invalid_terms", "the licence terms cannot be read") from exc
    if canonical_bytes(terms) != data:
        raise LicenceError("invalid_terms", "the licence terms are not in canonical form")
    return terms
