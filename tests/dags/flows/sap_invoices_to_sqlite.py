"""A flow written only against the sync engine: SAP invoices into one SQLite table.

It declares a source (SAP, read with ``$select`` of four fields), a sink (one table, upserted by
``DocEntry``) and the mapping; the engine gives it windows, the cursor by XCom checked against
the target, the audit trail with every page, replay, summaries and progress lines.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.sources.sap_b1 import SapB1Source
from airflow_provider_b1.sync import Flow, Stream, TableSink, sync_params
from airflow_provider_b1.utils.sql import open_database

FIELDS = ["DocEntry", "CardCode", "DocTotal"]  # the key and the update stamp are added by the read


def invoice_row(invoice: dict) -> dict:
    total = invoice.get("DocTotal")
    if not isinstance(total, (int, float)) or total < 0:
        raise ValueError(f"DocTotal {total!r} is not an amount")
    return {"doc_entry": invoice["DocEntry"], "card_code": invoice.get("CardCode"), "doc_total": total}


def open_sink(options: dict) -> TableSink:
    database = open_database(options["target_conn_id"])
    return TableSink(
        database.connect(),
        "invoice",
        key="doc_entry",
        columns={"card_code": "text", "doc_total": "num"},
        map=invoice_row,
        system="invoices_db",
        database=database,
    )


INVOICES_FLOW = Flow(
    name="sap_invoices_to_sqlite",
    source_system="sap_b1",
    target_system="invoices_db",
    streams=(Stream("Invoices", cursor=SapCursor, target="invoice"),),
    open_source=lambda options: SapB1Source(
        SapB1Hook(options["sap_b1_conn_id"]), select={"Invoices": FIELDS}, encoded=False
    ),
    open_sink=open_sink,
    options={"sap_b1_conn_id": "sap_b1_default", "target_conn_id": "b1_invoices_db"},
)


@dag(
    schedule=CronDataIntervalTimetable("0 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params=sync_params(),
)
def sap_invoices_to_sqlite():
    SyncOperator(task_id="load", flow=INVOICES_FLOW, audit_conn_id="b1_invoices_db", progress_every=1)


sap_invoices_to_sqlite()
