"""Running an HE job: context to the sites, encrypted steps, noise, combination.

What each party learns
    *Sites* see the operator's public context and, for ``he_linear``, the encrypted
    weights; they learn nothing of the model or of other sites.  *The gateway* sees
    ciphertexts it cannot decrypt, plus each site's number of distinct people per group
    (in plaintext): the group-size threshold cannot be evaluated on ciphertexts under the
    operator's key without the operator's secret key, so the gateway compares a noisy
    total count of people with the policy's minimum (as for SQL jobs).  These counts are
    never released or traced.  *The operator* decrypts only totals over all sites, with
    differential-privacy noise the gateway added homomorphically, and only for groups
    whose noisy count of people reached the minimum.

Noise (all drawn with OpenDP; ε split equally over the noisy quantities)
    ``he_aggregate``: per group, counts (discrete Laplace, sensitivity ``c``), and per
    column sums and sums of squares (Laplace, ``c·max|bound|`` and ``c·max bound²``).
    ``he_linear``: noise is added to the sufficient statistics ``n, Σx, Σxy, ΣxxT, Σy²``
    (each block with its own L1 sensitivity), by adding ``w·N_x``, ``vec(wwT)·vec(N_G) -
    2w·N_xy + N_yy`` and ``N_n`` to the encrypted results.  The released numbers are thus
    a function of noised statistics whatever weights the operator sent, so the privacy
    guarantee does not depend on the (encrypted, unseen) model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from gateway.domain import Asset, Job, Site
from gateway.service.jobs.he import HeJobs, HePlan
from gateway.service.jobs.he_workspace import HeStepFailed
from gateway.siteclient.pool import SitePool
from policies.jobs.mechanisms import NoiseSource, OpenDPNoise
from sandbox.wire import FragmentOutcome, FragmentRequest

_MARGIN = 1e-9
TARGETING_FAILURE = 1e-9
"""Largest probability that a group of fewer than ``min_group_size`` people is released."""


def release_threshold(min_group_size: int, scale: float) -> int:
    """The noisy count of people a group must reach to be released.

    The noisy count is ``true + Laplace(scale)``; adding ``scale·ln(1/p)`` to the minimum
    makes releasing a group of fewer than ``min_group_size`` people happen with
    probability below ``p`` (:data:`TARGETING_FAILURE`).  Comparing a noisy count with
    any threshold is post-processing: it costs no privacy beyond the count's own ε.
    """
    return min_group_size + math.ceil(scale * math.log(1 / TARGETING_FAILURE))


class HeJobFailed(Exception):
    """The HE job cannot finish; ``code`` is what its operator is told."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class HeRun:
    """One HE job's execution (everything before the charge and release)."""

    def __init__(
        self,
        he: HeJobs,
        pool: SitePool,
        fanout: ThreadPoolExecutor,
        wait: Callable[[list[Future[Any]], list[tuple[Any, str]]], None],
        fragment_timeout: float,
        noise: NoiseSource | None = None,
    ) -> None:
        self.he = he
        self.pool = pool
        self.fanout = fanout
        self.wait = wait
        self.timeout = fragment_timeout
        self.noise = noise or OpenDPNoise()

    def execute(
        self, job: Job, plan: HePlan, assets: list[Asset], sites: dict[str, Site | None]
    ) -> tuple[dict[str, Any], float]:
        """The released result (ciphertexts and their layout) and the sites' compute time."""
        bundle = self.he.workspace.path(plan.context)
        program = plan.site_program()
        if plan.kind == "he_linear":
            program["weights"], program["weights_outer"] = self.he.weights(job)
        weights = (program.get("weights", ""), program.get("weights_outer", ""))
        text = json.dumps(program)
        futures: list[Future[FragmentOutcome]] = []
        clients: list[tuple[Any, str]] = []
        for asset in assets:
            site = sites.get(asset.id)
            if site is None:
                raise HeJobFailed("site_missing")
            client = self.pool.client(site)
            request = FragmentRequest(
                fragment_id=f"{job.id}.{asset.id}.he",
                job_id=job.id,
                asset_id=asset.local_ref,
                executor="tenseal_he",
                program=text,
                deadline_ms=int(self.timeout * 1000),
                input_sha256=plan.context,
            )
            clients.append((client, request.fragment_id))
            futures.append(self.fanout.submit(self._site, client, bundle, request))
        self.wait(list(futures), clients)
        parts: list[dict[str, str]] = []
        compute = 0.0
        for future in futures:
            outcome = future.result()
            if not outcome.ok or outcome.table is None:
                raise HeJobFailed(f"fragment_{outcome.failure or 'internal'}")
            compute += outcome.elapsed_ms / 1000
            parts.append({str(r[0]): str(r[1]) for r in outcome.table.rows})
        width = plan.group_count if plan.kind == "he_aggregate" else 1
        units = [_units(part.pop("units", ""), width) for part in parts]
        if plan.kind == "he_aggregate":
            return self._aggregate(plan, parts, units), compute
        return self._linear(plan, parts, units, weights), compute

    def _site(self, client: Any, bundle: Any, request: FragmentRequest) -> FragmentOutcome:
        client.upload_input(bundle, timeout=self.timeout, digest=request.input_sha256)
        outcome: FragmentOutcome = client.run_fragment(request, self.timeout + 10)
        return outcome

    def _combine(self, plan: HePlan, program: dict[str, Any]) -> dict[str, str]:
        try:
            return self.he.workspace.run(plan.context, program)
        except HeStepFailed as exc:
            raise HeJobFailed(f"combine_{exc.reason}") from None

    # he_aggregate --------------------------------------------------------------------------
    def _aggregate(
        self, plan: HePlan, parts: list[dict[str, str]], units: list[list[int]]
    ) -> dict[str, Any]:
        c, k, count = plan.max_rows_per_unit, plan.min_group_size, plan.group_count
        columns = plan.columns
        share = plan.epsilon / (2 + 2 * len(columns)) * (1 - _MARGIN)
        totals = [sum(site[g] for site in units) for g in range(count)]
        people = self.noise.laplace(totals, sensitivity=c, epsilon=share, integer=True)
        threshold = release_threshold(k, people.scale)
        mask = [1 if v >= threshold else 0 for v in people.values]
        counts = self.noise.laplace([0] * count, sensitivity=c, epsilon=share, integer=True)
        charges = [
            _charge("people", "laplace", c, people.scale, people.epsilon),
            _charge("count", "laplace", c, counts.scale, counts.epsilon),
        ]
        sums: list[float] = []
        squares: list[float] = []
        for column in columns:
            m = column.magnitude
            for kind, sensitivity, out in (
                ("sum", c * m, sums),
                ("sum_of_squares", c * m * m, squares),
            ):
                if sensitivity == 0:
                    out.extend([0.0] * count)
                    charges.append(_charge(f"{kind}:{column.name}", "none", 0, 0, 0))
                    continue
                drawn = self.noise.laplace(
                    [0.0] * count, sensitivity=sensitivity, epsilon=share, integer=False
                )
                out.extend(drawn.values)
                charges.append(
                    _charge(
                        f"{kind}:{column.name}", "laplace", sensitivity, drawn.scale, drawn.epsilon
                    )
                )
        cells = sums + squares
        combined = self._combine(
            plan,
            {
                "op": "combine_aggregate",
                "groups": count,
                "cells": len(cells),
                "parts": parts,
                "mask": mask,
                "noise_counts": [int(v) for v in counts.values],
                "noise_cells": cells,
            },
        )
        keys = _keys(plan.groups)
        released = [i for i in range(count) if mask[i]]
        return {
            "columns": [],
            "rows": [],
            "epsilon_spent": math.fsum(ch["epsilon"] for ch in charges),
            "delta_spent": 0.0,
            "threshold": threshold,
            "key_release": "public_keys_assumed" if plan.groups else "no_group_keys",
            "he": {
                "kind": plan.kind,
                "context_sha256": plan.context,
                "groups": [g["column"] for g in plan.groups],
                "keys": keys,
                "released": released,
                "people": {str(i): int(people.values[i]) for i in released},
                "columns": [col.name for col in columns],
                "ciphertexts": combined,
                "layout": {
                    "counts": "bfv: one slot per group, in the order of keys",
                    "sums": "ckks: sums then sums of squares, column-major: "
                    "[column * groups + group]",
                },
                "charges": charges,
            },
        }

    # he_linear -----------------------------------------------------------------------------
    def _linear(
        self,
        plan: HePlan,
        parts: list[dict[str, str]],
        units: list[list[int]],
        weights: tuple[str, str],
    ) -> dict[str, Any]:
        assert plan.label is not None
        c, k = plan.max_rows_per_unit, plan.min_group_size
        share = plan.epsilon / 6 * (1 - _MARGIN)
        total = sum(sum(site) for site in units)
        people = self.noise.laplace([total], sensitivity=1, epsilon=share, integer=True)
        charges = [_charge("people", "laplace", 1, people.scale, people.epsilon)]
        threshold = release_threshold(k, people.scale)
        base = {
            "columns": [],
            "rows": [],
            "delta_spent": 0.0,
            "threshold": threshold,
            "key_release": "no_group_keys",
        }
        if people.values[0] < threshold:
            return {
                **base,
                "epsilon_spent": people.epsilon,
                "he": {"kind": plan.kind, "suppressed": True, "charges": charges},
            }
        mags = [f.magnitude for f in plan.features]
        d, by = len(mags), plan.label.magnitude
        blocks = {
            "n": (1, float(c)),
            "x": (d, c * math.fsum(mags)),
            "xy": (d, c * by * math.fsum(mags)),
            "gram": (d * d, c * math.fsum(mags) ** 2),
            "yy": (1, c * by * by),
        }
        noise: dict[str, Any] = {}
        for name, (size, sensitivity) in blocks.items():
            if sensitivity == 0:
                noise[name] = [0.0] * size
                continue
            drawn = self.noise.laplace(
                [0.0] * size, sensitivity=sensitivity, epsilon=share, integer=False
            )
            noise[name] = list(drawn.values)
            charges.append(_charge(name, "laplace", sensitivity, drawn.scale, drawn.epsilon))
        noise["n"], noise["yy"] = noise["n"][0], noise["yy"][0]
        w, ww = weights
        combined = self._combine(
            plan,
            {
                "op": "combine_linear",
                "features": d,
                "parts": parts,
                "noise": noise,
                "weights": w,
                "weights_outer": ww,
            },
        )
        return {
            **base,
            "epsilon_spent": math.fsum(ch["epsilon"] for ch in charges),
            "he": {
                "kind": plan.kind,
                "context_sha256": plan.context,
                "suppressed": False,
                "people": int(people.values[0]),
                "features": [f.name for f in plan.features],
                "label": plan.label.name,
                "ciphertexts": combined,
                "layout": {
                    "score_sum": "ckks slot 0: Σ w·x over rows",
                    "squared_residual_sum": "ckks slot 0: Σ (y - w·x)² over rows",
                    "rows": "ckks slot 0: number of rows",
                },
                "charges": charges,
            },
        }


def _units(text: str, width: int) -> list[int]:
    """A site's counts of people: ``width`` non-negative integers, or the job fails."""
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if (
        not isinstance(values, list)
        or len(values) != width
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    ):
        raise HeJobFailed("fragment_internal")
    return values


def _charge(
    quantity: str, mechanism: str, sensitivity: float, scale: float, epsilon: float
) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "mechanism": mechanism,
        "sensitivity": sensitivity,
        "scale": scale,
        "epsilon": epsilon,
    }


def _keys(groups: list[dict[str, Any]]) -> list[list[Any]]:
    """Every combination of group keys, in slot order (the last column varies fastest)."""
    combos: list[list[Any]] = [[]]
    for group in groups:
        combos = [[*combo, value] for combo in combos for value in group["values"]]
    return combos
