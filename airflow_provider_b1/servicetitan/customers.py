"""Which SAP business partner is which ServiceTitan customer: the mapping table.

Kept in the audit trail's database (PostgreSQL or SQLite), one row per ServiceTitan customer:
its ``CardCode``, how it was linked (``created`` by the flow, ``link_field`` found in SAP,
``seed`` from a CSV, ``merged`` into another customer) and, for a merged customer, the customer it
was merged into. A merged customer's invoices and payments go to the surviving customer's
partner: merging never creates a second partner.

A row is one SAP company's (its SAP connection id, ``sap_b1_default`` for a deployment of one
company): a CardCode names a partner in one company, so two companies, even fed by one tenant,
never share a link. Rows from before companies existed (version 1) are ``sap_b1_default``'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID
from airflow_provider_b1.utils.migrations import (
    Migration,
    MigrationSet,
    postgres_key_column,
    sqlite_key_column,
)
from airflow_provider_b1.utils.sql import Database, dialect_of, mark_of, query, transaction

TABLE = "st_customer_map"
#: The company of a mapping table holding one SAP company's links (and of rows older than companies).
DEFAULT_COMPANY = DEFAULT_SAP_CONN_ID

# Version 2 puts the company first in the key (SQLite rebuilds the table to change its key).
_V2_KEY = ("company", DEFAULT_COMPANY, ("tenant", "customer_id"))

MIGRATIONS = MigrationSet(
    "servicetitan_customers",
    "st_customer_map_version",
    (
        Migration(
            1,
            "ServiceTitan customer -> SAP CardCode",
            (
                f"""CREATE TABLE IF NOT EXISTS {{s}}{TABLE} (
                tenant {{text}} NOT NULL,
                customer_id {{text}} NOT NULL,
                card_code {{text}} NOT NULL,
                linked_by {{text}} NOT NULL,
                merged_into {{text}},
                updated_at {{ts}} NOT NULL,
                PRIMARY KEY (tenant, customer_id)
            )""",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_card_code ON {{s}}{TABLE} (tenant, card_code)",
            ),
        ),
        Migration(
            2,
            "several SAP companies: the key (company, tenant, customer_id)",
            (),
            postgres_only=(
                postgres_key_column(TABLE, *_V2_KEY),
                f"DROP INDEX {{s}}{TABLE}_card_code",
                f"CREATE INDEX {TABLE}_card_code ON {{s}}{TABLE} (company, tenant, card_code)",
            ),
            sqlite_only=(
                sqlite_key_column(TABLE, *_V2_KEY),
                f"DROP INDEX {TABLE}_card_code",
                f"CREATE INDEX {TABLE}_card_code ON {TABLE} (company, tenant, card_code)",
            ),
        ),
    ),
)


class CustomerMap:
    """The mapping table of one ServiceTitan tenant in one SAP company.

    :param database: the audit trail's database.
    :param schema: its PostgreSQL schema (ignored by SQLite).
    :param tenant: the ServiceTitan tenant id.
    :param company: the SAP company's connection id.
    """

    def __init__(
        self, database: Database, schema: str | None, tenant: str, *, company: str = DEFAULT_COMPANY
    ) -> None:
        self.database = database
        self.schema = schema if database.dialect == "postgres" else None
        self.tenant = str(tenant)
        self.company = str(company)
        self._conn: Any = None

    def fork(self) -> CustomerMap:
        """The same table on a connection of its own, for a writer in another thread."""
        return CustomerMap(self.database, self.schema, self.tenant, company=self.company)

    @property
    def table(self) -> str:
        return f"{self.schema}.{TABLE}" if self.schema else TABLE

    def connection(self) -> Any:
        if self._conn is None:
            self._conn = self.database.connect()
            MIGRATIONS.apply(self._conn, self.schema)
        return self._conn

    def get(self, customer_ids: Iterable[Any]) -> dict[str, tuple[str, str | None]]:
        """``{customer id: (CardCode, merged into)}`` of the customers mapped already."""
        ids = list(dict.fromkeys(str(i) for i in customer_ids))
        found: dict[str, tuple[str, str | None]] = {}
        conn = self.connection()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(["{p}"] * len(chunk))
            for customer_id, card_code, merged in query(
                conn,
                f"SELECT customer_id, card_code, merged_into FROM {self.table} "
                f"WHERE company = {{p}} AND tenant = {{p}} AND customer_id IN ({marks})",
                [self.company, self.tenant, *chunk],
            ):
                found[customer_id] = (card_code, merged)
        return found

    def put(self, links: Mapping[Any, tuple[str, str, str | None]]) -> None:
        """Record ``{customer id: (CardCode, linked_by, merged_into)}``, replacing earlier links."""
        if not links:
            return
        conn = self.connection()
        mark = mark_of(conn)
        now = "now()" if dialect_of(conn) == "postgres" else "CURRENT_TIMESTAMP"
        sql = (
            f"INSERT INTO {self.table} (company, tenant, customer_id, card_code, linked_by, merged_into, "
            f"updated_at) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {now}) "
            "ON CONFLICT (company, tenant, customer_id) DO UPDATE SET "
            "card_code = excluded.card_code, linked_by = excluded.linked_by, merged_into = excluded.merged_into, "
            "updated_at = excluded.updated_at"
        )
        with transaction(conn) as cursor:
            cursor.executemany(
                sql,
                [
                    (self.company, self.tenant, str(k), code, how, merged)
                    for k, (code, how, merged) in links.items()
                ],
            )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
