"""The audit trail: one row per record per attempt, in one table reached through an Airflow connection.

A flow opens an :class:`AuditSession` for each task try and records what happened to every
record it read (:class:`Action`: created, updated, unchanged, skipped, failed; and for the
warehouse, which keeps what SAP deletes, deleted and restored: see
:mod:`airflow_provider_b1.warehouse.deletions`). The sync engine
writes a page's rows with the page (:meth:`AuditSession.write`): inside the page's own
transaction when the target and the audit trail share a database, else right after the page's
commit. Rows go in bulk: ``COPY`` on PostgreSQL, ``executemany`` on SQLite (the embedded demo).
Failed records keep a clear, scrubbed reason and can be replayed later (:mod:`.replay`). A failed
record that waits for another one (a payment for an invoice the target does not hold yet) says
what it waits for (``waiting_for``): the next incremental run of its stream reads it again first
(:meth:`AuditTrail.waiting`).

What a row never holds: a payload (only its SHA-256 from
:func:`~airflow_provider_b1.sync.records.payload_hash`), a password, token, cookie or session id.
Errors pass through :func:`scrub_error`, which removes anything that looks like a secret and
anything Airflow's secrets masker knows, and are truncated.

**Attempt numbers.** ``attempt`` counts how many times a flow has handled one source record
(``flow``, ``source_system``, ``source_entity``, ``source_key``): 1 the first time, 2 when a
later run or a replay handles it again, and so on. It is computed when rows are written, with
one grouped index lookup per write for the keys in it, so the cost is a query per page instead of
one per row. Two tasks handling the same record at the same instant
may both write the same number; the row ``id`` still orders them, and "latest" always means
the highest ``id``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow_provider_b1.exceptions import B1ProviderError
from airflow_provider_b1.sync.checkpoints import CHECKPOINT_TABLE, Checkpoint, CheckpointStore
from airflow_provider_b1.sync.outcomes import Action
from airflow_provider_b1.utils.migrations import Migration, MigrationSet
from airflow_provider_b1.utils.sql import (
    Database,
    copy_into,
    dialect_of,
    encode_copy_text,
    open_database,
    query,
    transaction,
    validate_identifier,
)

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "b1_audit_default"
DEFAULT_SCHEMA = "b1_audit"
TABLE = "audit_record"
ERROR_LIMIT = 2000
KEY_LIMIT = 512

_HEX = "0123456789abcdef"


class AuditError(B1ProviderError):
    """The audit trail cannot be reached or was given something it must not store."""


# Each pattern keeps the name and separator (group 1) and replaces the value.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xyz / "authorization": "Basic xyz"
    (
        re.compile(
            r"""(?i)\b((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|digest|token|negotiate)\s+)?[^\s,;"'}]+"""
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*"), "Bearer ***"),
    # Session cookies and ids: B1SESSION=..., ROUTEID=..., "SessionId": "..."
    (
        re.compile(
            r"""(?i)\b((?:B1SESSION|ROUTEID|JSESSIONID|session_?id|sid|cookie|set-cookie)["']?\s*[:=]\s*["']?)[^\s,;"'}&]+"""
        ),
        r"\1***",
    ),
    # scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^/\s:@]*):[^@\s/]+@"), r"\1:***@"),
    # password=..., "client_secret": "...", api_key: ..., access_token=...
    (
        re.compile(
            r"""(?i)\b((?:password|passwd|pwd|secret|client_secret|api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|id[_-]?token|token|private[_-]?key|signature|sig)["']?\s*[:=]\s*["']?)[^\s,;"'}&]+"""
        ),
        r"\1***",
    ),
)


def scrub_error(error: str | BaseException | None, *, limit: int = ERROR_LIMIT) -> str | None:
    """Return a failure reason that is safe to store: secrets removed, length bounded.

    Removes ``Authorization`` header values, bearer tokens, session cookies (``B1SESSION=...``),
    passwords in URLs and ``password=``/``token=``-style pairs, then anything Airflow's secrets
    masker has registered (connection passwords, session ids the hooks masked).

    :param error: a message or an exception (rendered as ``ExceptionType: message``).
    :param limit: maximum length kept.
    """
    if error is None:
        return None
    if isinstance(error, BaseException):
        message = str(error)
        text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    else:
        text = str(error)
    text = text.replace("\x00", "\\0")  # shown, not stored: no PostgreSQL text holds a NUL
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    try:
        from airflow.sdk.log import redact

        text = str(redact(text))
    except Exception:  # the masker is best effort; the patterns above already ran
        log.debug("Airflow's secrets masker is unavailable", exc_info=True)
    text = text.strip()
    if len(text) > limit:
        text = text[: max(limit - 14, 0)] + " …[truncated]"
    return text


def _utc(value: dt.datetime | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.timezone.utc)
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _key(value: Any, name: str, *, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise AuditError(f"An audit record needs a {name}.")
        return None
    text = str(value)
    if len(text) > KEY_LIMIT:
        raise AuditError(
            f"The {name} is {len(text)} characters long; a key is at most {KEY_LIMIT}. "
            "Pass the record's natural key, never its payload."
        )
    if "\x00" in text:
        raise AuditError(f"The {name} holds a NUL character, which the audit trail cannot store.")
    return text


_KEY_FIELDS = (
    ("source_system", True),
    ("source_entity", True),
    ("source_key", True),
    ("target_system", False),
    ("target_entity", False),
    ("target_key", False),
)
_NOW, _UTC = dt.datetime.now, dt.timezone.utc


# Slotted, not frozen: one is built per record read (millions in a large load), and a frozen
# dataclass costs several times as much to build. Treat it as a value all the same.
@dataclasses.dataclass(slots=True)
class AuditRecord:
    """What happened to one record. Holds keys and a hash, never the record itself.

    :param source_system: where the record came from (``sap_b1``, ``salesforce``, ...).
    :param source_entity: its entity there (``Invoices``, ``Account``).
    :param source_key: its natural key there (``DocEntry`` 42 becomes ``"42"``).
    :param action: :class:`Action` or its value.
    :param target_system: where it was written (``warehouse``).
    :param target_entity: the target table or entity.
    :param target_key: its key in the target, when known.
    :param error: why it failed (a message or the exception); scrubbed and truncated here.
    :param payload_hash: :func:`~airflow_provider_b1.sync.records.payload_hash` of what was (or
        would have been) written: 64 lowercase hex characters, nothing else is accepted.
    :param at: when it happened (UTC); defaults to now.
    :param waiting_for: what a failed record waits for (``"invoice 42"``), when it waits.
    """

    source_system: str
    source_entity: str
    source_key: str
    action: Action
    target_system: str | None = None
    target_entity: str | None = None
    target_key: str | None = None
    error: str | None = None
    payload_hash: str | None = None
    at: dt.datetime | None = None
    waiting_for: str | None = None

    def __post_init__(self) -> None:
        # What is already as it must be (text keys of a sane length, an Action, no error) is
        # checked, not rebuilt.
        action = self.action
        if action.__class__ is not Action:
            action = self.action = Action(action)
        for name, required in _KEY_FIELDS:
            value = getattr(self, name)
            if value.__class__ is not str or not value or len(value) > KEY_LIMIT or "\x00" in value:
                setattr(self, name, _key(value, name, required=required))
        digest = self.payload_hash
        if digest is not None and not (
            digest.__class__ is str and len(digest) == 64 and not digest.strip(_HEX)
        ):
            raise AuditError(
                "payload_hash must be the 64-character SHA-256 hex digest from payload_hash(); "
                "the audit trail never stores payloads."
            )
        error = self.error
        if error is not None or action is Action.FAILED:
            self.error = scrub_error(error or "failed without a reason")
        at = self.at
        self.at = _NOW(_UTC) if at is None else _utc(at)
        if self.waiting_for is not None:
            if action is not Action.FAILED:
                raise AuditError(f"Only a failed record waits; this one is {action.value}.")
            self.waiting_for = scrub_error(self.waiting_for, limit=KEY_LIMIT) or None

    @property
    def identity(self) -> tuple[str, str, str]:
        """``(source_system, source_entity, source_key)``: which record this is within a flow."""
        return (self.source_system, self.source_entity, self.source_key)


@dataclasses.dataclass(frozen=True)
class FailedRecord:
    """A record whose latest attempt in a flow failed (see :meth:`AuditTrail.records_for_replay`)."""

    id: int
    source_system: str
    source_entity: str
    source_key: str
    target_system: str | None
    target_entity: str | None
    target_key: str | None
    error: str | None
    attempt: int
    at: dt.datetime
    waiting_for: str | None = None


COLUMNS = (
    "at",
    "flow",
    "dag_id",
    "run_id",
    "task_id",
    "try_number",
    "source_system",
    "source_entity",
    "source_key",
    "target_system",
    "target_entity",
    "target_key",
    "action",
    "error",
    "payload_hash",
    "attempt",
    "waiting_for",
)


def _in_list(actions: Iterable[str]) -> str:
    return ", ".join(f"'{action}'" for action in actions)


# Frozen with the migrations that wrote them: a released migration never changes, so the action
# list of the first one is spelled out rather than taken from today's Action.
_V1_ACTIONS = ("created", "updated", "unchanged", "skipped", "failed")
_V4_ACTIONS = (*_V1_ACTIONS, "deleted", "restored")
_ACTIONS_V1 = _in_list(_V1_ACTIONS)
_ACTIONS_V4 = _in_list(_V4_ACTIONS)
if {a.value for a in Action} != set(_V4_ACTIONS):  # pragma: no cover - caught by any test run
    raise RuntimeError("A new audit action needs a migration that widens the action CHECK.")

_INDEXES = (
    f"CREATE INDEX IF NOT EXISTS {TABLE}_key_idx ON {{s}}{TABLE} (flow, source_key, source_entity, source_system, id)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_failed_idx ON {{s}}{TABLE} (flow, at) WHERE action = 'failed'",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_run_idx ON {{s}}{TABLE} (dag_id, run_id, task_id)",
    f"CREATE INDEX IF NOT EXISTS {TABLE}_waiting_idx ON {{s}}{TABLE} (flow, source_entity, id) "
    "WHERE waiting_for IS NOT NULL",
)

# PostgreSQL swaps the CHECK in the migration's transaction: every CHECK on the action column is
# dropped whatever its name (a table adopted from before the migrations may name it otherwise),
# then the wider one is added. The scan that validates it holds the table's lock for a moment.
_WIDEN_ACTIONS_POSTGRES = (
    f"""DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
        WHERE conrelid = '{{s}}{TABLE}'::regclass AND contype = 'c'
        AND conkey = ARRAY[(SELECT attnum FROM pg_attribute
            WHERE attrelid = '{{s}}{TABLE}'::regclass AND attname = 'action')]
    LOOP
        EXECUTE format('ALTER TABLE {{s}}{TABLE} DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$""",
    f"ALTER TABLE {{s}}{TABLE} ADD CONSTRAINT {TABLE}_action_check CHECK (action IN ({_ACTIONS_V4}))",
)

# SQLite cannot alter a CHECK: the table is rebuilt (new table, copy with the ids, drop, rename,
# indexes again), in the migration's transaction. The AUTOINCREMENT counter is carried over, so
# an id is never given twice and "the highest id is the latest attempt" stays true.
_WIDEN_ACTIONS_SQLITE = (
    f"""CREATE TABLE {TABLE}_v4 (
    id {{id}},
    at {{ts}} NOT NULL,
    flow {{text}} NOT NULL,
    dag_id {{text}},
    run_id {{text}},
    task_id {{text}},
    try_number {{int}},
    source_system {{text}} NOT NULL,
    source_entity {{text}} NOT NULL,
    source_key {{text}} NOT NULL,
    target_system {{text}},
    target_entity {{text}},
    target_key {{text}},
    action {{text}} NOT NULL CHECK (action IN ({_ACTIONS_V4})),
    error {{text}},
    payload_hash {{hash}},
    attempt {{int}} NOT NULL CHECK (attempt >= 1),
    waiting_for {{text}}
)""",
    f"INSERT INTO {TABLE}_v4 (id, {', '.join(COLUMNS)}) SELECT id, {', '.join(COLUMNS)} FROM {TABLE} ORDER BY id",
    f"DELETE FROM sqlite_sequence WHERE name = '{TABLE}_v4'",
    f"INSERT INTO sqlite_sequence (name, seq) SELECT '{TABLE}_v4', seq FROM sqlite_sequence WHERE name = '{TABLE}'",
    f"DROP TABLE {TABLE}",
    f"ALTER TABLE {TABLE}_v4 RENAME TO {TABLE}",
    *_INDEXES,
)

#: The audit trail's tables: written once, migrated like the warehouse (``CREATE ... IF NOT
#: EXISTS`` adopts a table made before the trail had migrations).
AUDIT_MIGRATIONS = MigrationSet(
    "audit",
    "audit_schema_version",
    (
        Migration(
            1,
            "one row per record per attempt",
            (
                f"""CREATE TABLE IF NOT EXISTS {{s}}{TABLE} (
                id {{id}},
                at {{ts}} NOT NULL,
                flow {{text}} NOT NULL,
                dag_id {{text}},
                run_id {{text}},
                task_id {{text}},
                try_number {{int}},
                source_system {{text}} NOT NULL,
                source_entity {{text}} NOT NULL,
                source_key {{text}} NOT NULL,
                target_system {{text}},
                target_entity {{text}},
                target_key {{text}},
                action {{text}} NOT NULL CHECK (action IN ({_ACTIONS_V1})),
                error {{text}},
                payload_hash {{hash}},
                attempt {{int}} NOT NULL CHECK (attempt >= 1)
            )""",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_key_idx ON {{s}}{TABLE} "
                "(flow, source_key, source_entity, source_system, id)",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_failed_idx ON {{s}}{TABLE} (flow, at) WHERE action = 'failed'",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_run_idx ON {{s}}{TABLE} (dag_id, run_id, task_id)",
            ),
        ),
        Migration(2, "checkpoints of targets that keep none themselves", (CHECKPOINT_TABLE,)),
        Migration(
            3,
            "what a failed record waits for, so that the next run retries it",
            (
                f"ALTER TABLE {{s}}{TABLE} ADD COLUMN waiting_for {{text}}",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_waiting_idx ON {{s}}{TABLE} (flow, source_entity, id) "
                "WHERE waiting_for IS NOT NULL",
            ),
        ),
        Migration(
            4,
            "records marked deleted in the source, and restored",
            (),
            postgres_only=_WIDEN_ACTIONS_POSTGRES,
            sqlite_only=_WIDEN_ACTIONS_SQLITE,
        ),
    ),
)


@dataclasses.dataclass(frozen=True)
class _RunInfo:
    flow: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    try_number: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id}


#: SQLite limits bound variables per statement; stay well below every version's limit.
_SQLITE_LOOKUP_CHUNK = 400


def _previous_attempts(cursor: Any, table: str, flow: str, keys: set[tuple[str, str, str]]) -> dict:
    """``{(system, entity, key): highest attempt so far}`` for these records, through ``cursor``."""
    found: dict[tuple[str, str, str], int] = {}
    if not keys:
        return found
    head = (
        f"SELECT source_system, source_entity, source_key, max(attempt) FROM {table} "
        "WHERE flow = {p} AND source_key "
    )
    tail = " GROUP BY source_system, source_entity, source_key"
    source_keys = sorted({k[2] for k in keys})
    if dialect_of(cursor) == "postgres":
        batches = [(head.replace("{p}", "%s") + "= ANY(%s)" + tail, (flow, source_keys))]
    else:
        batches = []
        for start in range(0, len(source_keys), _SQLITE_LOOKUP_CHUNK):
            chunk = source_keys[start : start + _SQLITE_LOOKUP_CHUNK]
            sql = head.replace("{p}", "?") + f"IN ({', '.join('?' * len(chunk))})" + tail
            batches.append((sql, (flow, *chunk)))
    for sql, params in batches:
        cursor.execute(sql, params)
        found.update({(r[0], r[1], r[2]): int(r[3]) for r in cursor.fetchall()})
    return found


def _insert(cursor: Any, table: str, rows: list[tuple]) -> None:
    """Bulk insert through ``cursor``: COPY on PostgreSQL, ``executemany`` on SQLite."""
    if dialect_of(cursor) == "postgres":
        copy_into(cursor, table, COLUMNS, encode_copy_text(rows))
        return
    at = COLUMNS.index("at")
    # One fixed ISO format (UTC, microseconds) so that text comparison is time comparison.
    rows = [(*r[:at], _sqlite_time(r[at]), *r[at + 1 :]) for r in rows]
    sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    cursor.executemany(sql, rows)


def _sqlite_time(value: dt.datetime) -> str:
    return _utc(value).isoformat(timespec="microseconds")


class AuditSession:
    """Writer of one task try's rows; use through :meth:`AuditTrail.session`.

    :meth:`write` writes a page's rows at once (the sync engine's way); :meth:`record` buffers
    and writes every ``flush_every`` records and when the ``with`` block ends, also when it ends
    with an exception, so the records handled before a crash keep their trail.

    :ivar counts: records recorded so far per :class:`Action` value.
    """

    def __init__(self, trail: AuditTrail, run: _RunInfo, flush_every: int) -> None:
        self._trail = trail
        self._run = run
        self._flush_every = max(1, flush_every)
        self._buffer: list[AuditRecord] = []
        self.counts: Counter[str] = Counter()
        self.written = 0

    @property
    def flow(self) -> str:
        return self._run.flow

    @property
    def trail(self) -> AuditTrail:
        """The audit trail this session writes to."""
        return self._trail

    @property
    def run(self) -> dict[str, Any]:
        """``dag_id``, ``run_id`` and ``task_id`` of the task try."""
        return self._run.as_dict()

    def write(self, records: Sequence[AuditRecord], cursor: Any = None, *, counted: bool = True) -> None:
        """Write these rows now, numbering each record's attempt.

        :param records: the rows, e.g. one page's.
        :param cursor: a DB-API cursor inside a transaction that reaches the audit trail's own
            database (a target's page transaction): the rows are written there and become durable
            with that transaction's commit. ``None``: in a transaction of the trail's own.
        :param counted: add them to :attr:`counts` now; ``False`` when the transaction may still
            be rolled back (the caller then calls :meth:`count` once it is committed).
        """
        if not records:
            return
        self._trail._write(self._run, records, cursor)
        if counted:
            self.count(records)

    def count(self, outcomes: Iterable[Any]) -> None:
        """Count committed rows (audit records or outcomes, anything with an ``action``)."""
        n = 0
        for outcome in outcomes:
            self.counts[outcome.action.value] += 1
            n += 1
        self.written += n

    def record(self, record: AuditRecord) -> None:
        """Add one record's outcome; writes happen in bulk."""
        if not isinstance(record, AuditRecord):
            raise AuditError(f"record() takes an AuditRecord, not {type(record).__name__}.")
        self._buffer.append(record)
        self.counts[record.action.value] += 1
        if len(self._buffer) >= self._flush_every:
            self.flush()

    def record_many(self, records: Iterable[AuditRecord]) -> None:
        """Add several outcomes."""
        for record in records:
            self.record(record)

    def flush(self) -> None:
        """Write the buffered rows now, numbering each record's attempt."""
        if not self._buffer:
            return
        buffer, self._buffer = self._buffer, []
        self._trail._write(self._run, buffer)
        self.written += len(buffer)

    def __enter__(self) -> AuditSession:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.flush()
        except Exception:
            if exc is None:
                raise
            # Do not hide the task's own failure behind an audit failure; both are logged.
            log.exception("Could not write %d audit rows while the task was failing", len(self._buffer))


_IS_LATEST = (
    " AND NOT EXISTS (SELECT 1 FROM {t} b WHERE b.flow = a.flow AND b.source_key = a.source_key"
    " AND b.source_entity = a.source_entity AND b.source_system = a.source_system AND b.id > a.id)"
)
"""The condition that row ``a`` of table ``{t}`` is its record's latest attempt."""


class AuditTrail:
    """The audit table behind an Airflow connection.

    ``conn_type`` ``postgres`` uses :class:`~airflow.providers.postgres.hooks.postgres.PostgresHook`
    and writes with ``COPY`` into ``<schema>.audit_record``; ``conn_type`` ``sqlite`` opens the
    file named by the connection's ``host`` (absolute path) with :mod:`sqlite3` and writes to
    ``audit_record``. The same database also keeps the checkpoints of targets that cannot keep
    their own (see :mod:`.checkpoints`).

    :param conn_id: the Airflow connection.
    :param schema: PostgreSQL schema of the table (ignored for SQLite).
    :param flush_every: rows buffered per bulk write by :meth:`AuditSession.record`.
    """

    def __init__(
        self, conn_id: str = DEFAULT_CONN_ID, *, schema: str = DEFAULT_SCHEMA, flush_every: int = 5000
    ) -> None:
        try:
            self.schema = validate_identifier(schema, what="audit schema")
        except ValueError as exc:
            raise AuditError(f"Audit schema {schema!r} is not a plain SQL identifier.") from exc
        self.conn_id = conn_id
        self.flush_every = flush_every
        self._conn: Any = None
        self.checkpoints = CheckpointStore(self.schema)

    @cached_property
    def database(self) -> Database:
        """The database the trail lives in (a target sharing it writes rows in its own transactions)."""
        return open_database(self.conn_id, purpose="the audit trail")

    @property
    def dialect(self) -> str:
        """``postgres`` or ``sqlite``."""
        return self.database.dialect

    @property
    def table(self) -> str:
        """The table's qualified name."""
        return f"{self.schema}.{TABLE}" if self.dialect == "postgres" else TABLE

    def connection(self) -> Any:
        """The trail's own DB-API connection (opened on first use, reopened after a break)."""
        conn = self._conn
        if conn is not None and (getattr(conn, "closed", False) or getattr(conn, "broken", False)):
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
        if conn is None:
            conn = self._conn = self.database.connect()
        return conn

    def ensure_schema(self) -> None:
        """Create or upgrade the schema, table and indexes (safe to call from every task)."""
        AUDIT_MIGRATIONS.apply(self.connection(), self.schema)

    def session(
        self,
        flow: str,
        dag_id: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        try_number: int | None = None,
    ) -> AuditSession:
        """Open a writer for one task try.

        :param flow: the flow's name (e.g. ``sap_b1_to_warehouse``); attempts count per flow.
        :param dag_id: the DAG, :param run_id: the DAG run, :param task_id: the task and
            :param try_number: the try, as the task sees them (see :meth:`session_for`).
        """
        if not flow:
            raise AuditError("An audit session needs a flow name.")
        return AuditSession(self, _RunInfo(flow, dag_id, run_id, task_id, try_number), self.flush_every)

    def session_for(self, flow: str, context: Mapping[str, Any]) -> AuditSession:
        """Open a session with the DAG, run, task and try taken from a task's context.

        :param flow: the flow's name.
        :param context: the running task's context.
        """
        ti = context["ti"]
        task_id = ti.task_id
        map_index = getattr(ti, "map_index", -1)
        if isinstance(map_index, int) and map_index >= 0:
            task_id = f"{task_id}[{map_index}]"
        return self.session(flow, ti.dag_id, ti.run_id, task_id, getattr(ti, "try_number", None))

    def _write(self, run: _RunInfo, records: Sequence[AuditRecord], cursor: Any = None) -> None:
        if cursor is None:
            with transaction(self.connection()) as own:
                self._write(run, records, own)
            return
        table = self.table
        previous = _previous_attempts(cursor, table, run.flow, {r.identity for r in records})
        rows = []
        for r in records:
            attempt = previous.get(r.identity, 0) + 1
            previous[r.identity] = attempt  # a key twice in one write counts twice
            rows.append(
                (
                    r.at,
                    run.flow,
                    run.dag_id,
                    run.run_id,
                    run.task_id,
                    run.try_number,
                    r.source_system,
                    r.source_entity,
                    r.source_key,
                    r.target_system,
                    r.target_entity,
                    r.target_key,
                    r.action.value,
                    r.error,
                    r.payload_hash,
                    attempt,
                    r.waiting_for,
                )
            )
        _insert(cursor, table, rows)

    # -- checkpoints of targets that keep none of their own ------------------------------------

    def checkpoint(self, flow: str, stream: str) -> Checkpoint | None:
        """The checkpoint kept here for a stream, or ``None``."""
        return self.checkpoints.read(self.connection(), flow, stream)

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        return query(self.connection(), sql, params)

    def _from_db_time(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return _utc(value)

    def _to_db_time(self, value: dt.datetime) -> Any:
        return _sqlite_time(value) if self.dialect == "sqlite" else _utc(value)

    def counts_for_run(
        self, dag_id: str, run_id: str, *, task_id: str | None = None, flow: str | None = None
    ) -> dict[str, int]:
        """Return ``{action: rows}`` for one DAG run (optionally one task, one flow); every action present.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: only this task.
        :param flow: only this flow.
        """
        sql = f"SELECT action, count(*) FROM {self.table} WHERE dag_id = {{p}} AND run_id = {{p}}"
        params: list[Any] = [dag_id, run_id]
        if task_id is not None:
            sql += " AND task_id = {p}"
            params.append(task_id)
        if flow is not None:
            sql += " AND flow = {p}"
            params.append(flow)
        counts = dict.fromkeys((a.value for a in Action), 0)
        for action, n in self._query(sql + " GROUP BY action", params):
            counts[action] = int(n)
        return counts

    def records_for_replay(
        self,
        flow: str,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        *,
        limit: int | None = None,
    ) -> list[FailedRecord]:
        """Return the records of a flow whose latest attempt failed, oldest failure first.

        A record that failed and was later created, updated, found unchanged or skipped (by a
        later run or a replay), marked deleted (the source no longer holds it) or restored is not
        returned, nor one that had no key (nothing can re-read it).

        :param flow: the flow.
        :param since: only failures at or after this time.
        :param until: only failures before this time.
        :param limit: at most this many.
        """
        t = self.table
        sql = (
            "SELECT a.id, a.source_system, a.source_entity, a.source_key, a.target_system, a.target_entity, "
            f"a.target_key, a.error, a.attempt, a.at, a.waiting_for FROM {t} a "
            "WHERE a.flow = {p} AND a.action = 'failed' AND a.source_key <> '(no key)'"
        )
        params: list[Any] = [flow]
        if since is not None:
            sql += " AND a.at >= {p}"
            params.append(self._to_db_time(since))
        if until is not None:
            sql += " AND a.at < {p}"
            params.append(self._to_db_time(until))
        sql += _IS_LATEST.format(t=t) + " ORDER BY a.id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [
            FailedRecord(
                id=int(r[0]),
                source_system=r[1],
                source_entity=r[2],
                source_key=r[3],
                target_system=r[4],
                target_entity=r[5],
                target_key=r[6],
                error=r[7],
                attempt=int(r[8]),
                at=self._from_db_time(r[9]),
                waiting_for=r[10],
            )
            for r in self._query(sql, params)
        ]

    def waiting(
        self,
        flow: str,
        source_entity: str,
        *,
        source_system: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[str, str]]:
        """The records of one entity whose latest attempt failed waiting for another record:
        ``[(key, what it waits for)]``, the least recently tried first (a record tried again and
        still waiting goes to the back, so a bounded retry reaches every one in turn).

        :param flow: the flow.
        :param source_entity: the records' entity.
        :param source_system: their system, when a flow reads several.
        :param limit: at most this many.
        """
        t = self.table
        sql = (
            f"SELECT a.source_key, a.waiting_for FROM {t} a WHERE a.flow = {{p}} AND a.source_entity = {{p}}"
            " AND a.waiting_for IS NOT NULL AND a.action = 'failed' AND a.source_key <> '(no key)'"
        )
        params: list[Any] = [flow, source_entity]
        if source_system is not None:
            sql += " AND a.source_system = {p}"
            params.append(source_system)
        sql += _IS_LATEST.format(t=t) + " ORDER BY a.id"
        if limit is not None:
            sql += f" LIMIT {max(int(limit), 0)}"
        return [(key, what) for key, what in self._query(sql, params)]

    def latest(
        self, flow: str, source_entity: str, source_keys: Iterable[Any], *, source_system: str | None = None
    ) -> dict[str, tuple[str, str | None]]:
        """The latest attempt of each record named: ``{key: (action, error)}``; records never
        attempted are absent. For reports (reconciliation) that explain a difference.

        :param flow: the flow.
        :param source_entity: the records' entity.
        :param source_keys: their keys (any number: asked in chunks).
        :param source_system: their system, when a flow reads several.
        """
        rows = self._latest("a.action, a.error", flow, source_entity, source_keys, source_system)
        return {key: (action, error) for key, action, error in rows}

    def latest_at(
        self, flow: str, source_entity: str, source_keys: Iterable[Any], *, source_system: str | None = None
    ) -> dict[str, tuple[str, dt.datetime]]:
        """As :meth:`latest`, with when each latest attempt was written: ``{key: (action, at)}``."""
        rows = self._latest("a.action, a.at", flow, source_entity, source_keys, source_system)
        return {key: (action, self._from_db_time(at)) for key, action, at in rows}

    def _latest(
        self,
        columns: str,
        flow: str,
        source_entity: str,
        source_keys: Iterable[Any],
        source_system: str | None,
    ) -> Iterator[tuple]:
        """``(source_key, *columns)`` of each named record's latest row, asked in chunks."""
        keys = list(dict.fromkeys(str(k) for k in source_keys))
        t = self.table
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            sql = (
                f"SELECT a.source_key, {columns} FROM {t} a WHERE a.flow = {{p}} AND a.source_entity = {{p}}"
                f" AND a.source_key IN ({', '.join(['{p}'] * len(chunk))})"
            )
            params: list[Any] = [flow, source_entity, *chunk]
            if source_system is not None:
                sql += " AND a.source_system = {p}"
                params.append(source_system)
            sql += _IS_LATEST.format(t=t)
            yield from self._query(sql, params)

    def history(
        self, flow: str, source_entity: str, source_key: str | int, *, source_system: str | None = None
    ) -> list[dict[str, Any]]:
        """Return every row of one record in a flow, oldest first (for operators and tests).

        :param flow: the flow.
        :param source_entity: the record's entity.
        :param source_key: its key.
        :param source_system: its system, when a flow reads several.
        """
        sql = (
            f"SELECT id, {', '.join(COLUMNS)} FROM {self.table} WHERE flow = {{p}} AND source_entity = {{p}}"
            " AND source_key = {p}"
        )
        params: list[Any] = [flow, source_entity, str(source_key)]
        if source_system is not None:
            sql += " AND source_system = {p}"
            params.append(source_system)
        rows = self._query(sql + " ORDER BY id", params)
        out = []
        for row in rows:
            item = dict(zip(("id", *COLUMNS), row))
            item["at"] = self._from_db_time(item["at"])
            if isinstance(item["payload_hash"], str):
                item["payload_hash"] = item["payload_hash"].strip() or None
            out.append(item)
        return out

    def close(self) -> None:
        """Close the database connection (a new one opens on next use)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
