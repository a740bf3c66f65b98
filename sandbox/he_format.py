"""The HE wire formats shared by the operator's client, the gateway and the sites.

A *context bundle* is what an operator uploads once and every job refers to by its
SHA-256: the public part of a CKKS context (real values) and of a BFV context (exact
integer counts), either of which may be absent::

    b"BGHE1\\n" + b'{"bfv": <bytes>, "ckks": <bytes>}\\n' + <ckks bytes> + <bfv bytes>

The header says how many bytes of each serialised TenSEAL context follow, in the
order ``ckks`` then ``bfv``.  Parsing the header needs no TenSEAL; the contexts
themselves are only ever deserialised inside a sandbox.

:data:`PARAMETER_SETS` is the allow-list of encryption parameters: each set gives at
least 128-bit security by the HomomorphicEncryption.org standard (total coefficient
modulus at most 218 bits for n = 8192 and 438 bits for n = 16384).  Standard library
only: the sandbox worker imports this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

MAGIC: Final = b"BGHE1\n"
MIB: Final = 1024 * 1024
MAX_BUNDLE_BYTES: Final = 256 * MIB
"""Largest context bundle accepted (n = 16384 with Galois keys is about 180 MB)."""
MAX_CIPHERTEXT_BYTES: Final = 4 * MIB
"""Largest serialised ciphertext accepted from an operator or a site."""
_MAX_HEADER_BYTES: Final = 256
SCHEMES: Final = ("ckks", "bfv")


class BundleError(ValueError):
    """The bytes are not a well-formed context bundle."""


@dataclass(frozen=True, slots=True)
class ParameterSet:
    """One allowed set of encryption parameters."""

    name: str
    scheme: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    plain_modulus: int = 0
    scale_bits: int = 0

    @property
    def slots(self) -> int:
        """Values one ciphertext holds (CKKS packs n/2, BFV batching n)."""
        return self.poly_modulus_degree // 2 if self.scheme == "ckks" else self.poly_modulus_degree


PARAMETER_SETS: Final[dict[str, ParameterSet]] = {
    p.name: p
    for p in (
        ParameterSet("ckks-8192", "ckks", 8192, (60, 40, 40, 60), scale_bits=40),
        ParameterSet("ckks-16384", "ckks", 16384, (60, 40, 40, 40, 40, 60), scale_bits=40),
        ParameterSet("bfv-8192", "bfv", 8192, (43, 43, 44, 44, 44), plain_modulus=1073692673),
        ParameterSet(
            "bfv-16384",
            "bfv",
            16384,
            (48, 48, 48, 49, 49, 49, 49, 49, 49),
            plain_modulus=1073643521,
        ),
    )
}
DEFAULT_CKKS: Final = "ckks-8192"
DEFAULT_BFV: Final = "bfv-8192"


def match_parameters(
    scheme: str, poly_modulus_degree: int, coeff_mod_bit_sizes: tuple[int, ...], plain: int
) -> ParameterSet | None:
    """The allowed set these parameters are, or ``None``."""
    for candidate in PARAMETER_SETS.values():
        if (
            candidate.scheme == scheme
            and candidate.poly_modulus_degree == poly_modulus_degree
            and candidate.coeff_mod_bit_sizes == coeff_mod_bit_sizes
            and (scheme != "bfv" or candidate.plain_modulus == plain)
        ):
            return candidate
    return None


def pack_bundle(ckks: bytes | None, bfv: bytes | None) -> bytes:
    """A bundle of the serialised public contexts (at least one)."""
    if not ckks and not bfv:
        raise BundleError("a bundle needs a CKKS or a BFV context")
    header = {"bfv": len(bfv or b""), "ckks": len(ckks or b"")}
    head = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n"
    return head + (ckks or b"") + (bfv or b"")


def bundle_layout(head: bytes, total: int) -> dict[str, tuple[int, int]]:
    """Where each context lies in a bundle of ``total`` bytes starting with ``head``.

    ``head`` needs only the first few hundred bytes.  Returns ``{scheme: (offset,
    length)}`` for the schemes present.
    """
    if total > MAX_BUNDLE_BYTES:
        raise BundleError("the bundle is larger than the limit")
    if not head.startswith(MAGIC):
        raise BundleError("not a Blindgate context bundle")
    end = head.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER_BYTES)
    if end < 0:
        raise BundleError("the bundle header is malformed")
    try:
        header = json.loads(head[len(MAGIC) : end])
    except ValueError:
        raise BundleError("the bundle header is malformed") from None
    if not isinstance(header, dict) or set(header) != set(SCHEMES):
        raise BundleError("the bundle header must name exactly ckks and bfv")
    sizes = [header[s] for s in SCHEMES]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in sizes):
        raise BundleError("the bundle header sizes must be non-negative integers")
    offset = end + 1
    if offset + sum(sizes) != total or not any(sizes):
        raise BundleError("the bundle's length does not match its header")
    layout: dict[str, tuple[int, int]] = {}
    for scheme, size in zip(SCHEMES, sizes, strict=True):
        if size:
            layout[scheme] = (offset, size)
        offset += size
    return layout


def unpack_bundle(data: bytes) -> dict[str, bytes]:
    """The serialised contexts of a bundle, by scheme."""
    layout = bundle_layout(data[: len(MAGIC) + _MAX_HEADER_BYTES], len(data))
    return {scheme: data[start : start + size] for scheme, (start, size) in layout.items()}
