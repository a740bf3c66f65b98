"""Authenticated `GET /v1/assets` over a 1,000-asset catalogue vs a bare FastAPI endpoint.

Both apps run under uvicorn (uvloop + httptools when installed) in a separate process
on loopback; a client process sends requests with several concurrent keep-alive
connections. Prints requests/s, p50 and p99 latency for each, and the ratio.

    .venv/bin/python benchmarks/api.py [--requests 4000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_blindgate(port: int, data_dir: str, ready: mp.Queue) -> None:  # type: ignore[type-arg]
    import uvicorn

    from gateway.config import Settings
    from gateway.http import create_app
    from gateway.service import build_services
    from gateway.service.catalogue.schemas import AssetCreate
    from gateway.store import open_store
    from tests.world import StandInAgents, asset_body, seed_world

    settings = Settings(data_dir=Path(data_dir))
    store = open_store(f"sqlite:///{data_dir}/bench.db")
    services = build_services(store, settings, prover=StandInAgents())
    world = seed_world(services)
    for i in range(998):
        services.assets.register(
            world.holder_a, AssetCreate.model_validate(asset_body(world.site_a, f"asset-{i}"))
        )
    ready.put(world.operator_key)
    uvicorn.run(
        create_app(services), host="127.0.0.1", port=port, log_level="error", access_log=False
    )


def _same_payload() -> list[dict[str, object]]:
    """Fifty catalogue cards, as the gateway returns them, built in memory."""
    from datetime import UTC, datetime

    from gateway.domain import Asset
    from gateway.service.catalogue.assets import asset_card
    from gateway.service.catalogue.schemas import AssetCreate
    from gateway.store.mapping import asset_values
    from tests.world import asset_body

    now = datetime.now(UTC)
    body = AssetCreate.model_validate(asset_body("site_x"))
    cards = []
    for i in range(50):
        from gateway.domain import AssetStatus, Column, Rights

        asset = Asset(
            id=f"ast_{i:026d}",
            org_id="org_x",
            site_id="site_x",
            local_ref="x",
            name=f"a{i}",
            description=body.description,
            domain=body.domain,
            columns=tuple(Column(c.name, c.type, c.tag, c.description) for c in body.columns),
            privacy_unit=body.privacy_unit,
            row_count=body.row_count,
            update_frequency=body.update_frequency,
            classification=body.classification,
            rights=Rights(**body.rights.model_dump()),
            status=AssetStatus.ACTIVE,
            registration_number=f"BG-2026-{i:06d}",
            version=1,
            content_digest=body.content_digest,
            created_at=now,
            updated_at=now,
        )
        assert asset_values(asset)
        cards.append(asset_card(asset, with_location=False).model_dump(mode="json"))
    return cards


def serve_bare(port: int, ready: mp.Queue) -> None:  # type: ignore[type-arg]
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()
    items = _same_payload()

    @app.get("/v1/assets")
    def assets() -> dict[str, object]:
        return {"items": items, "next_cursor": None}

    ready.put("")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


async def load(url: str, key: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        for _ in range(50):  # warm-up
            (await client.get("/v1/assets")).raise_for_status()
        remaining = total

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                r = await client.get("/v1/assets")
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return total / elapsed, latencies


def measure(target, args, total: int, concurrency: int) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    port = free_port()
    ready: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    proc = mp.Process(target=target, args=(port, *args, ready), daemon=True)
    proc.start()
    key = ready.get(timeout=300)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        rps, lat = asyncio.run(load(url, key, total, concurrency))
    finally:
        proc.terminate()
        proc.join(5)
    q = statistics.quantiles(lat, n=100)
    return rps, q[49] * 1000, q[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bare = measure(serve_bare, (), args.requests, args.concurrency)
        gate = measure(serve_blindgate, (tmp,), args.requests, args.concurrency)

    def row(name: str, r: tuple[float, float, float]) -> str:
        return f"{name:<44}{r[0]:>10.0f}{r[1]:>10.2f}{r[2]:>10.2f}"

    print(f"{'endpoint':<44}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    print(row("bare FastAPI, same 50 cards from memory", bare))
    print(row("Blindgate GET /v1/assets (auth, 1000 assets)", gate))
    print(f"ratio Blindgate/bare throughput: {gate[0] / bare[0]:.2f} (aim >= 0.50)")


if __name__ == "__main__":
    main()
