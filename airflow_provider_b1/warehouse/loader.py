"""Loading pages of SAP records into the warehouse: PostgreSQL by COPY + merge, SQLite by upserts.

Both loaders are the warehouse flow's sink (:class:`WarehouseLoader`, a
:class:`~airflow_provider_b1.sync.sql_sinks.DatabaseSink`) and share one contract per page:

* every record read ends with one :class:`~airflow_provider_b1.sync.outcomes.Outcome`:
  ``created``, ``updated``, ``unchanged`` (same payload hash as the stored row), ``skipped`` (an
  earlier copy of a record repeated later in the same page) or ``failed`` with a reason;
* a page is one transaction: the changed rows, their child rows and (when the audit trail lives
  in the warehouse) the page's audit rows and checkpoint land together or not at all;
* when a record changes, its child rows (document lines, payment applications) are replaced
  whole, so a line removed in SAP disappears from the warehouse;
* a record that cannot be mapped fails alone; if the database refuses the page (a value out of
  range...), the page is written again record by record under savepoints, in one transaction, so
  only the guilty records fail;
* nothing is kept from one page to the next, so memory stays flat whatever the entity's size.

Documents whose business partner the warehouse does not know yet are **loaded**, and the partner
is added to ``dim_business_partner`` as an *inferred* row (``is_inferred = true``, only the code
and the name the document carries). SAP itself cannot hold a document without its partner, so
such a gap is a matter of load order or timing, not of bad data: failing the document would drop
real money from the facts and break reconciliation, while the inferred row keeps every join whole
and is replaced by the real partner on its next load. Inferred rows are excluded from the
partner reconciliation and easy to list (``WHERE is_inferred``).

Records SAP deletes outright (master data: see ``EntitySpec.deletable``) are never removed here.
The deletion check (:mod:`.deletions`) sets ``deleted_at`` on the rows whose keys SAP no longer
holds (:meth:`WarehouseLoader.mark_deleted`), each a ``deleted`` row of the audit trail; a later
load that brings a record with such a key back clears it in the merge, whether or not its payload
changed, and reports the record ``restored``, with a note saying when it was marked deleted. An
ops person asking the audit trail "what happened to partner C001?" then reads *created, deleted,
restored* instead of a second *created* that hides the deletion, and ``WHERE action IN ('deleted',
'restored')`` lists every change of a record's existence. A restored record counts as written,
like a created one. Both are also written to ``deletion_log`` in the transaction that makes them.
Counts, sums and keys (:meth:`WarehouseLoader.stats`, :meth:`WarehouseLoader.keys`) leave deleted
rows out, as they leave inferred partners out.

PostgreSQL, per page: one indexed look-up asks whether any of the page's keys is already
loaded. If none is (a first load, or a page of new records), the rows and their child rows are
``COPY``-ed straight into their tables: every record is created.
Otherwise the rows are ``COPY``-ed into a session-local staging table and merged with
``INSERT ... ON CONFLICT DO UPDATE ... WHERE payload_hash IS DISTINCT FROM ... RETURNING
(xmax = 0)`` (the rows returned are the created and updated ones, the rest are unchanged), the
child rows of updated records are deleted and those of changed records ``COPY``-ed straight into
their tables. Either way the partners the changed rows name are then inferred from the table,
last before the commit (the one step that can meet another writer's rows: see
:meth:`WarehouseLoader.after_turn`), and the page costs one commit and a handful of round trips
whatever its size.
"""

from __future__ import annotations

import datetime
import json
import logging
import sqlite3
import threading
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any

import msgspec

from airflow_provider_b1.sync.engine import Item, write_alone
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome, count_actions
from airflow_provider_b1.sync.sql_sinks import DatabaseSink
from airflow_provider_b1.utils.sql import Database, connect_sqlite, copy_encoder, copy_into, open_database
from airflow_provider_b1.warehouse.entities import (
    ENTITIES,
    PARTNER_ENTITY,
    EntitySpec,
    MappedRecord,
    RecordError,
    decode_exact,
    entity_spec,
    nul_fields,
)
from airflow_provider_b1.warehouse.schema import (
    DEFAULT_COMPANY,
    DEFAULT_SCHEMA,
    ensure_schema_postgres,
    ensure_schema_sqlite,
    validate_schema_name,
)

if TYPE_CHECKING:
    from airflow_provider_b1.sync.audit import AuditRecord, AuditSession

log = logging.getLogger(__name__)

CREATED, UPDATED, UNCHANGED, RESTORED = (
    Action.CREATED.value,
    Action.UPDATED.value,
    Action.UNCHANGED.value,
    Action.RESTORED.value,
)
_ACTIONS = {a.value: a for a in Action}


@dataclass
class PageResult:
    """The outcomes of one page loaded on its own (:meth:`WarehouseLoader.load_page`), in read order."""

    outcomes: list[Outcome] = field(default_factory=list)
    inferred_partners: int = 0

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    @property
    def counts(self) -> dict[str, int]:
        return count_actions(self.outcomes)


@dataclass(frozen=True)
class StampWindow:
    """A window on a record's update stamp, in the SAP server's local time.

    ``since`` is inclusive and ``until`` exclusive, each a ``("YYYY-MM-DD", "HH:MM:SS")`` pair
    or ``None`` for an open end. Entities stamped by day only compare days: a day is in the
    window when any of its instants is.
    """

    since: tuple[str, str] | None = None
    until: tuple[str, str] | None = None

    def contains(self, update_date: str | None, update_time: str | None, *, date_only: bool) -> bool:
        """Whether a record stamped ``update_date`` / ``update_time`` (SAP or warehouse form) falls inside."""
        day = (update_date or "")[:10]
        if date_only:
            if self.since and day < self.since[0]:
                return False
            return not (
                self.until and (day > self.until[0] or (day == self.until[0] and self.until[1] == "00:00:00"))
            )
        stamp = (day, update_time or "00:00:00")
        if self.since and stamp < self.since:
            return False
        return not (self.until and stamp >= self.until)


class _Inferred:
    """Partners inferred per entity, counted across a loader and its forks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_entity: dict[str, int] = {}

    def add(self, entity: str, n: int) -> None:
        if n:
            with self._lock:
                self.by_entity[entity] = self.by_entity.get(entity, 0) + n

    def take(self, entity: str) -> int:
        with self._lock:
            return self.by_entity.pop(entity, 0)


class WarehouseLoader(DatabaseSink):
    """Loads pages of SAP records into the warehouse tables declared in :mod:`.entities`: the
    warehouse flow's sink (see :class:`~airflow_provider_b1.sync.sql_sinks.DatabaseSink`).

    Each page is one transaction: its rows, their child rows, the partners inferred from them,
    and the page's audit rows and checkpoint when they live in this database.
    """

    system = "warehouse"

    def __init__(
        self,
        conn: Any,
        schema: str | None,
        *,
        database: Database | None = None,
        company: str = DEFAULT_COMPANY,
    ) -> None:
        super().__init__(conn, schema, database=database)
        self._inferred = _Inferred()
        #: The SAP company (its connection id) whose rows this loader reads and writes; every
        #: statement is limited to its rows, so companies share the tables without meeting.
        self.company = company

    @abstractmethod
    def ensure_schema(self) -> int:
        """Create or upgrade the schema; return its version."""

    @abstractmethod
    def _merge(
        self, spec: EntitySpec, mapped: Sequence[MappedRecord]
    ) -> tuple[dict[Any, str], dict[Any, str]]:
        """Write one batch's rows in the open transaction; return ``{key: created|updated|unchanged|restored}``
        and the notes of the restored records (``{key: "SAP holds it again; it was marked deleted at ..."}``)."""

    @abstractmethod
    def _infer_partners(self, spec: EntitySpec, changed: Sequence[MappedRecord]) -> int:
        """Add the partners the changed records name that the warehouse lacks, as inferred rows, in
        the open transaction; return how many were added."""

    @abstractmethod
    def stats(self, spec: EntitySpec, window: StampWindow | None = None) -> tuple[int, Decimal | None]:
        """Count (and the sum of the amount column, when the entity has one) of the loaded records."""

    def amounts(
        self, spec: EntitySpec, window: StampWindow | None = None
    ) -> Iterator[tuple[Any, Decimal | None]]:
        """``(key, amount)`` of each loaded record (inferred partners excluded; the amount ``None``
        for entities without one), for reconciliation reports."""
        mark = "%s" if self.dialect == "postgres" else "?"
        where, params = _window_sql(spec, window, mark, self.company)
        amount = spec.amount_column or "NULL"
        cursor = self.conn.cursor()
        try:
            cursor.execute(f"SELECT {spec.key_column}, {amount} FROM {self.table_name(spec)} {where}", params)
            for key, value in cursor:
                if value.__class__ is float:
                    value = Decimal(repr(value))
                yield key, value
        finally:
            cursor.close()
            self.rollback()

    def keys(self, spec: EntitySpec, window: StampWindow | None = None) -> Iterator[Any]:
        """Keys of the loaded records (inferred partners and rows marked deleted excluded)."""
        for key, _amount in self.amounts(spec, window):
            yield key

    def deleted_keys(self, spec: EntitySpec) -> list[Any]:
        """Keys of the rows marked deleted in SAP (none for an entity SAP cannot delete)."""
        return list(self.deleted_marks(spec))

    def deleted_marks(self, spec: EntitySpec) -> dict[Any, datetime.datetime]:
        """``{key: deleted_at}`` of the rows marked deleted in SAP (none for an entity SAP cannot
        delete), the times aware (UTC)."""
        if not spec.deletable:
            return {}
        mark = "%s" if self.dialect == "postgres" else "?"
        rows = self.execute(
            f"SELECT {spec.key_column}, deleted_at FROM {self.table_name(spec)} "
            f"WHERE company = {mark} AND deleted_at IS NOT NULL",
            (self.company,),
        )
        self.rollback()
        found = {}
        for key, at in rows:
            at = datetime.datetime.fromisoformat(at) if isinstance(at, str) else at  # SQLite: UTC text
            found[key] = at if at.tzinfo else at.replace(tzinfo=datetime.timezone.utc)
        return found

    def mark_deleted(
        self,
        spec: EntitySpec,
        keys: Iterable[Any],
        run: Mapping[str, Any] | None = None,
        *,
        audit: AuditSession | None = None,
        reason: str | None = None,
    ) -> list[Any]:
        """Mark the live rows of these keys deleted in SAP (``deleted_at`` now) and log each in
        ``deletion_log``, in one transaction; return the keys marked. Rows are never removed.

        With an audit session each marking is also a ``deleted`` row of the audit trail (the
        session's flow, source system ``sap_b1``, the entity, the key, ``reason``). When the trail
        lives in this very database (the warehouse opened from a connection that reaches the
        trail's database) those rows are written in the marking's own transaction: marking and
        trail commit together or not at all. Otherwise they are written right after the marking's
        commit, in a transaction of the trail's own, as the sync engine writes a page's trail; if
        that write fails the task fails, and the markings keep their ``deletion_log`` rows.

        :param spec: an entity SAP can delete (:attr:`EntitySpec.deletable`).
        :param keys: keys as the warehouse holds them (e.g. from :meth:`keys`).
        :param run: ``dag_id``, ``run_id`` and ``task_id`` of the check, for the log; the audit
            session's when not given.
        :param audit: the check's audit session (see :meth:`AuditTrail.session_for
            <airflow_provider_b1.sync.audit.AuditTrail.session_for>`); ``None`` audits nothing.
        :param reason: why the rows were marked, one short sentence for the audit rows.
        """
        if not spec.deletable:
            raise ValueError(f"SAP does not delete {spec.entity}; the warehouse has no deleted_at for it")
        keys = list(keys)
        marked: list[Any] = []
        if not keys:
            return marked
        if run is None and audit is not None:
            run = audit.run
        shared = (
            audit is not None and self.database is not None and self.database.same_as(audit.trail.database)
        )
        records: list[AuditRecord] = []
        mark = "%s" if self.dialect == "postgres" else "?"
        now = "now()" if self.dialect == "postgres" else "CURRENT_TIMESTAMP"
        self.begin()
        try:
            for start in range(0, len(keys), _SQLITE_VARIABLES):
                chunk = keys[start : start + _SQLITE_VARIABLES]
                rows = self.execute(
                    f"UPDATE {self.table_name(spec)} SET deleted_at = {now} "
                    f"WHERE company = {mark} AND {spec.key_column} IN ({', '.join([mark] * len(chunk))}) "
                    "AND deleted_at IS NULL"
                    + (f" AND NOT {spec.inferred_flag}" if spec.inferred_flag else "")
                    + f" RETURNING {spec.key_column}",
                    [self.company, *chunk],
                )
                marked += [key for (key,) in rows]
            self._log(spec, marked, "deleted", run)
            if audit is not None:
                records = self.deletion_records(spec, marked, reason)
                if shared and records:
                    cursor = self.conn.cursor()
                    try:
                        audit.write(records, cursor, counted=False)
                    finally:
                        cursor.close()
            self.commit()
        except BaseException:
            self.rollback()
            raise
        if records:
            if shared:
                audit.count(records)
            else:
                audit.write(records)
        return marked

    def deletion_records(
        self, spec: EntitySpec, keys: Sequence[Any], reason: str | None
    ) -> list[AuditRecord]:
        """The ``deleted`` audit rows of these marked keys."""
        from airflow_provider_b1.sync.audit import AuditRecord
        from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW

        target = self.table_name(spec)
        reason = reason or "no longer in SAP"
        return [
            AuditRecord(
                WAREHOUSE_FLOW.source_system,
                spec.entity,
                str(key),
                Action.DELETED,
                target_system=self.system,
                target_entity=target,
                target_key=str(key),
                error=reason,
            )
            for key in keys
        ]

    def _log(self, spec: EntitySpec, keys: Sequence[Any], action: str, run: Mapping[str, Any] | None) -> None:
        """``deletion_log`` rows for these keys, in the open transaction."""
        if not keys:
            return
        run = run or {}
        mark = "%s" if self.dialect == "postgres" else "?"
        table = f"{self.schema}.deletion_log" if self.dialect == "postgres" else "deletion_log"
        cursor = self.conn.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO {table} (company, entity, table_name, record_key, action, dag_id, run_id, task_id) "
                f"VALUES ({', '.join([mark] * 8)})",
                [
                    (
                        self.company,
                        spec.entity,
                        spec.table,
                        str(key),
                        action,
                        run.get("dag_id"),
                        run.get("run_id"),
                        run.get("task_id"),
                    )
                    for key in keys
                ],
            )
        finally:
            cursor.close()

    def record_company(self, company_db: str | None) -> None:
        """Name this loader's company in ``dim_company``: its SAP database (CompanyDB), which is what
        people know a company by, next to the connection id the rows carry; in a transaction of its own."""
        mark = "%s" if self.dialect == "postgres" else "?"
        table = f"{self.schema}.dim_company" if self.dialect == "postgres" else "dim_company"
        now = "now()" if self.dialect == "postgres" else "CURRENT_TIMESTAMP"
        if self.company != DEFAULT_COMPANY and not self.execute(f"SELECT 1 FROM {table} LIMIT 1"):
            # The first company named here: rows loaded before the warehouse kept companies (now the
            # default company's) may have been read through this very connection.
            partners = self.table_name(ENTITIES[PARTNER_ENTITY])
            if self.execute(f"SELECT 1 FROM {partners} WHERE company = {mark} LIMIT 1", (DEFAULT_COMPANY,)):
                log.warning(
                    "The warehouse holds rows loaded before it kept companies, now those of %s; if they were "
                    "read through %s, set their company to %r (UPDATE each table) before this load, or it "
                    "loads that company again beside them.",
                    DEFAULT_COMPANY,
                    self.company,
                    self.company,
                )
        self.begin()
        try:
            self.execute(
                f"INSERT INTO {table} (company, company_db) VALUES ({mark}, {mark}) ON CONFLICT (company) "
                f"DO UPDATE SET company_db = excluded.company_db, loaded_at = {now}",
                (self.company, company_db),
            )
            self.commit()
        except BaseException:
            self.rollback()
            raise

    @abstractmethod
    def table_name(self, spec: EntitySpec) -> str:
        """The table's name as written in SQL (schema-qualified on PostgreSQL)."""

    # -- the sink -------------------------------------------------------------------------------

    def target_entity(self, stream: Stream) -> str:
        return self.table_name(entity_spec(stream.name))

    def holds_data(self, stream: Stream) -> bool:
        spec = entity_spec(stream.name)
        mark = "%s" if self.dialect == "postgres" else "?"
        where = f" AND NOT {spec.inferred_flag}" if spec.inferred_flag else ""
        found = bool(
            self.execute(
                f"SELECT 1 FROM {self.table_name(spec)} WHERE company = {mark}{where} LIMIT 1",
                (self.company,),
            )
        )
        self.rollback()
        return found

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        """Map a page (pure Python): dicts, or records still encoded as SAP sent them (bytes),
        which map faster. A record that cannot be mapped fails here with its reason."""
        spec = entity_spec(stream.name)
        map_dict, map_raw = spec.map, spec.map_raw
        prepared: list[Item | Outcome] = []
        for record in records:
            try:
                mapped = map_dict(record) if record.__class__ is dict else map_raw(record)
            except RecordError as exc:
                prepared.append(Outcome(_key_as_sent(spec, record), Action.FAILED, str(exc)))
                continue
            prepared.append(Item(mapped.key, mapped, mapped.payload_hash))
        return prepared

    def write_rows(self, stream: Stream, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        """The page's rows and child rows (a changed record's children replaced whole)."""
        mapped = [item.data for item in items]
        actions, notes = self._merge(entity_spec(stream.name), mapped)
        if notes:
            return {
                m.key: Outcome(m.key, _ACTIONS[actions[m.key]], notes.get(m.key), m.payload_hash)
                for m in mapped
            }
        return {m.key: Outcome(m.key, _ACTIONS[actions[m.key]], None, m.payload_hash) for m in mapped}

    def after_turn(self, stream: Stream, items: Sequence[Item], outcomes: Mapping[Hashable, Outcome]) -> None:
        """Partners the changed records name and the warehouse lacks, added as inferred rows: the one
        step that can meet another writer's rows, so it waits for the earlier pages' commits."""
        spec = entity_spec(stream.name)
        changed = [item.data for item in items if outcomes[item.key].action is not Action.UNCHANGED]
        self._inferred.add(spec.entity, self._infer_partners(spec, changed))

    def finish(self, stream: Stream) -> str | None:
        inferred = self._inferred.take(stream.name)
        return f"{inferred} business partners not loaded yet were added as inferred" if inferred else None

    def load_page(self, spec: EntitySpec | str, records: Iterable[Any]) -> PageResult:
        """Load one page of SAP records of one entity on its own (no audit trail); never raises for
        a bad record.

        :param spec: the entity's declaration, or its SAP name.
        :param records: the page, as read from the Service Layer (dicts or encoded records).
        """
        entity = spec if isinstance(spec, str) else spec.entity
        before = dict(self._inferred.by_entity)
        outcomes = write_alone(self, Stream(entity), list(records))
        return PageResult(outcomes, self._inferred.by_entity.get(entity, 0) - before.get(entity, 0))


def _restored_note(deleted_at: Any) -> str:
    """The audit note of a restored record: when the deletion check had marked it deleted."""
    if isinstance(deleted_at, datetime.datetime):
        if deleted_at.tzinfo is not None:
            deleted_at = deleted_at.astimezone(datetime.timezone.utc)
        deleted_at = deleted_at.strftime("%Y-%m-%d %H:%M:%S")
    return f"SAP holds it again; it was marked deleted at {str(deleted_at)[:19]} UTC"


def _key_as_sent(spec: EntitySpec, record: Any) -> Any:
    """The key of a record that could not be mapped, as SAP sent it (``None`` if it has none)."""
    if record.__class__ is not dict:
        try:
            record = decode_exact(record)
        except (msgspec.DecodeError, TypeError):
            return None
    return record.get(spec.key_field) if isinstance(record, dict) else None


def _nul_reason(spec: EntitySpec, mapped: MappedRecord) -> str:
    raw = mapped.row[spec.column_names.index("raw")]
    fields = nul_fields(json.loads(raw)) or ["its text"]
    verb = "holds" if len(fields) == 1 else "hold"
    return (
        f"{', '.join(fields)} {verb} a NUL character (U+0000), which PostgreSQL cannot store; remove it "
        "in SAP, then replay the record"
    )


# --- PostgreSQL -----------------------------------------------------------------------------


class PostgresLoader(WarehouseLoader):
    """COPY + set-based merge into PostgreSQL, one transaction per page.

    :param conn: an open psycopg 3 or psycopg2 connection (not autocommit); the loader owns it.
    :param schema: the PostgreSQL schema of the warehouse tables.
    """

    dialect = "postgres"

    def __init__(
        self,
        conn: Any,
        schema: str = DEFAULT_SCHEMA,
        *,
        connect: Callable[[], Any] | None = None,
        database: Database | None = None,
        company: str = DEFAULT_COMPANY,
    ) -> None:
        self.schema = validate_schema_name(schema)
        super().__init__(conn, self.schema, database=database, company=company)
        self._connect = connect
        if type(conn).__module__.split(".")[0] == "psycopg":
            from psycopg.rows import tuple_row

            # A connection's "cursor" extra (dict rows) must not change what the merge reads back.
            conn.row_factory = tuple_row
        self._staged: set[str] = set()

    def ensure_schema(self) -> int:
        return ensure_schema_postgres(self.conn, self.schema)

    def table_name(self, spec: EntitySpec) -> str:
        return f"{self.schema}.{spec.table}"

    def fork(self) -> PostgresLoader | None:
        """Another writer on its own connection (pages are then written side by side)."""
        if self._connect is None:
            return None
        another = PostgresLoader(
            self._connect(), self.schema, connect=self._connect, database=self.database, company=self.company
        )
        another._inferred = self._inferred
        return another

    open_another = fork

    def rollback(self) -> None:
        super().rollback()
        # Temporary tables created in the rolled-back transaction are gone with it.
        self._staged.clear()

    def before_each(self, stream: Stream) -> None:
        # Outside the record's savepoint: rolling one back must not take the staging table with
        # it, and the table empties at commit only: one record's rows must not stay for the next.
        spec = entity_spec(stream.name)
        self._ensure_stage(spec)
        self.execute(f"DELETE FROM {_postgres_sql(spec, self.schema).stage}")

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        """As :meth:`WarehouseLoader.prepare`; a record holding a NUL character fails here: no
        PostgreSQL text or ``jsonb`` value can hold one, and dropping it would change the record
        silently."""
        prepared = super().prepare(stream, records)
        for index, item in enumerate(prepared):
            if item.__class__ is Item and item.data.nul:
                prepared[index] = Outcome(
                    item.key, Action.FAILED, _nul_reason(entity_spec(stream.name), item.data)
                )
        return prepared

    def _ensure_stage(self, spec: EntitySpec) -> None:
        if spec.table not in self._staged:
            self.execute(_postgres_sql(spec, self.schema).create_stage)
            self._staged.add(spec.table)

    def _copy(
        self,
        cur: Any,
        table: str,
        columns: Sequence[str],
        kinds: tuple[str, ...],
        rows: Iterable[Sequence[Any]],
    ) -> None:
        """COPY rows into a table, each with this loader's company as its last column."""
        company = (self.company,)
        copy_into(
            cur, table, (*columns, "company"), copy_encoder((*kinds, "text"))(row + company for row in rows)
        )

    def _merge(self, spec: EntitySpec, mapped: Sequence[MappedRecord]) -> dict[Any, str]:
        sql = _postgres_sql(spec, self.schema)
        with self.conn.cursor() as cur:
            cur.execute(sql.any_exists, (self.company, [m.key for m in mapped]))
            if cur.fetchone() is None:
                return self._insert_new(cur, spec, sql, mapped)
            self._ensure_stage(spec)
            self._copy(cur, sql.stage, spec.column_names, spec.column_kinds, [m.row for m in mapped])
            cur.execute(sql.merge)
            actions = dict.fromkeys((m.key for m in mapped), UNCHANGED)
            updated = []
            restored = []
            notes = {}
            for row in cur.fetchall():
                key, inserted = row[0], row[1]
                actions[key] = CREATED if inserted else UPDATED
                if len(row) > 2 and row[2] is not None:
                    actions[key] = RESTORED
                    notes[key] = _restored_note(row[2])
                    restored.append(key)
                    updated.append(key)
                elif not inserted:
                    updated.append(key)
            changed = [m for m in mapped if actions[m.key] != UNCHANGED]
            if updated:
                for delete in sql.delete_children:
                    cur.execute(delete, (self.company, updated))
            self._copy_children(cur, spec, changed)
        self._log(spec, restored, "restored", None)
        return actions, notes

    def _infer_partners(self, spec: EntitySpec, changed: Sequence[MappedRecord]) -> int:
        sql = _postgres_sql(spec, self.schema)
        if not sql.infer_partners or not changed:
            return 0
        with self.conn.cursor() as cur:
            cur.execute(sql.infer_partners, (self.company, [m.key for m in changed]))
            return max(cur.rowcount, 0)

    def _copy_children(self, cur: Any, spec: EntitySpec, mapped: Sequence[MappedRecord]) -> None:
        """COPY the child rows (document lines, ...) of these records into their tables."""
        for index, child in enumerate(spec.children):
            rows = [row for m in mapped for row in m.children[index]]
            if rows:
                self._copy(
                    cur,
                    f"{self.schema}.{child.table}",
                    child.column_names,
                    child.column_kinds(spec.key_kind),
                    rows,
                )

    def _insert_new(
        self, cur: Any, spec: EntitySpec, sql: _PostgresSql, mapped: Sequence[MappedRecord]
    ) -> tuple[dict[Any, str], dict[Any, str]]:
        # None of the page's keys is in the table (a first load, or new records): COPY straight
        # into it, children too, with no staging table and no merge. A concurrent writer adding
        # one of these keys meanwhile makes the COPY fail on the primary key; the page is then
        # retried record by record, and those records take the merge path.
        self._copy(cur, sql.table, spec.column_names, spec.column_kinds, [m.row for m in mapped])
        self._copy_children(cur, spec, mapped)
        return dict.fromkeys((m.key for m in mapped), CREATED), {}

    def stats(self, spec: EntitySpec, window: StampWindow | None = None) -> tuple[int, Decimal | None]:
        amount = f"sum({spec.amount_column})" if spec.amount_column else "NULL"
        where, params = _window_sql(spec, window, "%s", self.company)
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT count(*), {amount} FROM {self.schema}.{spec.table} {where}", params)
            count, total = cur.fetchone()
        self.conn.rollback()
        if spec.amount_column:
            total = Decimal(total or 0)
        return count, total


@dataclass(frozen=True)
class _PostgresSql:
    table: str
    any_exists: str
    stage: str
    create_stage: str
    merge: str
    delete_children: tuple[str, ...]
    infer_partners: str | None


@cache
def _postgres_sql(spec: EntitySpec, schema: str) -> _PostgresSql:
    table = f"{schema}.{spec.table}"
    stage = f"pg_temp.stage_{spec.table}"
    columns = spec.column_names
    key = spec.key_column
    column_list = ", ".join(columns)
    selected = ", ".join(f"s.{c}::jsonb" if c == "raw" else f"s.{c}" for c in columns)
    assignments = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != key)
    # The join keeps unchanged records out of the INSERT, so their raw JSON is never parsed;
    # the ON CONFLICT ... WHERE still guards against a concurrent writer. A row marked deleted is
    # written even when its payload is the same: the record is back, and deleted_at is cleared.
    revived = " OR o.deleted_at IS NOT NULL" if spec.deletable else ""
    insert = (
        f"INSERT INTO {table} AS t ({column_list}, company) "
        f"SELECT {selected}, s.company FROM {stage} AS s "
        f"LEFT JOIN {table} AS o ON o.company = s.company AND o.{key} = s.{key} "
        f"WHERE o.payload_hash IS DISTINCT FROM s.payload_hash{revived} "
        f"ON CONFLICT (company, {key}) DO UPDATE SET {assignments}, loaded_at = now()"
        + (", deleted_at = NULL" if spec.deletable else "")
        + " WHERE t.payload_hash IS DISTINCT FROM EXCLUDED.payload_hash"
        + (" OR t.deleted_at IS NOT NULL" if spec.deletable else "")
        + f" RETURNING t.{key}, (t.xmax = 0) AS inserted"
    )
    if spec.inferred_flag or spec.deletable:
        # A real record replacing an inferred placeholder is new to the warehouse's live rows: say
        # "created". One coming back after its deletion in SAP says when it was marked: "restored".
        ctes, joins, created = [], "", "up.inserted"
        if spec.inferred_flag:
            ctes.append(
                f"old AS (SELECT t.{key} FROM {table} AS t JOIN {stage} AS s USING (company, {key}) "
                f"WHERE t.{spec.inferred_flag})"
            )
            joins += f" LEFT JOIN old USING ({key})"
            created += f" OR old.{key} IS NOT NULL"
        restored = "NULL"
        if spec.deletable:
            # The CTE reads the rows as they were before the statement: deleted_at not yet cleared.
            ctes.append(
                f"gone AS (SELECT t.{key}, t.deleted_at FROM {table} AS t JOIN {stage} AS s USING (company, {key}) "
                "WHERE t.deleted_at IS NOT NULL)"
            )
            joins += f" LEFT JOIN gone USING ({key})"
            created += f" OR gone.{key} IS NOT NULL"
            restored = "gone.deleted_at"
        merge = (
            f"WITH {', '.join(ctes)}, up AS ({insert}) SELECT up.{key}, {created}, {restored} FROM up{joins}"
        )
    else:
        merge = insert
    delete_children = tuple(
        f"DELETE FROM {schema}.{child.table} WHERE company = %s AND {child.parent_key_column} = ANY(%s)"
        for child in spec.children
    )
    infer = None
    if spec.partner_column and spec.entity != PARTNER_ENTITY:
        partner = ENTITIES[PARTNER_ENTITY]
        # The changed records are in the table by now, whichever path wrote them. DISTINCT ON
        # takes the partners in code order, so two writers never lock them in opposite orders.
        infer = (
            f"INSERT INTO {schema}.{partner.table} (company, {partner.key_column}, card_name, {partner.inferred_flag}) "
            f"SELECT DISTINCT ON ({spec.partner_column}) company, {spec.partner_column}, card_name, true FROM {table} "
            f"WHERE company = %s AND {key} = ANY(%s) AND {spec.partner_column} IS NOT NULL "
            f"AND {spec.partner_column} <> '' ON CONFLICT (company, {partner.key_column}) DO NOTHING"
        )
    return _PostgresSql(
        table=table,
        any_exists=f"SELECT 1 FROM {table} WHERE company = %s AND {key} = ANY(%s) LIMIT 1",
        stage=stage,
        # ON COMMIT DELETE ROWS empties the stage at every commit: no TRUNCATE round trip. The raw
        # JSON waits there as plain, uncompressed text: only changed records are parsed to jsonb.
        create_stage=(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS stage_{spec.table} "
            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS; "
            f"ALTER TABLE {stage} ALTER COLUMN raw TYPE text, ALTER COLUMN raw SET STORAGE EXTERNAL"
        ),
        merge=merge,
        delete_children=delete_children,
        infer_partners=infer,
    )


def _window_sql(spec: EntitySpec, window: StampWindow | None, mark: str, company: str) -> tuple[str, list]:
    clauses: list[str] = [f"company = {mark}"]
    params: list = [company]
    if spec.inferred_flag:
        clauses.append(f"NOT {spec.inferred_flag}")
    if spec.deletable:
        clauses.append("deleted_at IS NULL")
    if window is not None and spec.cursor != "none":
        if spec.cursor == "date":
            if window.since:
                clauses.append(f"update_date >= {mark}")
                params.append(window.since[0])
            if window.until:
                op = "<" if window.until[1] == "00:00:00" else "<="
                clauses.append(f"update_date {op} {mark}")
                params.append(window.until[0])
        else:
            stamp = "(update_date, coalesce(update_time, '00:00:00'))"
            if window.since:
                clauses.append(f"{stamp} >= ({mark}, {mark})")
                params.extend(window.since)
            if window.until:
                clauses.append(f"{stamp} < ({mark}, {mark})")
                params.extend(window.until)
    return "WHERE " + " AND ".join(clauses), params


# --- SQLite ---------------------------------------------------------------------------------

_SQLITE_VARIABLES = 500


class SqliteLoader(WarehouseLoader):
    """Upserts into a SQLite file, for the embedded demo: same schema, same outcomes.

    :param conn: a :mod:`sqlite3` connection opened with ``isolation_level=None``.
    """

    dialect = "sqlite"

    def __init__(
        self, conn: sqlite3.Connection, *, database: Database | None = None, company: str = DEFAULT_COMPANY
    ) -> None:
        super().__init__(conn, None, database=database, company=company)

    @classmethod
    def open(cls, path: str, *, company: str = DEFAULT_COMPANY) -> SqliteLoader:
        """Open (or create) the SQLite database at ``path``."""
        return cls(connect_sqlite(path), company=company)

    def ensure_schema(self) -> int:
        return ensure_schema_sqlite(self.conn)

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        """As :meth:`WarehouseLoader.prepare`, with amounts as SQLite stores them: a ``REAL``, which
        holds about 15 significant digits; an amount it would round fails its record instead."""
        spec = entity_spec(stream.name)
        prepared = super().prepare(stream, records)
        for index, item in enumerate(prepared):
            if item.__class__ is Item:
                try:
                    prepared[index] = Item(item.key, _as_reals(spec, item.data), item.payload_hash)
                except RecordError as exc:
                    prepared[index] = Outcome(item.key, Action.FAILED, str(exc))
        return prepared

    def table_name(self, spec: EntitySpec) -> str:
        return spec.table

    def _merge(self, spec: EntitySpec, mapped: Sequence[MappedRecord]) -> dict[Any, str]:
        key = spec.key_column
        flag = spec.inferred_flag
        existing: dict[Any, tuple[str | None, bool, Any]] = {}
        keys = [m.key for m in mapped]
        flag_sql = flag if flag else "0"
        gone_sql = "deleted_at" if spec.deletable else "NULL"
        for start in range(0, len(keys), _SQLITE_VARIABLES):
            chunk = keys[start : start + _SQLITE_VARIABLES]
            marks = ", ".join("?" * len(chunk))
            for found, digest, inferred, gone in self.conn.execute(
                f"SELECT {key}, payload_hash, {flag_sql}, {gone_sql} FROM {spec.table} "
                f"WHERE company = ? AND {key} IN ({marks})",
                [self.company, *chunk],
            ):
                existing[found] = (digest, bool(inferred), gone)
        actions: dict[Any, str] = {}
        notes: dict[Any, str] = {}
        changed: list[MappedRecord] = []
        updated: list[Any] = []
        restored: list[Any] = []
        for m in mapped:
            before = existing.get(m.key)
            if before is not None and before[2] is not None:
                # Back after its deletion in SAP: written again, whatever its payload.
                actions[m.key] = RESTORED
                notes[m.key] = _restored_note(before[2])
                restored.append(m.key)
                updated.append(m.key)
            elif before is None or before[1]:
                actions[m.key] = CREATED
            elif before[0] != m.payload_hash:
                actions[m.key] = UPDATED
                updated.append(m.key)
            else:
                actions[m.key] = UNCHANGED
                continue
            changed.append(m)
        if changed:
            sql = _sqlite_sql(spec)
            company = (self.company,)
            self.conn.executemany(sql.upsert, [m.row + company for m in changed])
            for index, _child in enumerate(spec.children):
                if updated:
                    self.conn.executemany(sql.delete_children[index], [(self.company, k) for k in updated])
                rows = [row + company for m in changed for row in m.children[index]]
                if rows:
                    self.conn.executemany(sql.insert_children[index], rows)
        self._log(spec, restored, "restored", None)
        return actions, notes

    def _infer_partners(self, spec: EntitySpec, changed: Sequence[MappedRecord]) -> int:
        inferred = 0
        if spec.partner_column and spec.entity != PARTNER_ENTITY and changed:
            position = spec.column_names.index(spec.partner_column)
            name_position = spec.column_names.index("card_name")
            partners = {m.row[position]: m.row[name_position] for m in changed if m.row[position]}
            partner = ENTITIES[PARTNER_ENTITY]
            before = self.conn.total_changes
            self.conn.executemany(
                f"INSERT INTO {partner.table} (company, {partner.key_column}, card_name, {partner.inferred_flag}) "
                f"VALUES (?, ?, ?, 1) ON CONFLICT (company, {partner.key_column}) DO NOTHING",
                [(self.company, code, name) for code, name in partners.items()],
            )
            inferred = self.conn.total_changes - before
        return inferred

    def stats(self, spec: EntitySpec, window: StampWindow | None = None) -> tuple[int, Decimal | None]:
        # Summed here as exact decimals: SQLite's sum() of REALs drifts, and of integer millionths
        # overflows past about 9.2e12.
        where, params = _window_sql(spec, window, "?", self.company)
        if not spec.amount_column:
            (count,) = self.conn.execute(f"SELECT count(*) FROM {spec.table} {where}", params).fetchone()
            return count, None
        count, total = 0, Decimal(0)
        for (amount,) in self.conn.execute(f"SELECT {spec.amount_column} FROM {spec.table} {where}", params):
            count += 1
            if amount is not None:
                total += Decimal(repr(amount)) if amount.__class__ is float else Decimal(amount)
        return count, total


def _as_reals(spec: EntitySpec, mapped: MappedRecord) -> MappedRecord:
    """``mapped`` with its :class:`~decimal.Decimal` amounts as floats, or :class:`RecordError` for
    one that a float would not keep exactly."""
    if not any(v.__class__ is Decimal for v in mapped.row) and not any(
        v.__class__ is Decimal for rows in mapped.children for row in rows for v in row
    ):
        return mapped
    labels = [c.source for c in spec.columns]
    row = _reals(mapped.row, labels)
    children = tuple(
        [
            _reals(r, ["", *(f"{child.collection}.{c.source.lstrip('^')}" for c in child.columns)])
            for r in rows
        ]
        for child, rows in zip(spec.children, mapped.children)
    )
    return MappedRecord(mapped.key, row, children, mapped.payload_hash, mapped.nul)


def _reals(row: tuple, labels: Sequence[str]) -> tuple:
    values = list(row)
    for index, value in enumerate(values):
        if value.__class__ is Decimal:
            number = float(value)
            if Decimal(repr(number)) != value:
                raise RecordError(
                    f"{labels[index]} {value} has more significant digits than SQLite keeps (a REAL holds "
                    "about 15); load this warehouse into PostgreSQL to keep it exactly"
                )
            values[index] = number
    return tuple(values)


@dataclass(frozen=True)
class _SqliteSql:
    upsert: str
    delete_children: tuple[str, ...]
    insert_children: tuple[str, ...]


@cache
def _sqlite_sql(spec: EntitySpec) -> _SqliteSql:
    columns = (*spec.column_names, "company")
    marks = ", ".join("?" * len(columns))
    assignments = ", ".join(f"{c} = excluded.{c}" for c in spec.column_names if c != spec.key_column)
    upsert = (
        f"INSERT INTO {spec.table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT (company, {spec.key_column}) DO UPDATE SET {assignments}, loaded_at = CURRENT_TIMESTAMP"
        + (", deleted_at = NULL" if spec.deletable else "")
    )
    return _SqliteSql(
        upsert=upsert,
        delete_children=tuple(
            f"DELETE FROM {c.table} WHERE company = ? AND {c.parent_key_column} = ?" for c in spec.children
        ),
        insert_children=tuple(
            f"INSERT INTO {c.table} ({', '.join(c.column_names)}, company) "
            f"VALUES ({', '.join('?' * (len(c.column_names) + 1))})"
            for c in spec.children
        ),
    )


# --- Opening a loader from an Airflow connection ---------------------------------------------


def open_loader(
    conn_id: str, *, schema: str = DEFAULT_SCHEMA, company: str = DEFAULT_COMPANY
) -> WarehouseLoader:
    """Open the warehouse named by an Airflow connection: ``postgres`` or ``sqlite`` (file in ``host``).

    :param conn_id: the Airflow connection id of the warehouse.
    :param schema: the PostgreSQL schema of the warehouse tables (ignored for SQLite).
    :param company: the SAP company whose rows the loader reads and writes: the id of the SAP
        connection they are read through.
    """
    database = open_database(conn_id, purpose="the warehouse")
    if database.dialect == "postgres":
        return PostgresLoader(
            database.connect(), schema, connect=database.connect, database=database, company=company
        )
    return SqliteLoader(database.connect(), database=database, company=company)
