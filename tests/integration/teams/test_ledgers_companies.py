"""The Teams ledgers of several SAP companies, on PostgreSQL and SQLite: a sent-ledger written before
companies is migrated in place, its rows becoming the default company's, and each company then
keeps its own rows for the same destination, document type, ``DocEntry`` and event; the approvals
ledger, keyed by SAP connection and ``Code`` since its first version, needs no migration and keeps
request 1 of two companies apart."""

from __future__ import annotations

import secrets

import pytest

from airflow_provider_b1.teams import approvals, ledger
from airflow_provider_b1.teams.ledger import Entry, SentLedger
from airflow_provider_b1.utils.migrations import render
from airflow_provider_b1.utils.sql import dialect_of, open_database

CHANNEL = "webhook:b1_teams_webhook_default"


@pytest.fixture(params=["postgres", "sqlite"])
def place(request, set_connection, tmp_path):
    """``(database, schema)`` of an empty audit database: a fresh schema on PostgreSQL, a file on SQLite."""
    if request.param == "postgres":
        connection = request.getfixturevalue("pg_airflow_connection")
        schema = f"teams_{secrets.token_hex(4)}"
    else:
        connection = {"conn_type": "sqlite", "host": str(tmp_path / "audit.db")}
        schema = None
    set_connection("teams_ledger_test", connection)
    database = open_database("teams_ledger_test")
    yield database, schema
    if schema is not None:
        conn = database.connect()
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.commit()
        conn.close()


def _key_columns(conn, schema) -> list[str]:
    if dialect_of(conn) == "sqlite":
        info = conn.execute(f"PRAGMA table_info({ledger.TABLE})").fetchall()
        return [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE i.indisprimary AND n.nspname = %s AND t.relname = %s ORDER BY k.pos",
            (schema, ledger.TABLE),
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_sent_ledger_from_before_companies_becomes_the_default_company_s(place):
    database, schema = place
    conn = database.connect()
    dialect = dialect_of(conn)
    assert ledger.MIGRATIONS.apply(conn, schema, target=1) == 1
    insert = render(
        f"INSERT INTO {{s}}{ledger.TABLE} (destination, doc_type, doc_entry, event, state, card, "
        "conversation_id, activity_id, marker, attempts, run_id, updated_at) VALUES "
        f"('{CHANNEL}', 'PurchaseOrders', '17', 'created', 'sent', 'card', NULL, NULL, 'b1-old', 1, "
        "'scheduled__1', {now})",
        dialect,
        schema,
    )
    if dialect == "sqlite":
        conn.execute(insert)
    else:
        with conn.cursor() as cursor:
            cursor.execute(insert)
        conn.commit()
    conn.close()

    home, eu = SentLedger(database, schema), SentLedger(database, schema, company="sap_b1_eu")
    try:
        # the old row is the default company's; the other company has no card for its DocEntry 17
        (old,) = home.entries("PurchaseOrders", [17])["17"]
        assert (old.destination, old.event, old.state, old.marker) == (CHANNEL, "created", "sent", "b1-old")
        assert eu.entries("PurchaseOrders", [17]) == {}
        assert _key_columns(home.connection(), schema) == [
            "company",
            "doc_type",
            "doc_entry",
            "destination",
            "event",
        ]
        assert ledger.MIGRATIONS.apply(home.connection(), schema) == 2  # nothing left to do

        # the other company's DocEntry 17: a row of its own beside the default company's
        eu.write([Entry(CHANNEL, "PurchaseOrders", "17", "created", "pending", "card", "b1-eu")])
        (mine,) = eu.entries("PurchaseOrders", ["17"])["17"]
        assert (mine.state, mine.marker) == ("pending", "b1-eu")
        assert [e.marker for e in home.entries("PurchaseOrders", ["17"])["17"]] == ["b1-old"]
        # a card refused forgets its own company's pending row only
        home.forget([Entry(CHANNEL, "PurchaseOrders", "17", "created", "pending", "card", "b1-eu")])
        assert eu.entries("PurchaseOrders", ["17"])["17"][0].marker == "b1-eu"
        eu.forget([mine])
        assert eu.entries("PurchaseOrders", ["17"]) == {}
        assert len(home.entries("PurchaseOrders", ["17"])["17"]) == 1
    finally:
        home.close()
        eu.close()


def test_the_approvals_ledger_keeps_the_same_request_code_of_two_companies_apart(place):
    database, schema = place
    home = approvals.ApprovalLedger(database, schema, "sap_b1_default")
    eu = approvals.ApprovalLedger(database, schema, "sap_b1_eu")
    try:
        assert home.claim([(1, 10)], dag_id="d", run_id="run-1") == [1]
        assert eu.claim([(1, 20)], dag_id="d", run_id="run-1") == [1]  # not the default company's 1
        eu.set_state(1, approvals.GENERATED, decision="Approve", decided_by="ada")
        assert (home.get(1).draft_entry, home.get(1).state) == (10, approvals.ASKED)
        assert (eu.get(1).draft_entry, eu.get(1).state) == (20, approvals.GENERATED)
        assert [row.code for row in home.open_requests()] == [1]
        assert eu.open_requests() == []
        assert approvals.MIGRATIONS.latest == 1  # keyed by (sap_conn_id, code) from the start
    finally:
        home.close()
        eu.close()
