"""PostgreSQL or SQLite behind an Airflow connection, in one place: opening, transactions, COPY.

Every database this provider writes (the warehouse, the audit trail, a flow's mapping table) is
named by an Airflow connection of type ``postgres`` (production: ``PostgresHook``, COPY) or
``sqlite`` whose host is the database file's absolute path (the embedded demo).
:func:`open_database` reads the connection once and returns a :class:`Database` that opens
DB-API connections, says which dialect it speaks, and knows whether another connection reaches
the *same* database: the sync engine then writes a page's audit rows in the page's own
transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from airflow_provider_b1.exceptions import PermanentError

Dialect = Literal["postgres", "sqlite"]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseConfigError(PermanentError, ValueError):
    """The connection does not name a database this provider can write (type, path, schema name)."""


def validate_identifier(name: str, *, what: str = "schema name") -> str:
    """Return ``name`` if it is a plain lower-case SQL identifier (it is put into SQL unquoted)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise DatabaseConfigError(f"The {what} {name!r} must match {_IDENTIFIER.pattern}")
    return name


@dataclass(frozen=True)
class Database:
    """A PostgreSQL or SQLite database reached through an Airflow connection.

    :param conn_id: the Airflow connection id.
    :param dialect: ``postgres`` or ``sqlite``.
    :param identity: what makes two connections reach the same database (server, port, database
        and user; or the SQLite file's real path).
    :param path: the SQLite file, for ``sqlite``.
    """

    conn_id: str
    dialect: Dialect
    identity: tuple = field(repr=False)
    path: str | None = None

    @property
    def placeholder(self) -> str:
        """The DB-API parameter mark of the driver: ``%s`` or ``?``."""
        return "%s" if self.dialect == "postgres" else "?"

    def same_as(self, other: Database | None) -> bool:
        """Whether ``other`` reaches this very database, so one transaction can span both uses."""
        return other is not None and self.identity == other.identity

    def connect(self) -> Any:
        """Open a new DB-API connection.

        PostgreSQL: ``PostgresHook(...).get_conn()`` (psycopg 3 or psycopg2, transactions begun
        implicitly, committed by the caller). SQLite: :mod:`sqlite3` with ``isolation_level=None``
        (transactions are explicit: see :func:`transaction`), WAL journal, usable from the thread
        that a page writer runs in.
        """
        if self.dialect == "postgres":
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            conn = PostgresHook(postgres_conn_id=self.conn_id).get_conn()
            if type(conn).__module__.split(".")[0] == "psycopg":
                from psycopg.rows import tuple_row

                # A connection's "cursor" extra (dict rows) must not change what queries read back.
                conn.row_factory = tuple_row
            return conn
        assert self.path is not None
        return connect_sqlite(self.path)


def connect_sqlite(path: str) -> sqlite3.Connection:
    """A SQLite connection as every writer here wants it: transactions explicit
    (``isolation_level=None``, see :func:`transaction`), WAL journal, usable from the thread a page
    writer runs in, and patient with another writer's lock."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def open_database(conn_id: str, *, purpose: str = "this task") -> Database:
    """Read an Airflow connection and return the database it names.

    :param conn_id: the connection id.
    :param purpose: what the database is for, in error messages (``the warehouse``).
    :raises DatabaseConfigError: for another connection type or a SQLite connection without a file.
    """
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        identity = (
            "postgres",
            conn.host or "localhost",
            int(conn.port or 5432),
            conn.schema or "",
            conn.login,
        )
        return Database(conn_id, "postgres", identity)
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise DatabaseConfigError(
                f"Connection {conn_id!r} is a SQLite connection without a file path; put the database "
                "file's absolute path in its Host field."
            )
        return Database(conn_id, "sqlite", ("sqlite", os.path.realpath(path)), path=path)
    raise DatabaseConfigError(
        f"Connection {conn_id!r} has type {conn.conn_type!r}; {purpose} needs a 'postgres' or 'sqlite' connection."
    )


def dialect_of(conn: Any) -> Dialect:
    """``sqlite`` for a :mod:`sqlite3` connection or cursor, else ``postgres``."""
    return "sqlite" if isinstance(conn, (sqlite3.Connection, sqlite3.Cursor)) else "postgres"


def mark_of(conn: Any) -> str:
    """The parameter mark of a connection's or cursor's driver: ``?`` or ``%s``."""
    return "?" if dialect_of(conn) == "sqlite" else "%s"


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """One transaction on ``conn``: committed when the block ends, rolled back if it raises.

    SQLite connections opened by :meth:`Database.connect` take the database's write lock at once
    (``BEGIN IMMEDIATE``), so two writers queue instead of failing half-way; PostgreSQL begins
    implicitly. Yields a cursor.
    """
    sqlite = dialect_of(conn) == "sqlite"
    if sqlite and not conn.in_transaction:
        conn.execute("BEGIN IMMEDIATE")
    cursor = conn.cursor()
    try:
        yield cursor
    except BaseException:
        if sqlite:
            _sqlite_rollback(conn)
        else:
            conn.rollback()
        raise
    finally:
        cursor.close()
    if sqlite:
        if conn.in_transaction:
            conn.execute("COMMIT")
    else:
        conn.commit()


def lock_key(name: str) -> int:
    """A stable signed 64-bit PostgreSQL advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def advisory_hold(conn: Any, name: str, *, waiting: Callable[[], None] | None = None) -> Iterator[None]:
    """On PostgreSQL, a session advisory lock named ``name`` held while the block runs, so that
    tasks doing the same thing from two DAGs (or two runs) take turns; ``waiting`` is called when
    another holds it. SQLite takes one writer at a time anyway: nothing is taken there. The lock
    goes with the session if the process dies."""
    if dialect_of(conn) != "postgres":
        yield
        return
    key = lock_key(name)
    with transaction(conn) as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        held = cursor.fetchone()[0]
    if not held:
        if waiting is not None:
            waiting()
        with transaction(conn) as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            conn.rollback()
            with transaction(conn) as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _sqlite_rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def query(conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
    """Run a read and return its rows, ending the read transaction (a long session must not pin an
    old snapshot). ``{p}`` in ``sql`` is replaced by the driver's parameter mark."""
    sql = sql.replace("{p}", "?" if dialect_of(conn) == "sqlite" else "%s")
    cursor = conn.cursor()
    try:
        cursor.execute(sql, tuple(params))
        rows = [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()
    if dialect_of(conn) == "postgres":
        conn.commit()
    return rows


# --- PostgreSQL COPY text format: the one encoder --------------------------------------------

COPY_SPECIAL = re.compile(r"[\\\t\n\r\x00]")


def escape_copy(value: str) -> str:
    """Escape text for COPY's text format (backslash, tab, newline, carriage return).

    :raises ValueError: for a NUL character, which no PostgreSQL text can hold: dropping it would
        change the value silently, so whoever writes text checks for it first and fails the record.
    """
    # Each test is a fast scan; raw JSON usually holds backslashes and nothing else to escape.
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value:
        value = value.replace("\t", "\\t")
    if "\n" in value:
        value = value.replace("\n", "\\n")
    if "\r" in value:
        value = value.replace("\r", "\\r")
    if "\x00" in value:
        raise ValueError("PostgreSQL cannot store text holding a NUL character (U+0000)")
    return value


def copy_field(value: Any) -> str:
    """One value in COPY text format: ``\\N`` for null, ``t``/``f`` for booleans, text escaped."""
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:
        return value if COPY_SPECIAL.search(value) is None else escape_copy(value)
    if kind is bool:
        return "t" if value else "f"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def encode_copy_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows in PostgreSQL's COPY text format (tab-separated, ``\\N`` for null, backslash escapes)."""
    return "".join(["\t".join([copy_field(v) for v in row]) + "\n" for row in rows])


# Per kind, the f-string field that renders one value. Numbers, dates, times and hashes were
# checked by the mapper and cannot hold a tab, newline or backslash; text can.
_COPY_FIELD = {
    "text": "{{_N if {v} is None else (_esc({v}) if _special({v}) else {v})}}",
    "bool": "{{_N if {v} is None else ('t' if {v} else 'f')}}",
}
_COPY_PLAIN = "{{_N if {v} is None else {v}}}"


@cache
def copy_encoder(kinds: tuple[str, ...]) -> Callable[[Iterable[Sequence[Any]]], str]:
    """:func:`encode_copy_text` compiled for rows whose columns have these kinds (``text``, ``bool``,
    or anything already checked to need no escaping: numbers, dates, hashes), once per table:
    straight-line code instead of a loop and a type test per value.

    :param kinds: the kind of each column.
    """
    names = [f"v{i}" for i in range(len(kinds))]
    fields = "\\t".join(_COPY_FIELD.get(kind, _COPY_PLAIN).format(v=name) for kind, name in zip(kinds, names))
    source = f"def encode(rows):\n    return ''.join([f\"{fields}\\n\" for ({', '.join(names)},) in rows])\n"
    namespace: dict[str, Any] = {"_N": "\\N", "_esc": escape_copy, "_special": COPY_SPECIAL.search}
    # Built from column kinds only, never from data.
    exec(compile(source, "<COPY encoder>", "exec"), namespace)  # noqa: S102
    return namespace["encode"]


def copy_into(cursor: Any, table: str, columns: Sequence[str], data: str) -> None:
    """``COPY table (columns) FROM STDIN`` with text already encoded, on psycopg 3 or psycopg2."""
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    if hasattr(cursor, "copy"):  # psycopg 3
        with cursor.copy(sql) as copy:
            copy.write(data)
    else:  # psycopg2
        cursor.copy_expert(sql, io.StringIO(data))


def data_errors(conn: Any) -> tuple[type[BaseException], ...]:
    """The driver's exception classes meaning "this data was refused" (not "the connection broke")."""
    if dialect_of(conn) == "sqlite":
        return (sqlite3.DataError, sqlite3.IntegrityError)
    if type(conn).__module__.split(".")[0] == "psycopg":
        import psycopg

        return (psycopg.DataError, psycopg.IntegrityError)
    import psycopg2

    return (psycopg2.DataError, psycopg2.IntegrityError)
