"""RFC 8785 JSON Canonicalization Scheme (JCS).

``canonical_json`` turns a JSON-compatible Python value into the unique byte string that
RFC 8785 assigns to it, so that two parties holding the same logical entry hash the same
bytes. Accepted values are ``None``, ``bool``, ``int`` within the I-JSON safe range
``[-(2**53 - 1), 2**53 - 1]``, finite ``float``, ``str`` (valid Unicode scalar values only),
``list``/``tuple`` and ``dict`` with ``str`` keys. Anything else raises ``EntryError``
(a ``ValueError``).

``loads_strict`` is the matching reader: standard JSON, but duplicate object keys and the
non-standard ``NaN``/``Infinity`` literals are rejected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from contracts.tlog.errors import EntryError

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer that every JSON implementation (IEEE 754 doubles) represents exactly."""

MAX_DEPTH = 128
"""Deepest nesting of arrays and objects accepted, to bound recursion."""

_ESCAPE_RE = re.compile(r'["\\\x00-\x1f]')
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
for _code in range(0x20):
    _ESCAPES.setdefault(chr(_code), f"\\u{_code:04x}")
del _code


def canonical_json(value: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``value``.

    Guarantees: the output has no insignificant whitespace, object members sorted by the
    UTF-16 code units of their names, strings escaped exactly as RFC 8785 §3.2.2.2 requires
    and numbers formatted as ECMAScript ``Number.prototype.toString`` would. Equal JSON values
    (``-0.0`` and ``0``, ``1.0`` and ``1``, tuples and lists) give equal bytes.

    Raises ``EntryError`` for values that have no I-JSON representation.
    """
    parts: list[str] = []
    _encode(value, parts, 0)
    text = "".join(parts)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EntryError("string contains a lone surrogate, which is not valid Unicode") from exc


def format_number(value: float | int) -> str:
    """Format a number as ECMAScript ``Number.prototype.toString`` does (RFC 8785 §3.2.2.3).

    Integers must lie in the I-JSON safe range; floats must be finite. ``-0.0`` gives ``"0"``.
    """
    if isinstance(value, bool):
        raise EntryError("a boolean is not a number")
    if isinstance(value, int):
        number = int(value)
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return str(number)
        raise EntryError(f"integer {number} is outside the I-JSON range ±(2**53 - 1)")
    return _format_float(float(value))


def _format_float(value: float) -> str:
    if not math.isfinite(value):
        raise EntryError(f"{value!r} has no JSON representation")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() yields the shortest digit string that round-trips, choosing the nearest
    # candidate, which is the digit selection ECMAScript prescribes.
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = int_part + frac_part
    point = len(int_part) + (int(exp_text) if exp_text else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    exponent = f"e{'+' if n >= 1 else '-'}{abs(n - 1)}"
    if k == 1:
        return sign + digits + exponent
    return sign + digits[0] + "." + digits[1:] + exponent


def _escape_char(match: re.Match[str]) -> str:
    return _ESCAPES[match.group(0)]


def _encode_string(text: str) -> str:
    return '"' + _ESCAPE_RE.sub(_escape_char, text) + '"'


def _utf16_key(name: str) -> bytes:
    try:
        return name.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise EntryError("object member name contains a lone surrogate") from exc


def _encode(value: object, out: list[str], depth: int) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_string(value))
    elif isinstance(value, int | float):
        out.append(format_number(value))
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise EntryError(f"nesting deeper than {MAX_DEPTH} levels")
        for name in value:
            if not isinstance(name, str):
                raise EntryError(f"object member name {name!r} is not a string")
        out.append("{")
        first = True
        for name in sorted(value, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(name))
            out.append(":")
            _encode(value[name], out, depth + 1)
        out.append("}")
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise EntryError(f"nesting deeper than {MAX_DEPTH} levels")
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _encode(item, out, depth + 1)
        out.append("]")
    else:
        raise EntryError(f"values of type {type(value).__name__} have no JSON representation")


def _reject_constant(name: str) -> Any:
    raise EntryError(f"{name} is not valid JSON")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, item in pairs:
        if name in result:
            raise EntryError(f"duplicate object member {name!r}")
        result[name] = item
    return result


def _parse_int(text: str) -> int | float:
    if len(text) <= 17:
        number = int(text)
        if -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return number
    return float(text)


_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_members,
    parse_constant=_reject_constant,
    parse_int=_parse_int,
)
_decode: Callable[[str], Any] = _DECODER.decode


def loads_strict(text: str) -> Any:
    """Parse one JSON text, rejecting duplicate member names and NaN/Infinity literals.

    Integers outside the I-JSON safe range are read as IEEE 754 doubles, as every JSON
    implementation built on doubles reads them; so ``canonical_json(loads_strict(t))`` is
    defined for every text ``canonical_json`` can produce.

    Raises ``EntryError`` on any syntax error or rejected construct.
    """
    try:
        return _decode(text)
    except EntryError:
        raise
    except (ValueError, RecursionError) as exc:
        raise EntryError(f"invalid JSON: {exc}") from exc
