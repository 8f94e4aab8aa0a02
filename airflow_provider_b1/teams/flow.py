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

**Several SAP companies.** The flow runs once per company (``scope_option="sap_b1_conn_id"``): a
company other than the default one is the flow ``sap_b1_to_teams@<its SAP conn id>``, with its
own audit rows, cursors and replay, and its own rows in the sent-ledger. The companies are
``B1_TEAMS_COMPANIES`` (:func:`teams_companies`); without it, the one company is
``B1_TEAMS_SAP_CONN_ID`` (default ``sap_b1_default``), run exactly as before companies.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID, Company, declared_companies
from airflow_provider_b1.hooks.sap_b1 import SapCursor
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID as AUDIT_CONN_ID
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as AUDIT_SCHEMA
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System
from airflow_provider_b1.teams.routing import FIELDS_READ, PAYMENT_FIELDS_READ, PAYMENTS

log = logging.getLogger(__name__)

NAME = "sap_b1_to_teams"
STREAMS = ("PurchaseOrders", "PurchaseInvoices", "IncomingPayments", "VendorPayments")
DEFAULT_ROUTING = str(Path(__file__).resolve().parents[2] / "dags" / "teams_routing.yaml")
#: Bot Connector calls a second, across the worker's processes: under the about 30 Teams allows.
BOT_REQUESTS_PER_SECOND = 25

#: The SAP companies the DAG sends cards for: their SAP connection ids, separated by commas.
COMPANIES_ENV = "B1_TEAMS_COMPANIES"
#: The SAP connection of the default company: the one company of a deployment without a list, and
#: the company of the plain flow name and of the ledger rows ``sap_b1_default`` with one.
SAP_CONN_ENV = "B1_TEAMS_SAP_CONN_ID"


def teams_companies(value: str | None = None) -> list[Company]:
    """The SAP companies whose documents become cards: ``B1_TEAMS_COMPANIES`` (``value``, when
    given, instead); without it, the one company of ``B1_TEAMS_SAP_CONN_ID`` or ``sap_b1_default``.

    A deployment that ran with ``B1_TEAMS_SAP_CONN_ID`` keeps that company as its default one when
    it lists companies (its flow name, cursors and sent-ledger rows stay its own, so nothing is
    announced twice); a list that leaves it out, or that also names ``sap_b1_default`` (whose rows
    would then be the same), is refused.

    :raises ValueError: for a list :func:`~airflow_provider_b1.companies.declared_companies` refuses,
        and for the two lists above.
    """
    text = os.environ.get(COMPANIES_ENV, "") if value is None else value
    single = os.environ.get(SAP_CONN_ENV) or DEFAULT_SAP_CONN_ID
    if not text.strip():
        return [Company(single)]
    companies = declared_companies(COMPANIES_ENV, text)
    names = [company.sap_b1_conn_id for company in companies]
    if single != DEFAULT_SAP_CONN_ID and (single not in names or DEFAULT_SAP_CONN_ID in names):
        raise ValueError(
            f"{SAP_CONN_ENV} names {single}, the company whose cards were sent before {COMPANIES_ENV}: "
            f"list it there (it keeps its sent-ledger rows and flow name) and not {DEFAULT_SAP_CONN_ID} "
            f"beside it, or unset {SAP_CONN_ENV} (not {text!r})."
        )
    return companies


def default_sap_conn_id() -> str:
    """The default company's SAP connection: the flow under its plain name, the ledger rows of
    ``sap_b1_default``: ``B1_TEAMS_SAP_CONN_ID``'s, whether or not companies are listed, so a
    deployment's flow name, audit rows and ledger rows stay what they were."""
    return os.environ.get(SAP_CONN_ENV) or DEFAULT_SAP_CONN_ID


OPTIONS = {
    "sap_b1_conn_id": default_sap_conn_id(),
    "ledger_conn_id": AUDIT_CONN_ID,
    "ledger_schema": AUDIT_SCHEMA,
    "routing": None,
    "page_size": 200,
    "bot_requests_per_second": BOT_REQUESTS_PER_SECOND,
    # count the bot's calls in this Redis, shared by every worker (one worker: a local file)
    "rate_limit_redis_url": None,
    # cards name their SAP company (its CompanyDB): None = when B1_TEAMS_COMPANIES lists several
    "name_company": None,
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
    conn_id = options["sap_b1_conn_id"]
    # the default company's rows are sap_b1_default's whatever its connection (see above)
    company = DEFAULT_SAP_CONN_ID if conn_id == OPTIONS["sap_b1_conn_id"] else conn_id
    database = open_database(options["ledger_conn_id"], purpose="the Teams sent-ledger")
    ledger = SentLedger(database, options["ledger_schema"], _run_id(), company)
    per_second = int(options["bot_requests_per_second"])

    def open_hook(transport: str, conn_id: str) -> Any:
        if transport == "webhook":
            return TeamsWebhookHook(conn_id)
        return TeamsBotHook(
            conn_id, requests_per_second=per_second, redis_url=options.get("rate_limit_redis_url")
        )

    sap = SapB1Hook(conn_id)
    company_db = sap.settings.company
    name_company = options.get("name_company")
    if name_company is None:
        name_company = len(teams_companies()) > 1

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
        company=(conn_id, company_db),
        shown_company=(company_db or conn_id) if name_company else None,
    )


TEAMS_FLOW = Flow(
    name=NAME,
    source_system="sap_b1",
    target_system="teams",
    streams=tuple(Stream(name, cursor=SapCursor, target="cards") for name in STREAMS),
    open_source=_open_source,
    open_sink=_open_sink,
    options=OPTIONS,
    scope_option="sap_b1_conn_id",
    description="SAP purchase orders, purchase invoices and payments as Microsoft Teams cards, once each.",
    lineage=Lineage(
        source=System("sap_b1", "sap_b1_conn_id"),
        target=System("database", "ledger_conn_id", "ledger_schema"),
        outputs={name: ("b1_teams_sent",) for name in STREAMS},
    ),
)
