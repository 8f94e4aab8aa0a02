"""The sent-ledger: which card went where for which SAP document and event, kept in the audit database.

One row per (SAP company, destination, document type, ``DocEntry``, event), PostgreSQL or SQLite:
``DocEntry`` 17 of two companies is two documents, each with its own cards. The company is its
SAP connection id (``sap_b1_default`` for the flow's default company, and for every row written
before the ledger knew companies). A row is
written ``pending`` (with the conversation and a marker the card carries) in its own committed
transaction **before** the card is sent, and ``sent`` with the returned activity id **after**.
So a row still ``pending`` when a later run reads it is a card that *may* have been sent: the
process died (or the call failed without an answer) between the two writes. What the sink does
with such a row depends on the transport (see :mod:`airflow_provider_b1.teams.sink`).

States: ``pending`` (maybe sent), ``sent`` (Teams took it; ``activity_id`` when the transport
gives one), ``covered`` (the event is shown by a card sent for another event of the same
document: a card posted for a document already closed shows it closed).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID
from airflow_provider_b1.utils.migrations import (
    Migration,
    MigrationSet,
    postgres_key_column,
    sqlite_key_column,
)
from airflow_provider_b1.utils.sql import Database, dialect_of, mark_of, query, transaction

TABLE = "b1_teams_sent"

PENDING = "pending"
SENT = "sent"

#: Version 2's key: the company first, then what a page's look-up names.
_V2_KEY = ("company", DEFAULT_SAP_CONN_ID, ("doc_type", "doc_entry", "destination", "event"))

MIGRATIONS = MigrationSet(
    "teams_sent_ledger",
    "b1_teams_sent_version",
    (
        Migration(
            1,
            "Teams cards sent per destination, document and event",
            (
                f"""CREATE TABLE IF NOT EXISTS {{s}}{TABLE} (
                destination {{text}} NOT NULL,
                doc_type {{text}} NOT NULL,
                doc_entry {{text}} NOT NULL,
                event {{text}} NOT NULL,
                state {{text}} NOT NULL,
                card {{text}} NOT NULL,
                conversation_id {{text}},
                activity_id {{text}},
                marker {{text}} NOT NULL,
                attempts {{int}} NOT NULL,
                run_id {{text}},
                updated_at {{ts}} NOT NULL,
                PRIMARY KEY (destination, doc_type, doc_entry, event)
            )""",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_state ON {{s}}{TABLE} (state, destination)",
            ),
        ),
        # The key leads with what a page's look-up names (company, document type, DocEntries), so
        # the look-up reads the key's index; existing rows become the default company's.
        Migration(
            2,
            "several SAP companies: the company in every row and first in the key",
            (),
            postgres_only=(postgres_key_column(TABLE, *_V2_KEY),),
            sqlite_only=(sqlite_key_column(TABLE, *_V2_KEY),),
        ),
    ),
)


@dataclasses.dataclass
class Entry:
    """One ledger row.

    :param card: ``card`` (the document's own card), ``digest`` (a line of a digest card) or
        ``followup`` (a short card about a later event, posted where the first cannot be updated).
    :param marker: an id the card carries (its first element's ``id``), so a card can be
        recognised among a conversation's messages.
    """

    destination: str
    doc_type: str
    doc_entry: str
    event: str
    state: str
    card: str
    marker: str
    conversation_id: str | None = None
    activity_id: str | None = None
    attempts: int = 1

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.destination, self.doc_type, self.doc_entry, self.event)


_COLUMNS = (
    "destination",
    "doc_type",
    "doc_entry",
    "event",
    "state",
    "card",
    "conversation_id",
    "activity_id",
    "marker",
    "attempts",
)


class SentLedger:
    """The ledger table on its own connection (one per writer thread).

    :param database: the audit trail's database.
    :param schema: its PostgreSQL schema (ignored by SQLite).
    :param run_id: the Airflow run writing (kept on each row, for people).
    :param company: the SAP company whose documents these are (its SAP connection id): every row
        this ledger reads and writes is that company's.
    """

    def __init__(
        self,
        database: Database,
        schema: str | None,
        run_id: str | None = None,
        company: str = DEFAULT_SAP_CONN_ID,
    ) -> None:
        self.database = database
        self.schema = schema if database.dialect == "postgres" else None
        self.run_id = run_id
        self.company = company
        self._conn: Any = None

    @property
    def table(self) -> str:
        return f"{self.schema}.{TABLE}" if self.schema else TABLE

    def fork(self) -> SentLedger:
        return SentLedger(self.database, self.schema, self.run_id, self.company)

    def connection(self) -> Any:
        if self._conn is None:
            conn = self.database.connect()
            MIGRATIONS.apply(conn, self.schema)
            if dialect_of(conn) == "postgres":
                # Two commits per card: without waiting for the disk, each costs a fraction of a
                # millisecond instead of several. A killed worker loses nothing it committed (the
                # server has it); only a crash of the database server itself could lose the last
                # moment's rows, after which those cards may be sent once more.
                with conn.cursor() as cursor:
                    cursor.execute("SET synchronous_commit TO off")
                conn.commit()
            self._conn = conn
        return self._conn

    def entries(self, doc_type: str, doc_entries: Iterable[Any]) -> dict[str, list[Entry]]:
        """``{DocEntry: [rows of every destination and event]}`` of these documents."""
        keys = list(dict.fromkeys(str(k) for k in doc_entries))
        found: dict[str, list[Entry]] = {}
        conn = self.connection()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join(["{p}"] * len(chunk))
            for row in query(
                conn,
                f"SELECT {', '.join(_COLUMNS)} FROM {self.table} "
                f"WHERE company = {{p}} AND doc_type = {{p}} AND doc_entry IN ({marks})",
                [self.company, doc_type, *chunk],
            ):
                entry = Entry(**dict(zip(_COLUMNS, row)))
                found.setdefault(entry.doc_entry, []).append(entry)
        return found

    def write(self, entries: Sequence[Entry]) -> None:
        """Insert or replace these rows, committed before this returns."""
        if not entries:
            return
        conn = self.connection()
        mark = mark_of(conn)
        now = "now()" if dialect_of(conn) == "postgres" else "CURRENT_TIMESTAMP"
        columns = ("company", *_COLUMNS, "run_id")
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[5:])
        sql = (
            f"INSERT INTO {self.table} ({', '.join(columns)}, updated_at) "
            f"VALUES ({', '.join([mark] * len(columns))}, {now}) "
            "ON CONFLICT (company, doc_type, doc_entry, destination, event) "
            f"DO UPDATE SET {updates}, updated_at = excluded.updated_at"
        )
        rows = [(self.company, *(getattr(e, c) for c in _COLUMNS), self.run_id) for e in entries]
        with transaction(conn) as cursor:
            cursor.executemany(sql, rows)

    def forget(self, entries: Sequence[Entry]) -> None:
        """Delete rows of cards that were certainly not sent (Teams refused them), so a replay may
        send them."""
        if not entries:
            return
        conn = self.connection()
        mark = mark_of(conn)
        sql = (
            f"DELETE FROM {self.table} WHERE company = {mark} AND destination = {mark} AND doc_type = {mark} "
            f"AND doc_entry = {mark} AND event = {mark} AND state = {mark}"
        )
        with transaction(conn) as cursor:
            cursor.executemany(sql, [(self.company, *e.key, PENDING) for e in entries])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
