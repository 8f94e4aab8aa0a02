"""The warehouse's star schema, for PostgreSQL and SQLite, as numbered migrations.

The statements use the dialect-neutral form of :mod:`airflow_provider_b1.utils.migrations`
(``{s}`` the schema prefix, ``{num}``, ``{date}``, ``{json}``... column types), which also applies
them: once, in order, under a lock. Applied versions are rows of ``schema_version``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID
from airflow_provider_b1.sync.checkpoints import CHECKPOINT_TABLE
from airflow_provider_b1.utils.migrations import (
    Migration,
    MigrationSet,
    postgres_key_column,
    render,
    sqlite_key_column,
)
from airflow_provider_b1.utils.sql import validate_identifier

DEFAULT_SCHEMA = "sap_b1"

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

#: Tables of the entities SAP deletes outright (see ``EntitySpec.deletable``).
DELETABLE_TABLES = ("dim_business_partner", "dim_item", "dim_gl_account", "dim_profit_center")

# Records deleted in SAP are marked, never removed: ``deleted_at`` is set by the deletion check and
# cleared by the load that brings the key back; ``deletion_log`` is the trail of both. The account
# hierarchy leaves deleted accounts out, as the explores do.
_V4_STATEMENTS: list[str] = [
    *(f"ALTER TABLE {{s}}{t} ADD COLUMN deleted_at {{ts}}" for t in DELETABLE_TABLES),
    """
CREATE TABLE {s}deletion_log (
    id {id},
    at {ts} NOT NULL DEFAULT {now},
    entity {text} NOT NULL,
    table_name {text} NOT NULL,
    record_key {text} NOT NULL,
    action {text} NOT NULL CHECK (action IN ('deleted', 'restored')),
    dag_id {text},
    run_id {text},
    task_id {text}
)""",
    "CREATE INDEX ix_deletion_log_entity_key ON {s}deletion_log (entity, record_key)",
    "DROP VIEW {s}dim_gl_account_hierarchy",
    """
CREATE VIEW {s}dim_gl_account_hierarchy AS
WITH RECURSIVE tree (account_code, root_account_code, depth, path) AS (
    SELECT account_code, account_code, 1, CAST(account_code AS {text})
    FROM {s}dim_gl_account
    WHERE (father_account_code IS NULL OR father_account_code = '') AND deleted_at IS NULL
    UNION ALL
    SELECT child.account_code, tree.root_account_code, tree.depth + 1,
           CAST(tree.path || ' > ' || child.account_code AS {text})
    FROM {s}dim_gl_account AS child
    JOIN tree ON child.father_account_code = tree.account_code
    WHERE tree.depth < 32 AND child.deleted_at IS NULL
)
SELECT a.account_code, a.account_name, a.father_account_code, a.is_postable, a.account_type,
       tree.root_account_code, tree.depth, tree.path
FROM {s}dim_gl_account AS a
JOIN tree ON tree.account_code = a.account_code""",
]

#: The company of rows loaded before the warehouse held several: the flow's default SAP connection.
DEFAULT_COMPANY = DEFAULT_SAP_CONN_ID

#: Every table of loaded records and its key, which becomes ``(company, key)``.
COMPANY_TABLES: dict[str, tuple[str, ...]] = {
    "dim_business_partner": ("card_code",),
    "dim_item": ("item_code",),
    "dim_gl_account": ("account_code",),
    "dim_dimension": ("dimension_code",),
    "dim_profit_center": ("center_code",),
    **{
        table: key
        for header in ("fact_sales_invoice", "fact_purchase_invoice", "fact_purchase_order")
        for table, key in ((header, ("doc_entry",)), (f"{header}_line", ("doc_entry", "line_num")))
    },
    "fact_journal_entry": ("jdt_num",),
    "fact_journal_entry_line": ("jdt_num", "line_id"),
    **{
        table: key
        for header in ("fact_incoming_payment", "fact_vendor_payment")
        for table, key in ((header, ("doc_entry",)), (f"{header}_invoice", ("doc_entry", "line_num")))
    },
}

# Several SAP companies in one warehouse: every table gets ``company`` (the SAP connection id the
# rows were read through; existing rows belong to the default one) and keys become (company, key).
# The account hierarchy and the deletion trail are per company too; ``dim_company`` names each
# company's SAP database (CompanyDB) for people.
_V5_HIERARCHY = """
CREATE VIEW {s}dim_gl_account_hierarchy AS
WITH RECURSIVE tree (company, account_code, root_account_code, depth, path) AS (
    SELECT company, account_code, account_code, 1, CAST(account_code AS {text})
    FROM {s}dim_gl_account
    WHERE (father_account_code IS NULL OR father_account_code = '') AND deleted_at IS NULL
    UNION ALL
    SELECT child.company, child.account_code, tree.root_account_code, tree.depth + 1,
           CAST(tree.path || ' > ' || child.account_code AS {text})
    FROM {s}dim_gl_account AS child
    JOIN tree ON child.company = tree.company AND child.father_account_code = tree.account_code
    WHERE tree.depth < 32 AND child.deleted_at IS NULL
)
SELECT a.company, a.account_code, a.account_name, a.father_account_code, a.is_postable, a.account_type,
       tree.root_account_code, tree.depth, tree.path
FROM {s}dim_gl_account AS a
JOIN tree ON tree.company = a.company AND tree.account_code = a.account_code"""

_V5_COMPANY_TABLE = """
CREATE TABLE {s}dim_company (
    company {text} PRIMARY KEY,
    company_db {text},
    loaded_at {ts} NOT NULL DEFAULT {now}
)"""


def _v5(key_column: Any) -> list[Any]:
    """Version 5's steps, with the dialect's way of putting ``company`` first in a key."""
    return [
        "DROP VIEW {s}dim_gl_account_hierarchy",
        *(key_column(table, "company", DEFAULT_COMPANY, key) for table, key in COMPANY_TABLES.items()),
        f"ALTER TABLE {{s}}deletion_log ADD COLUMN company {{text}} NOT NULL DEFAULT '{DEFAULT_COMPANY}'",
        "DROP INDEX {s}ix_deletion_log_entity_key",
        "CREATE INDEX ix_deletion_log_entity_key ON {s}deletion_log (company, entity, record_key)",
        _V5_HIERARCHY,
        _V5_COMPANY_TABLE,
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "star schema: dimensions, document facts at line grain, payments", tuple(_V1_TABLES)),
    Migration(
        2,
        "indexes for explores, GL account hierarchy view, lz4 for raw records",
        tuple(_V2_STATEMENTS),
        _V2_POSTGRES,
    ),
    # Where the sync engine records, with each committed page, how far each entity's load got: the
    # warehouse's own word on what it holds, checked against the cursor before every run.
    Migration(3, "sync checkpoints kept with the data they describe", (CHECKPOINT_TABLE,)),
    Migration(4, "records deleted in SAP marked with deleted_at, and their trail", tuple(_V4_STATEMENTS)),
    Migration(
        5,
        "several SAP companies: a company column in every table, keys (company, key)",
        (),
        postgres_only=tuple(_v5(postgres_key_column)),
        sqlite_only=tuple(_v5(sqlite_key_column)),
    ),
)

WAREHOUSE_MIGRATIONS = MigrationSet("warehouse", "schema_version", MIGRATIONS)
LATEST_VERSION = WAREHOUSE_MIGRATIONS.latest

__all__ = [
    "COMPANY_TABLES",
    "DEFAULT_COMPANY",
    "DEFAULT_SCHEMA",
    "DELETABLE_TABLES",
    "LATEST_VERSION",
    "MIGRATIONS",
    "WAREHOUSE_MIGRATIONS",
    "ensure_schema_postgres",
    "ensure_schema_sqlite",
    "render",
    "validate_schema_name",
]


def validate_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a plain lower-case identifier; it is put into SQL unquoted."""
    return validate_identifier(schema, what="warehouse schema name")


def ensure_schema_postgres(conn: Any, schema: str = DEFAULT_SCHEMA, *, target: int | None = None) -> int:
    """Create or upgrade the warehouse schema in PostgreSQL; return the version now in place.

    :param conn: an open DB-API connection (psycopg 3 or psycopg2) not in autocommit mode.
    :param schema: the PostgreSQL schema holding the warehouse tables.
    :param target: stop at this version (tests of upgrades); the latest when ``None``.
    """
    return WAREHOUSE_MIGRATIONS.apply(conn, validate_schema_name(schema), target=target)


def ensure_schema_sqlite(conn: sqlite3.Connection, *, target: int | None = None) -> int:
    """Create or upgrade the warehouse schema in a SQLite database; return the version now in place.

    :param conn: a connection opened with ``isolation_level=None`` (transactions are explicit).
    :param target: stop at this version; the latest when ``None``.
    """
    return WAREHOUSE_MIGRATIONS.apply(conn, target=target)
