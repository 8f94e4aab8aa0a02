"""The ``servicetitan_to_sap_b1`` flow: its streams, source, sink and default options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_b1.sync.cursors import TokenCursor
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System

NAME = "servicetitan_to_sap_b1"
DEFAULT_SERVICETITAN_CONN_ID = "servicetitan_default"
DEFAULT_SAP_CONN_ID = "sap_b1_default"
DEFAULT_MAPPING_CONN_ID = "b1_audit_default"


def _tenant(conn_id: str) -> str:
    from airflow.sdk import BaseHook

    tenant = (BaseHook.get_connection(conn_id).extra_dejson or {}).get("tenant_id")
    if not tenant:
        from airflow_provider_b1.servicetitan.mappings import MappingError

        raise MappingError(f"Connection {conn_id!r} has no tenant_id in its extra.")
    return str(tenant)


def _open_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook
    from airflow_provider_b1.sources.servicetitan import ServiceTitanSource

    return ServiceTitanSource(ServiceTitanHook(options["servicetitan_conn_id"]))


def _open_sink(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.servicetitan.customers import CustomerMap
    from airflow_provider_b1.servicetitan.mappings import load_mappings
    from airflow_provider_b1.servicetitan.sink import SapReceivablesSink
    from airflow_provider_b1.utils.sql import open_database

    database = open_database(options["mapping_conn_id"], purpose="the customer mapping table")
    customers = CustomerMap(database, options["mapping_schema"], _tenant(options["servicetitan_conn_id"]))
    return SapReceivablesSink(
        SapB1Hook(options["sap_b1_conn_id"]), load_mappings(options["mappings"]), customers
    )


SERVICETITAN_FLOW = Flow(
    name=NAME,
    source_system="servicetitan",
    target_system="sap_b1",
    streams=(
        Stream("customers", cursor=TokenCursor, target="BusinessPartners"),
        Stream("invoices", cursor=TokenCursor, target="Invoices"),
        Stream("payments", cursor=TokenCursor, target="IncomingPayments"),
    ),
    open_source=_open_source,
    open_sink=_open_sink,
    options={
        "servicetitan_conn_id": DEFAULT_SERVICETITAN_CONN_ID,
        "sap_b1_conn_id": DEFAULT_SAP_CONN_ID,
        "mapping_conn_id": DEFAULT_MAPPING_CONN_ID,
        "mapping_schema": "b1_audit",
        "mappings": None,
    },
    description="ServiceTitan customers, invoices and payments into SAP Business One receivables.",
    # Each stream reads its kind's export feed (hooks.servicetitan.reads.KINDS: module, then export).
    lineage=Lineage(
        source=System("servicetitan", "servicetitan_conn_id"),
        target=System("sap_b1", "sap_b1_conn_id"),
        inputs={
            "customers": ("crm/export/customers",),
            "invoices": ("accounting/export/invoices",),
            "payments": ("accounting/export/payments",),
        },
    ),
)
