"""A customer mapping table from before several SAP companies migrates, on PostgreSQL and SQLite.

The table is built at version 1 (keyed by tenant and customer) and given links, then upgraded:
the old links become the default company's (a deployment of one company reads them as before),
another company's links of the same tenant and customer are rows of their own, and the CardCode
index is back.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from airflow_provider_b1.servicetitan.customers import MIGRATIONS, TABLE, CustomerMap
from airflow_provider_b1.utils.sql import mark_of, open_database, query, transaction

TENANT = "1000001"


@pytest.fixture(params=["postgres", "sqlite"])
def old_map(request, tmp_path, monkeypatch) -> Iterator[CustomerMap]:
    """The default company's mapping table at version 1, as the previous release left it."""
    conn_id = f"st_map_{secrets.token_hex(3)}"
    schema = None
    if request.param == "postgres":
        conn = request.getfixturevalue("pg_airflow_connection")
        schema = f"st_map_{secrets.token_hex(4)}"
    else:
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "audit.db")}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    customers = CustomerMap(open_database(conn_id), schema, TENANT)
    customers._conn = customers.database.connect()
    assert MIGRATIONS.apply(customers._conn, customers.schema, target=1) == 1
    mark = mark_of(customers._conn)
    sql = (
        f"INSERT INTO {customers.table} (tenant, customer_id, card_code, linked_by, merged_into, updated_at) "
        f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, '2026-01-01T00:00:00+00:00')"
    )
    with transaction(customers._conn) as cursor:
        cursor.executemany(sql, [(TENANT, "1", "ST1", "created", None), (TENANT, "2", "ST1", "merged", "1")])
    try:
        yield customers
    finally:
        conn = customers.connection()
        if schema:
            conn.rollback()
            conn.cursor().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.commit()
        customers.close()


def test_old_links_become_the_default_company_s_and_another_company_keeps_its_own(old_map):
    conn = old_map.connection()  # applies the missing migrations
    assert MIGRATIONS.apply(conn, old_map.schema) == MIGRATIONS.latest == 2
    assert old_map.get(["1", "2", "3"]) == {"1": ("ST1", None), "2": ("ST1", "1")}

    eu = CustomerMap(old_map.database, old_map.schema, TENANT, company="sap_b1_eu")
    try:
        assert eu.get(["1", "2"]) == {}  # the default company's links are not the other's
        eu.put({"1": ("C-EU-1", "link_field", None)})
        assert eu.get(["1"]) == {"1": ("C-EU-1", None)}
    finally:
        eu.close()
    old_map.put({"1": ("ST1", "created", None), "3": ("ST3", "created", None)})
    assert old_map.get(["1", "3"]) == {"1": ("ST1", None), "3": ("ST3", None)}
    rows = sorted(query(conn, f"SELECT company, customer_id, card_code FROM {old_map.table}", []))
    assert rows == [
        ("sap_b1_default", "1", "ST1"),
        ("sap_b1_default", "2", "ST1"),
        ("sap_b1_default", "3", "ST3"),
        ("sap_b1_eu", "1", "C-EU-1"),
    ]
    if old_map.database.dialect == "postgres":
        found = query(
            conn,
            "SELECT indexdef FROM pg_indexes WHERE schemaname = {p} AND tablename = {p}",
            [old_map.schema, TABLE],
        )
    else:
        found = query(conn, "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = {p}", [TABLE])
    definitions = " ".join(str(d) for (d,) in found)
    assert f"{TABLE}_card_code" in definitions
    assert "company, tenant, card_code" in definitions
