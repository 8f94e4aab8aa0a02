"""b1_replay_failed end to end with dag.test(): a flow declared in the test, whose sink is a SQLite table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from airflow_provider_b1.sync import (
    Action,
    AuditRecord,
    AuditTrail,
    Flow,
    Page,
    Source,
    Stream,
    TableSink,
    unregister_flow,
)
from airflow_provider_b1.utils.sql import open_database, query

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "b1_replay_failed.py"
FLOW = "fake_flow"


def load_dag():
    spec = importlib.util.spec_from_file_location("b1_replay_failed_under_test", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.b1_replay_failed()


class Customers(Source):
    """The source system: customers by code."""

    system = "src"

    def read(self, stream, start, *, until):
        return iter(())

    def read_keys(self, stream, keys):
        yield Page([{"code": key, "name": f"Customer {key}"} for key in keys])


@pytest.fixture
def setup(airflow_db, tmp_path, monkeypatch):
    audit_path = tmp_path / "audit.db"
    target_path = tmp_path / "target.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_B1_AUDIT_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(audit_path)})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAKE_TARGET", json.dumps({"conn_type": "sqlite", "host": str(target_path)})
    )

    def open_sink(options):
        database = open_database(options["target_conn_id"])
        return TableSink(
            database.connect(),
            "customer",
            key="code",
            columns={"name": "text"},
            map=lambda record: record,
            system="target",
            database=database,
        )

    Flow(
        FLOW,
        "src",
        "target",
        (Stream("Customers", target="customer"),),
        open_source=lambda options: Customers(),
        open_sink=open_sink,
        options={"target_conn_id": "fake_target"},
    )
    audit = AuditTrail()
    audit.ensure_schema()
    with audit.session(FLOW, "fake_dag", "run-1", "load", 1) as session:
        for key in ("C1", "C2"):
            session.record(AuditRecord("src", "Customers", key, Action.FAILED, error="group 9 missing"))
        session.record(AuditRecord("src", "Customers", "C3", Action.CREATED))
    yield audit, target_path
    audit.close()
    unregister_flow(FLOW)


def customers(target_path):
    if not target_path.exists():
        return []
    database = open_database("fake_target")
    conn = database.connect()
    try:
        return [row[0] for row in query(conn, "SELECT code FROM customer ORDER BY code")]
    finally:
        conn.close()


def test_dry_run_replays_nothing(setup):
    audit, target_path = setup
    dr = load_dag().test(run_conf={"flow": FLOW, "dry_run": True})
    assert dr.state == "success"
    assert customers(target_path) == []
    assert len(audit.records_for_replay(FLOW)) == 2


def test_replay_writes_the_failed_records_once_and_records_attempt_two(setup):
    audit, target_path = setup
    dr = load_dag().test(run_conf={"flow": FLOW, "dry_run": False})
    assert dr.state == "success"
    assert customers(target_path) == ["C1", "C2"]
    assert audit.records_for_replay(FLOW) == []
    history = audit.history(FLOW, "Customers", "C1")
    assert [(h["action"], h["attempt"], h["dag_id"], h["task_id"]) for h in history] == [
        ("failed", 1, "fake_dag", "load"),
        ("created", 2, "b1_replay_failed", "replay"),
    ]
    assert audit.counts_for_run("b1_replay_failed", dr.run_id)["created"] == 2

    # nothing left to replay: a second run sends nothing and changes nothing
    dr = load_dag().test(run_conf={"flow": FLOW, "dry_run": False})
    assert dr.state == "success"
    assert customers(target_path) == ["C1", "C2"]
    assert len(audit.history(FLOW, "Customers", "C1")) == 2
