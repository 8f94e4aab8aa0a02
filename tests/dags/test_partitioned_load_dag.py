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

import collections
import datetime as dt
import hashlib
import itertools
import json

from dag_helpers import INVOICES, backfill_test, kill_mid_load, load_dag, task_states, xcoms

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor

DAG_ID = "sap_b1_to_warehouse"
PARTS = 4


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _dag(dag_of):
    """The DAG with only Invoices split: every other entity's first load runs as usual."""
    dag = dag_of(DAG_ID, retries=0)
    dag.get_task("plan_sales").entities = ["Invoices"]
    dag.get_task("plan_master").partitions = "1"
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
    # the ranges' checkpoints were deleted with the moving of the entity's own
    assert _range_checkpoints(flow) == []
    before = flow.digest()

    # the finished ranges and the sales load run again: every invoice read again, nothing changes
    for index in range(PARTS):
        assert _rerun(dag, first, "load_sales_ranges", index) == "success"
    assert len(_range_checkpoints(flow)) == PARTS
    assert _rerun(dag, first, "load_sales") == "success"
    assert flow.digest() == before
    assert _range_checkpoints(flow) == []
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


def run(run_id, try_number, key_range, page_size=100):
    operator = SapB1WarehouseRangeOperator(task_id="load_sales_ranges", key_range=key_range, page_size=page_size)
    ti = TaskInstance(run_id, try_number, key_range["index"])
    return operator.execute({"ti": ti, "params": {}, "dag_run": None})


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), *map(int, sys.argv[4:]))))
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


# --- partners and items split by update day; window runs split too --------------------------------


def _range_checkpoints(flow) -> list[str]:
    return [s for (s,) in flow.query("SELECT stream FROM sap_b1.sync_checkpoint WHERE stream LIKE '%@%'")]


def _only(dag, *groups: str):
    """The DAG with only these groups' plans splitting (the others never split)."""
    for task in dag.tasks:
        if task.task_id.startswith("plan_") and task.task_id.removeprefix("plan_") not in groups:
            task.partitions = "1"
    return dag


def test_partners_and_items_split_by_update_day_equal_sap_and_the_cursor_finds_a_later_change(flow, dag_of):
    # a threshold under the small company's 81 partners and 60 items: each splits into one range per session
    first = _only(dag_of(DAG_ID, retries=0), "master").test(
        logical_date=_now() - dt.timedelta(minutes=5), run_conf={"partition_threshold": 50}
    )
    states = task_states(first)
    assert first.state == "success", states
    values = xcoms(DAG_ID, first.run_id)["values"]
    plan = values["plan_master:return_value"]
    assert {r["entity"] for r in plan} == {"BusinessPartners", "Items"}
    for entity in ("BusinessPartners", "Items"):
        ranges = [r for r in plan if r["entity"] == entity]
        assert len(ranges) == 4
        assert {r["by"] for r in ranges} == {"stamp"}
        assert [r["slot"] for r in ranges] == [1, 2, 3, 4]
        assert ranges[0]["low"] is None
        assert ranges[-1]["high"] is None
        assert all(a["high"] == b["low"] for a, b in itertools.pairwise(ranges))
        assert all(len(r["high"]) == 10 for r in ranges[:-1])  # days, YYYY-MM-DD
    assert [k for k, v in states.items() if k.startswith("load_master_ranges")] == [
        f"load_master_ranges[{i}]" for i in range(len(plan))
    ]
    assert {v for k, v in states.items() if k.startswith("load_master")} == {"success"}
    assert states["reconcile"] == "success"

    # every partner and item loaded once, by the ranges, and the warehouse equals SAP
    assert flow.differences() == {}
    for entity in ("BusinessPartners", "Items"):
        rows = flow.audit_rows("run_id = %s AND source_entity = %s", (first.run_id, entity))
        assert len(rows) == len({r["key"] for r in rows}) == flow.sap.truth(entity)["count"]
        assert {r["action"] for r in rows} == {"created"}
        assert {r["task_id"] for r in rows} <= {f"load_master_ranges[{i}]" for i in range(len(plan))}
    # the ranges' checkpoints went with the moving of the entities' own
    assert _range_checkpoints(flow) == []
    kept = {s for (s,) in flow.query("SELECT stream FROM sap_b1.sync_checkpoint")}
    assert {"BusinessPartners", "Items"} <= kept
    planned = SapCursor.from_xcom(next(r for r in plan if r["entity"] == "Items")["cursor"])
    summary = values["load_master:return_value"]["entities"]["Items"]
    assert summary["mode"] == "incremental"
    assert SapCursor.from_xcom(summary["cursor"]).compare(planned) == 0

    # a partner changed after the load: the next run splits nothing and finds it from the cursor
    code = flow.query("SELECT card_code FROM sap_b1.dim_business_partner ORDER BY card_code LIMIT 1")[0][0]
    SapB1Hook("sap_b1_default").update("BusinessPartners", code, {"CardName": "Changed after the split load"})
    nxt = _only(dag_of(DAG_ID, retries=0), "master").test(
        logical_date=_now(), run_conf={"partition_threshold": 50}
    )
    states = task_states(nxt)
    assert nxt.state == "success", states
    assert states["load_master_ranges"] == "skipped"
    summary = xcoms(DAG_ID, nxt.run_id)["values"]["load_master:return_value"]["entities"]["BusinessPartners"]
    assert (summary["updated"], summary["created"]) == (1, 0)
    assert flow.differences() == {}


def test_a_window_run_splits_its_window_reads_exactly_it_and_moves_no_cursor(flow, dag_of):
    # a window holding about a third of the invoices (dates from SAP itself)
    days = sorted(
        r["UpdateDate"][:10]
        for page in SapB1Hook("sap_b1_default").iter_pages("Invoices", select=["DocEntry", "UpdateDate"])
        for r in page
    )
    since, until = days[len(days) // 3], days[2 * len(days) // 3]
    run = _only(dag_of(DAG_ID, retries=0), "master", "sales").test(
        logical_date=_now() - dt.timedelta(minutes=5),
        run_conf={"since": since, "until": until, "partition_threshold": 20},
    )
    states = task_states(run)
    assert run.state == "success", states
    values = xcoms(DAG_ID, run.run_id)["values"]
    invoices = [r for r in values["plan_sales:return_value"] if r["entity"] == "Invoices"]
    assert len(invoices) == 4
    assert {(r["by"], r["since"][:10], r["until"][:10]) for r in invoices} == {("key", since, until)}
    assert all(r["planned"] < INVOICES // 2 for r in invoices)  # the window's records, not the entity's
    assert {v for k, v in states.items() if "_ranges[" in k} == {"success"}

    # reconcile compares the window: SAP and the warehouse hold the same records in it
    results = {r["entity"]: r for r in values["reconcile:return_value"]}
    assert all(r["ok"] for r in results.values()), results
    window_count = results["Invoices"]["sap_count"]
    assert 0 < window_count == results["Invoices"]["warehouse_count"] < INVOICES
    rows = flow.audit_rows("run_id = %s AND source_entity = 'Invoices'", (run.run_id,))
    assert len(rows) == len({r["key"] for r in rows}) == flow.figures("Invoices")[0]
    assert {r["task_id"] for r in rows} <= {f"load_sales_ranges[{i}]" for i in range(8)}

    # the load after the ranges read nothing again and moved no cursor; no checkpoint is left behind
    summary = values["load_sales:return_value"]["entities"]["Invoices"]
    assert (summary["mode"], summary["read"], summary["cursor"]) == ("window", 0, None)
    assert _range_checkpoints(flow) == []
    assert flow.query("SELECT stream FROM sap_b1.sync_checkpoint WHERE stream = 'Invoices'") == []


def test_a_backfill_run_splits_its_data_interval(flow, dag_of):
    # the day most invoices were last updated on (the server's day, Chicago): the run of the next day
    # at 02:00 UTC reads [that day 02:00 UTC, the next 02:00 UTC), its working hours in Chicago
    days = collections.Counter(
        r["UpdateDate"][:10]
        for page in SapB1Hook("sap_b1_default").iter_pages("Invoices", select=["DocEntry", "UpdateDate"])
        for r in page
    )
    start = dt.datetime.combine(
        dt.date.fromisoformat(days.most_common(1)[0][0]), dt.time(2), tzinfo=dt.timezone.utc
    )
    end = start + dt.timedelta(days=1)
    dag = _only(dag_of(DAG_ID, retries=0), "sales")
    dag.get_task("plan_sales").threshold = "5"
    run = backfill_test(dag, end)
    states = task_states(run)
    assert run.state == "success", states
    values = xcoms(DAG_ID, run.run_id)["values"]
    invoices = [r for r in values["plan_sales:return_value"] if r["entity"] == "Invoices"]
    assert len(invoices) > 1
    assert {(r["since"], r["until"]) for r in invoices} == {(start.isoformat(), end.isoformat())}
    assert {v for k, v in states.items() if k.startswith("load_sales_ranges")} == {"success"}
    results = {r["entity"]: r for r in values["reconcile:return_value"]}
    assert results["Invoices"]["ok"], results["Invoices"]
    assert 5 <= results["Invoices"]["sap_count"] == flow.figures("Invoices")[0]
    summary = values["load_sales:return_value"]["entities"]["Invoices"]
    assert (summary["mode"], summary["read"], summary["cursor"]) == ("window", 0, None)


def test_a_range_of_update_days_killed_mid_way_resumes_after_its_last_page(flow, tmp_path):
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1WarehousePlanOperator

    plan = SapB1WarehousePlanOperator(
        task_id="plan_master", entities=["BusinessPartners"], load_task_id="load_master", partitions=2
    ).execute(_context(_TaskInstance("plan_master")))
    assert [(r["by"], r["low"] is None, r["high"] is None) for r in plan] == [
        ("stamp", True, False),
        ("stamp", False, True),
    ]
    hook = SapB1Hook("sap_b1_default")
    size = hook.count("BusinessPartners", f"UpdateDate lt '{plan[0]['high']}' or UpdateDate eq null")

    def loaded() -> int:
        try:
            return flow.query("SELECT count(*) FROM sap_b1.dim_business_partner")[0][0]
        except Exception:  # the schema is not created yet
            return 0

    flow.sap.faults(slow_rate=1.0, slow_seconds=0.5)  # every reply late: a wide window to kill in
    script = tmp_path / "load_range.py"
    script.write_text(CHILD)
    kill_mid_load(script, RUN_ID, loaded, at_least=5, args=(json.dumps(plan[0]), "5"))
    flow.sap.faults()
    partial = loaded()
    assert 5 <= partial < size

    namespace: dict = {}
    exec(compile(CHILD, str(script), "exec"), namespace)
    summary = namespace["run"](RUN_ID, 2, plan[0], 5)
    assert (summary["created"], summary["unchanged"], summary["failed"]) == (size - partial, 0, 0)
    summary = namespace["run"](RUN_ID, 1, plan[1], 5)
    assert (summary["created"], summary["failed"]) == (flow.sap.truth("BusinessPartners")["count"] - size, 0)
    assert flow.differences(["BusinessPartners"]) == {}


def test_the_range_tasks_concurrency_pool_and_threshold_are_deployment_settings(monkeypatch):
    monkeypatch.setenv("B1_WAREHOUSE_RANGE_TASKS", "2")
    monkeypatch.setenv("B1_SAP_POOL", "sap_licences")
    monkeypatch.setenv("B1_PARTITION_THRESHOLD", "1000")
    dag = load_dag(DAG_ID)
    for group in ("master", "sales", "purchasing", "finance"):
        ranges = dag.get_task(f"load_{group}_ranges")
        assert (ranges.max_active_tis_per_dagrun, ranges.pool) == (2, "sap_licences")
        assert dag.get_task(f"plan_{group}").threshold == "{{ params.partition_threshold }}"
    assert dag.params["partition_threshold"] == 1000
    for name in ("B1_WAREHOUSE_RANGE_TASKS", "B1_SAP_POOL", "B1_PARTITION_THRESHOLD"):
        monkeypatch.delenv(name)
    dag = load_dag(DAG_ID)
    assert dag.get_task("load_sales_ranges").max_active_tis_per_dagrun == 4
    assert dag.get_task("load_sales_ranges").pool == "default_pool"
    assert dag.params["partition_threshold"] == 50_000
