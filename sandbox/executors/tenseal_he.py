"""``tenseal_he``: homomorphic-encryption steps, run inside the sandbox.

Everything an operator supplies (the public context bundle, encrypted weights) and
every ciphertext a site returns is deserialised here and nowhere else.  The program
is one JSON object whose ``op`` is:

``inspect``
    Check the bundle in ``<input>/data``: well formed, no secret key, parameters from
    the allow-list.  Answers ``verdict`` (``ok`` or the refusal) and each scheme's
    parameters; never fails on a bad bundle, so the caller can say why.
``aggregate`` (at a site)
    Per group (the product of operator-named, public key lists) and per column: row
    count, sum and sum of squares of the clipped value, over rows bounded to ``c`` per
    privacy unit.  Counts are encrypted with BFV, sums and squares with CKKS, under the
    operator's public context.  The number of distinct units per group is returned in
    plaintext, for the gateway's group-size threshold.
``linear`` (at a site)
    Encrypted model evaluation.  From the clipped, bounded rows the site forms the
    sufficient statistics ``n, Σx, Σxy, ΣxxT, Σy²`` in plaintext inside the sandbox
    and returns only ``Enc(w·Σx)`` (sum of scores), ``Enc(Σy² - 2w·Σxy + vec(wwT)·
    vec(ΣxxT))`` (sum of squared residuals) and ``Enc(n)``, computed from the
    operator's encrypted ``w`` and ``wwT`` (one plaintext multiplication deep).
``combine_aggregate`` / ``combine_linear`` (at the gateway)
    Add the sites' ciphertexts, add the gateway's differential-privacy noise (drawn
    outside, with OpenDP) and zero the groups below the size threshold.

Outputs are a two-column table ``name, value``; ciphertexts are base64 text.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from sandbox.executors.base import FragmentError, WorkerContext, table_document
from sandbox.he_format import (
    MAX_CIPHERTEXT_BYTES,
    BundleError,
    ParameterSet,
    bundle_layout,
    match_parameters,
)

MAX_GROUPS = 4096
MAX_FEATURES = 32
OPS = ("inspect", "aggregate", "linear", "combine_aggregate", "combine_linear")
_COMPARE = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _bad(kind: str) -> FragmentError:
    return FragmentError("bad_input", kind)


def _ident(name: object) -> str:
    if not isinstance(name, str) or not name or len(name) > 256:
        raise _bad("BadColumnName")
    return '"' + name.replace('"', '""') + '"'


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("NotANumber")
    result = float(value)
    if not math.isfinite(result):
        raise _bad("NotFinite")
    return result


def _int(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad("BadInteger")
    return value


def _list(value: object, limit: int) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise _bad("BadList")
    return value


def _added(values: list[Any], noise: object, size: int, *, integer: bool) -> list[Any]:
    """``values`` plus the agent's noise vector (which must have ``size`` finite entries)."""
    drawn = _list(noise, size)
    if len(drawn) != size or len(values) != size:
        raise _bad("BadNoise")
    if integer:
        return [int(v) + _int(e, -(2**52), 2**52) for v, e in zip(values, drawn, strict=True)]
    return [float(v) + _number(e) for v, e in zip(values, drawn, strict=True)]


def _scalar(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    return _number(value)


def _decode(text: object) -> bytes:
    if not isinstance(text, str) or len(text) > MAX_CIPHERTEXT_BYTES * 4 // 3 + 4:
        raise _bad("CiphertextTooLarge")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("BadBase64") from None


def _encode(vector: Any) -> str:
    return base64.b64encode(vector.serialize()).decode("ascii")


class Executor:
    """Loads TenSEAL (and DuckDB for the site steps); runs one HE step."""

    def __init__(self, context: WorkerContext) -> None:
        import tenseal
        import tenseal.sealapi  # registers SEAL's parameter types

        self._ts = tenseal
        self._context = context
        self._contexts: dict[str, Any] = {}
        self._sets: dict[str, ParameterSet] = {}
        # Loaded before the fragment arrives, so a pre-started sandbox has them ready.
        self._verdict = self._load() if context.input_dir is not None else "malformed"
        self._con: Any = None
        try:
            from sandbox.executors.duckdb_sql import open_asset

            self._con = open_asset(context)
        except Exception:  # reported when a site step needs the asset
            self._con = None

    # entry ---------------------------------------------------------------------------------
    def run(self, program: str) -> str:
        try:
            spec = json.loads(program)
        except ValueError:
            raise _bad("BadProgram") from None
        if not isinstance(spec, dict) or spec.get("op") not in OPS:
            raise _bad("UnknownOp")
        op = spec["op"]
        if op == "inspect":
            return self._table(self._inspect())
        if self._verdict != "ok":
            raise _bad("ContextRefused")
        steps: dict[str, Callable[[dict[str, Any]], list[tuple[str, str]]]] = {
            "aggregate": self._aggregate,
            "linear": self._linear,
            "combine_aggregate": self._combine_aggregate,
            "combine_linear": self._combine_linear,
        }
        try:
            return self._table(steps[op](spec))
        except FragmentError:
            raise
        except (ValueError, TypeError, RuntimeError, KeyError, IndexError) as exc:
            raise _bad(type(exc).__name__) from None

    def _table(self, rows: list[tuple[str, str]]) -> str:
        return table_document(("name", "value"), ("VARCHAR", "VARCHAR"), rows, self._out())

    def _out(self) -> int:
        return self._context.output_bytes

    # the context bundle --------------------------------------------------------------------
    def _parts(self) -> Iterator[tuple[str, bytes]]:
        """Each serialised context of the bundle in ``<input>/data``, read one at a time."""
        if self._context.input_dir is None:
            raise BundleError("no bundle")
        path = os.path.join(self._context.input_dir, "data")
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                layout = bundle_layout(handle.read(512), size)
                for scheme, (offset, length) in layout.items():
                    handle.seek(offset)
                    raw = handle.read(length)
                    if len(raw) != length:
                        raise BundleError("the bundle is shorter than its header says")
                    yield scheme, raw
        except OSError:
            raise BundleError("the bundle cannot be read") from None

    def _load(self) -> str:
        """Deserialise and check the bundle; ``ok`` or the reason it is refused."""
        try:
            return self._check(self._parts())
        except BundleError:
            return "malformed"

    def _check(self, parts: Iterator[tuple[str, bytes]]) -> str:
        ts = self._ts
        for scheme, raw in parts:
            try:
                ctx = ts.context_from(raw, n_threads=max(1, self._context.threads))
            except Exception:
                return "malformed"
            del raw
            try:
                if ctx.has_secret_key() or ctx.is_private():
                    return "secret_key"
                data = ctx.seal_context().data.key_context_data()
                parms = data.parms()
                found = str(parms.scheme()).rsplit(".", 1)[-1].lower()
                bits = tuple(int(m.bit_count()) for m in parms.coeff_modulus())
                plain = int(parms.plain_modulus().value()) if found == "bfv" else 0
                allowed = match_parameters(found, int(parms.poly_modulus_degree()), bits, plain)
            except Exception:
                return "malformed"
            if found != scheme:
                return "scheme_mismatch"
            if allowed is None:
                return "parameters_not_allowed"
            if scheme == "ckks" and ctx.global_scale != float(2**allowed.scale_bits):
                return "parameters_not_allowed"
            self._contexts[scheme] = ctx
            self._sets[scheme] = allowed
        return "ok"

    def _inspect(self) -> list[tuple[str, str]]:
        rows = [("verdict", self._verdict)]
        if self._verdict == "ok":
            for scheme, ctx in sorted(self._contexts.items()):
                described = {
                    "parameters": self._sets[scheme].name,
                    "galois_keys": bool(ctx.has_galois_keys()),
                    "relin_keys": bool(ctx.has_relin_keys()),
                }
                rows.append((scheme, json.dumps(described, sort_keys=True)))
        return rows

    def _ctx(self, scheme: str) -> Any:
        ctx = self._contexts.get(scheme)
        if ctx is None:
            raise _bad("SchemeMissing")
        return ctx

    def _ckks(self, text: object, size: int) -> Any:
        vector = self._ts.ckks_vector_from(self._ctx("ckks"), _decode(text))
        if vector.size() != size:
            raise _bad("CiphertextShape")
        return vector

    def _bfv(self, text: object, size: int) -> Any:
        vector = self._ts.bfv_vector_from(self._ctx("bfv"), _decode(text))
        if vector.size() != size:
            raise _bad("CiphertextShape")
        return vector

    # the site's data -----------------------------------------------------------------------
    @staticmethod
    def _clipped(item: object, alias: str) -> str:
        if not isinstance(item, dict):
            raise _bad("BadColumn")
        column = _ident(item.get("name"))
        lower, upper = _number(item.get("lower")), _number(item.get("upper"))
        if lower > upper:
            raise _bad("BadBounds")
        value = f"TRY_CAST({column} AS DOUBLE)"
        return (
            f"CASE WHEN {value} IS NULL THEN 0.0 "
            f"ELSE LEAST(GREATEST({value}, {lower!r}), {upper!r}) END AS {alias}"
        )

    def _aggregate(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        columns = _list(spec.get("columns"), 64)
        groups = _list(spec.get("groups", []), 4)
        index_terms, params_keys, stride = [], [], 1
        for group in reversed(groups):
            if not isinstance(group, dict):
                raise _bad("BadGroup")
            column = _ident(group.get("name"))
            keys = _list(group.get("values"), MAX_GROUPS)
            if not keys:
                raise _bad("BadGroup")
            cases = " ".join(f"WHEN {column} = ? THEN {i}" for i in range(len(keys)))
            index_terms.append(f"(CASE {cases} END) * {stride}")
            params_keys.append([_scalar(k) for k in keys])
            stride *= len(keys)
            if stride > MAX_GROUPS:
                raise _bad("TooManyGroups")
        count = stride
        width = 2 * len(columns) * count
        if width > self._slots("ckks") or count > self._slots("bfv") // 2:
            raise _bad("TooManyCells")
        index = " + ".join(index_terms) if index_terms else "0"
        values = [self._clipped(c, f"__v{j}") for j, c in enumerate(columns)]
        # Key parameters come first in the SELECT list, so they lead the parameter list.
        key_params = [k for keys in params_keys for k in keys]
        relation = self._rows_with(spec, values, f"{index} AS __g", key_params)
        sums = ", ".join(f"SUM(__v{j}), SUM(__v{j} * __v{j})" for j in range(len(columns)))
        sql = (
            "SELECT __g, COUNT(*), COUNT(DISTINCT __u)"  # noqa: S608
            + (f", {sums}" if sums else "")
            + " FROM bounded WHERE __g IS NOT NULL GROUP BY __g"
        )
        counts, units = [0] * count, [0] * count
        cells = [0.0] * width
        half = len(columns) * count
        for row in relation.execute(sql).fetchall():
            g = int(row[0])
            counts[g], units[g] = int(row[1]), int(row[2])
            for j in range(len(columns)):
                cells[j * count + g] = float(row[3 + 2 * j] or 0.0)
                cells[half + j * count + g] = float(row[4 + 2 * j] or 0.0)
        # The site's own noise, drawn by its agent, is added before anything is encrypted:
        # nothing exact about this partition leaves the sandbox.
        noise = spec.get("noise")
        if not isinstance(noise, dict):
            raise _bad("NoNoise")
        units = _added(units, noise.get("units"), count, integer=True)
        counts = _added(counts, noise.get("counts"), count, integer=True)
        cells = _added(cells, noise.get("cells"), width, integer=False)
        ts = self._ts
        rows = [("counts", _encode(ts.bfv_vector(self._ctx("bfv"), counts)))]
        if columns:
            rows.append(("sums", _encode(ts.ckks_vector(self._ctx("ckks"), cells))))
        rows.append(("units", json.dumps(units)))
        return rows

    def _rows_with(
        self, spec: dict[str, Any], values: list[str], extra: str, key_params: list[object]
    ) -> Any:
        """Register the bounded selection as the table ``bounded`` and return the connection."""
        import duckdb

        from sandbox.executors.duckdb_sql import error_reason, open_asset

        unit = _ident(spec.get("unit"))
        bound = _int(spec.get("max_rows_per_unit"), 1, 1000)
        conditions, params = ["TRUE"], list(key_params)
        for item in _list(spec.get("where", []), 32):
            if not isinstance(item, dict) or set(item) != {"column", "op", "value"}:
                raise _bad("BadCondition")
            column, op = _ident(item["column"]), item["op"]
            if op == "in":
                options = _list(item["value"], 1000)
                if not options:
                    raise _bad("BadCondition")
                conditions.append(f"{column} IN ({', '.join('?' for _ in options)})")
                params.extend(_scalar(v) for v in options)
            elif op in _COMPARE:
                conditions.append(f"{column} {_COMPARE[op]} ?")
                params.append(_scalar(item["value"]))
            else:
                raise _bad("BadCondition")
        selected = ", ".join(
            [f"{unit} AS __u", *([extra] if extra else []), *values, "random() AS __r"]
        )
        where = " AND ".join([f"{unit} IS NOT NULL", *conditions])
        having = "__g IS NOT NULL" if extra else "TRUE"
        sql = (
            f"CREATE TEMP TABLE bounded AS WITH sel AS (SELECT {selected} FROM asset "  # noqa: S608
            f"WHERE {where}) SELECT * FROM sel WHERE {having} QUALIFY ROW_NUMBER() "
            f"OVER (PARTITION BY __u ORDER BY __r) <= {bound}"
        )
        try:
            con = self._con if self._con is not None else open_asset(self._context)
            self._con = None  # one step per sandbox
            con.execute(sql, params)
        except duckdb.Error as exc:
            raise error_reason(exc) from None
        return con

    def _slots(self, scheme: str) -> int:
        self._ctx(scheme)
        return self._sets[scheme].slots

    def _linear(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        import numpy as np

        features = _list(spec.get("features"), MAX_FEATURES)
        if not features:
            raise _bad("NoFeatures")
        d = len(features)
        w = self._ckks(spec.get("weights"), d)
        ww = self._ckks(spec.get("weights_outer"), d * d)
        values = [self._clipped(f, f"__x{j}") for j, f in enumerate(features)]
        values.append(self._clipped(spec.get("label"), "__y"))
        con = self._rows_with(spec, values, "", [])
        names = ", ".join([*(f"__x{j}" for j in range(d)), "__y"])
        data = con.execute(f"SELECT {names} FROM bounded").fetchnumpy()  # noqa: S608
        units = int(con.execute("SELECT COUNT(DISTINCT __u) FROM bounded").fetchone()[0])
        x = np.column_stack([np.asarray(data[f"__x{j}"], dtype=np.float64) for j in range(d)])
        y = np.asarray(data["__y"], dtype=np.float64)
        noise = spec.get("noise")
        if not isinstance(noise, dict):
            raise _bad("NoNoise")
        # The site's own noise on the sufficient statistics, before the encrypted model sees
        # them: the released numbers are functions of noised statistics whatever the weights.
        n = float(len(y)) + _number(noise.get("n"))
        sx = x.sum(axis=0) + np.asarray(_added([0.0] * d, noise.get("x"), d, integer=False))
        sxy = x.T @ y + np.asarray(_added([0.0] * d, noise.get("xy"), d, integer=False))
        gram = x.T @ x + np.asarray(
            _added([0.0] * (d * d), noise.get("gram"), d * d, integer=False)
        ).reshape(d, d)
        syy = float(y @ y) + _number(noise.get("yy"))
        units = _added([units], noise.get("units"), 1, integer=True)[0]
        ts = self._ts
        scores = w.dot(sx.tolist())
        residuals = ww.dot(gram.reshape(-1).tolist()) - w.dot((2.0 * sxy).tolist()) + syy
        rows = ts.ckks_vector(self._ctx("ckks"), [n])
        return [
            ("score_sum", _encode(scores)),
            ("squared_residual_sum", _encode(residuals)),
            ("rows", _encode(rows)),
            ("units", json.dumps([units])),
        ]

    # the gateway's combination --------------------------------------------------------------
    def _combine_aggregate(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        count = _int(spec.get("groups"), 1, MAX_GROUPS)
        width = _int(spec.get("cells"), 0, self._slots("ckks") if spec.get("cells") else 0)
        parts = _list(spec.get("parts"), 64)
        mask = [_int(m, 0, 1) for m in _list(spec.get("mask"), MAX_GROUPS)]
        noise_counts = [_int(v, -(2**40), 2**40) for v in _list(spec.get("noise_counts"), count)]
        noise_cells = [_number(v) for v in _list(spec.get("noise_cells"), width)]
        if not parts or len(mask) != count or len(noise_counts) != count:
            raise _bad("BadCombine")
        if len(noise_cells) != width:
            raise _bad("BadCombine")
        counts = self._bfv(parts[0].get("counts"), count)
        for part in parts[1:]:
            counts += self._bfv(part.get("counts"), count)
        counts = (counts + noise_counts) * mask
        rows = [("counts", _encode(counts))]
        if width:
            cells = self._ckks(parts[0].get("sums"), width)
            for part in parts[1:]:
                cells += self._ckks(part.get("sums"), width)
            repeat = width // count
            cells = (cells + noise_cells) * [float(mask[i % count]) for i in range(repeat * count)]
            rows.append(("sums", _encode(cells)))
        return rows

    def _combine_linear(self, spec: dict[str, Any]) -> list[tuple[str, str]]:
        d = _int(spec.get("features"), 1, MAX_FEATURES)
        parts = _list(spec.get("parts"), 64)
        noise = spec.get("noise")
        if not parts or not isinstance(noise, dict):
            raise _bad("BadCombine")
        w = self._ckks(spec.get("weights"), d)
        ww = self._ckks(spec.get("weights_outer"), d * d)
        nx = [_number(v) for v in _list(noise.get("x"), d)]
        nxy = [2.0 * _number(v) for v in _list(noise.get("xy"), d)]
        ngram = [_number(v) for v in _list(noise.get("gram"), d * d)]
        if len(nx) != d or len(nxy) != d or len(ngram) != d * d:
            raise _bad("BadCombine")
        totals = {}
        for name in ("score_sum", "squared_residual_sum", "rows"):
            total = self._ckks(parts[0].get(name), 1)
            for part in parts[1:]:
                total += self._ckks(part.get(name), 1)
            totals[name] = total
        scores = totals["score_sum"] + w.dot(nx)
        residuals = (
            totals["squared_residual_sum"] + ww.dot(ngram) - w.dot(nxy) + _number(noise.get("yy"))
        )
        rows = totals["rows"] + _number(noise.get("n"))
        return [
            ("score_sum", _encode(scores)),
            ("squared_residual_sum", _encode(residuals)),
            ("rows", _encode(rows)),
        ]
