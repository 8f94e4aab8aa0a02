"""Salesforce -> SAP Business One within seconds: accounts and opportunities synced as soon as Salesforce says they changed.

Each run waits for Change Data Capture events on ``AccountChangeEvent`` and
``OpportunityChangeEvent`` in the triggerer (no worker slot held), then runs the same polling
syncs as the 10-minute ``sap_b1_salesforce`` DAG: accounts into business partners, then
Closed Won opportunities into sales orders. CDC is only the wake-up: the syncs read every record
changed since their own cursors (``SystemModstamp``), so what one event names, and what an event
that never came would have named, is read alike. The syncs are idempotent and never write back
their own changes, so this DAG and ``sap_b1_salesforce`` may run side by side; this one only
makes Salesforce edits arrive in SAP sooner (SAP's changes back to Salesforce stay with the
10-minute DAG).

The schedule is ``@continuous`` with one run at a time: a run ends once its syncs are done and
the next one starts waiting at once, from the replay id the previous run's sensor returned
(kept in XCom), so no event between two runs is skipped. A quiet hour ends a run with a poll
all the same, which keeps the replay id fresh.

When CDC cannot deliver, the sensor succeeds with a *fallback* and the syncs poll as usual, so
no edit is lost:

* ``replay_id_expired``: the stored replay id is older than the 72-hour retention (the DAG was
  paused for days). The poll catches up; the next run starts at the newest event.
* ``cdc_not_enabled``: the org offers no change events for the object (not selected under
  Setup > Change Data Capture, or no CDC at all), and
* ``stream_failed``: the Pub/Sub API kept failing after bounded retries, or the connection has
  no usable Pub/Sub settings. For these two the run then waits ten minutes in the triggerer
  (``cool_down``) before it ends, so the DAG polls every ten minutes instead of spinning.

The sensor's log says which fallback and why. The Salesforce connection's extras ``pubsub_endpoint``
(default ``api.pubsub.salesforce.com:7443``), ``pubsub_ca_bundle`` and ``pubsub_tls`` point the
subscription at the Pub/Sub API; a triggerer must run. The mapping is the one
``sap_b1_salesforce`` uses: ``salesforce_mapping.yaml`` beside this DAG, or the path (or
``var:<Variable key>``) in ``B1_SALESFORCE_MAPPING``.

**Several SAP companies.** ``B1_SALESFORCE_COMPANIES`` declares them as for ``sap_b1_salesforce``
(SAP connection ids separated by commas, ``sap_b1_eu=b1_salesforce_eu`` for a company with an org
of its own); unset, the DAG syncs into ``sap_b1_default`` alone, with the tasks above. With several,
one sensor wakes every company: each gets its own ``accounts`` and ``opportunities`` tasks in a task
group named after its connection, with its own cursors, audit rows (flow
``salesforce_to_sap_b1@<conn id>``) and links, and a company whose SAP is down fails only its own
tasks. Where companies share an org, each reads only the accounts naming it in the mapping's
``accounts.company_field`` and the won opportunities of those accounts. A sensor listens to one
org, so where companies have orgs of their own this file makes one such DAG per org, each with its
own sensor (and replay id) waking only its org's companies: ``sap_b1_salesforce_changes`` for the
org of ``b1_salesforce_default``, ``sap_b1_salesforce_changes_<Salesforce conn id>`` for each other
(whatever the order of the list: a sensor resumes from its own org's replay id).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.standard.sensors.time_delta import WaitSensor
from airflow.sdk import dag, task

from airflow_provider_b1.companies import Company, declared_companies, per_company
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.salesforce.flow import (
    DEFAULT_SALESFORCE_CONN_ID,
    SALESFORCE_TO_SAP_FLOW,
    check_companies,
    company_options,
    orgs_of,
)
from airflow_provider_b1.salesforce.mapping import load_mapping
from airflow_provider_b1.sensors.salesforce import SalesforceChangeSensor
from airflow_provider_b1.triggers.salesforce import CDC_NOT_ENABLED, STREAM_FAILED

MAPPING = os.environ.get("B1_SALESFORCE_MAPPING") or str(Path(__file__).with_name("salesforce_mapping.yaml"))
#: The SAP companies synced, each with its Salesforce org (read when the DAG is parsed).
COMPANIES = declared_companies("B1_SALESFORCE_COMPANIES", peer="Salesforce connection")
if not MAPPING.startswith("var:"):
    # checked at parse time: a wrong mapping is an import error naming the key
    check_companies(COMPANIES, load_mapping(MAPPING))

TOPICS = ["/data/AccountChangeEvent", "/data/OpportunityChangeEvent"]
COOL_DOWN = pendulum.duration(minutes=10)
"""How long a run waits after a fallback that the next run would meet again at once."""


DAG_ID = "sap_b1_salesforce_changes"
#: ``{Salesforce connection id: [SAP connection ids]}``: the orgs and the companies each serves.
ORGS = orgs_of(COMPANIES)


def changes_dag(dag_id: str, org: str) -> Any:
    """The DAG of one org: its sensor wakes the syncs of the companies that org serves."""
    companies = [c for c in COMPANIES if c.sap_b1_conn_id in ORGS[org]]

    @dag(
        dag_id=dag_id,
        description="Salesforce -> SAP Business One within seconds: CDC wakes the account and opportunity syncs.",
        schedule="@continuous",
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
        tags=["salesforce", "sap_b1", "cdc"],
        doc_md=__doc__,
    )
    def changes():
        options = {"mapping": MAPPING}
        wait = SalesforceChangeSensor(
            task_id="wait_for_changes",
            topics=TOPICS,
            wait_seconds=3600,
            return_when_idle=True,
            salesforce_conn_id=org,
        )
        synced = []

        def sync_company(company: Company, prefix: str) -> None:
            """One company's syncs (``prefix``: its task group's)."""
            scoped = company_options(company, options)
            accounts = SyncOperator(
                task_id="accounts", flow=SALESFORCE_TO_SAP_FLOW, streams=["Account"], options=scoped
            )
            # Orders need their accounts' partners: the opportunities follow the accounts.
            opportunities = SyncOperator(
                task_id="opportunities", flow=SALESFORCE_TO_SAP_FLOW, streams=["Opportunity"], options=scoped
            )
            wait >> accounts >> opportunities
            synced.append(opportunities)

        per_company(companies, sync_company)

        @task.short_circuit(task_id="cdc_unavailable")
        def cdc_unavailable(woken: dict[str, Any]) -> bool:
            """Go on to the cool-down only when the next run would fall back again at once."""
            return (woken or {}).get("fallback") in (CDC_NOT_ENABLED, STREAM_FAILED)

        cool_down = WaitSensor(task_id="cool_down", time_to_wait=COOL_DOWN, deferrable=True)
        unavailable = cdc_unavailable(wait.output)
        synced >> unavailable >> cool_down

    return changes()


def dag_id_of(org: str) -> str:
    """An org's DAG id, fixed by the org whatever the order of the list (a DAG's sensor resumes
    from its previous run's replay id, which only its own org understands)."""
    return DAG_ID if org == DEFAULT_SALESFORCE_CONN_ID else f"{DAG_ID}_{org}"


#: The orgs, the default connection's first.
_ORDER = sorted(ORGS, key=lambda org: org != DEFAULT_SALESFORCE_CONN_ID)


def sap_b1_salesforce_changes() -> Any:
    """The DAG of the default org (of the first org listed when no company uses the default)."""
    return changes_dag(dag_id_of(_ORDER[0]), _ORDER[0])


sap_b1_salesforce_changes()
#: The DAGs of the other orgs, by DAG id.
OTHER_ORGS = {dag_id_of(org): changes_dag(dag_id_of(org), org) for org in _ORDER[1:]}
