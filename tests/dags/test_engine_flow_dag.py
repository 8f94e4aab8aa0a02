"""A flow declared only against the engine (tests/dags/flows/sap_invoices_to_sqlite.py, SAP
invoices into one SQLite table) gets everything the warehouse flow gets: windows, the cursor by
XCom, the audit trail with every page, replay of its failed records, summaries, progress lines,
and the same SIGKILL and re-run guarantees."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from dag_helpers import (
    INVOICES,
    backfill_test,
    forget_runs,
    kill_mid_load,
    task_states,
    xcoms,
)

FLOWS = Path(__file__).resolve().parent / "flows"
DAG_ID = "sap_invoices_to_sqlite"
RUN_ID = "manual__killed_engine_flow"


def load_flow_dag():
    spec = importlib.util.spec_from_file_location(f"{DAG_ID}_under_test", FLOWS / f"{DAG_ID}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def target(flow, tmp_path, monkeypatch):
    """The flow's SQLite file (target and audit trail in one) and its DAG folder as a bundle."""
    path = tmp_path / "invoices.db"
    monkeypatch.setenv("AIRFLOW_CONN_B1_INVOICES_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": "b1-test-flows",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(FLOWS), "refresh_interval": 0},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    forget_runs(DAG_ID)
    yield path
    forget_runs(DAG_ID)


def rows(path: Path, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute(sql, params).fetchall()


def equals_sap(flow, path: Path) -> bool:
    truth = flow.sap.truth("Invoices")
    count, total = rows(path, "SELECT count(*), sum(CAST(round(doc_total * 100) AS INTEGER)) FROM invoice")[0]
    return (count, f"{Decimal(total or 0) / 100:.2f}") == (truth["count"], truth["doc_total_sum"])


def test_a_declared_flow_gets_windows_cursors_audit_summaries_and_progress_lines(flow, target, caplog):
    caplog.set_level(logging.INFO, logger="airflow_provider_b1.sync.engine")
    module = load_flow_dag()
    day = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(days=1)
    first = module.sap_invoices_to_sqlite().test(logical_date=day)
    assert first.state == "success", task_states(first)
    assert equals_sap(flow, target)
    summary = xcoms(DAG_ID, first.run_id)["values"]["load:return_value"]
    invoices = summary["entities"]["Invoices"]
    assert (invoices["mode"], invoices["created"], invoices["failed"]) == ("incremental", INVOICES, 0)
    assert invoices["cursor"]["update_date"]  # a SAP stamp cursor, as primitives
    assert rows(target, "SELECT action, count(*) FROM audit_record GROUP BY action") == [
        ("created", INVOICES)
    ]
    assert rows(target, "SELECT stream, cursor FROM sync_checkpoint") == [
        ("Invoices", json.dumps(invoices["cursor"], sort_keys=True, separators=(",", ":")))
    ]
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_b1.sync.engine"]
    assert [line for line in lines if line.startswith("Invoices: page ")][-1].startswith(
        "Invoices: page 3, 1,500 read in"
    )  # a progress line per page here
    assert any(line.startswith("Invoices: done, 1,500 read in") for line in lines)

    # the next scheduled run continues from the cursor: nothing new
    second = module.sap_invoices_to_sqlite().test(logical_date=day + dt.timedelta(seconds=1))
    again = xcoms(DAG_ID, second.run_id)["values"]["load:return_value"]["entities"]["Invoices"]
    assert (again["read"], again["cursor"]) == (0, invoices["cursor"])

    # since/until reads exactly that window and leaves the cursor where it was
    window = module.sap_invoices_to_sqlite().test(
        logical_date=day + dt.timedelta(seconds=2),
        run_conf={"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"},
    )
    reread = xcoms(DAG_ID, window.run_id)["values"]["load:return_value"]["entities"]["Invoices"]
    assert (reread["mode"], reread["read"], reread["unchanged"], reread["cursor"]) == (
        "window",
        INVOICES,
        INVOICES,
        invoices["cursor"],
    )

    # a backfill run reads its data interval only
    backfill = backfill_test(
        module.sap_invoices_to_sqlite(), dt.datetime(2020, 1, 2, 3, tzinfo=dt.timezone.utc)
    )
    assert backfill.state == "success", task_states(backfill)
    filled = xcoms(DAG_ID, backfill.run_id)["values"]["load:return_value"]["entities"]["Invoices"]
    assert (filled["mode"], filled["read"], filled["since"]) == ("window", 0, "2020-01-01T03:00:00+00:00")
    assert equals_sap(flow, target)


def test_a_bad_invoice_fails_alone_and_replay_through_the_declared_flow_loads_it_once(flow, target, dag_of):
    assert flow.sap.control("POST", "corrupt", {"entity": "Invoices", "keys": [12], "kind": "null_amount"})[
        "keys"
    ]
    module = load_flow_dag()
    run = module.sap_invoices_to_sqlite().test()
    assert run.state == "success", task_states(run)
    failed = rows(target, "SELECT source_key, error FROM audit_record WHERE action = 'failed'")
    assert failed == [("12", "cannot be mapped: DocTotal None is not an amount")]
    assert rows(target, "SELECT count(*) FROM invoice") == [(INVOICES - 1,)]

    flow.sap.control("POST", "repair", {"entity": "Invoices"})
    replay = dag_of("b1_replay_failed").test(
        run_conf={"flow": DAG_ID, "dry_run": False, "audit_conn_id": "b1_invoices_db"}
    )
    assert replay.state == "success", task_states(replay)
    assert equals_sap(flow, target)
    history = rows(
        target, "SELECT dag_id, action, attempt FROM audit_record WHERE source_key = '12' ORDER BY id"
    )
    assert history == [(DAG_ID, "failed", 1), ("b1_replay_failed", "created", 2)]


CHILD = """
import json, sys
sys.path.insert(0, {flows!r})
from sap_invoices_to_sqlite import INVOICES_FLOW
from airflow_provider_b1.operators.sync import SyncOperator


class TaskInstance:
    dag_id, task_id, map_index = "sap_invoices_to_sqlite", "load", -1

    def __init__(self, run_id, try_number):
        self.run_id, self.try_number = run_id, try_number

    def xcom_pull(self, **kwargs):
        return None  # no earlier successful run


def run(run_id, try_number):
    operator = SyncOperator(task_id="load", flow=INVOICES_FLOW, audit_conn_id="b1_invoices_db")
    return operator.execute({{"ti": TaskInstance(run_id, try_number), "params": {{}}, "dag_run": None}})


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]))))
"""


def _loaded(path: Path) -> int:
    try:
        return rows(path, "SELECT count(*) FROM invoice")[0][0]
    except sqlite3.OperationalError:  # not created yet
        return 0


#: Twelve pages of 500: the kill comes after three, the second try reads the rest.
KILLED_INVOICES = 6_000


def test_killed_mid_load_then_run_again_equals_sap_and_every_row_has_the_trail_of_the_try_that_wrote_it(
    flow, target, tmp_path
):
    flow.sap.reset(invoices=KILLED_INVOICES)
    flow.sap.faults(slow_rate=1.0, slow_seconds=0.15)  # every reply late: a wide window to kill in
    script = tmp_path / "load.py"
    script.write_text(CHILD.format(flows=str(FLOWS)))
    kill_mid_load(script, RUN_ID, lambda: _loaded(target))
    flow.sap.faults()
    partial = rows(target, "SELECT count(*) FROM invoice")[0][0]
    assert 1500 <= partial < KILLED_INVOICES
    # what the killed try committed has its trail, from that try
    assert rows(target, "SELECT count(*) FROM audit_record WHERE try_number = 1 AND action = 'created'") == [
        (partial,)
    ]
    # SAP pages come in key order: the killed read left no checkpoint ahead of what it committed
    assert rows(target, "SELECT count(*) FROM sync_checkpoint") == [(0,)]

    namespace: dict = {}
    exec(compile(CHILD.format(flows=str(FLOWS)), str(script), "exec"), namespace)
    summary = namespace["run"](RUN_ID, 2)
    assert summary["entities"]["Invoices"]["failed"] == 0
    assert equals_sap(flow, target)
    assert rows(target, "SELECT count(*), count(DISTINCT doc_entry) FROM invoice") == [
        (KILLED_INVOICES, KILLED_INVOICES)
    ]
    # every row in the target has an audit row from the try that wrote it
    unaudited = rows(
        target,
        "SELECT count(*) FROM invoice i WHERE NOT EXISTS (SELECT 1 FROM audit_record a "
        "WHERE a.source_key = i.doc_entry AND a.action IN ('created', 'updated'))",
    )
    assert unaudited == [(0,)]
    retried = dict(
        rows(target, "SELECT action, count(*) FROM audit_record WHERE try_number = 2 GROUP BY action")
    )
    assert retried == {"created": KILLED_INVOICES - partial, "unchanged": partial}
    # the cursor the try returned is the target's own checkpoint: never ahead of it
    (checkpoint,) = rows(target, "SELECT cursor FROM sync_checkpoint")
    assert json.loads(checkpoint[0]) == summary["entities"]["Invoices"]["cursor"]
