"""Migrations over existing rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text

from gateway.store import make_engine, migrate


def test_trace_entries_of_jobs_get_their_job_id(store_url: str) -> None:
    engine = make_engine(store_url)
    migrate(engine, "0007")
    at = datetime(2026, 5, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO organisation (id, name, description, created_at) "
                "VALUES ('org_1', 'Riverside', '', :at)"
            ),
            {"at": at},
        )
        conn.execute(
            text(
                "INSERT INTO site (id, org_id, name, grpc_address, tls_fingerprint, created_at) "
                "VALUES ('site_1', 'org_1', 'old', 'h:1', :fp, :at)"
            ),
            {"fp": "ab" * 32, "at": at},
        )
    rows = [
        (0, {"action": "org.create", "target": {"org": "org_1"}}),
        (1, {"action": "job.submit", "target": {"job": "job_1", "assets": ["ast_1"]}}),
        (2, {"action": "job.fail", "target": {"job": "job_1"}}),
    ]
    with engine.begin() as conn:
        for idx, entry in rows:
            conn.execute(
                text(
                    "INSERT INTO trace_entry (idx, leaf, time, action) "
                    "VALUES (:idx, :leaf, :time, :action)"
                ),
                {
                    "idx": idx,
                    "leaf": json.dumps(entry).encode(),
                    "time": at,
                    "action": entry["action"],
                },
            )
    migrate(engine, "head")
    with engine.connect() as conn:
        found = dict(conn.execute(text("SELECT idx, job_id FROM trace_entry ORDER BY idx")).all())
        sites = conn.execute(text("SELECT id, agent_key FROM site")).all()
    engine.dispose()
    assert found == {0: None, 1: "job_1", 2: "job_1"}
    assert [tuple(s) for s in sites] == [("site_1", None)]  # registered before agents proved
