"""Several SAP companies in one warehouse: keys are (company, key), and a warehouse of one company
migrates in place, its rows kept as the default company's."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from decimal import Decimal

import pytest
from wh_records import invoice, partner, postgres_connection, rows

from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.loader import PostgresLoader, SqliteLoader, WarehouseLoader
from airflow_provider_b1.warehouse.schema import (
    COMPANY_TABLES,
    DEFAULT_COMPANY,
    LATEST_VERSION,
    ensure_schema_postgres,
    ensure_schema_sqlite,
)

EU = "sap_b1_eu"
INVOICES = ENTITIES["Invoices"]
PARTNERS = ENTITIES["BusinessPartners"]


@pytest.fixture
def second_company(loader: WarehouseLoader, pg_database) -> Iterator[WarehouseLoader]:
    """A loader of another company on the same warehouse as ``loader``."""
    if loader.dialect == "postgres":
        other: WarehouseLoader = PostgresLoader(postgres_connection(pg_database), loader.schema, company=EU)
    else:
        path = loader.conn.execute("PRAGMA database_list").fetchone()[2]
        other = SqliteLoader.open(path, company=EU)
    try:
        yield other
    finally:
        other.close()


def test_two_companies_share_the_tables_without_meeting(loader, second_company):
    home, eu = loader, second_company
    first = home.load_page(INVOICES, [invoice(n, card_code="C1") for n in range(1, 6)])
    assert first.count("created") == 5
    # the same keys in the other company are other records: created, not updated
    other = eu.load_page(
        INVOICES, [invoice(n, card_code="C1", DocTotal=1000 + n, lines=2) for n in range(1, 4)]
    )
    assert other.count("created") == 3
    assert other.inferred_partners == 1  # its own inferred partner C1, beside the home company's

    assert home.stats(INVOICES)[0] == 5
    assert eu.stats(INVOICES) == (3, Decimal(3006))
    assert home.load_page(INVOICES, [invoice(n, card_code="C1") for n in range(1, 6)]).count("unchanged") == 5
    # a changed record replaces its own company's lines only
    assert eu.load_page(INVOICES, [invoice(1, card_code="C1", DocTotal=5, lines=1)]).count("updated") == 1
    lines = rows(
        home, "SELECT company, count(*) FROM {s}fact_sales_invoice_line WHERE doc_entry = 1 GROUP BY 1"
    )
    assert dict(lines) == {DEFAULT_COMPANY: 5, EU: 1}

    # a deletion in one company marks nothing in the other
    home.load_page(PARTNERS, [partner("C1"), partner("C2")])
    eu.load_page(PARTNERS, [partner("C2")])
    assert sorted(home.keys(PARTNERS)) == ["C1", "C2"]
    assert sorted(eu.keys(PARTNERS)) == ["C2"]  # its inferred C1 is not a live partner
    assert eu.mark_deleted(PARTNERS, ["C2"]) == ["C2"]
    assert sorted(home.keys(PARTNERS)) == ["C1", "C2"]
    assert eu.deleted_keys(PARTNERS) == ["C2"]
    assert home.deleted_keys(PARTNERS) == []
    logged = rows(home, "SELECT company, record_key, action FROM {s}deletion_log")
    assert logged == [(EU, "C2", "deleted")]


def _v4_rows(execute) -> None:
    """A single-company warehouse at version 4: a partner, an invoice with a line, an account tree."""
    execute(
        "INSERT INTO {s}dim_business_partner (card_code, card_name, raw, payload_hash) VALUES ('C1', 'One', '{}', 'h')"
    )
    execute(
        "INSERT INTO {s}fact_sales_invoice (doc_entry, doc_total, raw, payload_hash) VALUES (7, 12.5, '{}', 'h')"
    )
    execute("INSERT INTO {s}fact_sales_invoice_line (doc_entry, line_num, line_total) VALUES (7, 0, 12.5)")
    execute(
        "INSERT INTO {s}dim_gl_account (account_code, father_account_code, raw, payload_hash) "
        "VALUES ('1', NULL, '{}', 'h'), ('11', '1', '{}', 'h')"
    )
    execute(
        "INSERT INTO {s}deletion_log (entity, table_name, record_key, action) "
        "VALUES ('Items', 'dim_item', 'I1', 'deleted')"
    )


def _check_migrated(loader: WarehouseLoader) -> None:
    """The version-4 rows, now the default company's, with keys that take a second company."""
    assert rows(loader, "SELECT company, card_code FROM {s}dim_business_partner") == [(DEFAULT_COMPANY, "C1")]
    assert rows(loader, "SELECT company, doc_entry FROM {s}fact_sales_invoice_line") == [(DEFAULT_COMPANY, 7)]
    assert rows(loader, "SELECT company FROM {s}deletion_log") == [(DEFAULT_COMPANY,)]
    assert rows(
        loader, "SELECT company, account_code, depth FROM {s}dim_gl_account_hierarchy ORDER BY 2"
    ) == [
        (DEFAULT_COMPANY, "1", 1),
        (DEFAULT_COMPANY, "11", 2),
    ]
    assert loader.stats(INVOICES) == (1, Decimal("12.5"))
    # the old record, loaded again by the default company, is the same row; another company's is new
    assert loader.load_page(INVOICES, [invoice(7, lines=1)]).count("updated") == 1
    assert rows(loader, "SELECT count(*) FROM {s}fact_sales_invoice") == [(1,)]


def test_a_postgres_warehouse_of_one_company_migrates_in_place(pg_database, pg_schema):
    conn = postgres_connection(pg_database)
    assert ensure_schema_postgres(conn, pg_schema, target=4) == 4
    _v4_rows(lambda sql: conn.execute(sql.replace("{s}", f"{pg_schema}.")))
    conn.commit()
    loader = PostgresLoader(conn, pg_schema)
    try:
        assert loader.ensure_schema() == LATEST_VERSION
        _check_migrated(loader)
        keys = dict(
            rows(
                loader,
                "SELECT t.relname, array_to_string(array_agg(a.attname ORDER BY k.n), ',') "
                "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
                "JOIN pg_namespace ns ON ns.oid = t.relnamespace AND ns.nspname = '{s}' "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                "WHERE i.indisprimary GROUP BY t.relname".replace("'{s}'", f"'{pg_schema}'"),
            )
        )
        for table, key in COMPANY_TABLES.items():
            assert keys[table] == ",".join(("company", *key)), table
    finally:
        loader.close()


def test_a_sqlite_warehouse_of_one_company_is_rebuilt_in_place(tmp_path):
    path = str(tmp_path / "warehouse.db")
    conn = sqlite3.connect(path, isolation_level=None)
    assert ensure_schema_sqlite(conn, target=4) == 4
    _v4_rows(lambda sql: conn.execute(sql.replace("{s}", "")))
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    loader = SqliteLoader.open(path)
    try:
        assert loader.ensure_schema() == LATEST_VERSION
        _check_migrated(loader)
        after = {
            name for (name,) in loader.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        assert indexes <= after  # the explores' indexes survive the rebuild
        for table, key in COMPANY_TABLES.items():
            info = loader.conn.execute(f"PRAGMA table_info({table})").fetchall()
            primary = [row[1] for row in sorted(info, key=lambda row: row[5]) if row[5]]
            assert primary == ["company", *key], table
    finally:
        loader.close()


def test_the_first_other_company_is_warned_of_rows_loaded_before_companies(loader, second_company, caplog):
    loader.load_page(PARTNERS, [partner("C1")])
    second_company.record_company("SBODEMOEU")
    assert "set their company to 'sap_b1_eu'" in caplog.text
    caplog.clear()
    second_company.record_company("SBODEMOEU")  # named before: nothing to say
    loader.record_company("SBODEMOUS")
    assert "set their company" not in caplog.text
    assert sorted(rows(loader, "SELECT company, company_db FROM {s}dim_company")) == [
        (DEFAULT_COMPANY, "SBODEMOUS"),
        (EU, "SBODEMOEU"),
    ]
