"""ServiceTitan -> SAP Business One, daily: customers, then invoices, then payments, into receivables.

Each task reads what changed in ServiceTitan since its last successful run (the export feed's
continuation token is the cursor) and writes it into SAP exactly once: partners by the customer
mapping table, A/R service invoices by ``NumAtCard`` = the ServiceTitan invoice id, incoming
payments by ``CounterReference`` = the payment id, applied to the invoices they pay. Every
record is in the audit trail (``b1_audit_default``). A record that waits for another (an invoice
whose customer is not in SAP yet, a payment for an invoice not in SAP yet) is retried by each
next run, before it reads what changed, and posted once that record is there: never unapplied
by accident. Records that failed otherwise (an unmapped GL account, an invoice changed after
posting) are replayed with ``b1_replay_failed`` once fixed. With ``changed_after_posting:
credit_and_repost`` in the mapping, an invoice changed after posting is instead credited (an A/R
credit memo carrying its id) and posted again as ``<id>-r2``, ``<id>-r3``..., exactly once each.

The mapping of GL accounts, business units, tax and payment types is the file
``servicetitan_mappings.yaml`` beside this DAG, or the path (or ``var:<Variable key>``) in
``B1_SERVICETITAN_MAPPINGS``; it is checked when the DAG is parsed, so a typo is an import error
naming the key. ``B1_SAP_SESSIONS`` (default 2) is how many SAP sessions post side by side: SAP's
throughput comes from concurrency, and every session holds a licence.

The last task compares SAP with ServiceTitan partner by partner (invoice count and total, payments
applied, open balance, credit memos taken off) and fails with a report naming every difference.

Reload a period: trigger with **Since**/**Until** or run a backfill (each run reads its data
interval from the export feed). Re-runs change nothing. Where ServiceTitan's webhooks reach the
``b1-webhooks`` receiver, an invoice, payment or customer event also starts a run at once
(polling stays the default).

**Several SAP companies.** Set ``B1_SERVICETITAN_COMPANIES`` to the SAP connection ids, each with
the ServiceTitan connection of the tenant that feeds it, separated by commas
(``sap_b1_us=servicetitan_us,sap_b1_eu=servicetitan_eu``); unset, the DAG posts from
``servicetitan_default`` into ``sap_b1_default``, with the tasks above. One entry may leave out its
ServiceTitan connection (``servicetitan_default``); with several, each must name its own, and no
two the same (two companies reading one tenant would each post its invoices). Each company but
``sap_b1_default`` (whose tasks stay where they were) gets the same tasks in a task group named
after its SAP connection: its own dependencies (a company
whose SAP or ServiceTitan is down fails only its own tasks; the others post and reconcile), its own
cursors (each task's own XCom), its own audit rows and replay (flow
``servicetitan_to_sap_b1@<SAP conn id>``; replayed with no options, it reads the tenant this
variable pairs with the company, so set it alike on the workers), its own rows of the customer
mapping table (keyed by company and tenant), and its own reconciliation of its SAP company with its
tenant. The list is read when the file is parsed, so the UI shows every company.

**A mapping per company.** The mapping (GL accounts, business units, tax, payment types) is shared
by every company, except where its ``companies`` section gives a company, by its SAP connection id
or its CompanyDB, its own value of a key (``companies: {sap_b1_eu: {gl_accounts: {...}, tax_code:
B1}}``): that key then replaces the shared one wholesale (the company gets exactly its own GL
accounts, never another company's codes), while the keys it does not name stay shared. Every
section is checked when the file is parsed (an error names ``companies.<name>.<key>``); with
``B1_SERVICETITAN_COMPANIES`` set, a section naming none of its companies is an import error too. A
replay given no options reads ``B1_SERVICETITAN_MAPPINGS`` (set it alike on the workers); where
the DAG reads the file beside it, give the replay ``{"mappings": "<its path>"}`` (without either,
nothing is mapped and each replayed record fails naming what to map).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable, dag

from airflow_provider_b1.companies import Company, per_company
from airflow_provider_b1.operators.servicetitan import ServiceTitanReconcileOperator
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.servicetitan.flow import (
    COMPANIES_ENV,
    MAPPINGS_ENV,
    SERVICETITAN_FLOW,
    servicetitan_companies,
)
from airflow_provider_b1.servicetitan.mappings import check_mappings
from airflow_provider_b1.sync import sync_params
from airflow_provider_b1.webhooks.assets import servicetitan_asset

MAPPINGS = os.environ.get(MAPPINGS_ENV) or str(Path(__file__).with_name("servicetitan_mappings.yaml"))
# SAP sessions posting side by side (a session serves one request at a time; each holds a licence).
SAP_SESSIONS = int(os.environ.get("B1_SAP_SESSIONS") or 2)
if not MAPPINGS.startswith("var:"):
    # Checked at parse time, each company's section too: a wrong mapping is an import error naming
    # the key. Section names are checked against the companies only where the DAG declares them.
    declared = os.environ.get(COMPANIES_ENV, "").strip()
    check_mappings(MAPPINGS, [c.sap_b1_conn_id for c in servicetitan_companies()] if declared else None)


@dag(
    dag_id="servicetitan_to_sap_b1",
    description="ServiceTitan customers, invoices and payments into SAP Business One receivables.",
    # Daily, and within seconds of a ServiceTitan webhook where b1-webhooks receives them.
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("30 2 * * *", timezone="UTC"),
        assets=servicetitan_asset("invoices")
        | servicetitan_asset("payments")
        | servicetitan_asset("customers"),
    ),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=sync_params(),
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    tags=["servicetitan", "sap_b1"],
    doc_md=__doc__,
)
def servicetitan_to_sap_b1():
    per_company(servicetitan_companies(), post_company)


def post_company(company: Company, prefix: str) -> None:
    """One SAP company's tasks, fed by its own ServiceTitan tenant (``company.peer_conn_id``)."""
    options = {
        "sap_b1_conn_id": company.sap_b1_conn_id,
        "servicetitan_conn_id": company.peer_conn_id,
        "mappings": MAPPINGS,
    }
    tasks = [
        SyncOperator(
            task_id=stream.name,
            flow=SERVICETITAN_FLOW,
            streams=[stream.name],
            options=options,
            writers=SAP_SESSIONS,
        )
        for stream in SERVICETITAN_FLOW.streams
    ]
    reconcile = ServiceTitanReconcileOperator(task_id="reconcile", options=options)
    # Invoices need their customers' partners, payments the invoices they pay.
    tasks[0] >> tasks[1] >> tasks[2] >> reconcile


servicetitan_to_sap_b1()
