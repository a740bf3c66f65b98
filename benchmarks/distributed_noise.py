"""Accuracy of noise added at the sites against noise added once, centrally.

Each site noises its own partials (OpenDP's Laplace, each site a complete ε release on
its own partition), and the gateway adds the noisy partials up; a central release would
noise the exact sums once.  The sum of ``n`` sites' noises has ``√n`` times the standard
deviation of one, and the threshold on the summed count of people needs a wider margin
(:func:`policies.jobs.mechanisms.sum_threshold`).  This benchmark measures both with the
project's own release code (:func:`policies.jobs.release.site_release` and
:func:`~policies.jobs.release.finish` against :func:`~policies.jobs.release.release` over
the combined partials):

* the mean absolute error of a released count and sum of a large group (10,000 people
  spread over the sites), distributed and central, and their ratio;
* the threshold on the count of people, and the smallest group (people summed over all
  sites) released in at least half of the trials;
* for HE jobs, the noise a site adds to each count of people before encrypting, against
  one central draw (the same √n).

    .venv/bin/python benchmarks/distributed_noise.py [--trials 400] [--epsilon 1]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policies import EffectiveParameters  # noqa: E402
from policies.jobs import CombinedGroup, OpenDPNoise, analyse, combine, partial_plan  # noqa: E402
from policies.jobs.release import finish, release, site_release  # noqa: E402
from policies.jobs.schema import AssetSchema  # noqa: E402
from policies.model import Approval, ClipBounds  # noqa: E402

SCHEMA = AssetSchema.build(
    "admissions",
    "admissions",
    [
        ("patient_id", "text", "identifier"),
        ("district", "text", "quasi_identifier"),
        ("los", "integer", "attribute"),
    ],
    "patient_id",
)
QUERY = "SELECT district, COUNT(*) AS n, SUM(los) AS days FROM admissions GROUP BY district"
SIZES = (1, 3, 10)
BIG = 10_000
SMALL = tuple(range(10, 120, 2))


def parameters(epsilon: float, k: int) -> EffectiveParameters:
    return EffectiveParameters(
        job_kind="sql_aggregate",
        epsilon=epsilon,
        delta=0.0,
        min_group_size=k,
        max_rows_per_unit=1,
        clip={"admissions": {"los": ClipBounds(lower=0, upper=30)}},
        privacy_units={"admissions": "patient_id"},
        approval_mode="auto",
        approvals={"admissions": Approval(mode="auto")},
        key_domains={"district": ["big", *(f"s{n}" for n in SMALL)]},
        keys_declared=True,
    )


def partitions(sites: int) -> list[dict[str, tuple[int, float]]]:
    """Each district's people split as evenly as possible over the sites."""
    out: list[dict[str, tuple[int, float]]] = [{} for _ in range(sites)]
    for key, people in [("big", BIG), *((f"s{n}", n) for n in SMALL)]:
        for site in range(sites):
            share = people // sites + (1 if site < people % sites else 0)
            if share:
                out[site][key] = (share, 5.0 * share)
    return out


def groups(plan: Any, counts: dict[str, tuple[int, float]]) -> list[CombinedGroup]:
    rows = []
    for district, (people, days) in counts.items():
        row: dict[str, Any] = {plan.keys[0].name: district, "__units": people}
        for partial in plan.partials:
            row[partial.name] = people if partial.kind == "count" else days
        rows.append(row)
    return combine(plan, [rows])


def measure(sites: int, trials: int, epsilon: float, k: int) -> dict[str, Any]:
    params = parameters(epsilon, k)
    plan = partial_plan(analyse(QUERY, SCHEMA), params)
    noise = OpenDPNoise()
    parts = partitions(sites)
    each = [groups(plan, p) for p in parts]
    combined = groups(plan, partitions(1)[0])
    errors: dict[str, list[float]] = {"dn": [], "ds": [], "cn": [], "cs": []}
    shown: dict[str, list[int]] = {"d": [0] * len(SMALL), "c": [0] * len(SMALL)}
    thresholds = {}
    for _ in range(trials):
        distributed = finish(
            plan, [site_release(plan, g, params, noise=noise) for g in each], params
        )
        central = release(plan, combined, params, noise=noise)
        thresholds["d"], thresholds["c"] = distributed.threshold, central.threshold
        for tag, result in (("d", distributed), ("c", central)):
            rows = {row["district"].value: row for row in result.rows}
            errors[f"{tag}n"].append(abs(rows["big"]["n"].value - BIG))
            errors[f"{tag}s"].append(abs(rows["big"]["days"].value - 5.0 * BIG))
            for index, n in enumerate(SMALL):
                if rows[f"s{n}"]["n"].value is not None:
                    shown[tag][index] += 1

    def smallest(tag: str) -> int | None:
        return next(
            (n for n, seen in zip(SMALL, shown[tag], strict=True) if seen * 2 >= trials), None
        )

    return {
        "sites": sites,
        "count_error": (statistics.fmean(errors["dn"]), statistics.fmean(errors["cn"])),
        "sum_error": (statistics.fmean(errors["ds"]), statistics.fmean(errors["cs"])),
        "threshold": (thresholds["d"], thresholds["c"]),
        "smallest": (smallest("d"), smallest("c")),
    }


def he_people_scale(sites: int, epsilon: float, trials: int) -> tuple[float, float]:
    """Mean |noise| on one HE count of people: summed over the sites, and one draw."""
    from policies.jobs.he import HePlan, aggregate_noise

    plan = HePlan(
        kind="he_aggregate",
        context="",
        unit="patient_id",
        max_rows_per_unit=1,
        min_group_size=10,
        epsilon=epsilon,
        threshold_share=0.5,
        where=[],
        columns=[],
        groups=[],
        features=[],
        label=None,
    )
    noise = OpenDPNoise()
    summed = [
        abs(sum(aggregate_noise(plan, noise).program["units"][0] for _ in range(sites)))
        for _ in range(trials)
    ]
    single = [abs(aggregate_noise(plan, noise).program["units"][0]) for _ in range(trials)]
    return statistics.fmean(summed), statistics.fmean(single)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    print(
        f"epsilon {args.epsilon} per job, k = {args.k}, {args.trials} trials per row; "
        f"a group of {BIG:,} people spread evenly over the sites"
    )
    print(
        f"{'sites':>5} | {'count mean |err| dist / central':>36} | "
        f"{'sum mean |err| dist / central':>36} | {'threshold d / c':>15} | "
        f"{'smallest released d / c':>23}"
    )
    for sites in SIZES:
        r = measure(sites, args.trials, args.epsilon, args.k)
        (dn, cn), (ds, cs) = r["count_error"], r["sum_error"]
        root = math.sqrt(sites)
        print(
            f"{sites:>5} | {dn:>10.2f} / {cn:>8.2f} ({dn / cn:>5.2f}x, √n {root:.2f}) | "
            f"{ds:>10.1f} / {cs:>8.1f} ({ds / cs:>5.2f}x, √n {root:.2f}) | "
            f"{r['threshold'][0]:>7} / {r['threshold'][1]:<5} | "
            f"{r['smallest'][0]!s:>11} / {r['smallest'][1]}"
        )
    print("HE: mean |noise| on a count of people, summed over the sites / one central draw")
    for sites in SIZES:
        summed, single = he_people_scale(sites, args.epsilon, args.trials)
        print(
            f"{sites:>5} | {summed:>6.2f} / {single:>6.2f} "
            f"({summed / max(single, 1e-9):.2f}x, √n {math.sqrt(sites):.2f})"
        )


if __name__ == "__main__":
    main()
