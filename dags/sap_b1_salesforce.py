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

**Several SAP companies.** Set ``B1_SALESFORCE_COMPANIES`` to their SAP connection ids, separated
by commas (``sap_b1_us,sap_b1_eu``); an entry may give a company an org of its own
(``sap_b1_eu=b1_salesforce_eu``), else it uses ``b1_salesforce_default``. Unset, the DAG links
``sap_b1_default`` alone, with the tasks above. With several, the mapping is checked once (every
org), then each company but ``sap_b1_default`` (whose tasks stay where they were) gets the
accounts, orders, balances and reconcile tasks in a task group named after its connection: its own dependencies (a company whose SAP is down fails only its own
tasks), cursors, audit rows and replay (flows ``salesforce_to_sap_b1@<conn id>`` and
``sap_b1_to_salesforce@<conn id>``), its own links and agreed values, and external ids carrying
the company (an invoice record of ``sap_b1_eu`` is ``sap_b1_eu:17``), so a CardCode or DocEntry
every company has stays apart. When companies share an org, each account names its company in the
mapping's ``accounts.company_field`` (its SAP connection id or CompanyDB): a company reads only its
accounts, and only the won opportunities of its accounts. An account with the field empty or
naming no declared company is synced nowhere: ``check_mapping`` counts and logs such accounts
each run (``unrouted`` in its XCom) without failing, and filling the field brings the account in
at the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import TaskGroup, dag

from airflow_provider_b1.companies import Company, declared_companies, per_company
from airflow_provider_b1.operators.salesforce import (
    SalesforceMappingCheckOperator,
    SalesforceOverdueOperator,
    SalesforceReconcileOperator,
)
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.salesforce.flow import (
    SALESFORCE_TO_SAP_FLOW,
    SAP_TO_SALESFORCE_FLOW,
    check_companies,
    company_options,
    orgs_of,
)
from airflow_provider_b1.salesforce.mapping import load_mapping
from airflow_provider_b1.sync import sync_params

MAPPING = os.environ.get("B1_SALESFORCE_MAPPING") or str(Path(__file__).with_name("salesforce_mapping.yaml"))
#: The SAP companies linked, each with its Salesforce org (read when the DAG is parsed).
COMPANIES = declared_companies("B1_SALESFORCE_COMPANIES", peer="Salesforce connection")
if not MAPPING.startswith("var:"):
    # checked at parse time: a wrong mapping is an import error naming the key
    check_companies(COMPANIES, load_mapping(MAPPING))


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
    several = len(COMPANIES) > 1
    check = SalesforceMappingCheckOperator(
        task_id="check_mapping",
        options=company_options(COMPANIES[0], options),
        # every org, and which companies share it (one company: the one of the options)
        companies=[[sap, org] for org, saps in orgs_of(COMPANIES).items() for sap in saps]
        if several
        else None,
    )

    def link_company(company: Company, prefix: str) -> None:
        """One company's tasks (``prefix``: its task group's)."""
        scoped = company_options(company, options)

        def sync(flow, stream: str) -> SyncOperator:
            return SyncOperator(task_id=stream, flow=flow, streams=[stream], options=scoped)

        with TaskGroup("accounts") as accounts:
            sync(SALESFORCE_TO_SAP_FLOW, "Account") >> sync(SAP_TO_SALESFORCE_FLOW, "BusinessPartners")
        with TaskGroup("orders") as orders:
            sync(SALESFORCE_TO_SAP_FLOW, "Opportunity")
        with TaskGroup("balances") as balances:
            overdue = SalesforceOverdueOperator(task_id="overdue", options=scoped)
            (
                sync(SAP_TO_SALESFORCE_FLOW, "Invoices")
                >> sync(SAP_TO_SALESFORCE_FLOW, "IncomingPayments")
                >> overdue
            )
        reconcile = SalesforceReconcileOperator(task_id="reconcile", options=scoped)
        # Orders need their accounts' partners; balances reach the opportunities through their orders.
        check >> accounts >> orders >> balances >> reconcile

    per_company(COMPANIES, link_company)


sap_b1_salesforce()
