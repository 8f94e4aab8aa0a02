"""The cursor really travels by XCom in Airflow 3: from the last successful run, skipping failed ones."""

from __future__ import annotations

import datetime as dt
import json

from dag_helpers import use_dag_folder

DAG_SOURCE = """
from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import dag, get_current_context, task

from airflow_provider_b1.sync import SyncSummary, resolve_window, sync_params


@dag(
    dag_id="b1_test_cursor",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    params={**sync_params(), "fail": False},
)
def b1_test_cursor():
    @task
    def load() -> dict:
        context = get_current_context()
        window = resolve_window(context)
        with open(os.environ["B1_TEST_WINDOW_LOG"], "a") as log:
            log.write(json.dumps({"mode": window.mode, "cursor": window.cursor, "previous": window.previous_cursor}) + "\\n")
        if context["params"]["fail"]:
            raise RuntimeError("the target is down")
        n = (window.cursor or {}).get("n", 0) + 1
        return SyncSummary("test", "Things", window.cursor_to_store({"n": n}), mode=window.mode).to_xcom()

    load()


b1_test_cursor()
"""


def build_dag(log_path, monkeypatch):
    """dag().test() runs DAGs from the DAG folder, so the test DAG gets a folder of its own."""
    folder = log_path.parent / "dags"
    folder.mkdir(exist_ok=True)
    (folder / "b1_test_cursor.py").write_text(DAG_SOURCE)
    use_dag_folder(monkeypatch, folder, "b1-test-cursor")
    monkeypatch.setenv("B1_TEST_WINDOW_LOG", str(log_path))

    def fresh():
        # A new DAG object per run: dag().test() leaves one run's conf in the object's params.
        namespace: dict = {}
        exec(compile(DAG_SOURCE, str(folder / "b1_test_cursor.py"), "exec"), namespace)
        return namespace["b1_test_cursor"]()

    return fresh


def test_next_run_continues_from_the_last_successful_runs_cursor(airflow_db, tmp_path, monkeypatch):
    log_path = tmp_path / "windows.jsonl"
    dag = build_dag(log_path, monkeypatch)
    day = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    assert dag().test(logical_date=day).state == "success"
    assert dag().test(logical_date=day + dt.timedelta(days=1), run_conf={"fail": True}).state == "failed"
    assert dag().test(logical_date=day + dt.timedelta(days=2)).state == "success"
    seen = [json.loads(line) for line in log_path.read_text().splitlines()]
    seen = [{"mode": s["mode"], "cursor": s["cursor"]} for s in seen]
    assert seen == [
        {"mode": "incremental", "cursor": None},
        {"mode": "incremental", "cursor": {"n": 1}},
        {"mode": "incremental", "cursor": {"n": 1}},  # the failed run left no cursor behind
    ]
