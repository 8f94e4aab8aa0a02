"""A load task killed with SIGKILL in the middle of a load, then run again, leaves the warehouse equal to SAP.

The sales group's task (``load_sales`` of sap_b1_to_warehouse: Invoices, then IncomingPayments)
runs in a child process, as a worker would run it, against 6,000 invoices served slowly (twelve pages of 500), so
that the kill lands while pages are being committed. Its next try then runs in this process
with the same operator; Airflow would start it the same way after the worker died (a killed try
returned no cursor, so the next one reads from the same place).
"""

from __future__ import annotations

import json

from dag_helpers import kill_mid_load

from airflow_provider_b1.sync import Action

INVOICES = 6_000
SALES = ("Invoices", "IncomingPayments")
RUN_ID = "manual__killed_load"

CHILD = """
import json, sys
from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1ToWarehouseOperator


class TaskInstance:
    dag_id, task_id, map_index = "sap_b1_to_warehouse", "load_sales", -1

    def __init__(self, run_id, try_number):
        self.run_id, self.try_number = run_id, try_number

    def xcom_pull(self, **kwargs):
        return None  # no earlier successful run: read everything


def run(run_id, try_number):
    operator = SapB1ToWarehouseOperator(task_id="load_sales", group="sales", page_size=500)
    return operator.execute({"ti": TaskInstance(run_id, try_number), "params": {}, "dag_run": None})


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]))))
"""


def _invoices_loaded(flow) -> int:
    try:
        return flow.query("SELECT count(*) FROM sap_b1.fact_sales_invoice")[0][0]
    except Exception:  # the schema is not created yet
        return 0


def test_a_load_killed_mid_way_and_run_again_leaves_the_warehouse_equal_to_sap(flow, tmp_path):
    flow.sap.reset(invoices=INVOICES)
    flow.sap.faults(slow_rate=1.0, slow_seconds=0.15)  # every reply late: a wide window to kill in
    script = tmp_path / "load_sales.py"
    script.write_text(CHILD)
    kill_mid_load(script, RUN_ID, lambda: _invoices_loaded(flow))
    flow.sap.faults()

    # the kill landed mid-load: some pages are in, far from all
    partial = _invoices_loaded(flow)
    assert 1500 <= partial < INVOICES
    assert flow.differences(SALES).keys() >= {"Invoices", "IncomingPayments"}

    # the task's next try (in process, same operator, same run)
    namespace: dict = {}
    exec(compile(CHILD, str(script), "exec"), namespace)
    summary = namespace["run"](RUN_ID, 2)
    assert summary["entities"]["Invoices"]["failed"] == 0

    assert flow.differences(SALES) == {}
    assert flow.query("SELECT count(*), count(DISTINCT doc_entry) FROM sap_b1.fact_sales_invoice")[0] == (
        INVOICES,
        INVOICES,
    )
    # what the killed try committed has its trail from that try (written in each page's own
    # transaction); the next try found those records unchanged; nothing failed.
    killed = dict(
        flow.query(
            "SELECT action, count(*) FROM b1_audit.audit_record WHERE run_id = %s AND try_number = 1 "
            "AND source_entity = 'Invoices' GROUP BY action",
            (RUN_ID,),
        )
    )
    assert killed == {Action.CREATED.value: partial}
    second = flow.audit_counts(RUN_ID)
    assert second["failed"] == 0
    retried = dict(
        flow.query(
            "SELECT action, count(*) FROM b1_audit.audit_record WHERE run_id = %s AND try_number = 2 "
            "AND source_entity = 'Invoices' GROUP BY action",
            (RUN_ID,),
        )
    )
    assert retried.get(Action.UNCHANGED.value, 0) >= partial
    assert retried.get(Action.CREATED.value, 0) + retried.get(Action.UNCHANGED.value, 0) == INVOICES
    # every row in the warehouse has an audit row from the try that wrote it
    unaudited = flow.query(
        "SELECT count(*) FROM sap_b1.fact_sales_invoice f WHERE NOT EXISTS (SELECT 1 FROM b1_audit.audit_record a "
        "WHERE a.run_id = %s AND a.source_entity = 'Invoices' AND a.source_key = f.doc_entry::text "
        "AND a.action IN ('created', 'updated'))",
        (RUN_ID,),
    )
    assert unaudited == [(0,)]
    # the cursor the task returned is the warehouse's own checkpoint: never ahead of it
    (checkpoint,) = flow.query(
        "SELECT cursor FROM sap_b1.sync_checkpoint WHERE flow = 'sap_b1_to_warehouse' AND stream = 'Invoices'"
    )
    assert json.loads(checkpoint[0]) == summary["entities"]["Invoices"]["cursor"]
    assert json.dumps(summary)  # the task's XCom: a small summary
