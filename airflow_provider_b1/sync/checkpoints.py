"""Checkpoints: the target's own record of how far each stream of a flow has been written.

The cursor travels by XCom, but XCom describes the *runs*, not the target: a new or restored
warehouse, a truncated table or another database can be behind the cursor of the last successful
run. So a sink that owns a database writes a checkpoint (the cursor it reached) in the same
transaction as the page it commits, and the engine compares the two before reading (see
:func:`airflow_provider_b1.sync.engine.choose_start`). A sink without a database of its own (an
API such as SAP or Salesforce) keeps its checkpoints in the audit trail's database instead.

One row per ``(flow, stream)``: the cursor (the JSON of its XCom form), the task and run that
reached it, and whether the read that wrote it had finished (``complete``): a checkpoint written
with a page in the middle of a read that never finished tells the next try of the same run where
to resume.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_b1.utils.sql import dialect_of, mark_of, query, transaction, validate_identifier

log = logging.getLogger(__name__)

#: The checkpoint table, in the dialect-neutral form of :mod:`airflow_provider_b1.utils.migrations`:
#: the one declaration, migrated into the audit trail's schema and into a warehouse's.
CHECKPOINT_TABLE = """
CREATE TABLE IF NOT EXISTS {s}sync_checkpoint (
    flow {text} NOT NULL,
    stream {text} NOT NULL,
    cursor {text} NOT NULL,
    dag_id {text},
    run_id {text},
    task_id {text},
    complete {bool} NOT NULL,
    updated_at {ts} NOT NULL,
    PRIMARY KEY (flow, stream)
)"""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A stream's checkpoint as the target keeps it.

    :param position: the cursor's XCom form.
    :param run_id: the DAG run whose task reached it.
    :param complete: the read that wrote it finished (``False``: written with a page mid-read).
    """

    position: dict[str, Any]
    run_id: str | None = None
    complete: bool = True
    #: The target holds no data of the stream at all (whatever checkpoint it kept).
    empty: bool = False


class CheckpointStore:
    """Reads and writes checkpoints in the ``sync_checkpoint`` table of one database.

    Writes happen inside the caller's transaction (:meth:`write`), so a checkpoint is durable
    exactly when the page it describes is; :meth:`save` is the same in a transaction of its own.

    :param schema: the PostgreSQL schema holding the table (ignored by SQLite).
    """

    def __init__(self, schema: str | None = None) -> None:
        self.schema = validate_identifier(schema) if schema else None

    def _table(self, conn: Any) -> str:
        if dialect_of(conn) == "postgres" and self.schema:
            return f"{self.schema}.sync_checkpoint"
        return "sync_checkpoint"

    def read(self, conn: Any, flow: str, stream: str) -> Checkpoint | None:
        """The checkpoint of one stream, or ``None`` when there is none."""
        rows = query(
            conn,
            f"SELECT cursor, run_id, complete FROM {self._table(conn)} WHERE flow = {{p}} AND stream = {{p}}",
            (flow, stream),
        )
        if not rows:
            return None
        try:
            value = json.loads(rows[0][0])
        except ValueError:
            log.warning("The checkpoint of %s / %s is not JSON; ignoring it.", flow, stream)
            return None
        return Checkpoint(value, rows[0][1], bool(rows[0][2])) if isinstance(value, dict) else None

    def write(
        self,
        cursor: Any,
        flow: str,
        stream: str,
        position: Mapping[str, Any],
        run: Mapping[str, Any] | None = None,
        *,
        complete: bool = True,
    ) -> None:
        """Upsert a checkpoint through ``cursor`` (a DB-API cursor inside an open transaction).

        :param position: the cursor's XCom form (primitives).
        :param run: ``dag_id``, ``run_id``, ``task_id`` of the task that reached it.
        :param complete: whether the read has finished (see :class:`Checkpoint`).
        """
        mark = mark_of(cursor)
        now = dt.datetime.now(dt.timezone.utc)
        run = run or {}
        cursor.execute(
            f"INSERT INTO {self._table(cursor)} (flow, stream, cursor, dag_id, run_id, task_id, complete, updated_at) "
            f"VALUES ({', '.join([mark] * 8)}) ON CONFLICT (flow, stream) DO UPDATE SET "
            "cursor = excluded.cursor, dag_id = excluded.dag_id, run_id = excluded.run_id, "
            "task_id = excluded.task_id, complete = excluded.complete, updated_at = excluded.updated_at",
            (
                flow,
                stream,
                json.dumps(dict(position), sort_keys=True, separators=(",", ":")),
                run.get("dag_id"),
                run.get("run_id"),
                run.get("task_id"),
                complete,
                now.isoformat() if mark == "?" else now,
            ),
        )

    def delete(self, cursor: Any, flow: str, streams: Sequence[str]) -> int:
        """Delete the checkpoints of ``streams`` through ``cursor`` (inside the caller's transaction),
        e.g. the range checkpoints of a partitioned load that has ended; returns how many there were."""
        names = list(dict.fromkeys(streams))
        if not names:
            return 0
        mark = mark_of(cursor)
        deleted = 0
        for begin in range(0, len(names), 100):
            chunk = names[begin : begin + 100]
            cursor.execute(
                f"DELETE FROM {self._table(cursor)} WHERE flow = {mark} AND stream IN ({', '.join([mark] * len(chunk))})",
                (flow, *chunk),
            )
            deleted += max(cursor.rowcount or 0, 0)
        return deleted

    def save(self, conn: Any, *args: Any, **kwargs: Any) -> None:
        """:meth:`write` in a transaction of its own on ``conn`` (same arguments after the cursor)."""
        with transaction(conn) as cursor:
            self.write(cursor, *args, **kwargs)
