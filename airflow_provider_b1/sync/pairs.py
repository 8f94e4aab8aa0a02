"""Records kept equal in two systems: which record is which, and what the flow last agreed on.

A flow that syncs both ways (Salesforce accounts and SAP business partners) needs two facts per
pair of records, kept in the audit trail's database (PostgreSQL or SQLite):

* **the link**: which record of one side (a Salesforce ``Account`` id) is which of the other (a
  ``CardCode``), recorded once when the pair is made;
* **the agreed value of every field**: a hash of the value both sides held after the flow last
  wrote the field (or found both sides equal). A side whose value hashes to the agreed one has
  not changed it, however its update stamp moved (the flow's own write moves it): that is an
  echo, and nothing is written back. A side whose value differs changed it; when both sides
  changed it since, the field's declared system of record wins (:func:`decide`).

Both tables are per *namespace* (a flow and the org it links, ``salesforce:00D...``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_b1.utils.migrations import Migration, MigrationSet
from airflow_provider_b1.utils.sql import Database, advisory_hold, dialect_of, mark_of, query, transaction

log = logging.getLogger(__name__)

LINKS = "b1_record_links"
AGREED = "b1_agreed_fields"

MIGRATIONS = MigrationSet(
    "record_pairs",
    "b1_record_pairs_version",
    (
        Migration(
            1,
            "record links and agreed field values of two-way flows",
            (
                f"""CREATE TABLE IF NOT EXISTS {{s}}{LINKS} (
                namespace {{text}} NOT NULL,
                kind {{text}} NOT NULL,
                left_id {{text}} NOT NULL,
                right_key {{text}} NOT NULL,
                updated_at {{ts}} NOT NULL,
                PRIMARY KEY (namespace, kind, left_id)
            )""",
                f"CREATE INDEX IF NOT EXISTS {LINKS}_right ON {{s}}{LINKS} (namespace, kind, right_key)",
                f"""CREATE TABLE IF NOT EXISTS {{s}}{AGREED} (
                namespace {{text}} NOT NULL,
                pair {{text}} NOT NULL,
                field {{text}} NOT NULL,
                value_hash {{text}} NOT NULL,
                updated_at {{ts}} NOT NULL,
                PRIMARY KEY (namespace, pair, field)
            )""",
            ),
        ),
    ),
)

_CHUNK = 500


def normalized(value: Any) -> Any:
    """A value as both systems mean it: blank text is nothing, numbers compare by amount
    (``10``, ``10.0`` and ``"10.00"`` as a number are one), surrounding spaces do not count."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, decimal.Decimal)):
        number = decimal.Decimal(repr(value)) if isinstance(value, float) else decimal.Decimal(value)
        return format(number.normalize(), "f") if number else "0"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def value_hash(value: Any) -> str:
    """A short, stable hash of a normalized value (what the agreed-values table keeps)."""
    return hashlib.sha256(repr(normalized(value)).encode()).hexdigest()[:32]


class Winner(str, enum.Enum):
    """What to do with one field of a pair."""

    NOTHING = "nothing"  # equal on both sides, or only an echo of the flow's own write
    LEFT = "left"  # copy the left side's value to the right
    RIGHT = "right"  # copy the right side's value to the left

    def __str__(self) -> str:
        return self.value


@dataclasses.dataclass(frozen=True)
class Decision:
    """What :func:`decide` found for one field.

    :param winner: which side's value both sides should hold.
    :param conflict: both sides changed the field since it was last agreed, to different values.
    :param agreed: the hash both sides hold once the decision is carried out (``None``: no
        agreement yet, the other direction carries it out).
    """

    winner: Winner
    conflict: bool
    agreed: str | None


def decide(left: Any, right: Any, agreed: str | None, owner: str) -> Decision:
    """Which side's value of one field wins.

    :param left: the field's value on the left side (the one whose change is being read).
    :param right: its value on the right side.
    :param agreed: the hash both sides last agreed on (``None``: never agreed).
    :param owner: ``"left"`` or ``"right"``: the field's declared system of record.
    """
    lh, rh = value_hash(left), value_hash(right)
    if lh == rh:
        return Decision(Winner.NOTHING, False, lh)
    if agreed is None and (normalized(left) is None) != (normalized(right) is None):
        # A first sync where one side is empty: the value is filled in, never blanked.
        return (
            Decision(Winner.RIGHT, False, rh)
            if normalized(left) is None
            else Decision(Winner.LEFT, False, lh)
        )
    left_changed = agreed is None or lh != agreed
    right_changed = agreed is None or rh != agreed
    if left_changed and not right_changed:
        return Decision(Winner.LEFT, False, lh)
    if right_changed and not left_changed:
        return Decision(Winner.RIGHT, False, rh)
    # Both differ from what was agreed (or nothing was): the system of record wins. A pair never
    # agreed on is not a conflict, only a first sync.
    if owner == "left":
        return Decision(Winner.LEFT, agreed is not None, lh)
    return Decision(Winner.RIGHT, agreed is not None, rh)


class PairLedger:
    """The links and agreed field values of one namespace.

    :param database: the audit trail's database.
    :param schema: its PostgreSQL schema (ignored by SQLite).
    :param namespace: the flow and the org it links, e.g. ``salesforce:00D000000000001``.
    """

    def __init__(self, database: Database, schema: str | None, namespace: str) -> None:
        self.database = database
        self.schema = schema if database.dialect == "postgres" else None
        self.namespace = namespace
        self._conn: Any = None

    def fork(self) -> PairLedger:
        """The same ledger on a connection of its own, for a writer in another thread."""
        return PairLedger(self.database, self.schema, self.namespace)

    def _table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def connection(self) -> Any:
        if self._conn is None:
            self._conn = self.database.connect()
            MIGRATIONS.apply(self._conn, self.schema)
        return self._conn

    def _select(self, sql: str, column_values: Iterable[Any], *params: Any) -> list[tuple]:
        values = list(dict.fromkeys(str(v) for v in column_values))
        rows: list[tuple] = []
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            marks = ", ".join(["{p}"] * len(chunk))
            rows += query(self.connection(), sql.format(marks=marks, p="{p}"), [*params, *chunk])
        return rows

    # -- links ---------------------------------------------------------------------------------

    def linked(self, kind: str, left_ids: Iterable[Any]) -> dict[str, str]:
        """``{left id: right key}`` of the left records linked already."""
        sql = (
            f"SELECT left_id, right_key FROM {self._table(LINKS)} "
            "WHERE namespace = {p} AND kind = {p} AND left_id IN ({marks})"
        )
        return dict(self._select(sql, left_ids, self.namespace, kind))

    def linked_to(self, kind: str, right_keys: Iterable[Any]) -> dict[str, str]:
        """``{right key: left id}`` of the right records linked already."""
        sql = (
            f"SELECT right_key, left_id FROM {self._table(LINKS)} "
            "WHERE namespace = {p} AND kind = {p} AND right_key IN ({marks})"
        )
        return dict(self._select(sql, right_keys, self.namespace, kind))

    def link(self, kind: str, pairs: Mapping[Any, Any]) -> None:
        """Record ``{left id: right key}``, replacing earlier links of those left ids."""
        self._upsert(
            LINKS,
            ("namespace", "kind", "left_id", "right_key"),
            ("namespace", "kind", "left_id"),
            [(self.namespace, kind, str(left), str(right)) for left, right in pairs.items()],
        )

    # -- agreed values -------------------------------------------------------------------------

    def agreed(self, pairs: Iterable[Any]) -> dict[str, dict[str, str]]:
        """``{pair: {field: hash}}`` of what was last agreed for these pairs."""
        sql = (
            f"SELECT pair, field, value_hash FROM {self._table(AGREED)} "
            "WHERE namespace = {p} AND pair IN ({marks})"
        )
        found: dict[str, dict[str, str]] = {}
        for pair, field, digest in self._select(sql, pairs, self.namespace):
            found.setdefault(pair, {})[field] = digest
        return found

    def agree(self, values: Mapping[Any, Mapping[str, str]]) -> None:
        """Record ``{pair: {field: hash}}`` as agreed (after writing, or finding both sides equal)."""
        self._upsert(
            AGREED,
            ("namespace", "pair", "field", "value_hash"),
            ("namespace", "pair", "field"),
            [
                (self.namespace, str(pair), field, digest)
                for pair, fields in values.items()
                for field, digest in fields.items()
            ],
        )

    def _upsert(self, table: str, columns: tuple[str, ...], key: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        conn = self.connection()
        mark = mark_of(conn)
        now = "now()" if dialect_of(conn) == "postgres" else "CURRENT_TIMESTAMP"
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*columns, "updated_at") if c not in key)
        sql = (
            f"INSERT INTO {self._table(table)} ({', '.join(columns)}, updated_at) "
            f"VALUES ({', '.join([mark] * len(columns))}, {now}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
        )
        with transaction(conn) as cursor:
            cursor.executemany(sql, rows)

    def hold(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Held while a task writes ``what`` (a stream) for this namespace, so that two DAGs syncing
        the same records (the polling one and the change-driven one) take turns: the second finds
        what the first wrote instead of writing it again (a sales order has no unique key in SAP).
        On PostgreSQL; SQLite takes one writer at a time anyway."""
        return advisory_hold(
            self.connection(),
            f"b1-pairs:{self.namespace}:{what}",
            waiting=lambda: log.info(
                "%s: another task is writing it for %s; waiting for it to finish.", what, self.namespace
            ),
        )

    def forget(self) -> int:
        """Drop every link and agreed value of this namespace (an org to link again from nothing,
        e.g. after it was refreshed from production); returns the rows dropped."""
        conn = self.connection()
        dropped = 0
        with transaction(conn) as cursor:
            for table in (LINKS, AGREED):
                cursor.execute(
                    f"DELETE FROM {self._table(table)} WHERE namespace = {mark_of(conn)}", (self.namespace,)
                )
                dropped += max(cursor.rowcount, 0)
        return dropped

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
