"""PostgreSQL specifics: both drivers' COPY paths, and the insert rate for a large run."""

from __future__ import annotations

import time

import pytest

from airflow_provider_b1.sync import Action, AuditRecord, AuditTrail, payload_hash

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_trail(audit_trail):
    if audit_trail.dialect != "postgres":
        pytest.skip("PostgreSQL only")
    return audit_trail


def test_psycopg2_copy_path_escapes_tabs_newlines_and_backslashes(pg_trail, pg_database, monkeypatch):
    import psycopg2

    conn = psycopg2.connect(pg_database["dsn"])
    monkeypatch.setattr(AuditTrail, "connection", lambda self: conn)
    error = "line1\nline2\ttabbed \\backslash\\ \\N not null"
    with pg_trail.session("f", "d", "r", "t", 1) as session:
        session.record(AuditRecord("s", "e", "k\t1", Action.FAILED, error=error))
        session.record(AuditRecord("s", "e", "k2", Action.CREATED, payload_hash=payload_hash({"a": 1})))
    rows = {r["source_key"]: r for r in pg_trail.history("f", "e", "k\t1") + pg_trail.history("f", "e", "k2")}
    assert rows["k\t1"]["error"] == error
    assert rows["k2"]["error"] is None
    assert rows["k2"]["payload_hash"] == payload_hash({"a": 1})
    conn.close()


def test_hundred_thousand_rows_per_run_are_cheap(pg_trail: AuditTrail, capsys):
    n = 100_000
    hashes = [payload_hash({"i": i}) for i in range(1000)]
    pg_trail.flush_every = 5000
    started = time.perf_counter()
    with pg_trail.session("bulk", "dag", "run-1", "load", 1) as session:
        for i in range(n):
            session.record(
                AuditRecord(
                    "sap_b1",
                    "Invoices",
                    str(i),
                    Action.CREATED,
                    target_system="warehouse",
                    target_entity="fact_invoice",
                    target_key=str(i),
                    payload_hash=hashes[i % 1000],
                )
            )
    first = time.perf_counter() - started
    # a second run over the same keys pays the attempt lookup against 100k existing rows
    started = time.perf_counter()
    with pg_trail.session("bulk", "dag", "run-2", "load", 1) as session:
        for i in range(n):
            session.record(
                AuditRecord("sap_b1", "Invoices", str(i), Action.UNCHANGED, payload_hash=hashes[i % 1000])
            )
    second = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\naudit trail on PostgreSQL: {n / first:,.0f} rows/s (new keys), "
            f"{n / second:,.0f} rows/s (existing keys, attempt lookup)"
        )
    assert pg_trail.counts_for_run("dag", "run-2")["unchanged"] == n
    assert pg_trail.history("bulk", "Invoices", "99999")[-1]["attempt"] == 2
    assert n / second > 5_000  # generous floor: a slow CI box must still pass
