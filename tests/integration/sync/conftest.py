"""An empty audit trail per test, on PostgreSQL and on SQLite.

PostgreSQL comes from the suite's ``pg_database`` fixture (a throwaway database per test
session, which fails under ``CI=true`` and skips elsewhere when PostgreSQL is missing); each
test gets its own schema in it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from airflow_provider_b1.sync import AuditTrail


@pytest.fixture(params=["postgres", "sqlite"])
def trail_connection(request, tmp_path, monkeypatch) -> tuple[str, str]:
    """``(conn_id, schema)`` of an empty audit trail's place: a schema of its own on PostgreSQL, a file on SQLite."""
    conn_id = f"b1_audit_test_{secrets.token_hex(3)}"
    schema = "b1_audit"
    if request.param == "postgres":
        conn = request.getfixturevalue("pg_airflow_connection")
        schema = f"audit_{secrets.token_hex(4)}"
    else:
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "audit.db")}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id, schema


@pytest.fixture
def audit_trail(trail_connection: tuple[str, str]) -> Iterator[AuditTrail]:
    conn_id, schema = trail_connection
    trail = AuditTrail(conn_id, schema=schema, flush_every=100)
    trail.ensure_schema()
    try:
        yield trail
    finally:
        trail.close()
