"""The demo's two example jobs, run as the operator would run them: through the Python
client against the live gateway, each printed beside the exact answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from blindgate_demo.admissions import DISTRICTS, stays_of_the_old
from blindgate_demo.federation import Federation
from blindgate_demo.seed import PURPOSE

QUERY = (
    "SELECT district, COUNT(*) AS admissions, AVG(los_days) AS mean_stay "
    "FROM admissions WHERE age >= 65 GROUP BY district"
)

Echo = Callable[[str], None]


def exact_answer(fed: Federation) -> dict[str, tuple[int, float]]:
    return stays_of_the_old(fed.files("admissions"))


def federated_query(fed: Federation, url: str, echo: Echo) -> dict[str, Any] | None:
    """Run :data:`QUERY` over the three partitions; print it beside the exact answer."""
    from gateway.client import ApiError, Client

    with Client(url, fed.operator_key, timeout=120) as client:
        try:
            result: dict[str, Any] = client.run(
                {
                    "sql": QUERY,
                    "assets": [fed.federated["admissions"]],
                    "epsilon": 1.0,
                    "purpose": PURPOSE,
                }
            )
        except ApiError as exc:
            echo(f"\n  the federated query did not succeed: {exc.code}\n")
            return None
        checkpoint = client.verify_receipt(result["receipt"])
    echo(f"\n  {QUERY}\n")
    exact = exact_answer(fed)
    echo(
        f"  {'district':<10}{'admissions':>12}{'mean_stay':>11}   exact (computed locally "
        "from the demo's own files)"
    )
    for row in result["rows"]:
        district, n, mean = (cell["value"] for cell in row)
        true_n, true_mean = exact.get(district, (0, 0.0))
        if n is None:  # fewer people than the threshold: the key is public, its values not
            echo(f"  {district:<10}{'suppressed':>23}   {true_n:>6} {true_mean:>8.2f}")
            continue
        echo(f"  {district:<10}{n:>12}{mean:>11.2f}   {true_n:>6} {true_mean:>8.2f}")
    scales: dict[str, float] = next(
        (r[1]["scales"] for r in result["rows"] if r[1]["value"] is not None), {}
    )
    echo(
        f"\n  epsilon spent {result['epsilon_spent']:.3f} of 1.0; Laplace noise "
        f"(count scale {scales.get('count', 0):.2f}); every declared district is released, "
        f"with its values withheld when its noisy count of people is under "
        f"{result['threshold']}"
    )
    echo(
        f"  receipt verified: trace entry {result['receipt']['leaf_index']} "
        f"is in {checkpoint.origin} at size {checkpoint.size}\n"
    )
    return result


def he_aggregate(fed: Federation, url: str, echo: Echo) -> dict[str, Any] | None:
    """Secure aggregation of the same numbers under a fresh operator key, decrypted here."""
    from gateway.client import ApiError, Client
    from gateway.client.he import HeKeys

    keys = HeKeys.create(galois_keys=False)
    with Client(url, fed.operator_key, timeout=300) as client:
        try:
            totals: dict[str, Any] = client.he_aggregate(
                keys,
                [fed.federated["admissions"]],
                columns=["los_days"],
                groups={"district": list(DISTRICTS)},
                where=[{"column": "age", "op": ">=", "value": 65}],
                purpose=PURPOSE,
                epsilon=1.0,
            )
        except ApiError as exc:
            echo(f"\n  the HE aggregate did not succeed: {exc.code}\n")
            return None
    echo(
        "\n  he_aggregate: COUNT and SUM(los_days) per district, age >= 65, encrypted under "
        "the operator's key\n"
    )
    exact = exact_answer(fed)
    echo(
        f"  {'district':<10}{'count':>8}{'mean_stay':>11}   exact (computed locally from the "
        "demo's own files)"
    )
    for group in totals["groups"]:
        district = group["key"][0]
        mean = group["columns"]["los_days"]["mean"] or 0.0
        true_n, true_mean = exact.get(district, (0, 0.0))
        echo(f"  {district:<10}{group['count']:>8}{mean:>11.2f}   {true_n:>6} {true_mean:>8.2f}")
    echo(
        "\n  decrypted by the operator only; each hospital's agent added its OpenDP noise "
        "before encrypting, so nobody, the gateway included, saw an exact count; epsilon "
        f"spent {totals['epsilon_spent']:.3f} of 1.0\n"
    )
    return totals
