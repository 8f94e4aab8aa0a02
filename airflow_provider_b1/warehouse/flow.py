"""The ``sap_b1_to_warehouse`` flow, declared on the sync engine.

Source: SAP Business One entities (:class:`~airflow_provider_b1.sources.sap_b1.SapB1Source`),
each read with ``$select`` of the fields the warehouse maps. Sink: the warehouse loader
(:mod:`.loader`), which keeps the flow's checkpoints in the warehouse itself. Streams: one per
entity declared in :mod:`.entities`. Everything else (windows, cursors, audit, replay, summaries,
progress lines) is the engine's.

Several SAP companies load into one warehouse. A company is named by the id of the Airflow
connection it is read through (``sap_b1_conn_id``), and that id is the ``company`` column of every
warehouse table (keys are ``(company, key)``): stable however the company is renamed in SAP, and
unique in the deployment, whereas two servers may both hold a ``SBODEMOUS``; the DAG builds a task
group per id. The CompanyDB people know a company by is kept beside it in ``dim_company``, which
the explores join. The connection id is also the flow's scope (:meth:`~airflow_provider_b1.sync.flows.Flow.scoped`):
a company other than ``sap_b1_default`` runs as ``sap_b1_to_warehouse@<conn id>``, with its own
audit rows, checkpoints and replay; the default company keeps the plain name, as a warehouse of one
company always had.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_b1.assets import WAREHOUSE_ASSETS, WAREHOUSE_GROUPS
from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID, company_db
from airflow_provider_b1.hooks.sap_b1 import SapCursor
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System
from airflow_provider_b1.utils.sql import DatabaseConfigError
from airflow_provider_b1.warehouse.entities import ENTITIES, PARTNER_ENTITY, EntitySpec
from airflow_provider_b1.warehouse.schema import DEFAULT_SCHEMA, validate_schema_name

log = logging.getLogger(__name__)

NAME = "sap_b1_to_warehouse"
DEFAULT_WAREHOUSE_CONN_ID = "b1_warehouse_default"


class ExtraSelectError(DatabaseConfigError):
    """``extra_select`` names something that is not a SAP property."""


def extra_fields(extra_select: Mapping[str, Sequence[str]] | None, entity: str) -> list[str]:
    """The extra properties configured for ``entity``; only ``U_`` user fields and plain names."""
    fields = list((extra_select or {}).get(entity) or ())
    for name in fields:
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ExtraSelectError(
                f"extra_select[{entity!r}] holds {name!r}, which is not a SAP property name"
            )
    return fields


def _open_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.sources.sap_b1 import SapB1Source

    extra = options.get("extra_select") or {}
    # A range of a partitioned load reads on a session of its own (``session_slot`` 1 and up).
    return SapB1Source(
        SapB1Hook(options["sap_b1_conn_id"], session_slot=int(options.get("session_slot") or 0)),
        select={entity: spec.select(extra_fields(extra, entity)) for entity, spec in ENTITIES.items()},
        page_size=options.get("page_size"),
    )


def _open_sink(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.warehouse.loader import open_loader

    company = options["sap_b1_conn_id"]
    loader = open_loader(
        options["warehouse_conn_id"],
        schema=validate_schema_name(options["warehouse_schema"]),
        company=company,
    )
    try:
        version = loader.ensure_schema()
        loader.record_company(company_db(company))
    except BaseException:
        loader.close()
        raise
    log.info("Warehouse schema at version %d (%s)", version, loader.dialect)
    return loader


def tables_of(spec: EntitySpec) -> tuple[str, ...]:
    """The warehouse tables an entity's load writes: its own, its child tables, and the business
    partner dimension where it adds inferred partners."""
    tables = [spec.table, *(child.table for child in spec.children)]
    if spec.partner_column and spec.entity != PARTNER_ENTITY:
        tables.append(ENTITIES[PARTNER_ENTITY].table)
    return tuple(tables)


WAREHOUSE_FLOW = Flow(
    name=NAME,
    source_system="sap_b1",
    target_system="warehouse",
    streams=tuple(
        Stream(spec.entity, cursor=None if spec.cursor == "none" else SapCursor, target=spec.table)
        for spec in ENTITIES.values()
    ),
    open_source=_open_source,
    open_sink=_open_sink,
    options={
        "sap_b1_conn_id": DEFAULT_SAP_CONN_ID,
        "warehouse_conn_id": DEFAULT_WAREHOUSE_CONN_ID,
        "warehouse_schema": DEFAULT_SCHEMA,
        "extra_select": {},
        "page_size": None,
        "session_slot": 0,
    },
    description="SAP Business One into the Postgres (or SQLite) warehouse star schema.",
    # One scope per SAP company: its own audit rows, checkpoints and replay.
    scope_option="sap_b1_conn_id",
    # Each table group's Asset: Looker refreshes once a task that loads any of its entities succeeds.
    assets={
        entity: WAREHOUSE_ASSETS[group] for group, entities in WAREHOUSE_GROUPS.items() for entity in entities
    },
    lineage=Lineage(
        source=System("sap_b1", "sap_b1_conn_id"),
        target=System("database", "warehouse_conn_id", schema_option="warehouse_schema"),
        outputs={entity: tables_of(spec) for entity, spec in ENTITIES.items()},
    ),
)
