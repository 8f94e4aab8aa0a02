"""Sinks whose target is a database: one transaction per page, the trail and checkpoint inside it.

:class:`DatabaseSink` holds what every database target shares: a page is written in one
transaction; the page's audit rows and checkpoint are sealed into it (when the audit trail lives
in the same database); it commits in its turn; and when the database refuses the page (a value
out of range, a broken constraint) the page is written again record by record under savepoints,
still in one transaction, so that only the refused records fail. A subclass writes rows
(:meth:`DatabaseSink.write_rows`) and nothing else. The target keeps its checkpoints beside its
data, so a new, restored or emptied database is noticed before the next read.

:class:`TableSink` is the simplest such target: each record mapped to a row of one table,
upserted by key, unchanged rows recognised by the hash of their values.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import logging
from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from airflow_provider_b1.sync.checkpoints import CHECKPOINT_TABLE, Checkpoint, CheckpointStore
from airflow_provider_b1.sync.engine import Item, PageCommit, Sink
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome
from airflow_provider_b1.sync.records import payload_hash
from airflow_provider_b1.utils.migrations import render
from airflow_provider_b1.utils.sql import (
    Database,
    advisory_hold,
    data_errors,
    dialect_of,
    validate_identifier,
)

log = logging.getLogger(__name__)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (a database error's detail lines add nothing)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


class DatabaseSink(Sink):
    """A sink whose target is a database (see the module documentation).

    :param conn: its DB-API connection (psycopg 3, psycopg2 or :mod:`sqlite3` opened with
        ``isolation_level=None``); the sink owns it.
    :param schema: the PostgreSQL schema of its tables and checkpoints (``None`` for SQLite).
    :param database: the database, when opened from an Airflow connection (lets the engine write
        the audit trail in the page's transaction when it lives there too).
    """

    def __init__(self, conn: Any, schema: str | None, *, database: Database | None = None) -> None:
        self.conn = conn
        self.database = database
        self.dialect = dialect_of(conn)
        self.checkpoints = CheckpointStore(schema if self.dialect == "postgres" else None)
        #: DB-API exception classes meaning "this data was refused" (not "the connection broke").
        self.data_errors = data_errors(conn)

    # -- to implement ------------------------------------------------------------------------

    @abstractmethod
    def write_rows(self, stream: Stream, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        """Write these items' rows in the open transaction; return each one's outcome by key.

        Raise one of :attr:`data_errors` when the database refuses the data: the page is then
        written again one record at a time, and only the refused ones fail.
        """

    def after_turn(self, stream: Stream, items: Sequence[Item], outcomes: Mapping[Hashable, Outcome]) -> None:
        """Work that may meet other writers' rows (it runs once earlier pages have committed), in the
        page's transaction, just before the commit."""

    def holds_data(self, stream: Stream) -> bool:
        """Whether the target holds any record of ``stream`` (an emptied table must not keep vouching
        for its old checkpoint)."""
        return True

    # -- transactions ------------------------------------------------------------------------

    def connection(self) -> Any:
        return self.conn

    def begin(self) -> None:
        """Open the page's transaction (SQLite takes the write lock at once; psycopg begins by itself)."""
        if self.dialect == "sqlite" and not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.dialect == "sqlite":
            if self.conn.in_transaction:
                self.conn.execute("COMMIT")
        else:
            self.conn.commit()

    def rollback(self) -> None:
        if self.dialect == "sqlite":
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        else:
            self.conn.rollback()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement in the open transaction; return the rows it returns (if any)."""
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, tuple(params))
            return cursor.fetchall() if cursor.description else []
        finally:
            cursor.close()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> DatabaseSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sink ------------------------------------------------------------------------------

    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> dict[Hashable, Outcome]:
        """One transaction: the rows, the sealed trail, the turn, :meth:`after_turn`, the commit."""
        try:
            self.begin()
            outcomes = self.write_rows(stream, items)
            self._seal(page, outcomes)
            page.turn()
            self.after_turn(stream, items, outcomes)
            self.commit()
            return outcomes
        except self.data_errors as exc:
            self.rollback()
            log.warning(
                "%s: the database refused a page of %d records (%s); writing them one by one",
                stream.name,
                len(items),
                first_line(exc),
            )
        except BaseException:
            self.rollback()
            raise
        page.turn()
        try:
            outcomes = self._one_by_one(stream, items)
            self._seal(page, outcomes)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return outcomes

    def before_each(self, stream: Stream) -> None:
        """Called in the transaction before each record written alone (outside its savepoint)."""

    def _one_by_one(self, stream: Stream, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        self.begin()
        outcomes: dict[Hashable, Outcome] = {}
        for item in items:
            self.before_each(stream)
            self.execute("SAVEPOINT one_record")
            try:
                one = self.write_rows(stream, [item])
                self.after_turn(stream, [item], one)
            except self.data_errors as exc:
                self.execute("ROLLBACK TO SAVEPOINT one_record")
                self.execute("RELEASE SAVEPOINT one_record")
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.FAILED,
                    f"refused by the {self.system}: {first_line(exc)}",
                    item.payload_hash,
                )
                continue
            self.execute("RELEASE SAVEPOINT one_record")
            outcomes.update(one)
        return outcomes

    def _seal(self, page: PageCommit, outcomes: Mapping[Hashable, Outcome]) -> None:
        cursor = self.conn.cursor()
        try:
            page.seal(cursor, outcomes)
        finally:
            cursor.close()

    def read_checkpoint(self, flow: str, stream: Stream) -> Checkpoint | None:
        if not self.holds_data(stream):
            return Checkpoint({}, empty=True)
        return self.checkpoints.read(self.conn, flow, stream.name)

    def hold(self, flow: str, stream: Stream) -> contextlib.AbstractContextManager[None]:
        """On PostgreSQL, a session advisory lock per (flow, stream) while one task loads it: a second
        task loading the same stream waits for the first instead of locking rows against it. (SQLite
        takes one writer at a time anyway.)"""
        return advisory_hold(
            self.conn,
            f"b1-sync:{flow}:{stream.name}",
            waiting=lambda: log.info(
                "%s: another task is loading it into this target; waiting for it to finish.", stream.name
            ),
        )

    def save_checkpoint(
        self, flow: str, stream: Stream, position: Mapping[str, Any], run: Mapping, *, complete: bool = True
    ) -> None:
        self.checkpoints.save(self.conn, flow, stream.name, position, run, complete=complete)

    def write_checkpoint(
        self,
        cursor: Any,
        flow: str,
        stream: Stream,
        position: Mapping[str, Any],
        run: Mapping,
        *,
        complete: bool = False,
    ) -> None:
        self.checkpoints.write(cursor, flow, stream.name, position, run, complete=complete)


#: What a TableSink column takes from a mapping (anything else fails its record, not the page).
_STORABLE = (str, int, float, bool, decimal.Decimal, dt.date, dt.time)


class TableSink(DatabaseSink):
    """Each record mapped to one row of one table, upserted by its key.

    The table is created when missing (with the checkpoint table beside it). A record whose
    mapping raises ``ValueError``, ``KeyError`` or ``TypeError`` fails alone with that reason; a
    row whose values hash as the stored row's is ``unchanged``.

    :param conn: the DB-API connection (see :class:`DatabaseSink`).
    :param table: the table's name.
    :param key: the key column (the record's natural key, stored as text).
    :param columns: the other columns, ``{name: kind}`` with kinds of
        :mod:`~airflow_provider_b1.utils.migrations` (``text``, ``int``, ``num``, ``date``, ``bool``).
    :param map: ``record -> {column: value}``, the key column included.
    :param schema: the PostgreSQL schema (created when missing).
    :param system: the target's name in audit rows.
    :param database: see :class:`DatabaseSink`.
    """

    def __init__(
        self,
        conn: Any,
        table: str,
        *,
        key: str,
        columns: Mapping[str, str],
        map: Callable[[Any], Mapping[str, Any]],
        schema: str | None = None,
        system: str = "database",
        database: Database | None = None,
    ) -> None:
        super().__init__(conn, schema, database=database)
        self.schema = validate_identifier(schema) if schema and self.dialect == "postgres" else None
        self.table = (f"{self.schema}." if self.schema else "") + validate_identifier(
            table, what="table name"
        )
        self.key = validate_identifier(key, what="column name")
        self.columns = {validate_identifier(name, what="column name"): kind for name, kind in columns.items()}
        self.map = map
        self.system = system
        try:
            self._ensure_table()
        except BaseException:
            conn.close()
            raise

    def _ensure_table(self) -> None:
        columns = ", ".join(f"{name} {{{kind}}}" for name, kind in self.columns.items())
        statements = [
            f"CREATE TABLE IF NOT EXISTS {{s}}{self.table.rpartition('.')[2]} ({self.key} {{text}} PRIMARY KEY, "
            f"{columns}, payload_hash {{text}} NOT NULL)",
            CHECKPOINT_TABLE,
        ]
        self.begin()
        try:
            if self.schema:
                self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            for statement in statements:
                self.execute(render(statement, self.dialect, self.schema))
            self.commit()
        except BaseException:
            self.rollback()
            raise

    def target_entity(self, stream: Stream) -> str:
        return self.table

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        prepared: list[Item | Outcome] = []
        for record in records:
            try:
                row = dict(self.map(record))
                key = row[self.key]
                if key is None or key == "":
                    raise ValueError(f"{self.key} is missing")
                row[self.key] = str(key)
                values = tuple(row.get(name) for name in self.columns)
                for name, value in zip(self.columns, values):
                    if value is not None and not isinstance(value, _STORABLE):
                        raise TypeError(f"{name} is a {type(value).__name__}, which a column cannot hold")
            except (ValueError, KeyError, TypeError) as exc:
                key = record.get(self.key) if isinstance(record, Mapping) else None
                prepared.append(Outcome(key, Action.FAILED, f"cannot be mapped: {exc}"))
                continue
            digest = payload_hash({self.key: row[self.key], **dict(zip(self.columns, values))})
            prepared.append(Item(row[self.key], values, digest))
        return prepared

    def write_rows(self, stream: Stream, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        mark = "?" if self.dialect == "sqlite" else "%s"
        keys = [item.key for item in items]
        stored = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            stored.update(
                self.execute(
                    f"SELECT {self.key}, payload_hash FROM {self.table} WHERE {self.key} IN ({', '.join([mark] * len(chunk))})",
                    chunk,
                )
            )
        names = [self.key, *self.columns, "payload_hash"]
        upsert = (
            f"INSERT INTO {self.table} ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))}) "
            f"ON CONFLICT ({self.key}) DO UPDATE SET "
            + ", ".join(f"{name} = excluded.{name}" for name in names[1:])
        )
        outcomes: dict[Hashable, Outcome] = {}
        changed = []
        for item in items:
            before = stored.get(item.key)
            action = (
                Action.CREATED
                if before is None
                else Action.UPDATED
                if before != item.payload_hash
                else Action.UNCHANGED
            )
            outcomes[item.key] = Outcome(item.key, action, None, item.payload_hash)
            if action is not Action.UNCHANGED:
                changed.append((item.key, *item.data, item.payload_hash))
        if changed:
            cursor = self.conn.cursor()
            try:
                cursor.executemany(upsert, changed)
            finally:
                cursor.close()
        return outcomes

    def holds_data(self, stream: Stream) -> bool:
        found = bool(self.execute(f"SELECT 1 FROM {self.table} LIMIT 1"))
        self.rollback()
        return found

    def fork(self) -> TableSink | None:
        if self.dialect == "sqlite" or self.database is None:
            return None
        return type(self)(
            self.database.connect(),
            self.table.rpartition(".")[2],
            key=self.key,
            columns=self.columns,
            map=self.map,
            schema=self.schema,
            system=self.system,
            database=self.database,
        )
