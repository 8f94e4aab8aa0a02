"""Fixtures for the ServiceTitan hook's integration tests: the sandbox over HTTPS, a fresh connection per test.

One sandbox per test module's session, served from a thread of this process over HTTPS
(self-signed; the connection trusts its CA bundle). Each test gets it with counters at zero, no
faults and default settings, its own token cache and rate-limit directories (so no two tests
share a token or a count), and ``servicetitan_default`` pointing at it.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from st_sandbox_helpers import APP_KEY, CLIENT_ID, CLIENT_SECRET, TENANT

DEFAULTS = {
    "token_lifetime_seconds": 900,
    "token_requests_per_minute": 30,
    "rate_limit_per_second": 60,
    "rate_limit_window": "sliding",
    "export_page_size": 200,
    "export_lag_seconds": 900,
}
"""Sandbox settings every test starts from (settings outlive a counter reset)."""


@dataclass
class StSandbox:
    """The running ServiceTitan sandbox and its control plane (``/_sandbox/...``)."""

    base_url: str
    ca_path: str
    app: Any

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        reply = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=60
        )
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def faults(self, **faults: Any) -> None:
        self.control("POST", "faults", faults)

    def config(self, **settings: Any) -> None:
        self.control("POST", "config", settings)

    def truth(self) -> dict:
        return self.control("GET", "truth")

    def mutate(self, **changes: Any) -> dict:
        return self.control("POST", "mutate", changes)

    def expire_tokens(self) -> None:
        self.control("POST", "expire-tokens")

    def issued_tokens(self) -> list[str]:
        """Every token the sandbox has handed out (to check that none reached a log)."""
        return list(self.app.state.sandbox.tokens)

    def restore(self) -> None:
        self.faults()
        self.config(**DEFAULTS)
        self.control("POST", "stats/reset")

    def reseed(self) -> None:
        """Back to the seeded records (after a test changed some), counters at zero."""
        self.control("POST", "reset")

    def connection(self, **extra: Any) -> dict[str, Any]:
        """An Airflow connection (dict for ``AIRFLOW_CONN_*``) to this sandbox, trusting its CA."""
        login = extra.pop("login", CLIENT_ID)
        password = extra.pop("password", CLIENT_SECRET)
        base = {
            "environment": "integration",
            "tenant_id": TENANT,
            "app_key": APP_KEY,
            "api_url": self.base_url,
            "auth_url": self.base_url,
            "ca_bundle": self.ca_path,
        }
        base.update(extra)
        return {
            "conn_type": "servicetitan",
            "login": login,
            "password": password,
            "extra": {k: v for k, v in base.items() if v is not None},
        }


@pytest.fixture(scope="session")
def st_sandbox_served() -> Iterator[StSandbox]:
    from airflow_provider_b1.sandbox.server import serve_in_thread
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig, create_app

    app = create_app(ServiceTitanSandboxConfig(customers=300, invoices=1200, export_page_size=200))
    served = serve_in_thread(app, tls=True)
    try:
        yield StSandbox(served.base_url, str(served.ca_path), app)
    finally:
        gc.collect()  # hooks' keep-alive connections would hold up the server's graceful stop
        served.stop()


@pytest.fixture
def sandbox(st_sandbox_served: StSandbox) -> Iterator[StSandbox]:
    """The sandbox with counters at zero, no faults, default settings."""
    st_sandbox_served.restore()
    yield st_sandbox_served
    st_sandbox_served.faults()


@pytest.fixture
def connect(sandbox: StSandbox, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``connect(**extra)`` sets ``servicetitan_default`` to the sandbox; returns its JSON.

    ``connect.env`` holds the variables a child process needs to act as another task of the
    same worker (the connection and the shared cache directories).
    """
    env = {
        "B1_SERVICETITAN_CACHE_DIR": str(tmp_path / "tokens"),
        "B1_RATE_LIMIT_DIR": str(tmp_path / "limits"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def _connect(**extra: Any) -> str:
        value = json.dumps(sandbox.connection(**extra))
        monkeypatch.setenv("AIRFLOW_CONN_SERVICETITAN_DEFAULT", value)
        env["AIRFLOW_CONN_SERVICETITAN_DEFAULT"] = value
        return value

    _connect.env = env  # type: ignore[attr-defined]
    _connect.tmp_path = tmp_path  # type: ignore[attr-defined]
    return _connect


REDIS_URL = os.environ.get("B1_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_url() -> str:
    """A reachable Redis for the cross-worker limiter: fails under CI, skips elsewhere, when none answers."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI needs it.")
        pytest.skip(f"{message}; start Redis to run this test.")
    return REDIS_URL


@pytest.fixture(scope="session")
def task_processes() -> Iterator[Any]:
    """Four task processes (see :mod:`st_task_processes`), started once for the session."""
    from st_task_processes import TaskProcesses

    processes = TaskProcesses(4)
    try:
        yield processes
    finally:
        processes.close()
