"""SAP Business One -> Microsoft Teams, every 5 minutes: purchase orders, purchase invoices and payments as cards.

One task per document type (``PurchaseOrders``, ``PurchaseInvoices``, ``IncomingPayments``,
``VendorPayments``), each reading what changed in SAP since its last successful run (``UpdateDate``
and ``UpdateTime`` in the server's zone) and sending each document to the channels and people its
routing rules name: through a Workflows webhook (a channel) or the bot (channels and 1:1 chats with
users named by e-mail or UPN). When one run finds more than ``digest_over`` new documents for one
destination, they arrive as one digest card instead.

**Exactly one card per document and event.** What was sent is kept in the sent-ledger
(``b1_teams_sent`` in the audit database, ``b1_audit_default``), per destination, document and
event (``created``, ``approved``, ``closed``, ``paid``, ``cancelled``). Re-runs, cleared tasks,
backfills and replays send nothing twice. A document that changes later gets its card *updated*
by the bot, or a short follow-up card through a webhook (a webhook cannot update). If a task dies
between sending a card and recording it, its next try finds the record pending: the bot looks for
the card in the conversation (Graph) and sends it only if it is not there; a webhook, which gives
nothing to look up, sends that one card again, and the task log and its summary line say so. To
look, the bot's Graph app needs ``Chat.Read.All`` (users' chats) and ``ChannelMessage.Read.All``
(channels, whose routing names their ``team``); without them such a card is left unsent and its
document fails, saying so, rather than risk showing it twice.

A document a destination refuses (a user unknown to Graph or without the bot installed, a card
Teams refuses) fails alone, with its reason, in the audit trail; ``b1_replay_failed`` sends it once
the cause is fixed. Bot calls stay under 25 a second across the worker (Teams allows about 30).

The routing rules are ``teams_routing.yaml`` beside this DAG, or the path (or ``var:<Variable
key>``) in ``B1_TEAMS_ROUTING``; they are checked when the DAG is parsed, every problem named at
once. Connection ids are in the rules (defaults ``b1_teams_webhook_default`` and
``b1_teams_bot_default``); SAP's is ``B1_TEAMS_SAP_CONN_ID`` (default ``sap_b1_default``). Reload
a period: trigger with **Since**/**Until**, or backfill: documents already announced stay silent.

**Several SAP companies.** List their SAP connection ids in ``B1_TEAMS_COMPANIES``
(``sap_b1_us,sap_b1_eu``; read when the DAG is parsed; a ``B1_TEAMS_SAP_CONN_ID`` already set stays
the default company, whose rows and flow name it keeps, and must be among them):
each company but the default one (whose tasks stay where they were) gets a task group of its own,
named after its connection, with the four tasks.
Each company keeps its own cursors, audit rows (the flow ``sap_b1_to_teams@<conn id>`` for every
company but ``sap_b1_default``: replay it by that name) and sent-ledger rows, so ``DocEntry`` 17
of two companies is two documents with a card each; a company whose SAP is down fails only its
own tasks. Every card then names its company's CompanyDB, and a routing rule may send one
company's documents elsewhere (``companies: [sap_b1_eu]``, by connection id or CompanyDB).
Unset, the DAG runs one company, with the tasks, flow name and ledger rows it always had.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import dag

from airflow_provider_b1.companies import Company, per_company
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.sync import sync_params
from airflow_provider_b1.teams.flow import STREAMS, TEAMS_FLOW, default_sap_conn_id, teams_companies
from airflow_provider_b1.teams.routing import load_routing

ROUTING = os.environ.get("B1_TEAMS_ROUTING") or str(Path(__file__).with_name("teams_routing.yaml"))
if not ROUTING.startswith("var:"):
    load_routing(ROUTING)  # checked at parse time: wrong rules are an import error naming each problem


@dag(
    dag_id="sap_b1_to_teams",
    description="SAP Business One purchase orders, purchase invoices and payments as Microsoft Teams cards.",
    schedule=pendulum.duration(minutes=5),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=sync_params(),
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["teams", "sap_b1"],
    doc_md=__doc__,
)
def sap_b1_to_teams():
    per_company(teams_companies(), send_company, default=default_sap_conn_id())


def send_company(company: Company, prefix: str) -> None:
    """One SAP company's tasks: one per document type, each with its own cursor."""
    options = {"routing": ROUTING, "sap_b1_conn_id": company.sap_b1_conn_id}
    for stream in STREAMS:
        SyncOperator(task_id=stream, flow=TEAMS_FLOW, streams=[stream], options=options)


sap_b1_to_teams()
