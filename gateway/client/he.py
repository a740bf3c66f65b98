"""The operator's HE keys: TenSEAL contexts created and kept in the operator's process.

:class:`HeKeys` holds a CKKS context (real values) and a BFV context (exact integer
counts), both with their secret keys.  Only :meth:`HeKeys.public_bundle` leaves the
process: the public contexts (public, relinearisation and Galois keys, never the
secret key) packed as one bundle the gateway and sites cache by its SHA-256.
Results come back as ciphertexts and are decrypted here.

Example::

    keys = HeKeys.create()                 # CKKS n=8192 and BFV n=8192
    bundle = keys.public_bundle()          # about 38 MB, uploaded once
    w, ww = keys.encrypt_weights([0.5, -1.0, 2.0])
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from sandbox.he_format import (
    DEFAULT_BFV,
    DEFAULT_CKKS,
    PARAMETER_SETS,
    ParameterSet,
    pack_bundle,
)


def _tenseal() -> Any:
    try:
        import tenseal
    except ImportError as exc:  # pragma: no cover - depends on the platform's wheels
        raise RuntimeError(
            "HE jobs need TenSEAL (pip install tenseal; wheels exist for CPython 3.11)"
        ) from exc
    return tenseal


class HeKeys:
    """An operator's CKKS and BFV contexts; the secret keys never leave this object."""

    def __init__(self, ckks: Any, bfv: Any, ckks_set: ParameterSet, bfv_set: ParameterSet):
        self._ckks = ckks
        self._bfv = bfv
        self.ckks_parameters = ckks_set
        self.bfv_parameters = bfv_set
        self._bundle: bytes | None = None

    @classmethod
    def create(
        cls,
        ckks: str = DEFAULT_CKKS,
        bfv: str = DEFAULT_BFV,
        *,
        galois_keys: bool = True,
    ) -> HeKeys:
        """New contexts from the allow-listed parameter sets ``ckks`` and ``bfv``.

        Galois keys (about 35 MB at n=8192) are needed for encrypted model evaluation
        (``he_linear``); an ``he_aggregate``-only operator may leave them out.
        """
        ts = _tenseal()
        cset, bset = PARAMETER_SETS.get(ckks), PARAMETER_SETS.get(bfv)
        if cset is None or cset.scheme != "ckks":
            raise ValueError(f"unknown CKKS parameter set {ckks!r}; see PARAMETER_SETS")
        if bset is None or bset.scheme != "bfv":
            raise ValueError(f"unknown BFV parameter set {bfv!r}; see PARAMETER_SETS")
        real = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=cset.poly_modulus_degree,
            coeff_mod_bit_sizes=list(cset.coeff_mod_bit_sizes),
        )
        real.global_scale = float(2**cset.scale_bits)
        if galois_keys:
            real.generate_galois_keys()
        exact = ts.context(
            ts.SCHEME_TYPE.BFV,
            poly_modulus_degree=bset.poly_modulus_degree,
            plain_modulus=bset.plain_modulus,
            coeff_mod_bit_sizes=list(bset.coeff_mod_bit_sizes),
        )
        return cls(real, exact, cset, bset)

    def public_bundle(self) -> bytes:
        """The public contexts as one bundle (no secret key); computed once."""
        if self._bundle is None:
            ckks = self._ckks.serialize(save_secret_key=False)
            bfv = self._bfv.serialize(save_secret_key=False)
            self._bundle = pack_bundle(ckks, bfv)
        return self._bundle

    @property
    def bundle_sha256(self) -> str:
        """The SHA-256 jobs name the bundle by."""
        return hashlib.sha256(self.public_bundle()).hexdigest()

    # encryption --------------------------------------------------------------------------
    def encrypt_weights(self, weights: Sequence[float]) -> tuple[str, str]:
        """``Enc(w)`` and ``Enc(vec(w wᵀ))`` as base64, for an ``he_linear`` job."""
        ts = _tenseal()
        w = [float(v) for v in weights]
        if not w:
            raise ValueError("weights must not be empty")
        outer = [a * b for a in w for b in w]
        first = ts.ckks_vector(self._ckks, w).serialize()
        second = ts.ckks_vector(self._ckks, outer).serialize()
        return base64.b64encode(first).decode(), base64.b64encode(second).decode()

    # decryption --------------------------------------------------------------------------
    def decrypt_ckks(self, text: str) -> list[float]:
        """Decrypt a base64 CKKS ciphertext from a result."""
        ts = _tenseal()
        vector = ts.ckks_vector_from(self._ckks, base64.b64decode(text, validate=True))
        return [float(v) for v in vector.decrypt()]

    def decrypt_bfv(self, text: str) -> list[int]:
        """Decrypt a base64 BFV ciphertext from a result."""
        ts = _tenseal()
        vector = ts.bfv_vector_from(self._bfv, base64.b64decode(text, validate=True))
        return [int(v) for v in vector.decrypt()]


def decode_aggregate(keys: HeKeys, result: dict[str, Any]) -> dict[str, Any]:
    """Decrypt an ``he_aggregate`` result: per released group, per column, noisy totals.

    Returns ``{"groups": [{"key": [...], "count": n, "people": p, "columns": {c: {"sum":
    s, "sum_of_squares": q, "mean": s / n}}}], "epsilon_spent": ..., "receipt": ...}``.
    """
    he = result["he"]
    counts = keys.decrypt_bfv(he["ciphertexts"]["counts"])
    cells = keys.decrypt_ckks(he["ciphertexts"]["sums"]) if "sums" in he["ciphertexts"] else []
    groups = len(he["keys"])
    columns = he["columns"]
    half = len(columns) * groups
    out = []
    for g in he["released"]:
        count = counts[g]
        per: dict[str, dict[str, float | None]] = {}
        for j, name in enumerate(columns):
            total = cells[j * groups + g]
            per[name] = {
                "sum": total,
                "sum_of_squares": cells[half + j * groups + g],
                "mean": total / count if count > 0 else None,
            }
        out.append(
            {"key": he["keys"][g], "count": count, "people": he["people"][str(g)], "columns": per}
        )
    return {
        "groups": out,
        "group_columns": he["groups"],
        "epsilon_spent": result["epsilon_spent"],
        "charges": he["charges"],
        "receipt": result.get("receipt"),
    }


def decode_linear(keys: HeKeys, result: dict[str, Any]) -> dict[str, Any]:
    """Decrypt an ``he_linear`` result: noisy sum of scores, of squared residuals, rows."""
    he = result["he"]
    base = {"epsilon_spent": result["epsilon_spent"], "receipt": result.get("receipt")}
    if he.get("suppressed"):
        return {**base, "suppressed": True}
    texts = he["ciphertexts"]
    score = keys.decrypt_ckks(texts["score_sum"])[0]
    residual = keys.decrypt_ckks(texts["squared_residual_sum"])[0]
    rows = keys.decrypt_ckks(texts["rows"])[0]
    return {
        **base,
        "suppressed": False,
        "score_sum": score,
        "squared_residual_sum": residual,
        "rows": rows,
        "mean_score": score / rows if rows > 0 else None,
        "mean_squared_error": residual / rows if rows > 0 else None,
        "charges": he["charges"],
    }
