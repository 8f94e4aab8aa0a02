"""Warehouse fixtures: an empty warehouse per test on PostgreSQL and on SQLite.

PostgreSQL comes from the suite's ``pg_database`` fixture (a throwaway database per test
session; under ``CI=true`` a missing PostgreSQL fails the test, elsewhere it skips with a clear
message); each test gets its own schema in it, so tests never see each other's rows.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest
from wh_records import postgres_connection

from airflow_provider_b1.warehouse.loader import PostgresLoader, SqliteLoader, WarehouseLoader


@pytest.fixture
def pg_schema(pg_database) -> Iterator[str]:
    """A fresh, not yet created PostgreSQL schema name in the session database; dropped afterwards."""
    name = f"wh_{secrets.token_hex(4)}"
    yield name
    conn = postgres_connection(pg_database)
    try:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def postgres_loader(pg_database, pg_schema) -> Iterator[PostgresLoader]:
    """An empty PostgreSQL warehouse; it can open further connections, so loads write side by side."""
    loader = PostgresLoader(
        postgres_connection(pg_database), pg_schema, connect=lambda: postgres_connection(pg_database)
    )
    loader.ensure_schema()
    try:
        yield loader
    finally:
        loader.close()


@pytest.fixture
def sqlite_loader(tmp_path) -> Iterator[SqliteLoader]:
    loader = SqliteLoader.open(str(tmp_path / "warehouse.db"))
    loader.ensure_schema()
    try:
        yield loader
    finally:
        loader.close()


@pytest.fixture(params=["postgres", "sqlite"])
def loader(request) -> WarehouseLoader:
    """An empty warehouse, once on PostgreSQL (COPY + merge) and once on SQLite (upserts)."""
    return request.getfixturevalue(f"{request.param}_loader")


@pytest.fixture
def audit(tmp_path, monkeypatch):
    """An empty audit trail in a SQLite file of its own."""
    from airflow_provider_b1.sync import AuditTrail

    conn_id = f"b1_audit_{secrets.token_hex(3)}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "audit.db")}),
    )
    trail = AuditTrail(conn_id)
    trail.ensure_schema()
    try:
        yield trail
    finally:
        trail.close()


@pytest.fixture
def session(audit):
    """An audit session of the warehouse flow for one test's loads."""
    with audit.session("sap_b1_to_warehouse", "dag", f"run-{secrets.token_hex(3)}", "load", 1) as session:
        yield session
