"""Fixtures of the tests against a real Airflow: the live Airflow, the sandboxes its DAGs use, and
the ``b1-webhooks`` receiver as its own process.

One Airflow per test session (``live_airflow``), started by :func:`live_airflow.start_airflow`
with the project's ``servicetitan_to_sap_b1`` and ``sap_b1_to_warehouse`` DAGs and connections
to sandboxes of its own (so that no other test's sandbox gets writes from its tasks). Its DAGs
are created paused; a test unpauses the one it needs (:func:`live_helpers.unpaused`) and pauses it again.
Under ``CI=true`` an Airflow that cannot start fails the tests; elsewhere they are skipped.
"""

from __future__ import annotations

import contextlib
import gc
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from live_airflow import (
    LiveAirflow,
    LiveAirflowError,
    ci_requires_it,
    free_port,
    postgres_database,
    start_airflow,
)
from live_helpers import (
    DAG_FILES,
    PG_HOST,
    PG_PORT,
    PG_USER,
    SAP_COMPANY,
    SAP_PASSWORD,
    SAP_SECRET,
    SAP_USER,
    SERVICETITAN_DAG,
    SERVICETITAN_KEY,
    WAREHOUSE_DAG,
    Receiver,
)


@dataclass
class LiveSandbox:
    """A sandbox served from a thread of this process; ``app.state.sandbox`` is its live state."""

    base_url: str
    ca_path: str
    app: Any
    config: Any

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        reply = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=60
        )
        assert reply.status_code == 200, f"{method} /_sandbox/{path}: {reply.status_code} {reply.text}"
        return reply.json() if reply.content else None


@pytest.fixture(scope="session")
def live_servicetitan() -> Iterator[LiveSandbox]:
    """A small ServiceTitan sandbox over HTTPS (20 customers, 40 invoices) for the live Airflow."""
    from airflow_provider_b1.sandbox.server import serve_in_thread
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig, create_app

    config = ServiceTitanSandboxConfig(seed=5, customers=20, invoices=40)
    app = create_app(config)
    served = serve_in_thread(app, tls=True)
    try:
        yield LiveSandbox(served.base_url, str(served.ca_path), app, config)
    finally:
        app.state.sandbox.webhooks.stop()
        gc.collect()
        served.stop()


@pytest.fixture(scope="session")
def live_sap() -> Iterator[LiveSandbox]:
    """A small SAP Service Layer sandbox over HTTPS (100 invoices) for the live Airflow."""
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    config = SapSandboxConfig(
        invoices=100, company_db=SAP_COMPANY, users={SAP_USER: SAP_PASSWORD}, timezone="America/Chicago"
    )
    app = create_app(config)
    served = serve_in_thread(app, tls=True)
    try:
        yield LiveSandbox(served.base_url, str(served.ca_path), app, config)
    finally:
        gc.collect()
        served.stop()


@pytest.fixture(scope="session")
def live_connections(live_servicetitan, live_sap, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """The provider's connections for the live Airflow: to its sandboxes, and to SQLite files
    for the audit trail and the warehouse."""
    servicetitan, sap = live_servicetitan, live_sap
    data = tmp_path_factory.mktemp("live-airflow-data")
    st = servicetitan.config
    return {
        "servicetitan_default": {
            "conn_type": "servicetitan",
            "login": st.client_id,
            "password": st.client_secret,
            "extra": {
                "environment": "integration",
                "tenant_id": st.tenant_id,
                "app_key": st.app_key,
                "api_url": servicetitan.base_url,
                "auth_url": servicetitan.base_url,
                "ca_bundle": servicetitan.ca_path,
            },
        },
        "sap_b1_default": {
            "conn_type": "sap_b1",
            "host": f"{sap.base_url}/b1s/v2/",
            "schema": SAP_COMPANY,
            "login": SAP_USER,
            "password": SAP_PASSWORD,
            "extra": {"ca_bundle": sap.ca_path, "timezone": "America/Chicago"},
        },
        "b1_audit_default": {"conn_type": "sqlite", "host": str(data / "audit.db")},
        "b1_warehouse_default": {"conn_type": "sqlite", "host": str(data / "warehouse.db")},
    }


def _metadata_database(stack: contextlib.ExitStack) -> str | None:
    """A throwaway PostgreSQL database when PostgreSQL answers (CI starts it), else SQLite (``None``).

    SQLite does run the scheduler with LocalExecutor, but with one writer at a time the
    api-server now and then fails a request with "Database error" while the scheduler, the
    dag-processor and the task processes write too.
    """
    try:
        return stack.enter_context(postgres_database(PG_HOST, PG_PORT, PG_USER))
    except LiveAirflowError:
        if ci_requires_it():
            raise
        return None


@pytest.fixture(scope="session")
def live_airflow(live_connections, tmp_path_factory) -> Iterator[LiveAirflow]:
    """A real Airflow (api-server, scheduler, dag-processor) running the project's DAGs, all paused."""
    data = tmp_path_factory.mktemp("live-airflow-caches")
    with contextlib.ExitStack() as stack:
        try:
            database_url = _metadata_database(stack)
            airflow = start_airflow(
                DAG_FILES,
                connections=live_connections,
                env={
                    "B1_SESSION_CACHE_DIR": str(data / "sap-sessions"),
                    "B1_SERVICETITAN_CACHE_DIR": str(data / "st-tokens"),
                },
                dag_ids=[SERVICETITAN_DAG, WAREHOUSE_DAG],
                database_url=database_url,
            )
        except LiveAirflowError as exc:
            if ci_requires_it():
                pytest.fail(f"A live Airflow is required under CI=true and did not start:\n{exc}")
            pytest.skip(f"A live Airflow could not be started here, so these tests are skipped:\n{exc}")
        yield airflow
        airflow.stop()
        assert airflow.running_processes() == [], "processes of the live Airflow outlived stop()"


@pytest.fixture(scope="session")
def webhook_receiver(live_airflow: LiveAirflow, tmp_path_factory) -> Iterator[Receiver]:
    """``b1-webhooks`` started as a user would, over HTTPS, recording into the live Airflow."""
    from airflow_provider_b1.sandbox.server import generate_certificate

    folder = tmp_path_factory.mktemp("b1-webhooks")
    cert, key, _ = generate_certificate(folder)
    port = free_port()
    command = Path(sys.executable).with_name("b1-webhooks")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("B1_WEBHOOKS_", "AIRFLOW"))},
        "B1_WEBHOOKS_AIRFLOW_URL": live_airflow.base_url,
        "B1_WEBHOOKS_AIRFLOW_USERNAME": live_airflow.username or "",
        "B1_WEBHOOKS_AIRFLOW_PASSWORD": live_airflow.password or "",
        "B1_WEBHOOKS_SERVICETITAN_KEY": SERVICETITAN_KEY,
        "B1_WEBHOOKS_SAP_SECRET": SAP_SECRET,
    }
    log = folder / "b1-webhooks.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(command),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--ssl-certfile",
                cert,
                "--ssl-keyfile",
                key,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    receiver = Receiver(f"https://127.0.0.1:{port}", cert, log, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"b1-webhooks exited:\n{receiver.output()}"
            try:
                health = requests.get(f"{receiver.url}/healthz", verify=cert, timeout=2)
                if health.status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"b1-webhooks did not answer:\n{receiver.output()}"
            time.sleep(0.1)
        assert health.json() == {"status": "ok", "servicetitan": True, "sap_b1": True}
        yield receiver
    finally:
        # uvicorn waits for open connections to close on the first signal, and quits on the second.
        for stop, wait in ((process.terminate, 1), (process.terminate, 3), (process.kill, 5)):
            stop()
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
