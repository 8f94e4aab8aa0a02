"""A first load split into key ranges (mapped tasks): the real DAG file with dag.test(), the HTTPS SAP
sandbox, a real PostgreSQL.

With ``partitions`` set, the first run plans four DocEntry ranges of Invoices, loads each as a
mapped task on its own SAP session, then the sales load reads what changed since the plan. The
warehouse must equal SAP with every invoice loaded once; running the ranges again changes nothing;
the next incremental run continues from the plan's cursor and finds an invoice changed after it.
A range killed mid-way (SIGKILL, as a dying worker) resumes on its next try after its last
committed page, alone, and the warehouse ends equal to SAP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json

from dag_helpers import INVOICES, kill_mid_load, task_states, xcoms

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor

DAG_ID = "sap_b1_to_warehouse"
PARTS = 4


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _dag(dag_of):
    """The DAG with only Invoices split: every other entity's first load runs as usual."""
    dag = dag_of(DAG_ID, retries=0)
    dag.get_task("plan_sales").entities = ["Invoices"]
    dag.get_task("plan_purchasing").partitions = "1"
    dag.get_task("plan_finance").partitions = "1"
    return dag


def _rerun(dag, dag_run, task_id: str, map_index: int = -1) -> str:
    """Clear one task instance of a finished run and run its next try in process (as "Clear" in the UI)."""
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session, map_index=map_index)
        ti.prepare_db_for_next_try(session)
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.merge(ti)
    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session, map_index=map_index)
        session.expunge(ti)
    _run_task(ti=ti, task=dag.task_dict[task_id])
    with create_session() as session:
        return str(dag_run.get_task_instance(task_id, session=session, map_index=map_index).state)


def _invoices_equal_sap(flow) -> None:
    """Warehouse invoices = SAP's: count, DocTotal sum, the very keys, each once, lines once."""
    assert flow.differences(["Invoices"]) == {}
    keys = [k for (k,) in flow.query("SELECT doc_entry FROM sap_b1.fact_sales_invoice ORDER BY doc_entry")]
    assert len(keys) == len(set(keys))
    digest = hashlib.sha256("\n".join(str(k) for k in keys).encode()).hexdigest()
    assert digest == flow.sap.truth("Invoices")["keys_sha256"]
    lines = flow.query(
        "SELECT count(*), count(DISTINCT (doc_entry, line_num)) FROM sap_b1.fact_sales_invoice_line"
    )[0]
    assert lines[0] == lines[1] > len(keys)


def test_a_first_load_split_into_ranges_equals_sap_reruns_change_nothing_and_the_cursor_follows(flow, dag_of):
    logins = flow.sap.stats()["logins"]
    dag = _dag(dag_of)
    first = dag.test(logical_date=_now() - dt.timedelta(minutes=5), run_conf={"partitions": PARTS})
    states = task_states(first)
    assert first.state == "success", states
    ranges = [f"load_sales_ranges[{i}]" for i in range(PARTS)]
    assert {k: v for k, v in states.items() if k.startswith("load_sales")} == {
        **dict.fromkeys(ranges, "success"),
        "load_sales": "success",
    }
    assert states["load_purchasing_ranges"] == states["load_finance_ranges"] == "skipped"
    assert states["reconcile"] == "success"

    # the warehouse equals SAP, every invoice loaded exactly once, by the ranges
    assert flow.differences() == {}
    _invoices_equal_sap(flow)
    created = flow.audit_rows("run_id = %s AND source_entity = 'Invoices'", (first.run_id,))
    assert len(created) == INVOICES
    assert {r["action"] for r in created} == {"created"}
    assert {r["task_id"] for r in created} == set(ranges)
    # each range read on a session of its own: four logins besides the unsplit tasks' one
    assert flow.sap.stats()["logins"] - logins == PARTS + 1

    # the plan: four ranges covering every key, the cursor observed when it was made
    values = xcoms(DAG_ID, first.run_id)["values"]
    plan = values["plan_sales:return_value"]
    assert [(r["entity"], r["index"], r["parts"], r["slot"]) for r in plan] == [
        ("Invoices", i, PARTS, i + 1) for i in range(PARTS)
    ]
    assert plan[0]["low"] is None
    assert plan[-1]["high"] is None
    assert all(a["high"] == b["low"] for a, b in itertools.pairwise(plan))
    planned = SapCursor.from_xcom(plan[0]["cursor"])
    # the sales load read only what changed since the plan (nothing) and hands on that cursor
    summary = values["load_sales:return_value"]["entities"]["Invoices"]
    assert (summary["mode"], summary["read"]) == ("incremental", 0)
    assert SapCursor.from_xcom(summary["cursor"]).compare(planned) == 0
    before = flow.digest()

    # the finished ranges and the sales load run again: every invoice read again, nothing changes
    for index in range(PARTS):
        assert _rerun(dag, first, "load_sales_ranges", index) == "success"
    assert _rerun(dag, first, "load_sales") == "success"
    assert flow.digest() == before
    again = flow.audit_rows("run_id = %s AND source_entity = 'Invoices' AND try_number = 2", (first.run_id,))
    assert len(again) == INVOICES
    assert {r["action"] for r in again} == {"unchanged"}

    # an invoice changed after the load: the next run splits nothing and finds it from the cursor
    SapB1Hook("sap_b1_default").update("Invoices", 7, {"Comments": "changed after the partitioned load"})
    nxt = _dag(dag_of).test(logical_date=_now(), run_conf={"partitions": PARTS})
    states = task_states(nxt)
    assert nxt.state == "success", states
    assert states["load_sales_ranges"] == "skipped"
    values = xcoms(DAG_ID, nxt.run_id)["values"]
    assert values["plan_sales:return_value"] == []
    summary = values["load_sales:return_value"]["entities"]["Invoices"]
    assert (summary["mode"], summary["updated"], summary["created"]) == ("incremental", 1, 0)
    assert SapCursor.from_xcom(summary["cursor"]).compare(planned) == 1
    assert flow.differences() == {}


RUN_ID = "manual__killed_range"

CHILD = """
import json, sys
from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1WarehouseRangeOperator


class TaskInstance:
    dag_id, task_id = "sap_b1_to_warehouse", "load_sales_ranges"

    def __init__(self, run_id, try_number, map_index):
        self.run_id, self.try_number, self.map_index = run_id, try_number, map_index

    def xcom_pull(self, **kwargs):
        return None


def run(run_id, try_number, key_range):
    operator = SapB1WarehouseRangeOperator(task_id="load_sales_ranges", key_range=key_range, page_size=100)
    ti = TaskInstance(run_id, try_number, key_range["index"])
    return operator.execute({"ti": ti, "params": {}, "dag_run": None})


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))))
"""


class _TaskInstance:
    """The context's ``ti`` for a task run in this process: the plan is the only earlier XCom."""

    dag_id, map_index = DAG_ID, -1

    def __init__(self, task_id: str, try_number: int = 1, plan=None) -> None:
        self.task_id, self.run_id, self.try_number, self.plan = task_id, RUN_ID, try_number, plan

    def xcom_pull(self, task_ids=None, **kwargs):
        return self.plan if task_ids == "plan_sales" else None


def _context(ti) -> dict:
    return {"ti": ti, "params": {}, "dag_run": None}


def test_a_range_killed_mid_way_resumes_alone_and_the_warehouse_ends_equal_to_sap(flow, tmp_path):
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import (
        SapB1ToWarehouseOperator,
        SapB1WarehousePlanOperator,
    )

    plan = SapB1WarehousePlanOperator(
        task_id="plan_sales", entities=["Invoices"], load_task_id="load_sales", partitions=2
    ).execute(_context(_TaskInstance("plan_sales")))
    assert [(r["index"], r["low"] is None, r["high"] is None) for r in plan] == [
        (0, True, False),
        (1, False, True),
    ]
    size = plan[0]["high"] - 1  # keys 1.. below the first cut

    def loaded() -> int:
        try:
            return flow.query("SELECT count(*) FROM sap_b1.fact_sales_invoice")[0][0]
        except Exception:  # the schema is not created yet
            return 0

    flow.sap.faults(slow_rate=1.0, slow_seconds=0.1)  # every reply late: a wide window to kill in
    script = tmp_path / "load_range.py"
    script.write_text(CHILD)
    kill_mid_load(script, RUN_ID, loaded, at_least=200, args=(json.dumps(plan[0]),))
    flow.sap.faults()
    partial = loaded()
    assert 200 <= partial < size

    # the killed range's next try resumes after its last committed page: no invoice read twice
    namespace: dict = {}
    exec(compile(CHILD, str(script), "exec"), namespace)
    summary = namespace["run"](RUN_ID, 2, plan[0])
    assert (summary["created"], summary["unchanged"], summary["failed"]) == (size - partial, 0, 0)
    assert loaded() == size
    # the other range was never touched by that; it runs now
    summary = namespace["run"](RUN_ID, 1, plan[1])
    assert (summary["created"], summary["failed"]) == (INVOICES - size, 0)

    # the sales load ends the load from the plan's cursor
    result = SapB1ToWarehouseOperator(
        task_id="load_sales", entities=["Invoices"], plan_task_id="plan_sales"
    ).execute(_context(_TaskInstance("load_sales", plan=plan)))
    invoices = result["entities"]["Invoices"]
    assert invoices["read"] == 0
    assert SapCursor.from_xcom(invoices["cursor"]).compare(SapCursor.from_xcom(plan[0]["cursor"])) == 0
    _invoices_equal_sap(flow)
    tries = dict(
        flow.query(
            "SELECT try_number, count(*) FROM b1_audit.audit_record WHERE run_id = %s "
            "AND task_id = 'load_sales_ranges[0]' AND action = 'created' GROUP BY try_number",
            (RUN_ID,),
        )
    )
    assert tries == {1: partial, 2: size - partial}
