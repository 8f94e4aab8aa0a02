"""How every table this provider owns is created and upgraded, on PostgreSQL and SQLite.

A component (the warehouse, the audit trail) declares its tables as a :class:`MigrationSet`:
frozen, numbered SQL written once in a small dialect-neutral form. ``{s}`` is the schema prefix
(``sap_b1.`` in PostgreSQL, nothing in SQLite) and ``{text}``, ``{num}``, ``{date}``, ``{bool}``,
``{json}``, ``{ts}``, ``{id}``... are column types rendered per dialect. A migration is never
edited once released: a change is a new migration. Applied versions are rows of the component's
version table.

:meth:`MigrationSet.apply` applies what is missing in one transaction. In PostgreSQL it first
takes a transaction-scoped advisory lock, so two tasks starting together never migrate at once
(the second waits, then finds nothing left to do); DDL is transactional there, so a failed
migration leaves the schema as it was. In SQLite ``BEGIN IMMEDIATE`` takes the database's write
lock.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_b1.utils.sql import Dialect, dialect_of, validate_identifier

log = logging.getLogger(__name__)

TYPES: dict[str, dict[str, str]] = {
    "postgres": {
        "text": "TEXT",
        "int": "INTEGER",
        "bigint": "BIGINT",
        "num": "NUMERIC(19, 6)",
        "date": "DATE",
        "time": "TIME",
        "bool": "BOOLEAN",
        "json": "JSONB",
        "ts": "TIMESTAMPTZ",
        "now": "now()",
        "false": "false",
        "id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "hash": "char(64)",
    },
    "sqlite": {
        "text": "TEXT",
        "int": "INTEGER",
        "bigint": "INTEGER",
        "num": "REAL",
        "date": "TEXT",
        "time": "TEXT",
        "bool": "INTEGER",
        "json": "TEXT",
        "ts": "TEXT",
        "now": "CURRENT_TIMESTAMP",
        "false": "0",
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "hash": "TEXT",
    },
}


#: A migration step: a dialect-neutral statement, or a callable run with the open connection.
Step = str | Callable[[Any, str | None], None]


def postgres_key_column(table: str, column: str, default: str, key: tuple[str, ...]) -> str:
    """A PostgreSQL statement adding ``column`` (text, ``default`` for the rows there) and making
    the primary key ``(column, *key)``."""
    return (
        f"ALTER TABLE {{s}}{table} ADD COLUMN {column} {{text}} NOT NULL DEFAULT '{default}', "
        f"DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY ({column}, {', '.join(key)})"
    )


def sqlite_key_column(table: str, column: str, default: str, key: tuple[str, ...]) -> Step:
    """A SQLite step doing what :func:`postgres_key_column` does, by rebuilding the table (SQLite
    cannot change a primary key in place): ``column`` first, then the table's own column
    definitions (read from its stored definition, a column's inline ``PRIMARY KEY`` dropped), the
    rows copied, its indexes made again."""

    def rebuild(conn: Any, _schema: str | None) -> None:
        (create,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone()
        indexes = [
            sql
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                (table,),
            )
        ]
        columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
        body = create[create.index("(") + 1 : create.rindex(")")]
        kept = [
            part.strip().replace(" PRIMARY KEY", " NOT NULL")
            for part in _split_top_level(body)
            if not part.strip().upper().startswith("PRIMARY KEY")
        ]
        new = f"{table}__rebuilt"
        conn.execute(
            f"CREATE TABLE {new} ({column} TEXT NOT NULL DEFAULT '{default}', {', '.join(kept)}, "
            f"PRIMARY KEY ({column}, {', '.join(key)}))"
        )
        conn.execute(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table}")
        conn.execute(f"DROP TABLE {table}")
        conn.execute(f"ALTER TABLE {new} RENAME TO {table}")
        for sql in indexes:
            conn.execute(sql)

    return rebuild


def _split_top_level(body: str) -> list[str]:
    """A table definition's parts, split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(body):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return parts


def render(statement: str, dialect: str, schema: str | None) -> str:
    """Render one dialect-neutral statement for ``dialect`` (``postgres`` or ``sqlite``)."""
    prefix = f"{validate_identifier(schema)}." if dialect == "postgres" and schema else ""
    return statement.format(s=prefix, **TYPES[dialect])


@dataclass(frozen=True)
class Migration:
    """One frozen step: a version number, a description and its statements.

    ``postgres_only`` statements run after the others, on PostgreSQL only; ``sqlite_only`` ones on
    SQLite only (where a change needs another way there, such as rebuilding a table whose CHECK
    constraint or primary key changes: SQLite cannot alter either). A step may also be a callable
    ``step(cursor, schema)`` (on SQLite the connection and ``None``), for what SQL alone cannot say:
    a rebuild from the table's own definition.
    """

    version: int
    description: str
    statements: tuple[str, ...]
    postgres_only: tuple[Step, ...] = ()
    sqlite_only: tuple[Step, ...] = ()


@dataclass(frozen=True)
class MigrationSet:
    """The numbered migrations of one component and the table that records which are applied.

    :param component: its name (log lines, the advisory lock key).
    :param version_table: the table of applied versions, in the component's schema.
    :param migrations: in version order, starting at 1.
    """

    component: str
    version_table: str
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return self.migrations[-1].version

    def lock_key(self, schema: str) -> int:
        """A stable signed 64-bit key for ``pg_advisory_xact_lock``, one per component and schema."""
        digest = hashlib.sha256(f"airflow_provider_b1.{self.component}:{schema}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def apply(self, conn: Any, schema: str | None = None, *, target: int | None = None) -> int:
        """Create or upgrade the component's tables; return the version now in place.

        :param conn: an open DB-API connection: psycopg 3 / psycopg2 not in autocommit mode, or
            :mod:`sqlite3` opened with ``isolation_level=None`` (transactions are explicit).
        :param schema: the PostgreSQL schema (created if missing); ignored by SQLite.
        :param target: stop at this version (tests of upgrades); the latest when ``None``.
        """
        dialect: Dialect = dialect_of(conn)
        target = self.latest if target is None else target
        if dialect == "postgres":
            schema = validate_identifier(schema or "")
            return self._apply_postgres(conn, schema, target)
        return self._apply_sqlite(conn, target)

    def _apply_postgres(self, conn: Any, schema: str, target: int) -> int:
        table = f"{schema}.{self.version_table}"
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key(schema),))
                cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, "
                    "description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                cur.execute(f"SELECT coalesce(max(version), 0) FROM {table}")
                current = cur.fetchone()[0]
                for migration in self.migrations:
                    if current < migration.version <= target:
                        self._log(migration, schema)
                        for statement in (*migration.statements, *migration.postgres_only):
                            if callable(statement):
                                statement(cur, schema)
                            else:
                                cur.execute(render(statement, "postgres", schema))
                        cur.execute(
                            f"INSERT INTO {table} (version, description) VALUES (%s, %s)",
                            (migration.version, migration.description),
                        )
                        current = migration.version
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return current

    def _apply_sqlite(self, conn: Any, target: int) -> int:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.version_table} (version INTEGER PRIMARY KEY, "
                "description TEXT NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
            )
            current = conn.execute(f"SELECT coalesce(max(version), 0) FROM {self.version_table}").fetchone()[
                0
            ]
            for migration in self.migrations:
                if current < migration.version <= target:
                    self._log(migration, None)
                    for statement in (*migration.statements, *migration.sqlite_only):
                        if callable(statement):
                            statement(conn, None)
                        else:
                            conn.execute(render(statement, "sqlite", None))
                    conn.execute(
                        f"INSERT INTO {self.version_table} (version, description) VALUES (?, ?)",
                        (migration.version, migration.description),
                    )
                    current = migration.version
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return current

    def _log(self, migration: Migration, schema: str | None) -> None:
        where = f"schema {schema}" if schema else "SQLite"
        log.info(
            "%s (%s): applying migration %d (%s)",
            self.component,
            where,
            migration.version,
            migration.description,
        )
