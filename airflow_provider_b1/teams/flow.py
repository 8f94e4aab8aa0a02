"""The ``sap_b1_to_teams`` flow: SAP purchase orders, purchase invoices and payments as Teams cards.

================================  ======================  ===========================================
stream                            cursor                  writes
================================  ======================  ===========================================
SAP ``PurchaseOrders``            UpdateDate + UpdateTime a card per destination; updates, follow-ups
SAP ``PurchaseInvoices``          UpdateDate + UpdateTime the same
SAP ``IncomingPayments``          UpdateDate + UpdateTime the same (the invoices it pays)
SAP ``VendorPayments``            UpdateDate + UpdateTime the same
================================  ======================  ===========================================

Where each card goes is the routing document's (:mod:`.routing`, option ``routing``: a path or
``var:<Variable key>``); what was sent is the sent-ledger's (:mod:`.ledger`, in the audit
database); how a card is sent exactly once is the sink's (:mod:`.sink`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_b1.hooks.sap_b1 import SapCursor
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID as AUDIT_CONN_ID
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as AUDIT_SCHEMA
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System
from airflow_provider_b1.teams.routing import FIELDS_READ, PAYMENT_FIELDS_READ, PAYMENTS

NAME = "sap_b1_to_teams"
STREAMS = ("PurchaseOrders", "PurchaseInvoices", "IncomingPayments", "VendorPayments")
DEFAULT_ROUTING = str(Path(__file__).resolve().parents[2] / "dags" / "teams_routing.yaml")
#: Bot Connector calls a second, across the worker's processes: under the about 30 Teams allows.
BOT_REQUESTS_PER_SECOND = 25

OPTIONS = {
    "sap_b1_conn_id": "sap_b1_default",
    "ledger_conn_id": AUDIT_CONN_ID,
    "ledger_schema": AUDIT_SCHEMA,
    "routing": None,
    "page_size": 200,
    "bot_requests_per_second": BOT_REQUESTS_PER_SECOND,
    # count the bot's calls in this Redis, shared by every worker (one worker: a local file)
    "rate_limit_redis_url": None,
}


def routing_of(options: Mapping[str, Any]) -> Any:
    """The ``routing`` option, else ``B1_TEAMS_ROUTING`` (as the DAG reads it), else the example
    ``dags/teams_routing.yaml``."""
    import os

    from airflow_provider_b1.teams.routing import load_routing

    return load_routing(options.get("routing") or os.environ.get("B1_TEAMS_ROUTING") or DEFAULT_ROUTING)


def _open_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.sources.sap_b1 import SapB1Source

    select = {name: list(PAYMENT_FIELDS_READ if name in PAYMENTS else FIELDS_READ) for name in STREAMS}
    return SapB1Source(
        SapB1Hook(options["sap_b1_conn_id"]),
        select=select,
        page_size=options["page_size"],
        encoded=False,
    )


def _run_id() -> str | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["run_id"]
    except Exception:  # outside a task (tools, tests): the rows name no run
        return None


def _open_sink(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.hooks.teams import TeamsBotHook, TeamsWebhookHook
    from airflow_provider_b1.teams.ledger import SentLedger
    from airflow_provider_b1.teams.sink import TeamsSink
    from airflow_provider_b1.utils.sql import open_database

    routing = routing_of(options)
    database = open_database(options["ledger_conn_id"], purpose="the Teams sent-ledger")
    ledger = SentLedger(database, options["ledger_schema"], _run_id())
    per_second = int(options["bot_requests_per_second"])

    def open_hook(transport: str, conn_id: str) -> Any:
        if transport == "webhook":
            return TeamsWebhookHook(conn_id)
        return TeamsBotHook(
            conn_id, requests_per_second=per_second, redis_url=options.get("rate_limit_redis_url")
        )

    sap = SapB1Hook(options["sap_b1_conn_id"])

    def groups(codes: Sequence[str]) -> dict[str, int | None]:
        found: dict[str, int | None] = {}
        for page in sap.iter_any_of(
            "BusinessPartners", "CardCode", codes, select=["CardCode", "GroupCode"], max_values=100
        ):
            for partner in page:
                found[str(partner["CardCode"])] = partner.get("GroupCode")
        return found

    def numbers(entity: str, entries: Sequence[int]) -> dict[int, object]:
        found: dict[int, object] = {}
        for page in sap.iter_any_of(
            entity, "DocEntry", entries, select=["DocEntry", "DocNum"], max_values=100
        ):
            for invoice in page:
                found[invoice["DocEntry"]] = invoice.get("DocNum")
        return found

    return TeamsSink(
        routing,
        ledger,
        open_hook,
        groups if routing.needs_partner_groups else None,
        sap.close,
        invoice_numbers=numbers,
    )


TEAMS_FLOW = Flow(
    name=NAME,
    source_system="sap_b1",
    target_system="teams",
    streams=tuple(Stream(name, cursor=SapCursor, target="cards") for name in STREAMS),
    open_source=_open_source,
    open_sink=_open_sink,
    options=OPTIONS,
    description="SAP purchase orders, purchase invoices and payments as Microsoft Teams cards, once each.",
    lineage=Lineage(
        source=System("sap_b1", "sap_b1_conn_id"),
        target=System("database", "ledger_conn_id", "ledger_schema"),
        outputs={name: ("b1_teams_sent",) for name in STREAMS},
    ),
)
