"""The warehouse's star schema and how it is created and upgraded, for PostgreSQL and SQLite.

Migrations are frozen, numbered SQL written once in a small dialect-neutral form: ``{s}`` is the
schema prefix (``sap_b1.`` in PostgreSQL, nothing in SQLite) and ``{num}``, ``{date}``, ``{bool}``,
``{json}``... are column types rendered per dialect. A migration is never edited once released: a
change is a new migration. Applied versions are rows of ``schema_version``.

:func:`ensure_schema` applies what is missing in one transaction. In PostgreSQL it first takes a
transaction-scoped advisory lock, so two tasks starting together never migrate at once (the
second waits, then finds nothing left to do); DDL is transactional there, so a failed migration
leaves the schema as it was. In SQLite ``BEGIN IMMEDIATE`` takes the database's write lock.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_SCHEMA = "sap_b1"

_TYPES: dict[str, dict[str, str]] = {
    "postgres": {
        "text": "TEXT",
        "int": "INTEGER",
        "num": "NUMERIC(19, 6)",
        "date": "DATE",
        "time": "TIME",
        "bool": "BOOLEAN",
        "json": "JSONB",
        "ts": "TIMESTAMPTZ",
        "now": "now()",
        "false": "false",
    },
    "sqlite": {
        "text": "TEXT",
        "int": "INTEGER",
        "num": "REAL",
        "date": "TEXT",
        "time": "TEXT",
        "bool": "INTEGER",
        "json": "TEXT",
        "ts": "TEXT",
        "now": "CURRENT_TIMESTAMP",
        "false": "0",
    },
}

_DOCUMENT_HEADER = """
CREATE TABLE {{s}}{table} (
    doc_entry {{int}} PRIMARY KEY,
    doc_num {{int}},
    doc_date {{date}},
    doc_due_date {{date}},
    tax_date {{date}},
    card_code {{text}},
    card_name {{text}},
    doc_total {{num}} NOT NULL,
    vat_sum {{num}},
    doc_currency {{text}},
    doc_rate {{num}},
    document_status {{text}},
    is_cancelled {{bool}} NOT NULL DEFAULT {{false}},
    num_at_card {{text}},
    comments {{text}},
    sales_person_code {{int}},
    create_date {{date}},
    create_time {{time}},
    update_date {{date}},
    update_time {{time}},
    external_id {{text}},
    raw {{json}} NOT NULL,
    payload_hash {{text}} NOT NULL,
    loaded_at {{ts}} NOT NULL DEFAULT {{now}}
)"""

_DOCUMENT_LINE = """
CREATE TABLE {{s}}{table} (
    doc_entry {{int}} NOT NULL,
    line_num {{int}} NOT NULL,
    doc_date {{date}},
    card_code {{text}},
    item_code {{text}},
    item_description {{text}},
    quantity {{num}},
    price {{num}},
    unit_price {{num}},
    line_total {{num}},
    currency {{text}},
    account_code {{text}},
    tax_code {{text}},
    vat_group {{text}},
    costing_code {{text}},
    costing_code2 {{text}},
    costing_code3 {{text}},
    costing_code4 {{text}},
    costing_code5 {{text}},
    warehouse_code {{text}},
    line_status {{text}},
    PRIMARY KEY (doc_entry, line_num)
)"""

_PAYMENT = """
CREATE TABLE {{s}}{table} (
    doc_entry {{int}} PRIMARY KEY,
    doc_num {{int}},
    doc_date {{date}},
    doc_type {{text}},
    card_code {{text}},
    card_name {{text}},
    cash_sum {{num}},
    transfer_sum {{num}},
    doc_currency {{text}},
    doc_rate {{num}},
    is_cancelled {{bool}} NOT NULL DEFAULT {{false}},
    transfer_account {{text}},
    cash_account {{text}},
    remarks {{text}},
    update_date {{date}},
    update_time {{time}},
    raw {{json}} NOT NULL,
    payload_hash {{text}} NOT NULL,
    loaded_at {{ts}} NOT NULL DEFAULT {{now}}
)"""

_PAYMENT_INVOICE = """
CREATE TABLE {{s}}{table} (
    doc_entry {{int}} NOT NULL,
    line_num {{int}} NOT NULL,
    invoice_doc_entry {{int}},
    invoice_type {{text}},
    sum_applied {{num}},
    PRIMARY KEY (doc_entry, line_num)
)"""

_V1_TABLES: list[str] = [
    """
CREATE TABLE {s}dim_business_partner (
    card_code {text} PRIMARY KEY,
    card_name {text},
    card_type {text},
    group_code {int},
    currency {text},
    phone {text},
    email {text},
    federal_tax_id {text},
    is_valid {bool},
    is_frozen {bool},
    balance {num},
    create_date {date},
    create_time {time},
    update_date {date},
    update_time {time},
    external_id {text},
    is_inferred {bool} NOT NULL DEFAULT {false},
    raw {json},
    payload_hash {text},
    loaded_at {ts} NOT NULL DEFAULT {now}
)""",
    """
CREATE TABLE {s}dim_item (
    item_code {text} PRIMARY KEY,
    item_name {text},
    items_group_code {int},
    is_inventory_item {bool},
    is_sales_item {bool},
    is_purchase_item {bool},
    is_valid {bool},
    is_frozen {bool},
    inventory_uom {text},
    create_date {date},
    update_date {date},
    update_time {time},
    raw {json} NOT NULL,
    payload_hash {text} NOT NULL,
    loaded_at {ts} NOT NULL DEFAULT {now}
)""",
    """
CREATE TABLE {s}dim_gl_account (
    account_code {text} PRIMARY KEY,
    account_name {text},
    balance {num},
    currency {text},
    father_account_code {text},
    is_postable {bool},
    account_level {int},
    account_type {text},
    is_frozen {bool},
    raw {json} NOT NULL,
    payload_hash {text} NOT NULL,
    loaded_at {ts} NOT NULL DEFAULT {now}
)""",
    """
CREATE TABLE {s}dim_dimension (
    dimension_code {int} PRIMARY KEY,
    dimension_name {text},
    is_active {bool},
    description {text},
    raw {json} NOT NULL,
    payload_hash {text} NOT NULL,
    loaded_at {ts} NOT NULL DEFAULT {now}
)""",
    """
CREATE TABLE {s}dim_profit_center (
    center_code {text} PRIMARY KEY,
    center_name {text},
    dimension_code {int},
    is_active {bool},
    effective_from {date},
    raw {json} NOT NULL,
    payload_hash {text} NOT NULL,
    loaded_at {ts} NOT NULL DEFAULT {now}
)""",
    _DOCUMENT_HEADER.format(table="fact_sales_invoice"),
    _DOCUMENT_LINE.format(table="fact_sales_invoice_line"),
    _DOCUMENT_HEADER.format(table="fact_purchase_invoice"),
    _DOCUMENT_LINE.format(table="fact_purchase_invoice_line"),
    _DOCUMENT_HEADER.format(table="fact_purchase_order"),
    _DOCUMENT_LINE.format(table="fact_purchase_order_line"),
    """
CREATE TABLE {s}fact_journal_entry (
    jdt_num {int} PRIMARY KEY,
    reference_date {date},
    due_date {date},
    tax_date {date},
    memo {text},
    reference {text},
    reference2 {text},
    transaction_code {text},
    original_journal {text},
    update_date {date},
    raw {json} NOT NULL,
    payload_hash {text} NOT NULL,
    loaded_at {ts} NOT NULL DEFAULT {now}
)""",
    """
CREATE TABLE {s}fact_journal_entry_line (
    jdt_num {int} NOT NULL,
    line_id {int} NOT NULL,
    reference_date {date},
    account_code {text},
    short_name {text},
    debit {num},
    credit {num},
    fc_debit {num},
    fc_credit {num},
    fc_currency {text},
    costing_code {text},
    costing_code2 {text},
    costing_code3 {text},
    costing_code4 {text},
    costing_code5 {text},
    line_memo {text},
    PRIMARY KEY (jdt_num, line_id)
)""",
    _PAYMENT.format(table="fact_incoming_payment"),
    _PAYMENT_INVOICE.format(table="fact_incoming_payment_invoice"),
    _PAYMENT.format(table="fact_vendor_payment"),
    _PAYMENT_INVOICE.format(table="fact_vendor_payment_invoice"),
]

# Indexes for the joins and filters Looker explores run, and the account hierarchy flattened:
# every account with its level, its top-level ancestor and its path from the root.
_V2_STATEMENTS: list[str] = [
    *(
        f"CREATE INDEX ix_{t}_{c} ON {{s}}{t} ({c})"
        for t in ("fact_sales_invoice", "fact_purchase_invoice", "fact_purchase_order")
        for c in ("card_code", "doc_date", "update_date")
    ),
    *(
        f"CREATE INDEX ix_{t}_{c} ON {{s}}{t} ({c})"
        for t in ("fact_sales_invoice_line", "fact_purchase_invoice_line", "fact_purchase_order_line")
        for c in ("item_code", "account_code")
    ),
    "CREATE INDEX ix_fact_journal_entry_line_account_code ON {s}fact_journal_entry_line (account_code)",
    "CREATE INDEX ix_fact_journal_entry_update_date ON {s}fact_journal_entry (update_date)",
    "CREATE INDEX ix_fact_incoming_payment_update_date ON {s}fact_incoming_payment (update_date)",
    "CREATE INDEX ix_fact_vendor_payment_update_date ON {s}fact_vendor_payment (update_date)",
    "CREATE INDEX ix_fact_incoming_payment_invoice_inv ON {s}fact_incoming_payment_invoice (invoice_doc_entry)",
    "CREATE INDEX ix_fact_vendor_payment_invoice_inv ON {s}fact_vendor_payment_invoice (invoice_doc_entry)",
    "CREATE INDEX ix_dim_gl_account_father ON {s}dim_gl_account (father_account_code)",
    "CREATE INDEX ix_dim_profit_center_dimension ON {s}dim_profit_center (dimension_code)",
    """
CREATE VIEW {s}dim_gl_account_hierarchy AS
WITH RECURSIVE tree (account_code, root_account_code, depth, path) AS (
    SELECT account_code, account_code, 1, CAST(account_code AS {text})
    FROM {s}dim_gl_account
    WHERE father_account_code IS NULL OR father_account_code = ''
    UNION ALL
    SELECT child.account_code, tree.root_account_code, tree.depth + 1,
           CAST(tree.path || ' > ' || child.account_code AS {text})
    FROM {s}dim_gl_account AS child
    JOIN tree ON child.father_account_code = tree.account_code
    WHERE tree.depth < 32
)
SELECT a.account_code, a.account_name, a.father_account_code, a.is_postable, a.account_type,
       tree.root_account_code, tree.depth, tree.path
FROM {s}dim_gl_account AS a
JOIN tree ON tree.account_code = a.account_code""",
]


@dataclass(frozen=True)
class Migration:
    """One frozen step of the schema: a version number, a description and its statements.

    ``postgres_only`` statements run after the others, on PostgreSQL only.
    """

    version: int
    description: str
    statements: tuple[str, ...]
    postgres_only: tuple[str, ...] = ()


_RAW_TABLES = (
    "dim_business_partner",
    "dim_item",
    "dim_gl_account",
    "dim_dimension",
    "dim_profit_center",
    "fact_sales_invoice",
    "fact_purchase_invoice",
    "fact_purchase_order",
    "fact_journal_entry",
    "fact_incoming_payment",
    "fact_vendor_payment",
)

# Raw SAP records are 5-40 KB of JSON: lz4 compresses them several times faster than the
# default pglz, which shows in load throughput. Only where the server was built with lz4.
_V2_POSTGRES = (
    "DO $$ BEGIN "
    "IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
    "AND 'lz4' = ANY(enumvals)) THEN "
    + " ".join(f"EXECUTE 'ALTER TABLE {{s}}{t} ALTER COLUMN raw SET COMPRESSION lz4';" for t in _RAW_TABLES)
    + " END IF; END $$",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "star schema: dimensions, document facts at line grain, payments", tuple(_V1_TABLES)),
    Migration(
        2,
        "indexes for explores, GL account hierarchy view, lz4 for raw records",
        tuple(_V2_STATEMENTS),
        _V2_POSTGRES,
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def validate_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a plain lower-case identifier; it is put into SQL unquoted."""
    if not _IDENT.match(schema):
        raise ValueError(f"Warehouse schema name {schema!r} must match {_IDENT.pattern}")
    return schema


def render(statement: str, dialect: str, schema: str | None) -> str:
    """Render one dialect-neutral statement for ``dialect`` (``postgres`` or ``sqlite``)."""
    prefix = f"{validate_schema_name(schema)}." if dialect == "postgres" and schema else ""
    return statement.format(s=prefix, **_TYPES[dialect])


def advisory_lock_key(schema: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock``, one per warehouse schema."""
    digest = hashlib.sha256(f"airflow_provider_b1.warehouse:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def ensure_schema_postgres(conn: Any, schema: str = DEFAULT_SCHEMA, *, target: int | None = None) -> int:
    """Create or upgrade the warehouse schema in PostgreSQL; return the version now in place.

    :param conn: an open DB-API connection (psycopg 3 or psycopg2) not in autocommit mode.
    :param schema: the PostgreSQL schema holding the warehouse tables.
    :param target: stop at this version (tests of upgrades); the latest when ``None``.
    """
    schema = validate_schema_name(schema)
    target = LATEST_VERSION if target is None else target
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_lock_key(schema),))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_version ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur.execute(f"SELECT coalesce(max(version), 0) FROM {schema}.schema_version")
            current = cur.fetchone()[0]
            for migration in MIGRATIONS:
                if current < migration.version <= target:
                    log.info("Warehouse schema %s: applying migration %d (%s)", schema, *_describe(migration))
                    for statement in (*migration.statements, *migration.postgres_only):
                        cur.execute(render(statement, "postgres", schema))
                    cur.execute(
                        f"INSERT INTO {schema}.schema_version (version, description) VALUES (%s, %s)",
                        (migration.version, migration.description),
                    )
                    current = migration.version
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return current


def ensure_schema_sqlite(conn: sqlite3.Connection, *, target: int | None = None) -> int:
    """Create or upgrade the warehouse schema in a SQLite database; return the version now in place.

    :param conn: a connection opened with ``isolation_level=None`` (transactions are explicit).
    :param target: stop at this version; the latest when ``None``.
    """
    target = LATEST_VERSION if target is None else target
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for migration in MIGRATIONS:
            if current < migration.version <= target:
                log.info("Warehouse (SQLite): applying migration %d (%s)", *_describe(migration))
                for statement in migration.statements:
                    conn.execute(render(statement, "sqlite", None))
                conn.execute(
                    "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                    (migration.version, migration.description),
                )
                current = migration.version
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current


def _describe(migration: Migration) -> tuple[int, str]:
    return migration.version, migration.description
