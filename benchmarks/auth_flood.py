"""What a flood of unknown API keys costs the trace.

A gateway (REST, SQLite) runs in this process; one client sends requests with random,
well-formed but unknown keys as fast as it can for ``--seconds``. Prints the request rate,
how the answers split between 401 and 429, and what the trace grew by (entries and leaf
bytes) once the gateway stopped (which records the open failure groups).

    .venv/bin/python benchmarks/auth_flood.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import secrets
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def trace_size(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as conn:
        query = "SELECT COUNT(*), COALESCE(SUM(LENGTH(leaf)), 0) FROM trace_entry"
        count, size = conn.execute(query).fetchone()
    return int(count), int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    options = parser.parse_args()

    import httpx

    from gateway.app import Gateway
    from gateway.config import Settings
    from gateway.service import build_services
    from gateway.store import open_store
    from tests.world import seed_world

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        store = open_store(f"sqlite:///{db}")
        services = build_services(store, Settings(data_dir=Path(tmp) / "data"))
        seed_world(services)
        before = trace_size(db)
        statuses: Counter[int] = Counter()
        gateway = Gateway(services, http_port=0, grpc_port=0, runner=False).start()
        try:
            with httpx.Client(base_url=gateway.url, timeout=30) as http:
                end = time.monotonic() + options.seconds
                while time.monotonic() < end:
                    key = f"bg_{secrets.token_hex(26)}"
                    answer = http.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
                    statuses[answer.status_code] += 1
        finally:
            gateway.stop()
        after = trace_size(db)
        store.close()
    sent = sum(statuses.values())
    print(f"requests: {sent} in {options.seconds:.0f} s ({sent / options.seconds:.0f}/s)")
    print(f"answers: {dict(sorted(statuses.items()))}")
    print(f"trace grew by {after[0] - before[0]} entries, {after[1] - before[1]} leaf bytes")


if __name__ == "__main__":
    main()
