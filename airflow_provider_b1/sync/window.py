"""Which records a sync task reads: the cursor travels by XCom, windows come from the run.

:func:`resolve_window` turns a task's Airflow context into a :class:`SyncWindow`:

1. ``full_refresh`` param true: mode ``full``, read everything.
2. ``since`` and/or ``until`` params (RFC 3339 with an offset, or a plain date meaning midnight
   UTC; anything else is refused): mode ``window``, read exactly ``[since, until)``.
3. A backfill run (``dag_run.run_type == "backfill"``): mode ``window`` over the run's data
   interval ``[data_interval_start, data_interval_end)``.
4. Otherwise mode ``incremental``: start from the cursor the last successful run of the same
   task returned (``None`` on the first run, which therefore reads everything). A scheduled run
   stops at its ``data_interval_end`` so that re-running it reads the same window again; a
   manual or asset-triggered run reads up to now.

How the previous cursor is found (Airflow 3 Task SDK, checked against task-sdk 1.3 and the
execution API of Airflow 3.3):

* A task cannot query the metadata database, so :func:`previous_summary` calls
  ``ti.xcom_pull(task_ids=<task>, key="return_value", include_prior_dates=True,
  map_indexes=<the task's map index>)``. Passing ``map_indexes`` matters: without it the SDK
  fetches every map index through the ``/slice`` endpoint, which drops the run ordering and
  returns the values of *all* prior runs in no useful order. With it the SDK calls
  ``GET /xcoms/{dag}/{run}/{task}/return_value``, which runs
  ``XComModel.get_many(include_prior_dates=True)``: runs whose
  ``coalesce(logical_date, run_after)`` is at or before the current run's, ordered by
  ``logical_date DESC, timestamp DESC``, first row.
* The current run's own value is never returned: when a task instance starts a new try, the
  execution API hands the task runner the keys of the XComs that instance already holds
  (``TIRunContext.xcom_keys_to_clear``) and the runner deletes them before ``execute``. A task
  resumed from deferral keeps them, but it has not returned yet, so it has no return value.
* A return value is only pushed when ``execute`` returned, i.e. when the try succeeded, and a
  later failed try of the same instance has already deleted it. So the newest prior
  ``return_value`` is the summary of the last successful run, without a second call to ask
  for task states (``get_previous_ti`` would also miss runs without a logical date).
* Caveat: runs without a ``logical_date`` (manual runs triggered without one) sort by
  ``logical_date`` as NULL, which PostgreSQL puts first and SQLite last. That is why a
  ``window`` run never moves the cursor: its summary carries the cursor it found forward
  (:meth:`SyncWindow.cursor_to_store`), so whichever summary the next run finds, its cursor is
  a valid place to continue from, and no record is skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Literal

import pendulum

from airflow_provider_b1.utils.params import ParamError, parse_bool
from airflow_provider_b1.utils.params import parse_datetime as parse_moment

log = logging.getLogger(__name__)

Mode = Literal["incremental", "window", "full"]

#: ``dag_run.run_type`` value of a backfill run (``DagRunType.BACKFILL_JOB``).
BACKFILL_RUN_TYPE = "backfill"
SCHEDULED_RUN_TYPE = "scheduled"


class SyncWindowError(ParamError):
    """The params or the run do not describe a window that can be read (never worth a retry)."""


@dataclasses.dataclass(frozen=True)
class SyncWindow:
    """What one sync task reads.

    :param mode: ``incremental`` (from :attr:`cursor`), ``window`` (exactly ``[since, until)``)
        or ``full`` (everything).
    :param since: inclusive start, timezone-aware UTC (``window`` mode), else ``None``.
    :param until: exclusive end, timezone-aware UTC, or ``None`` for "up to now".
    :param cursor: where an incremental read starts; ``None`` for ``window``/``full`` modes and
        on the first incremental run.
    :param previous_cursor: the cursor the last successful run returned, whatever the mode.
    :param reason: one line saying why this mode was chosen, for the task log.
    """

    mode: Mode
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    cursor: dict[str, Any] | None = None
    previous_cursor: dict[str, Any] | None = None
    reason: str = ""

    def cursor_to_store(self, read_cursor: dict[str, Any] | None) -> dict[str, Any] | None:
        """Return the cursor this run's summary must hand to the next run.

        An incremental or full read moves the cursor to where it stopped. A window read leaves
        it where it was: a window can lie anywhere in time, and continuing from its end could
        skip records between the old cursor and the window.

        :param read_cursor: the cursor the read ended with (``None`` if it produced none).
        """
        if self.mode == "window" or read_cursor is None:
            return self.previous_cursor
        return read_cursor

    def describe(self) -> str:
        """Return a short human description such as ``window 2024-03-01T00:00:00+00:00 .. now``."""
        if self.mode == "full":
            return "full read"
        if self.mode == "incremental":
            start = "the beginning (first run)" if self.cursor is None else f"cursor {self.cursor}"
            return f"incremental from {start} until {self.until.isoformat() if self.until else 'now'}"
        return (
            f"window {self.since.isoformat() if self.since else 'the beginning'}"
            f" .. {self.until.isoformat() if self.until else 'now'}"
        )


def sync_params() -> dict[str, Any]:
    """Return the ``params`` a sync DAG declares so its trigger form offers a window or a full refresh.

    Use as ``@dag(params={**sync_params(), ...})``.
    """
    from airflow.sdk import Param

    return {
        "since": window_param(
            "Since",
            "Read records changed at or after this time. Leave empty for an incremental run from the "
            "last cursor.",
        ),
        "until": window_param(
            "Until", "Read records changed before this time. Empty with Since set means up to now."
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Read every record, ignoring the cursor and Since/Until.",
        ),
    }


def parse_datetime(value: Any, *, name: str = "value") -> dt.datetime | None:
    """A window bound from a param or a call: :func:`airflow_provider_b1.utils.params.parse_datetime`
    (RFC 3339 with its offset, or a plain date; strict), raising :class:`SyncWindowError`.

    :param value: ``None``, ``""``, an aware datetime, a date or a string.
    :param name: the param's name, for the error message.
    """
    moment = parse_moment(value, name=f"Param {name!r}", error=SyncWindowError)
    return None if moment is None else pendulum.instance(moment).in_timezone("UTC")


def window_param(title: str, description: str) -> Any:
    """A trigger-form param for a window bound: a text field that Airflow checks when the run is
    created (RFC 3339 date-time or plain date; the format checks need ``rfc3339-validator``,
    a dependency of this provider), then parsed strictly by :func:`parse_datetime`."""
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        anyOf=[
            {"type": "null"},
            {"type": "string", "format": "date-time"},
            {"type": "string", "format": "date"},
        ],
        title=title,
        description=description
        + " RFC 3339 with an offset (2024-03-01T00:00:00Z) or a plain date (2024-03-01, UTC).",
    )


def _run_type(dag_run: Any) -> str | None:
    run_type = getattr(dag_run, "run_type", None)
    if run_type is None:
        return None
    return str(getattr(run_type, "value", run_type))


_NOT_FETCHED: Any = object()


def previous_summary(
    context: Mapping[str, Any], *, task_id: str | None = None, map_index: int | None = None
) -> Any:
    """Return the return value of the newest earlier successful run of a task, or ``None``.

    See the module documentation for how Airflow answers this.

    :param context: the running task's context.
    :param task_id: the task whose summary to read; defaults to the running task. A different
        task of the same DAG that already ran in the *current* run returns its current value.
    :param map_index: the map index to read; defaults to the running task's own (``-1`` when
        not mapped).
    """
    ti = context["ti"]
    if map_index is None:
        own = getattr(ti, "map_index", None)
        map_index = own if isinstance(own, int) and own >= 0 else -1
    return ti.xcom_pull(
        task_ids=task_id or ti.task_id,
        key="return_value",
        include_prior_dates=True,
        map_indexes=map_index,
    )


def cursor_from_summary(value: Any, entity: str | None = None) -> dict[str, Any] | None:
    """Find the cursor in a previous return value, whatever its shape.

    Understands a single :class:`~airflow_provider_b1.sync.summary.SyncSummary` dict
    (``{"entity": ..., "cursor": ...}``), a combined one (``{"entities": {name: summary}}``)
    and a list of either. Anything else (a task that returned something else) gives ``None``,
    i.e. a first run.

    :param value: the XCom value.
    :param entity: which entity's cursor; ``None`` when the task syncs one entity.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        for item in value:
            found = cursor_from_summary(item, entity)
            if found is not None:
                return found
        return None
    if not isinstance(value, Mapping):
        log.warning("The previous return value is a %s, not a sync summary; starting afresh.", type(value))
        return None
    entities = value.get("entities")
    if isinstance(entities, Mapping):
        if entity is not None:
            return cursor_from_summary(entities.get(entity), entity)
        if len(entities) == 1:
            return cursor_from_summary(next(iter(entities.values())), None)
        log.warning("The previous summary holds several entities; pass entity= to pick one.")
        return None
    if entity is not None and value.get("entity") not in (None, entity):
        return None
    cursor = value.get("cursor")
    return dict(cursor) if isinstance(cursor, Mapping) else cursor


def resolve_window(
    context: Mapping[str, Any],
    *,
    task_id: str | None = None,
    entity: str | None = None,
    previous: Any = _NOT_FETCHED,
) -> SyncWindow:
    """Decide what this task run reads (rules in the module documentation).

    :param context: the running task's context (``get_current_context()`` or ``**context``).
    :param task_id: whose cursor to continue from; defaults to the running task.
    :param entity: for a task that syncs several entities, the entity whose cursor to use.
    :param previous: the task's previous summary when the caller already fetched it with
        :func:`previous_summary` (a task syncing several entities asks Airflow once, not once
        per entity).
    :raises SyncWindowError: for unparsable params, ``since >= until``, or a backfill run
        whose data interval is empty.
    """
    params = context.get("params") or {}
    dag_run = context.get("dag_run")
    if previous is _NOT_FETCHED:
        previous = previous_summary(context, task_id=task_id)
    previous = cursor_from_summary(previous, entity)

    if parse_bool(params.get("full_refresh"), default=False, name="Param 'full_refresh'"):
        return SyncWindow("full", previous_cursor=previous, reason="the full_refresh param is set")

    since = parse_datetime(params.get("since"), name="since")
    until = parse_datetime(params.get("until"), name="until")
    if since is not None or until is not None:
        if since is not None and until is not None and since >= until:
            raise SyncWindowError(
                f"Param 'since' ({since.isoformat()}) must be before 'until' ({until.isoformat()})."
            )
        return SyncWindow(
            "window", since=since, until=until, previous_cursor=previous, reason="since/until params are set"
        )

    run_type = _run_type(dag_run)
    if run_type == BACKFILL_RUN_TYPE:
        start = parse_datetime(getattr(dag_run, "data_interval_start", None))
        end = parse_datetime(getattr(dag_run, "data_interval_end", None))
        if start is None or end is None or start >= end:
            raise SyncWindowError(
                "This backfill run has an empty data interval, so there is no window to read. "
                "Airflow 3's default cron schedule (CronTriggerTimetable) gives every run a zero-length "
                "interval: schedule the DAG with CronDataIntervalTimetable or "
                "CronTriggerTimetable(..., interval=timedelta(...)), or trigger it with since/until."
            )
        return SyncWindow(
            "window",
            since=start,
            until=end,
            previous_cursor=previous,
            reason="backfill run: its data interval",
        )

    bound = None
    if run_type == SCHEDULED_RUN_TYPE:
        bound = parse_datetime(getattr(dag_run, "data_interval_end", None))
    return SyncWindow(
        "incremental",
        until=bound,
        cursor=previous,
        previous_cursor=previous,
        reason="first run: no earlier successful run returned a cursor"
        if previous is None
        else "continuing from the cursor of the last successful run",
    )
