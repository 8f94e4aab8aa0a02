"""A load task killed with SIGKILL in the middle of a load, then run again, leaves the warehouse equal to SAP.

The sales group's task (``load_sales`` of sap_b1_to_warehouse: Invoices, then IncomingPayments)
runs in a child process, as a worker would run it, against 20,000 invoices served slowly, so
that the kill lands while pages are being committed. Its next try then runs in this process
with the same operator; Airflow would start it the same way after the worker died (a killed try
returned no cursor, so the next one reads from the same place).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from airflow_provider_b1.sync import Action

INVOICES = 20_000
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
    child = subprocess.Popen([sys.executable, str(script), RUN_ID, "1"], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        loaded = 0
        while loaded < 1500:  # at least three pages committed
            assert child.poll() is None, f"the load ended before it could be killed ({child.returncode})"
            assert time.monotonic() < deadline, "the child never committed a page"
            time.sleep(0.1)
            loaded = _invoices_loaded(flow)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
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
    # what the killed try committed, the next try found unchanged; nothing failed. (The killed
    # try itself left no audit rows: they are written in bulk, and it died before its first flush.)
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
    assert json.dumps(summary)  # the task's XCom: a small summary
