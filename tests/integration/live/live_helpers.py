"""Names and helpers shared by the live-Airflow tests and their fixtures (a module name no other
test folder uses, so that both can import it)."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from live_airflow import LiveAirflow

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags"
SERVICETITAN_DAG = "servicetitan_to_sap_b1"
WAREHOUSE_DAG = "sap_b1_to_warehouse"
DAG_FILES = [
    DAGS / "servicetitan_to_sap_b1.py",
    DAGS / "servicetitan_mappings.yaml",
    DAGS / "sap_b1_to_warehouse.py",
]

SERVICETITAN_KEY = "st-live-" + "k" * 24 + "-0123456789"  # 42 characters
SAP_SECRET = "sap-live-webhook-secret-0123456789"
SAP_COMPANY, SAP_USER, SAP_PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"
PG_HOST = os.environ.get("B1_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("B1_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("B1_TEST_PG_USER", "postgres")


@contextlib.contextmanager
def unpaused(airflow: LiveAirflow, dag_id: str) -> Iterator[None]:
    """``dag_id`` unpaused, alone, with no active run; paused again, its runs ended, afterwards.

    Unpausing a DAG with a time schedule and ``catchup=False`` creates a scheduled run for its
    latest interval at once; that run is ended here (its tasks are not waited for), so that a
    DAG with ``max_active_runs=1`` may start asset-triggered runs.
    """
    assert airflow.unpaused_dags() == [], "another DAG was left unpaused"
    due = airflow.dag(dag_id)["next_dagrun_run_after"]
    scheduled = len(airflow.dag_runs(dag_id, run_type="scheduled"))
    airflow.unpause(dag_id)
    try:
        assert airflow.unpaused_dags() == [dag_id]
        if due and dt.datetime.fromisoformat(due.replace("Z", "+00:00")) <= dt.datetime.now(dt.timezone.utc):
            # The scheduler creates the run that is due within a loop or two of the unpause.
            airflow.wait_for_runs(dag_id, scheduled + 1, run_type="scheduled", timeout=30)
        airflow.close_active_runs(dag_id)
        yield
    finally:
        airflow.close_active_runs(dag_id)
        airflow.pause(dag_id)
        airflow.close_active_runs(dag_id)  # one started meanwhile


@dataclass
class Receiver:
    """The ``b1-webhooks`` process: its HTTPS URL, the CA to trust and its log."""

    url: str
    ca_path: str
    log: Path
    process: subprocess.Popen

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        return requests.post(
            f"{self.url}{path}",
            data=body,
            headers={"Content-Type": "application/json", **headers},
            verify=self.ca_path,
            timeout=30,
        )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")
