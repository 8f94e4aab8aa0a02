"""The audit trail: one row per record per attempt, in one table reached through an Airflow connection.

A flow opens an :class:`AuditSession` for each task try and records what happened to every
record it read (:class:`Action`: created, updated, unchanged, skipped, failed). Rows are
buffered and written in bulk: ``COPY`` on PostgreSQL, ``executemany`` on SQLite (the embedded
demo). Failed records keep a clear, scrubbed reason and can be replayed later
(:mod:`.replay`).

What a row never holds: a payload (only its SHA-256 from
:func:`~airflow_provider_b1.sync.records.payload_hash`), a password, token, cookie or session id.
Errors pass through :func:`scrub_error`, which removes anything that looks like a secret and
anything Airflow's secrets masker knows, and are truncated.

**Attempt numbers.** ``attempt`` counts how many times a flow has handled one source record
(``flow``, ``source_system``, ``source_entity``, ``source_key``): 1 the first time, 2 when a
later run or a replay handles it again, and so on. It is computed when a buffer is flushed,
with one grouped index lookup per flush for the keys in it, so the cost is a query per few
thousand rows instead of one per row. Two tasks handling the same record at the same instant
may both write the same number; the row ``id`` still orders them, and "latest" always means
the highest ``id``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import io
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow_provider_b1.exceptions import B1ProviderError

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "b1_audit_default"
DEFAULT_SCHEMA = "b1_audit"
TABLE = "audit_record"
ERROR_LIMIT = 2000
KEY_LIMIT = 512

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class Action(str, enum.Enum):
    """What happened to one record in one attempt."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


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
    return text


@dataclasses.dataclass(frozen=True)
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

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "action", Action(self.action))
        for name in ("source_system", "source_entity", "source_key"):
            set_(self, name, _key(getattr(self, name), name, required=True))
        for name in ("target_system", "target_entity", "target_key"):
            set_(self, name, _key(getattr(self, name), name, required=False))
        if self.payload_hash is not None and not (
            isinstance(self.payload_hash, str) and _HASH_RE.match(self.payload_hash)
        ):
            raise AuditError(
                "payload_hash must be the 64-character SHA-256 hex digest from payload_hash(); "
                "the audit trail never stores payloads."
            )
        error = self.error
        if self.action is Action.FAILED and not error:
            error = "failed without a reason"
        set_(self, "error", scrub_error(error))
        set_(self, "at", _utc(self.at))

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
)

_ACTIONS_SQL = ", ".join(f"'{a.value}'" for a in Action)


@dataclasses.dataclass(frozen=True)
class _RunInfo:
    flow: str
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    try_number: int | None


class _Backend:
    """SQL shared by both databases; subclasses know the driver, placeholders and bulk insert."""

    placeholder = "?"
    table: str

    def connection(self) -> Any:
        raise NotImplementedError

    def ddl(self) -> list[str]:
        raise NotImplementedError

    def ensure_schema(self) -> None:
        conn = self.connection()
        with _closing_cursor(conn) as cur:
            for statement in self.ddl():
                cur.execute(statement)
        conn.commit()

    def insert(self, rows: list[tuple]) -> None:
        raise NotImplementedError

    def previous_attempts(
        self, flow: str, keys: set[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        conn = self.connection()
        with _closing_cursor(conn) as cur:
            cur.execute(sql.replace("{p}", self.placeholder), tuple(params))
            rows = [tuple(row) for row in cur.fetchall()]
        conn.commit()  # end the read transaction so a long session does not pin old snapshots
        return rows

    def to_db_time(self, value: dt.datetime) -> Any:
        return value

    def from_db_time(self, value: Any) -> dt.datetime:
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return _utc(value)

    def close(self) -> None:
        raise NotImplementedError


class _closing_cursor:
    def __init__(self, conn: Any) -> None:
        self.cursor = conn.cursor()

    def __enter__(self) -> Any:
        return self.cursor

    def __exit__(self, *exc: object) -> None:
        self.cursor.close()


class _PostgresBackend(_Backend):
    placeholder = "%s"

    def __init__(self, conn_id: str, schema: str) -> None:
        self.conn_id = conn_id
        self.schema = schema
        self.table = f'"{schema}"."{TABLE}"'
        self._conn: Any = None

    def connection(self) -> Any:
        if self._conn is None or getattr(self._conn, "closed", False):
            from airflow.providers.postgres.hooks.postgres import PostgresHook

            self._conn = PostgresHook(postgres_conn_id=self.conn_id).get_conn()
        return self._conn

    def ddl(self) -> list[str]:
        t, s = self.table, self.schema
        return [
            # Serialises concurrent first runs: CREATE ... IF NOT EXISTS alone can race on the catalog.
            f"SELECT pg_advisory_xact_lock(hashtext('{s}.{TABLE}'))",
            f'CREATE SCHEMA IF NOT EXISTS "{s}"',
            f"""CREATE TABLE IF NOT EXISTS {t} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                at timestamptz NOT NULL,
                flow text NOT NULL,
                dag_id text,
                run_id text,
                task_id text,
                try_number integer,
                source_system text NOT NULL,
                source_entity text NOT NULL,
                source_key text NOT NULL,
                target_system text,
                target_entity text,
                target_key text,
                action text NOT NULL CHECK (action IN ({_ACTIONS_SQL})),
                error text,
                payload_hash char(64),
                attempt integer NOT NULL CHECK (attempt >= 1)
            )""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_key_idx ON {t} (flow, source_key, source_entity, source_system, id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_failed_idx ON {t} (flow, at) WHERE action = 'failed'",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_run_idx ON {t} (dag_id, run_id, task_id)",
        ]

    def previous_attempts(
        self, flow: str, keys: set[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        if not keys:
            return {}
        rows = self.query(
            f"SELECT source_system, source_entity, source_key, max(attempt) FROM {self.table} "
            "WHERE flow = %s AND source_key = ANY(%s) GROUP BY source_system, source_entity, source_key",
            (flow, sorted({k[2] for k in keys})),
        )
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def insert(self, rows: list[tuple]) -> None:
        conn = self.connection()
        sql = f"COPY {self.table} ({', '.join(COLUMNS)}) FROM STDIN"
        try:
            with _closing_cursor(conn) as cur:
                # COPY's text format built in one go: several times faster than psycopg 3's
                # per-row write_row(), and the same bytes work for psycopg2's copy_expert().
                data = "".join(_copy_line(row) for row in rows)
                if hasattr(cur, "copy"):  # psycopg 3
                    with cur.copy(sql) as copy:
                        copy.write(data)
                else:  # psycopg2
                    cur.copy_expert(sql, io.StringIO(data))
            conn.commit()
        except Exception:
            conn.rollback()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _copy_line(row: tuple) -> str:
    return "\t".join([_copy_value(v) for v in row]) + "\n"


class _SqliteBackend(_Backend):
    placeholder = "?"
    table = TABLE
    #: SQLite limits bound variables per statement; stay well below every version's limit.
    lookup_chunk = 400

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.path, timeout=30)
        return self._conn

    def ddl(self) -> list[str]:
        t = self.table
        return [
            f"""CREATE TABLE IF NOT EXISTS {t} (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at TEXT NOT NULL,
                flow TEXT NOT NULL,
                dag_id TEXT,
                run_id TEXT,
                task_id TEXT,
                try_number INTEGER,
                source_system TEXT NOT NULL,
                source_entity TEXT NOT NULL,
                source_key TEXT NOT NULL,
                target_system TEXT,
                target_entity TEXT,
                target_key TEXT,
                action TEXT NOT NULL CHECK (action IN ({_ACTIONS_SQL})),
                error TEXT,
                payload_hash TEXT,
                attempt INTEGER NOT NULL CHECK (attempt >= 1)
            )""",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_key_idx ON {t} (flow, source_key, source_entity, source_system, id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_failed_idx ON {t} (flow, at) WHERE action = 'failed'",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_run_idx ON {t} (dag_id, run_id, task_id)",
        ]

    def previous_attempts(
        self, flow: str, keys: set[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        found: dict[tuple[str, str, str], int] = {}
        source_keys = sorted({k[2] for k in keys})
        for start in range(0, len(source_keys), self.lookup_chunk):
            chunk = source_keys[start : start + self.lookup_chunk]
            marks = ", ".join("?" * len(chunk))
            rows = self.query(
                f"SELECT source_system, source_entity, source_key, max(attempt) FROM {self.table} "
                f"WHERE flow = ? AND source_key IN ({marks}) GROUP BY source_system, source_entity, source_key",
                (flow, *chunk),
            )
            found.update({(r[0], r[1], r[2]): int(r[3]) for r in rows})
        return found

    def to_db_time(self, value: dt.datetime) -> str:
        # One fixed ISO format (UTC, microseconds) so text comparison is time comparison.
        return _utc(value).isoformat(timespec="microseconds")

    def insert(self, rows: list[tuple]) -> None:
        conn = self.connection()
        at = COLUMNS.index("at")
        rows = [(*r[:at], self.to_db_time(r[at]), *r[at + 1 :]) for r in rows]
        sql = f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        with conn:  # one transaction, rolled back on error
            conn.executemany(sql, rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class AuditSession:
    """Buffered writer for one task try; use through :meth:`AuditTrail.session`.

    Rows are flushed every ``flush_every`` records and when the ``with`` block ends, also when
    it ends with an exception, so the records handled before a crash keep their trail.

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


class AuditTrail:
    """The audit table behind an Airflow connection.

    ``conn_type`` ``postgres`` uses :class:`~airflow.providers.postgres.hooks.postgres.PostgresHook`
    and writes with ``COPY`` into ``<schema>.audit_record``; ``conn_type`` ``sqlite`` opens the
    file named by the connection's ``host`` (absolute path) with :mod:`sqlite3` and writes to
    ``audit_record``.

    :param conn_id: the Airflow connection.
    :param schema: PostgreSQL schema of the table (ignored for SQLite).
    :param flush_every: rows buffered per bulk write.
    """

    def __init__(
        self, conn_id: str = DEFAULT_CONN_ID, *, schema: str = DEFAULT_SCHEMA, flush_every: int = 5000
    ) -> None:
        if not _IDENTIFIER_RE.match(schema):
            raise AuditError(f"Audit schema {schema!r} is not a plain SQL identifier.")
        self.conn_id = conn_id
        self.schema = schema
        self.flush_every = flush_every

    @cached_property
    def _backend(self) -> _Backend:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(self.conn_id)
        conn_type = (conn.conn_type or "").lower()
        if conn_type in {"postgres", "postgresql"}:
            return _PostgresBackend(self.conn_id, self.schema)
        if conn_type == "sqlite":
            if not conn.host:
                raise AuditError(
                    f"Connection {self.conn_id!r} is a SQLite connection without a file path; "
                    "put the database file's absolute path in its Host field."
                )
            return _SqliteBackend(conn.host)
        raise AuditError(
            f"Connection {self.conn_id!r} has type {conn.conn_type!r}; the audit trail needs a "
            "'postgres' or 'sqlite' connection."
        )

    @property
    def dialect(self) -> str:
        """``postgres`` or ``sqlite``."""
        return "postgres" if isinstance(self._backend, _PostgresBackend) else "sqlite"

    @property
    def table(self) -> str:
        """The table's qualified, quoted name."""
        return self._backend.table

    def ensure_schema(self) -> None:
        """Create the schema, table and indexes if missing (safe to call from every task)."""
        self._backend.ensure_schema()

    def session(
        self,
        flow: str,
        dag_id: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        try_number: int | None = None,
    ) -> AuditSession:
        """Open a buffered writer for one task try.

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

    def _write(self, run: _RunInfo, records: list[AuditRecord]) -> None:
        backend = self._backend
        previous = backend.previous_attempts(run.flow, {r.identity for r in records})
        rows = []
        for r in records:
            attempt = previous.get(r.identity, 0) + 1
            previous[r.identity] = attempt  # a key twice in one buffer counts twice
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
                )
            )
        backend.insert(rows)

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
        for action, n in self._backend.query(sql + " GROUP BY action", params):
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
        later run or a replay) is not returned.

        :param flow: the flow.
        :param since: only failures at or after this time.
        :param until: only failures before this time.
        :param limit: at most this many.
        """
        b = self._backend
        t = self.table
        sql = (
            "SELECT a.id, a.source_system, a.source_entity, a.source_key, a.target_system, a.target_entity, "
            f"a.target_key, a.error, a.attempt, a.at FROM {t} a "
            "WHERE a.flow = {p} AND a.action = 'failed'"
        )
        params: list[Any] = [flow]
        if since is not None:
            sql += " AND a.at >= {p}"
            params.append(b.to_db_time(_utc(since)))
        if until is not None:
            sql += " AND a.at < {p}"
            params.append(b.to_db_time(_utc(until)))
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {t} b WHERE b.flow = a.flow AND b.source_key = a.source_key"
            " AND b.source_entity = a.source_entity AND b.source_system = a.source_system AND b.id > a.id)"
            " ORDER BY a.id"
        )
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
                at=b.from_db_time(r[9]),
            )
            for r in b.query(sql, params)
        ]

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
        rows = self._backend.query(sql + " ORDER BY id", params)
        out = []
        for row in rows:
            item = dict(zip(("id", *COLUMNS), row))
            item["at"] = self._backend.from_db_time(item["at"])
            if isinstance(item["payload_hash"], str):
                item["payload_hash"] = item["payload_hash"].strip() or None
            out.append(item)
        return out

    def close(self) -> None:
        """Close the database connection (a new one opens on next use)."""
        if "_backend" in self.__dict__:
            self._backend.close()

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
