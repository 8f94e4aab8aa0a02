"""SAP Business One <-> Salesforce, both ways, every 10 minutes: accounts, won deals as sales orders, balances back.

Three task groups, each incremental with its own cursors, after a check of the mapping against
the org (describe calls: a missing or mistyped field fails the run before anything is written):

* **accounts**: Salesforce accounts changed since the last run into SAP business partners (new
  partners get a code, written back to the account's number), then the partners SAP changed back
  into their accounts. A field changed on one side flows to the other; a field changed on both
  goes to its system of record (declared per field in the mapping), and the conflict is logged
  and audited. What the flow wrote itself never comes back as a change (the agreed values kept in
  the audit database), so a second run with no edits writes nothing.
* **orders**: Closed Won opportunities into sales orders, exactly once (``NumAtCard`` = the
  opportunity id); a changed opportunity updates its open order and is reported when the order is
  closed; an order SAP keeps for approval is *pending*, and the draft's number is written back.
* **balances**: SAP invoices and incoming payments changed since the last run recompute the open
  and overdue balance, credit limit and last payment date of their accounts, and the invoiced
  and paid amounts and payment status of their opportunities; then the accounts of open invoices
  that fell due since the last run get their overdue balance (time alone moves it, not SAP).

The last task compares both sides and fails with a report naming every difference.

The mapping is ``salesforce_mapping.yaml`` beside this DAG, or the path (or ``var:<Variable
key>``) in ``B1_SALESFORCE_MAPPING``; it is checked when the DAG is parsed. Every Salesforce write
goes through sObject Collections (200 records a call); the Salesforce connection's
``api_limit_share`` (default 80%) stops a run, with its reason, before the org's daily API
requests would pass that share. Reload a period: trigger with **Since**/**Until**, or backfill.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import TaskGroup, dag

from airflow_provider_b1.operators.salesforce import (
    SalesforceMappingCheckOperator,
    SalesforceOverdueOperator,
    SalesforceReconcileOperator,
)
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.salesforce.flow import SALESFORCE_TO_SAP_FLOW, SAP_TO_SALESFORCE_FLOW
from airflow_provider_b1.salesforce.mapping import load_mapping
from airflow_provider_b1.sync import sync_params

MAPPING = os.environ.get("B1_SALESFORCE_MAPPING") or str(Path(__file__).with_name("salesforce_mapping.yaml"))
if not MAPPING.startswith("var:"):
    load_mapping(MAPPING)  # checked at parse time: a wrong mapping is an import error naming the key


@dag(
    dag_id="sap_b1_salesforce",
    description="SAP Business One <-> Salesforce: accounts, won opportunities as sales orders, balances.",
    schedule=pendulum.duration(minutes=10),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params=sync_params(),
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    tags=["salesforce", "sap_b1"],
    doc_md=__doc__,
)
def sap_b1_salesforce():
    options = {"mapping": MAPPING}
    check = SalesforceMappingCheckOperator(task_id="check_mapping", options=options)

    def sync(flow, stream: str) -> SyncOperator:
        return SyncOperator(task_id=stream, flow=flow, streams=[stream], options=options)

    with TaskGroup("accounts") as accounts:
        sync(SALESFORCE_TO_SAP_FLOW, "Account") >> sync(SAP_TO_SALESFORCE_FLOW, "BusinessPartners")
    with TaskGroup("orders") as orders:
        sync(SALESFORCE_TO_SAP_FLOW, "Opportunity")
    with TaskGroup("balances") as balances:
        overdue = SalesforceOverdueOperator(task_id="overdue", options=options)
        (
            sync(SAP_TO_SALESFORCE_FLOW, "Invoices")
            >> sync(SAP_TO_SALESFORCE_FLOW, "IncomingPayments")
            >> overdue
        )
    reconcile = SalesforceReconcileOperator(task_id="reconcile", options=options)
    # Orders need their accounts' partners; balances reach the opportunities through their orders.
    check >> accounts >> orders >> balances >> reconcile


sap_b1_salesforce()
