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
import shutil
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
    REPO,
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
            # Small pages, so that a task's log shows progress lines (one every 20 pages).
            "extra": {"ca_bundle": sap.ca_path, "timezone": "America/Chicago", "page_size": 10},
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


#: The live Airflow once started, so that it can be stopped when this folder's last test is done.
_STARTED: list[LiveAirflow] = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the live Airflow after this folder's last test instead of at the end of the session:
    its idle components would keep taking CPU from every test that runs after them."""
    here = Path(__file__).resolve().parent
    if nextitem is not None and here in Path(str(nextitem.path)).resolve().parents:
        return
    while _STARTED:
        _STARTED.pop().stop()


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
                # The Test button of the connection forms (the browser tests press it).
                config={"core__test_connection": "Enabled"},
            )
        except LiveAirflowError as exc:
            if ci_requires_it():
                pytest.fail(f"A live Airflow is required under CI=true and did not start:\n{exc}")
            pytest.skip(f"A live Airflow could not be started here, so these tests are skipped:\n{exc}")
        _STARTED.append(airflow)
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


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Debian's Chromium, quiet on a closed network (no update, sync or background lookups)."""
ARTIFACTS = REPO / "test-artifacts" / "browser"


@pytest.fixture(scope="module")
def browser(live_airflow: LiveAirflow, request) -> Iterator[Any]:
    """A page of the distribution's Chromium (``./run tests`` installs it), driven by Playwright and
    signed in to the live Airflow; ``page.shot(name)`` stores a screenshot in ``test-artifacts/browser/``.

    Closed with its module: an open Airflow page keeps Chromium and the api-server busy (about a
    third of a core), which the rest of the suite would pay for.

    Without Chromium or Playwright the browser tests are skipped, or fail under ``CI=true``.
    """
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the Python package playwright is not installed (uv sync installs the dev group)"
    if not os.access(CHROMIUM, os.X_OK):
        missing = f"{CHROMIUM} is missing: ./run tests installs Debian's chromium as root, or apt-get install chromium"
    if missing:
        if ci_requires_it():
            pytest.fail(f"The browser tests need Chromium under CI=true: {missing}")
        pytest.skip(f"Browser tests skipped: {missing}")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = chromium.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        context.set_default_timeout(30_000)
        context.add_cookies([{"name": "_token", "value": live_airflow.token(), "url": live_airflow.base_url}])
        page = context.new_page()
        shots = iter(range(1, 1000))

        def shot(name: str) -> Path:
            path = ARTIFACTS / f"{next(shots):02d}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            return path

        page.shot = shot
        try:
            yield page
        finally:
            with contextlib.suppress(Exception):
                shot("last")
            context.close()
            chromium.close()
            if reporter is not None:
                reporter.write_line(f"Browser screenshots: {ARTIFACTS}")
