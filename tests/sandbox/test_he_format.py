"""The context bundle format and the parameter allow-list (no TenSEAL needed)."""

from __future__ import annotations

import pytest

from sandbox.he_format import (
    MAX_BUNDLE_BYTES,
    PARAMETER_SETS,
    BundleError,
    bundle_layout,
    match_parameters,
    pack_bundle,
    unpack_bundle,
)


def test_a_bundle_round_trips() -> None:
    bundle = pack_bundle(b"ckks-bytes", b"bfv")
    assert unpack_bundle(bundle) == {"ckks": b"ckks-bytes", "bfv": b"bfv"}
    assert unpack_bundle(pack_bundle(None, b"only")) == {"bfv": b"only"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not a bundle",
        b'BGHE1\n{"ckks": 3}\nabc',
        b'BGHE1\n{"ckks": 3, "bfv": 0}\nabcd',
        b'BGHE1\n{"ckks": -1, "bfv": 1}\nx',
        b'BGHE1\n{"ckks": true, "bfv": 0}\nx',
        b'BGHE1\n{"ckks": 0, "bfv": 0}\n',
        b"BGHE1\n[1, 2]\n",
        b"BGHE1\n" + b"{" * 300,
    ],
)
def test_malformed_bundles_are_refused(data: bytes) -> None:
    with pytest.raises(BundleError):
        unpack_bundle(data)


def test_a_bundle_past_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(BundleError):
        bundle_layout(pack_bundle(b"x", None), MAX_BUNDLE_BYTES + 1)


def test_only_allow_listed_parameters_match() -> None:
    ckks = PARAMETER_SETS["ckks-8192"]
    assert match_parameters("ckks", 8192, (60, 40, 40, 60), 0) is ckks
    assert match_parameters("ckks", 4096, (40, 20, 40), 0) is None
    assert match_parameters("ckks", 8192, (60, 60, 60, 60), 0) is None  # 240 bits: < 128-bit
    bfv = PARAMETER_SETS["bfv-8192"]
    assert match_parameters("bfv", 8192, bfv.coeff_mod_bit_sizes, bfv.plain_modulus) is bfv
    assert match_parameters("bfv", 8192, bfv.coeff_mod_bit_sizes, 65537) is None
    # Every allowed set stays within the standard's 128-bit bound on the modulus.
    for p in PARAMETER_SETS.values():
        limit = {8192: 218, 16384: 438}[p.poly_modulus_degree]
        assert sum(p.coeff_mod_bit_sizes) <= limit
