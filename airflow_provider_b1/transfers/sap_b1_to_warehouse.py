"""SAP Business One -> warehouse: the load and its reconciliation, as Airflow operators.

* :class:`SapB1ToWarehouseOperator` loads a group of SAP entities into the warehouse star
  schema (PostgreSQL, or SQLite for the embedded demo): the ``sap_b1_to_warehouse`` flow
  (:mod:`airflow_provider_b1.warehouse.flow`) run by the engine's
  :class:`~airflow_provider_b1.operators.sync.SyncOperator`.
* :class:`SapB1WarehousePlanOperator` and :class:`SapB1WarehouseRangeOperator` split a load that
  reads much of a large entity (a first run, a full refresh, a large window) into ranges run as
  mapped tasks, each on its own SAP session (:mod:`airflow_provider_b1.sync.partitions`): documents
  by ``DocEntry``, partners and items by ``UpdateDate``. The group's
  :class:`SapB1ToWarehouseOperator` then ends the load: it reads what changed since the ranges
  were planned, hands the next run that cursor and deletes the ranges' checkpoints.
* :class:`SapB1WarehouseDeletionCheckOperator` compares SAP's keys with the warehouse's live keys
  for the master data SAP deletes outright, and marks the rows of deleted records ``deleted_at``
  (never removing them), refusing when SAP returns far fewer keys than the warehouse holds.
* :class:`SapB1WarehouseReconcileOperator` compares counts and ``DocTotal`` sums between SAP and
  the warehouse and fails with a report on any difference, without retries (a retry would find
  the same difference).

Failed records are replayed by ``b1_replay_failed`` through the flow's own source and sink.

Each operator works on one SAP company, the one its ``sap_b1_conn_id`` reads: that connection id
is the ``company`` of the warehouse rows it writes, counts, checks and compares, and a company
other than ``sap_b1_default`` runs its own scope of the flow (``sap_b1_to_warehouse@<conn id>``:
its own audit rows, checkpoints and replay). See :mod:`airflow_provider_b1.warehouse.flow`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_b1.assets import WAREHOUSE_GROUPS
from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.operators.sync import PermanentFailures, SyncOperator
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID as DEFAULT_AUDIT_CONN_ID
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as DEFAULT_AUDIT_SCHEMA
from airflow_provider_b1.sync.audit import AuditTrail
from airflow_provider_b1.sync.partitions import DEFAULT_THRESHOLD
from airflow_provider_b1.warehouse.entities import DELETABLE, ENTITIES
from airflow_provider_b1.warehouse.flow import (
    DEFAULT_SAP_CONN_ID,
    DEFAULT_WAREHOUSE_CONN_ID,
    WAREHOUSE_FLOW,
    extra_fields,
)
from airflow_provider_b1.warehouse.schema import DEFAULT_SCHEMA, validate_schema_name

#: The largest share of an entity's live rows one deletion check may mark deleted.
DEFAULT_MAX_SHARE = 0.5

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_b1.sync.audit import AuditSession
    from airflow_provider_b1.sync.engine import Sink, Source
    from airflow_provider_b1.sync.flows import Flow, Stream
    from airflow_provider_b1.sync.summary import SyncSummary
    from airflow_provider_b1.sync.window import SyncWindow

#: Warehouse connections writing pages side by side, when the warehouse takes several (PostgreSQL).
DEFAULT_WRITERS = 2


def _entities(entities: Sequence[str] | str | None, group: str | None) -> list[str]:
    if (entities is None) == (group is None):
        raise ValueError("Pass either entities=[...] or group=... (one of them, not both).")
    if group is not None:
        if group not in WAREHOUSE_GROUPS:
            raise ValueError(f"Unknown warehouse group {group!r}; known: {', '.join(WAREHOUSE_GROUPS)}")
        names = list(WAREHOUSE_GROUPS[group])
    else:
        names = [entities] if isinstance(entities, str) else list(entities)
    unknown = [name for name in names if name not in ENTITIES]
    if unknown:
        raise ValueError(f"The warehouse does not load {', '.join(unknown)}; known: {', '.join(ENTITIES)}")
    return names


class _WarehouseOptions:
    """The warehouse flow's options from a load or range task's arguments."""

    sap_b1_conn_id: str
    warehouse_conn_id: str
    warehouse_schema: str
    extra_select: dict[str, Sequence[str]]
    page_size: int | None

    def lineage_options(self) -> dict[str, Any]:
        """The flow's options from this operator's arguments: the run's, and its lineage's (the SAP
        company read, the warehouse tables written)."""
        return {
            "sap_b1_conn_id": self.sap_b1_conn_id,
            "warehouse_conn_id": self.warehouse_conn_id,
            "warehouse_schema": self.warehouse_schema,
            "extra_select": self.extra_select,
            "page_size": self.page_size,
        }


class SapB1ToWarehouseOperator(_WarehouseOptions, SyncOperator):
    """Load SAP Business One entities into the warehouse star schema.

    Each entity is read with ``$select`` of the fields the schema needs (plus ``extra_select``),
    one page ahead, and loaded page by page (COPY + merge on PostgreSQL). Every record read ends
    in the audit trail as created, updated, unchanged, skipped or failed (or restored: back in SAP
    after the deletion check marked it deleted), written with the page that holds it. The schema
    is created or upgraded first, under a lock.

    Which records are read (see :func:`~airflow_provider_b1.sync.resolve_window`): the params
    ``full_refresh`` or ``since``/``until``, a backfill's data interval, or else everything
    changed since the cursor of this task's last successful run, unless the warehouse's own
    checkpoint says it holds less (a new or restored warehouse), in which case it is read from there.

    :param entities: SAP entities to load, e.g. ``["Invoices"]``; or
    :param group: a table group of :data:`~airflow_provider_b1.assets.WAREHOUSE_GROUPS`. The Assets
        of the groups loaded become the task's outlets unless ``outlets`` is given.
    :param sap_b1_conn_id: the SAP Business One connection: the company whose rows the task handles.
    :param warehouse_conn_id: the warehouse: conn type ``postgres``, or ``sqlite`` with the
        database file in the host field.
    :param audit_conn_id: the audit trail's connection (the warehouse's own, for page and trail
        in one transaction).
    :param extra_select: per entity, further SAP properties to read and keep in ``raw``
        (``{"Invoices": ["U_Region"]}``), queryable as ``raw->>'U_Region'``.
    :param page_size: records per SAP page; the connection's setting when ``None``.
    :param warehouse_schema: the PostgreSQL schema of the warehouse tables.
    :param writers: PostgreSQL connections writing pages side by side (pages still commit in the
        order they were read); 1 for a single connection. SQLite always takes one writer.
    :param plan_task_id: the :class:`SapB1WarehousePlanOperator` of the same run, when the group's
        loads may be split into ranges: an entity it split was loaded by the ranges, so this task
        reads only what changed since they were planned (from the cursor the plan carries) and
        returns that cursor moved on, never one ahead of any range, deleting the ranges'
        checkpoints in the transaction that moves the entity's. In a window run the ranges read
        the whole window: the entity is not read again, and its cursor stays where it was.
    """

    template_fields: Sequence[str] = ("entities", "extra_select", "page_size", "audit_conn_id")

    def __init__(
        self,
        *,
        entities: Sequence[str] | str | None = None,
        group: str | None = None,
        sap_b1_conn_id: str = DEFAULT_SAP_CONN_ID,
        warehouse_conn_id: str = DEFAULT_WAREHOUSE_CONN_ID,
        audit_conn_id: str = DEFAULT_AUDIT_CONN_ID,
        extra_select: Mapping[str, Sequence[str]] | None = None,
        page_size: int | None = None,
        warehouse_schema: str = DEFAULT_SCHEMA,
        writers: int = DEFAULT_WRITERS,
        plan_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        names = _entities(entities, group)
        super().__init__(
            flow=WAREHOUSE_FLOW, streams=names, audit_conn_id=audit_conn_id, writers=writers, **kwargs
        )
        self.entities = names
        self.group = group
        self.sap_b1_conn_id = sap_b1_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.extra_select = dict(extra_select or {})
        for entity in names:
            extra_fields(self.extra_select, entity)  # a bad name fails at parse time
        self.page_size = page_size
        self.warehouse_schema = validate_schema_name(warehouse_schema)
        self.plan_task_id = plan_task_id

    def resolve_windows(self, context: Context, streams: Sequence[str]) -> dict[str, SyncWindow]:
        """The run's windows; an entity the plan split into ranges reads from the plan's cursor."""
        from airflow_provider_b1.sync.partitions import plan_cursors
        from airflow_provider_b1.sync.window import SyncWindow

        windows = super().resolve_windows(context, streams)
        if not self.plan_task_id:
            return windows
        planned = plan_cursors(context["ti"].xcom_pull(task_ids=self.plan_task_id))
        for entity, cursor in planned.items():
            window = windows.get(entity)
            if window is None or cursor is None or window.mode == "window":
                continue
            windows[entity] = SyncWindow(
                "incremental",
                until=window.until,
                cursor=cursor,
                previous_cursor=window.previous_cursor,
                reason=f"its key ranges ({self.plan_task_id}) are loaded: what changed since they were planned",
            )
        return windows

    def run(self, context: Context) -> dict[str, Any]:
        from airflow_provider_b1.sync.partitions import ranges_of

        self.streams = list(self.entities)
        self.options = self.lineage_options()
        self._split: dict[str, list[str]] = {}
        if self.plan_task_id:
            for key_range in ranges_of(context["ti"].xcom_pull(task_ids=self.plan_task_id)):
                self._split.setdefault(key_range.entity, []).append(key_range.name)
        return super().run(context)

    def sync_stream(
        self,
        flow: Flow,
        stream: Stream,
        source: Source,
        sink: Sink,
        session: AuditSession,
        window: SyncWindow,
    ) -> SyncSummary:
        """An entity its plan split: a window run's ranges read the window; otherwise read what
        changed since the plan. Either way the ranges' checkpoints go."""
        from airflow_provider_b1.sync.partitions import PruningSink, prune_checkpoints
        from airflow_provider_b1.sync.summary import SyncSummary

        names = self._split.get(stream.name)
        if not names:
            return super().sync_stream(flow, stream, source, sink, session, window)
        if window.mode == "window":
            # The ranges read the whole window; a window run moves no cursor.
            self.log.info(
                "%s: %s, read by its %d ranges (%s); the cursor stays where it was",
                stream.name,
                window.describe(),
                len(names),
                self.plan_task_id,
            )
            prune_checkpoints(sink, flow.name, names)
            return SyncSummary(
                flow=flow.name,
                entity=stream.name,
                cursor=window.previous_cursor,
                mode=window.mode,
                since=window.since,
                until=window.until,
            )
        target = PruningSink(sink, names)
        summary = super().sync_stream(flow, stream, source, target, session, window)
        if not target.pruned:  # the read moved no checkpoint
            prune_checkpoints(sink, flow.name, names)
        return summary


def partitionable(entity: str) -> bool:
    """Whether a load of ``entity`` can be split into ranges: an update stamp for the cursor that
    follows; integer keys (documents, journal entries) split by key, codes (partners, items) by
    update day."""
    from airflow_provider_b1.hooks.sap_b1 import entity_spec

    return entity_spec(entity).cursor is not None


def _whole(value: Any, name: str, minimum: int) -> int:
    from airflow_provider_b1.utils.params import ParamError

    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ParamError(f"Param {name!r} must be a whole number, not {value!r}.") from None
    if number < minimum:
        raise ParamError(f"Param {name!r} must be {minimum} or more, not {number}.")
    return number


def _parts(value: Any) -> int | None:
    """The ``partitions`` setting: ``None`` (0 or empty: by size), 1 (never) or a number of ranges."""
    from airflow_provider_b1.utils.params import ParamError

    if value is None or value == "":
        return None
    try:
        parts = int(value)
    except (TypeError, ValueError):
        raise ParamError(f"Param 'partitions' must be a whole number, not {value!r}.") from None
    if parts < 0:
        raise ParamError(f"Param 'partitions' must be 0 (by size) or more, not {parts}.")
    return parts or None


class SapB1WarehousePlanOperator(PermanentFailures, BaseOperator):
    """Plan the ranges of a group's large loads; return them for a mapped range task to expand over.

    An entity with an update stamp is split when its load in this run reads much of it: a first
    run (the load task has returned no cursor yet), a full refresh, or a window run (since/until
    params, a backfill), whose window alone is counted and split. Documents and journal entries
    are split by key (``DocEntry``: a count, the lowest and highest key, three small GETs),
    partners and items by ``UpdateDate`` (a count, the first and last day, then a filtered count
    per bisection step). The cut is into ``partitions`` ranges, or, by default, into one range per
    session once the entity (its window) holds ``threshold`` records. An incremental run asks SAP
    nothing: the plan is empty, the range task is skipped, and the load task reads as it always
    does.

    :param group: the warehouse table group; or
    :param entities: the SAP entities.
    :param load_task_id: the task that loads the group and ends a partitioned load (its last
        cursor says whether this is a first run).
    :param partitions: ranges per split entity (templated): 0 or ``None`` by size, 1 never split.
    :param sessions: SAP sessions the ranges use at once (each holds a licence): range ``i``
        reads on session slot ``1 + i % sessions``, so on one worker (sessions are cached per
        worker) a load never holds more, however many of its range tasks run at once. ``None``: the
        SAP connection's ``max_sessions`` extra (default 4). A cap across workers is an Airflow
        pool on the range task.
    :param threshold: the entity size from which a load is split by default (templated).
    :param sap_b1_conn_id: the SAP Business One connection: the company whose rows the task handles.
    """

    template_fields: Sequence[str] = ("partitions", "threshold")
    ui_color = "#e3ecf7"

    def __init__(
        self,
        *,
        group: str | None = None,
        entities: Sequence[str] | None = None,
        load_task_id: str,
        partitions: int | str | None = None,
        sessions: int | None = None,
        threshold: int | str = DEFAULT_THRESHOLD,
        sap_b1_conn_id: str = DEFAULT_SAP_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.entities = [name for name in _entities(entities, group) if partitionable(name)]
        if sessions is not None and sessions < 1:
            raise ValueError(f"sessions must be at least 1, not {sessions}")
        self.load_task_id = load_task_id
        self.partitions = partitions
        self.sessions = sessions
        self.threshold = threshold
        self.sap_b1_conn_id = sap_b1_conn_id

    def run(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_b1.sync import previous_summary, resolve_window
        from airflow_provider_b1.sync.partitions import plan_ranges

        parts = _parts(self.partitions)
        if parts == 1:
            return []
        threshold = _whole(self.threshold, "partition_threshold", 1)
        previous = previous_summary(context, task_id=self.load_task_id)
        wanted = {}
        for entity in self.entities:
            window = resolve_window(context, task_id=self.load_task_id, entity=entity, previous=previous)
            if window.mode == "full" or (window.mode == "incremental" and window.cursor is None):
                wanted[entity] = {}
            elif window.mode == "window":
                wanted[entity] = {"since": window.since, "until": window.until}
            else:
                self.log.info("%s: %s; not split", entity, window.describe())
        if not wanted:
            return []
        plan: list[dict[str, Any]] = []
        source = WAREHOUSE_FLOW.open_source(
            WAREHOUSE_FLOW.merged_options({"sap_b1_conn_id": self.sap_b1_conn_id})
        )
        try:
            sessions = self.sessions or source.hook.max_sessions
            for entity, window in wanted.items():
                ranges = plan_ranges(
                    source,
                    WAREHOUSE_FLOW.stream(entity),
                    parts=parts,
                    threshold=threshold,
                    sessions=sessions,
                    **window,
                )
                plan += [r.to_xcom() for r in ranges]
        finally:
            source.close()
        return plan


class SapB1WarehouseRangeOperator(_WarehouseOptions, SyncOperator):
    """Load one range of a partitioned load (a mapped task: ``.expand(key_range=plan.output)``).

    Reads every record of the range (of its window, in a window run) in key order on its own SAP
    session (the range's slot) and loads it as the group's load would, with the audit trail and a
    checkpoint of the range's own in every page's transaction: a failed try's next try resumes
    after its last committed page, and re-reading a loaded range changes nothing. It updates no Asset and moves no cursor: the
    group's load task does both once every range has finished.

    :param key_range: the range, as the planner returned it.
    :param sap_b1_conn_id: the SAP Business One connection: the company whose rows the task handles.
    :param warehouse_conn_id: the warehouse connection.
    :param audit_conn_id: the audit trail's connection.
    :param extra_select: as for :class:`SapB1ToWarehouseOperator`.
    :param page_size: records per SAP page; the connection's setting when ``None``.
    :param warehouse_schema: the PostgreSQL schema of the warehouse tables.
    :param writers: PostgreSQL connections writing pages side by side.
    """

    template_fields: Sequence[str] = ("key_range", "audit_conn_id")
    ui_color = "#d8ecdc"

    def __init__(
        self,
        *,
        key_range: Mapping[str, Any],
        sap_b1_conn_id: str = DEFAULT_SAP_CONN_ID,
        warehouse_conn_id: str = DEFAULT_WAREHOUSE_CONN_ID,
        audit_conn_id: str = DEFAULT_AUDIT_CONN_ID,
        extra_select: Mapping[str, Sequence[str]] | None = None,
        page_size: int | None = None,
        warehouse_schema: str = DEFAULT_SCHEMA,
        writers: int = DEFAULT_WRITERS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [])
        super().__init__(
            flow=WAREHOUSE_FLOW, streams=[], audit_conn_id=audit_conn_id, writers=writers, **kwargs
        )
        self.outlets = list(kwargs["outlets"])  # the group's load task updates the Asset, once
        self.key_range = key_range
        self.sap_b1_conn_id = sap_b1_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.extra_select = dict(extra_select or {})
        self.page_size = page_size
        self.warehouse_schema = validate_schema_name(warehouse_schema)

    def run(self, context: Context) -> dict[str, Any]:
        from airflow_provider_b1.sync.partitions import KeyRange, sync_range

        try:
            key_range = KeyRange.from_xcom(self.key_range)
        except (TypeError, ValueError) as exc:
            raise PermanentError(
                f"{exc}; a range task takes what SapB1WarehousePlanOperator returns"
            ) from None
        flow = self.flow_declaration
        stream = flow.stream(key_range.entity)
        self.streams = [stream.name]
        options = {**self.lineage_options(), "session_slot": key_range.slot}
        self.options = options
        with AuditTrail(self.audit_conn_id, schema=self.audit_schema) as audit:
            audit.ensure_schema()
            with flow.open(options) as (source, sink), audit.session_for(flow.name, context) as session:
                summary = sync_range(
                    flow,
                    stream,
                    source,
                    sink,
                    session,
                    key_range,
                    writers=self.writers,
                    progress_every=self.progress_every,
                )
        return {**summary.to_xcom(), "range": key_range.name}


class SapB1WarehouseDeletionCheckOperator(PermanentFailures, BaseOperator):
    """Mark the warehouse rows of records deleted in SAP: a cheap key-set comparison per entity.

    Reads only the keys (``$select`` of the key) of the entities SAP deletes outright (business
    partners, items, G/L accounts, profit centres) and the warehouse's live keys; a key SAP no
    longer holds gets ``deleted_at`` set (the row stays, logged in ``deletion_log`` and audited as
    ``deleted`` in the flow's audit trail), and the load that brings the key back clears it
    (audited as ``restored``). Explores and reconciliation leave marked rows out.

    If any entity would have more than ``max_share`` of its live rows marked, nothing is marked and
    the task fails at once (a wrong company or a missing permission looks like a mass deletion).

    :param entities: SAP entities to check; every entity SAP deletes when ``None``.
    :param sap_b1_conn_id: the SAP Business One connection: the company whose rows the task handles.
    :param warehouse_conn_id: the warehouse connection.
    :param warehouse_schema: the PostgreSQL schema of the warehouse tables.
    :param max_share: the largest share of an entity's live rows one check may mark (0-1; 1 turns
        the guard off); templated, e.g. ``"{{ params.deletion_max_share }}"``.
    :param audit_conn_id: the audit trail's connection (the warehouse's own writes each marking
        and its audit row in one transaction).
    :param audit_schema: its PostgreSQL schema.
    """

    template_fields: Sequence[str] = ("entities", "max_share", "audit_conn_id")
    ui_color = "#f6e0e0"

    def __init__(
        self,
        *,
        entities: Sequence[str] | None = None,
        sap_b1_conn_id: str = DEFAULT_SAP_CONN_ID,
        warehouse_conn_id: str = DEFAULT_WAREHOUSE_CONN_ID,
        warehouse_schema: str = DEFAULT_SCHEMA,
        max_share: float | str = DEFAULT_MAX_SHARE,
        audit_conn_id: str = DEFAULT_AUDIT_CONN_ID,
        audit_schema: str = DEFAULT_AUDIT_SCHEMA,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.audit_conn_id = audit_conn_id
        self.audit_schema = audit_schema
        names = _entities(list(entities) if entities is not None else list(DELETABLE), None)
        refused = [name for name in names if name not in DELETABLE]
        if refused:
            raise ValueError(
                f"SAP does not delete {', '.join(refused)}; the deletion check covers {', '.join(DELETABLE)}"
            )
        self.entities = names
        self.sap_b1_conn_id = sap_b1_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.warehouse_schema = validate_schema_name(warehouse_schema)
        self.max_share = max_share

    def run(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.warehouse.deletions import check_deletions
        from airflow_provider_b1.warehouse.loader import open_loader

        try:
            max_share = float(self.max_share)
        except (TypeError, ValueError):
            raise PermanentError(
                f"max_share must be a number between 0 and 1, not {self.max_share!r}"
            ) from None
        if not 0 < max_share <= 1:
            raise PermanentError(f"max_share must be above 0 and at most 1, not {max_share}")
        # The company's own scope of the flow: its markings are its audit rows.
        flow = WAREHOUSE_FLOW.scoped({"sap_b1_conn_id": self.sap_b1_conn_id})
        with (
            open_loader(
                self.warehouse_conn_id, schema=self.warehouse_schema, company=self.sap_b1_conn_id
            ) as loader,
            AuditTrail(self.audit_conn_id, schema=self.audit_schema) as audit,
        ):
            loader.ensure_schema()
            audit.ensure_schema()
            with audit.session_for(flow.name, context) as session:
                checks = check_deletions(
                    SapB1Hook(self.sap_b1_conn_id), loader, self.entities, max_share=max_share, audit=session
                )
        return [c.to_xcom() for c in checks]


class SapB1WarehouseReconcileOperator(PermanentFailures, BaseOperator):
    """Compare SAP and the warehouse per entity: record counts, and ``DocTotal`` sums for documents.

    In a run that reads a window (a backfill, or ``since``/``until`` params) only that window is
    compared, by update stamp; otherwise every record is. Rows marked deleted in SAP
    (``deleted_at``) count as not in the warehouse. Entities without an update stamp
    (chart of accounts, profit centres, dimensions) are always compared whole. Fails with a
    report naming each difference and a sample of the keys behind it, at once: a retry would
    compare the same data.

    :param entities: SAP entities to compare; every loaded entity when neither this nor
        ``groups`` is given.
    :param groups: warehouse table groups to compare.
    :param sap_b1_conn_id: the SAP Business One connection: the company whose rows the task handles.
    :param warehouse_conn_id: the warehouse connection.
    :param warehouse_schema: the PostgreSQL schema of the warehouse tables.
    :param audit_conn_id: the audit trail the loads wrote: it tells records the flow recorded as
        failed (with their reason) from records missing for no recorded reason. ``None`` reports
        every missing record as unexplained.
    :param audit_schema: its PostgreSQL schema.
    """

    template_fields: Sequence[str] = ("entities", "audit_conn_id")
    ui_color = "#fdf2d0"

    def __init__(
        self,
        *,
        entities: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        sap_b1_conn_id: str = DEFAULT_SAP_CONN_ID,
        warehouse_conn_id: str = DEFAULT_WAREHOUSE_CONN_ID,
        warehouse_schema: str = DEFAULT_SCHEMA,
        audit_conn_id: str | None = DEFAULT_AUDIT_CONN_ID,
        audit_schema: str = DEFAULT_AUDIT_SCHEMA,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if entities is None:
            names: list[str] = []
            for group in groups or list(WAREHOUSE_GROUPS):
                names += _entities(None, group)
            entities = names
        self.entities = _entities(list(entities), None)
        self.sap_b1_conn_id = sap_b1_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.warehouse_schema = validate_schema_name(warehouse_schema)
        self.audit_conn_id = audit_conn_id
        self.audit_schema = audit_schema

    def run(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.sync import resolve_window
        from airflow_provider_b1.warehouse.loader import open_loader
        from airflow_provider_b1.warehouse.reconcile import reconcile, stamp_window

        hook = SapB1Hook(self.sap_b1_conn_id)
        window = resolve_window(context)
        stamps = stamp_window(window.since, window.until, hook.server_tz) if window.mode == "window" else None
        with contextlib.ExitStack() as stack:
            loader = stack.enter_context(
                open_loader(self.warehouse_conn_id, schema=self.warehouse_schema, company=self.sap_b1_conn_id)
            )
            audit = None
            if self.audit_conn_id:
                audit = stack.enter_context(AuditTrail(self.audit_conn_id, schema=self.audit_schema))
            # The company's own audit rows explain its differences (its scope of the flow).
            flow = WAREHOUSE_FLOW.scoped({"sap_b1_conn_id": self.sap_b1_conn_id}).name
            results = reconcile(hook, loader, self.entities, stamps, audit=audit, flow=flow)
        return [r.to_xcom() for r in results]
