"""Fixtures for the SAP hook's integration tests: one HTTPS sandbox, a fresh connection per test.

Each test gets the sandbox back in its seeded state with no faults, an isolated session cache
directory, and the ``sap_b1_default`` connection set through ``AIRFLOW_CONN_SAP_B1_DEFAULT``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

PASSWORD = "manager-secret-1"
COMPANY = "SBODEMOUS"
USER = "manager"

DEFAULT_CONFIG = {
    "session_timeout_minutes": 30,
    "login_delay": 0.0,
    "failed_login_delay": 0.0,
    "lock_after_failures": 5,
    "expired_session_code": 301,
    "next_link_style": "relative",
}
"""Sandbox settings every test starts from (the sandbox keeps settings across resets)."""


@dataclass
class Sandbox:
    """The running SAP sandbox and its control plane."""

    base_url: str
    ca_path: str
    cert_sha256: str

    def _control(self, method: str, path: str, body: dict | None = None) -> Any:
        response = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=30
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def stats(self) -> dict:
        return self._control("GET", "stats")

    def faults(self, **faults: Any) -> None:
        self._control("POST", "faults", faults)

    def reset(self, **options: Any) -> None:
        self._control("POST", "reset", options or None)

    def expire_sessions(self) -> None:
        self._control("POST", "expire-sessions")

    def config(self, **options: Any) -> None:
        self._control("POST", "config", options)

    def truth(self, entity: str) -> dict:
        return self._control("GET", f"truth/{entity}")


@pytest.fixture(scope="session")
def sap_sandbox() -> Iterator[Sandbox]:
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    config = SapSandboxConfig(
        invoices=2000, company_db=COMPANY, users={USER: PASSWORD}, timezone="America/Chicago"
    )
    served = serve_in_thread(create_app(config), tls=True)
    try:
        yield Sandbox(served.base_url, str(served.ca_path), served.cert_sha256)
    finally:
        # Hooks' keep-alive connections would hold up the server's graceful stop.
        gc.collect()
        served.stop()


@pytest.fixture
def sandbox(sap_sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, seeded afresh, no faults, counters at zero, default settings."""
    sap_sandbox.faults()
    sap_sandbox.config(**DEFAULT_CONFIG)
    sap_sandbox.reset(invoices=2000, session_timeout_seconds=None)
    yield sap_sandbox
    sap_sandbox.faults()


@pytest.fixture
def connect(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``connect(version="v2", **connection_overrides)`` sets the default connection; returns its JSON.

    Extras go in ``extra=...`` and replace the default (CA bundle, page size 500, Chicago).
    """
    cache_dir = tmp_path / "sessions"
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(cache_dir))

    def _connect(version: str = "v2", **overrides: Any) -> str:
        connection: dict[str, Any] = {
            "conn_type": "sap_b1",
            "host": f"{sandbox.base_url}/b1s/{version}/",
            "schema": COMPANY,
            "login": USER,
            "password": PASSWORD,
            "extra": {"ca_bundle": sandbox.ca_path, "page_size": 500, "timezone": "America/Chicago"},
        }
        connection.update(overrides)
        value = json.dumps(connection)
        monkeypatch.setenv("AIRFLOW_CONN_SAP_B1_DEFAULT", value)
        return value

    _connect.cache_dir = cache_dir  # type: ignore[attr-defined]
    return _connect
