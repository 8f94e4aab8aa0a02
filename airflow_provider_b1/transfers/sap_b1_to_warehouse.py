"""SAP Business One -> warehouse: the load, its reconciliation, and the replay of failed records.

* :class:`SapB1ToWarehouseOperator` loads a group of SAP entities into the warehouse star
  schema (PostgreSQL, or SQLite for the embedded demo), incrementally from the cursor of its last
  successful run, over the data interval in a backfill, or in full; it returns the new cursors
  and counts as its XCom.
* :class:`SapB1WarehouseReconcileOperator` compares counts and ``DocTotal`` sums between SAP and
  the warehouse and fails with a report on any difference.
* :func:`replay_warehouse_records` is the flow's replayer for
  :func:`~airflow_provider_b1.sync.replay_failed`: it re-reads failed records from SAP by key
  and loads them through the same path.

The mechanics live in :mod:`airflow_provider_b1.warehouse`; these are configuration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_b1.assets import WAREHOUSE_GROUPS
from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.pipeline import (
    DEFAULT_WRITERS,
    FLOW,
    extra_fields,
    load_entity,
    reload_keys,
)
from airflow_provider_b1.warehouse.schema import DEFAULT_SCHEMA, validate_schema_name

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_b1.sync import AuditRecord, ReplayContext, SourceRef

DEFAULT_WAREHOUSE_CONN_ID = "b1_warehouse_default"
DEFAULT_SAP_CONN_ID = "sap_b1_default"
DEFAULT_AUDIT_CONN_ID = "b1_audit_default"


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


class SapB1ToWarehouseOperator(BaseOperator):
    """Load SAP Business One entities into the warehouse star schema.

    Each entity is read with ``$select`` of the fields the schema needs (plus ``extra_select``),
    one page ahead, and loaded page by page (COPY + merge on PostgreSQL). Every record read ends
    in the audit trail as created, updated, unchanged, skipped or failed. The schema is created
    or upgraded first, under a lock.

    Which records are read (see :func:`~airflow_provider_b1.sync.resolve_window`): the params
    ``full_refresh`` or ``since``/``until``, a backfill's data interval, or else everything
    changed since the cursor of this task's last successful run.

    :param entities: SAP entities to load, e.g. ``["Invoices"]``; or
    :param group: a table group of :data:`~airflow_provider_b1.assets.WAREHOUSE_GROUPS`.
    :param sap_b1_conn_id: the SAP Business One connection.
    :param warehouse_conn_id: the warehouse: conn type ``postgres``, or ``sqlite`` with the
        database file in the host field.
    :param audit_conn_id: the audit trail's connection.
    :param extra_select: per entity, further SAP properties to read and keep in ``raw``
        (``{"Invoices": ["U_Region"]}``), queryable as ``raw->>'U_Region'``.
    :param page_size: records per SAP page; the connection's setting when ``None``.
    :param warehouse_schema: the PostgreSQL schema of the warehouse tables.
    :param writers: PostgreSQL connections writing pages side by side (pages still commit in the
        order they were read); 1 for a single connection. SQLite always takes one writer.
    """

    template_fields: Sequence[str] = ("entities", "extra_select", "page_size")
    ui_color = "#e8f4ea"

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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if writers < 1:
            raise ValueError(f"writers must be at least 1, not {writers}")
        self.writers = writers
        self.entities = _entities(entities, group)
        self.group = group
        self.sap_b1_conn_id = sap_b1_conn_id
        self.warehouse_conn_id = warehouse_conn_id
        self.audit_conn_id = audit_conn_id
        self.extra_select = dict(extra_select or {})
        self.page_size = page_size
        self.warehouse_schema = validate_schema_name(warehouse_schema)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.sync import AuditTrail, combine_summaries, previous_summary, resolve_window
        from airflow_provider_b1.warehouse.loader import open_loader

        hook = SapB1Hook(self.sap_b1_conn_id)
        audit = AuditTrail(self.audit_conn_id)
        audit.ensure_schema()
        summaries = []
        with open_loader(self.warehouse_conn_id, schema=self.warehouse_schema) as loader:
            version = loader.ensure_schema()
            self.log.info("Warehouse schema at version %d (%s)", version, loader.dialect)
            prefix = f"{self.warehouse_schema}." if loader.dialect == "postgres" else ""
            with audit.session_for(FLOW, context) as session:
                previous = previous_summary(context)  # one question to Airflow for every entity
                for entity in self.entities:
                    window = resolve_window(context, entity=entity, previous=previous)
                    self.log.info("%s: %s (%s)", entity, window.describe(), window.reason)
                    summaries.append(
                        load_entity(
                            hook,
                            loader,
                            session,
                            entity,
                            window,
                            extra_select=extra_fields(self.extra_select, entity),
                            page_size=self.page_size,
                            target_prefix=prefix,
                            writers=self.writers,
                        )
                    )
        return combine_summaries(summaries)


class SapB1WarehouseReconcileOperator(BaseOperator):
    """Compare SAP and the warehouse per entity: record counts, and ``DocTotal`` sums for documents.

    In a run that reads a window (a backfill, or ``since``/``until`` params) only that window is
    compared, by update stamp; otherwise every record is. Entities without an update stamp
    (chart of accounts, profit centres, dimensions) are always compared whole. Fails with a
    report naming each difference and a sample of the keys behind it.

    :param entities: SAP entities to compare; every loaded entity when neither this nor
        ``groups`` is given.
    :param groups: warehouse table groups to compare.
    :param sap_b1_conn_id: the SAP Business One connection.
    :param warehouse_conn_id: the warehouse connection.
    :param warehouse_schema: the PostgreSQL schema of the warehouse tables.
    """

    template_fields: Sequence[str] = ("entities",)
    ui_color = "#fdf2d0"

    def __init__(
        self,
        *,
        entities: Sequence[str] | None = None,
        groups: Sequence[str] | None = None,
        sap_b1_conn_id: str = DEFAULT_SAP_CONN_ID,
        warehouse_conn_id: str = DEFAULT_WAREHOUSE_CONN_ID,
        warehouse_schema: str = DEFAULT_SCHEMA,
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

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.sync import resolve_window
        from airflow_provider_b1.warehouse.loader import open_loader
        from airflow_provider_b1.warehouse.reconcile import reconcile, stamp_window

        hook = SapB1Hook(self.sap_b1_conn_id)
        window = resolve_window(context)
        stamps = stamp_window(window.since, window.until, hook.server_tz) if window.mode == "window" else None
        with open_loader(self.warehouse_conn_id, schema=self.warehouse_schema) as loader:
            results = reconcile(hook, loader, self.entities, stamps)
        return [r.to_xcom() for r in results]


def replay_warehouse_records(refs: list[SourceRef], context: ReplayContext) -> Iterable[AuditRecord]:
    """Replayer of the ``sap_b1_to_warehouse`` flow (see :class:`~airflow_provider_b1.sync.Replayer`).

    Re-reads the records from SAP by key, in ``$filter`` batches, and loads them through the
    same mapping and merge as the load, so a record fixed in SAP lands once and a record still
    bad fails again with its reason. Options (``context.options``): ``sap_b1_conn_id``,
    ``warehouse_conn_id``, ``warehouse_schema``, ``extra_select``.

    :param refs: records of one ``(source_system, source_entity)``.
    :param context: the replay's context.
    """
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.warehouse.loader import open_loader

    if not refs:
        return []
    options = dict(context.options or {})
    schema = validate_schema_name(options.get("warehouse_schema", DEFAULT_SCHEMA))
    entity = refs[0].source_entity
    hook = SapB1Hook(options.get("sap_b1_conn_id", DEFAULT_SAP_CONN_ID))
    with open_loader(options.get("warehouse_conn_id", DEFAULT_WAREHOUSE_CONN_ID), schema=schema) as loader:
        loader.ensure_schema()
        prefix = f"{schema}." if loader.dialect == "postgres" else ""
        return reload_keys(
            hook,
            loader,
            entity,
            [ref.source_key for ref in refs],
            extra_select=extra_fields(options.get("extra_select"), entity),
            target_prefix=prefix,
        )
