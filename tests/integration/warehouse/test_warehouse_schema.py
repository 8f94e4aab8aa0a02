"""The warehouse creates and upgrades its own schema, idempotently, on PostgreSQL and SQLite."""

from __future__ import annotations

import sqlite3
import threading

from wh_records import postgres_connection

from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.schema import (
    LATEST_VERSION,
    ensure_schema_postgres,
    ensure_schema_sqlite,
)


def _pg_columns(conn, schema: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return [r[0] for r in rows]


def _declared_tables() -> dict[str, tuple[str, ...]]:
    tables = {}
    for spec in ENTITIES.values():
        tables[spec.table] = spec.column_names
        for child in spec.children:
            tables[child.table] = child.column_names
    return tables


def test_postgres_schema_is_created_once_and_matches_the_declarations(pg_database, pg_schema):
    conn = postgres_connection(pg_database)
    try:
        assert ensure_schema_postgres(conn, pg_schema) == LATEST_VERSION
        assert ensure_schema_postgres(conn, pg_schema) == LATEST_VERSION
        versions = conn.execute(f"SELECT version FROM {pg_schema}.schema_version ORDER BY version").fetchall()
        assert [v for (v,) in versions] == list(range(1, LATEST_VERSION + 1))
        for table, columns in _declared_tables().items():
            actual = _pg_columns(conn, pg_schema, table)
            assert set(columns) <= set(actual), table
            assert set(actual) - set(columns) <= {"loaded_at", "deleted_at", "company"}, table
        conn.execute(f"SELECT * FROM {pg_schema}.dim_gl_account_hierarchy").fetchall()
        conn.rollback()
    finally:
        conn.close()


def test_postgres_upgrade_from_version_1_keeps_the_rows(pg_database, pg_schema):
    conn = postgres_connection(pg_database)
    try:
        assert ensure_schema_postgres(conn, pg_schema, target=1) == 1
        conn.execute(
            f"INSERT INTO {pg_schema}.dim_gl_account (account_code, account_name, raw, payload_hash) "
            "VALUES ('1', 'Assets', '{}', 'h'), ('11', 'Cash', '{}', 'h')"
        )
        conn.execute(
            f"UPDATE {pg_schema}.dim_gl_account SET father_account_code = '1' WHERE account_code = '11'"
        )
        conn.commit()
        assert ensure_schema_postgres(conn, pg_schema) == LATEST_VERSION
        rows = conn.execute(
            f"SELECT account_code, depth, path FROM {pg_schema}.dim_gl_account_hierarchy ORDER BY account_code"
        ).fetchall()
        assert rows == [("1", 1, "1"), ("11", 2, "1 > 11")]
        conn.rollback()
    finally:
        conn.close()


def test_two_tasks_migrating_at_once_take_turns(pg_database, pg_schema):
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def migrate() -> None:
        conn = postgres_connection(pg_database)
        try:
            start.wait()
            results.append(ensure_schema_postgres(conn, pg_schema))
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert results == [LATEST_VERSION] * 4
    conn = postgres_connection(pg_database)
    try:
        count = conn.execute(f"SELECT count(*) FROM {pg_schema}.schema_version").fetchone()[0]
        assert count == LATEST_VERSION
    finally:
        conn.close()


def test_sqlite_schema_is_created_once_and_upgrades(tmp_path):
    conn = sqlite3.connect(tmp_path / "wh.db", isolation_level=None)
    try:
        assert ensure_schema_sqlite(conn, target=1) == 1
        assert ensure_schema_sqlite(conn) == LATEST_VERSION
        assert ensure_schema_sqlite(conn) == LATEST_VERSION
        for table, columns in _declared_tables().items():
            actual = [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]
            assert set(actual) - set(columns) <= {"loaded_at", "deleted_at", "company"}, table
            assert set(columns) <= set(actual), table
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
        conn.execute("SELECT * FROM dim_gl_account_hierarchy").fetchall()
    finally:
        conn.close()
