"""Fixtures of the webhook receiver's tests: the fake Airflow, receivers over HTTPS, a Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from webhook_fakes import (
    AUTH_SPEC,
    CORE_SPEC,
    FakeAirflow,
    Receiver,
    fake_airflow_app,
    free_port,
    load_spec,
    sap_source,
    servicetitan_source,
)

from airflow_provider_b1.sandbox.server import Served, serve_in_thread
from airflow_provider_b1.webhooks import WebhookSettings, create_app


@pytest.fixture(scope="session")
def airflow_specs() -> dict[str, dict[str, Any]]:
    """The installed Airflow's OpenAPI documents: ``{"core": ..., "auth": ...}``."""
    return {"core": load_spec(CORE_SPEC), "auth": load_spec(AUTH_SPEC)}


@pytest.fixture(scope="session")
def _fake_airflow_server(airflow_specs) -> Iterator[FakeAirflow]:
    fake = FakeAirflow(specs=airflow_specs)
    fake.served = serve_in_thread(fake_airflow_app(fake), tls=False)
    yield fake
    fake.served.stop()


@pytest.fixture
def fake_airflow(_fake_airflow_server: FakeAirflow) -> Iterator[FakeAirflow]:
    """The fake api-server, emptied for each test; fails the test if it saw a malformed request."""
    _fake_airflow_server.reset()
    yield _fake_airflow_server
    assert _fake_airflow_server.problems == []


@pytest.fixture
def start_receiver(fake_airflow: FakeAirflow) -> Iterator:
    """``start_receiver(**settings)`` serves a receiver over HTTPS on loopback, talking to the fake."""
    started: list[Served] = []

    def _start(**overrides: Any) -> Receiver:
        options: dict[str, Any] = {
            "airflow_url": fake_airflow.url,
            "airflow_username": fake_airflow.username,
            "airflow_password": fake_airflow.password,
            "airflow_attempts": 3,
            "airflow_max_elapsed": 5.0,
            "servicetitan": servicetitan_source(),
            "sap": sap_source(),
        }
        options.update(overrides)
        settings = WebhookSettings(**options)
        served = serve_in_thread(create_app(settings), tls=True)
        started.append(served)
        return Receiver(served, settings)

    yield _start
    for served in started:
        served.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A throwaway redis-server on loopback (skipped when the binary is missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    directory = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.skip("redis-server did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)
