"""Replay the failed records of one flow, once the cause of their failure is fixed.

Trigger it from the UI with the flow's name, optionally a time range of the failures, and
``dry_run`` unticked to really send (ticked, it only counts and lists what it would replay).
Records are read again from the flow's own source and written through its own sink, so
replaying twice is harmless. Give the flow's options (connection ids, extra fields) where its tasks
run with other values than its defaults. Each replayed record gets a new row in the audit trail with the
next attempt number. Any flow declared on the sync engine can be replayed; no replayer is
written by hand. A flow run per SAP company is replayed per company: name it
``sap_b1_to_warehouse@<conn id>`` (as in the audit trail), and that company's connection is used.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from airflow_provider_b1.operators.sync import ReplayFailedOperator
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID
from airflow_provider_b1.sync.flows import known_flows
from airflow_provider_b1.sync.window import window_param

FLOWS = known_flows()


@dag(
    dag_id="b1_replay_failed",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["b1", "replay"],
    doc_md=__doc__,
    params={
        "flow": Param(
            FLOWS[0] if FLOWS else "",
            type="string",
            minLength=1,
            title="Flow",
            description="The flow whose failed records to replay, as named in the audit trail; a company "
            "other than sap_b1_default is its own flow, e.g. sap_b1_to_warehouse@sap_b1_eu.",
            examples=FLOWS,
        ),
        "since": window_param("Failed since", "Only records that failed at or after this time."),
        "until": window_param("Failed until", "Only records that failed before this time."),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Only list what would be replayed. Untick to send the records again.",
        ),
        "audit_conn_id": Param(
            DEFAULT_CONN_ID,
            type="string",
            title="Audit connection",
            description="Airflow connection of the audit trail (Postgres or SQLite).",
        ),
        "options": Param(
            {},
            type="object",
            title="Flow options",
            description="The options the flow's tasks run with, where they differ from its defaults, e.g. "
            '{"warehouse_conn_id": "my_warehouse", "extra_select": {"Invoices": ["U_Region"]}}.',
        ),
    },
    render_template_as_native_obj=True,
)
def b1_replay_failed():
    ReplayFailedOperator(
        task_id="replay",
        flow="{{ params.flow }}",
        since="{{ params.since or '' }}",
        until="{{ params.until or '' }}",
        dry_run="{{ params.dry_run }}",
        options="{{ params.options }}",
        audit_conn_id="{{ params.audit_conn_id }}",
    )


b1_replay_failed()
