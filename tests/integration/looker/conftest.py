"""Looker sandbox served over real HTTP for the Looker integration tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from airflow_provider_b1.sandbox.looker import LookerSandboxConfig, create_app
from airflow_provider_b1.sandbox.server import serve_in_thread

CLIENT_ID = "looker-client-id"
CLIENT_SECRET = "looker-client-secret-1"


@dataclass
class LookerSandbox:
    base_url: str
    ca_path: str | None

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict:
        url = f"{self.base_url}/_sandbox/{path}"
        if body is None and path == "stats":
            return requests.get(url, timeout=5, verify=self.ca_path).json()
        return requests.post(url, json=body or {}, timeout=5, verify=self.ca_path).json()

    def stats(self) -> dict:
        return self.control("stats")


@pytest.fixture(scope="session")
def looker_sandbox() -> Iterator[LookerSandbox]:
    served = serve_in_thread(create_app(LookerSandboxConfig()), tls=True)
    try:
        yield LookerSandbox(base_url=served.base_url, ca_path=served.ca_path)
    finally:
        served.stop()


@pytest.fixture
def sandbox(looker_sandbox: LookerSandbox) -> Iterator[LookerSandbox]:
    """The session's sandbox, reset to its seeded state before each test."""
    looker_sandbox.control("reset")
    looker_sandbox.control("faults", {})
    yield looker_sandbox
    with contextlib.suppress(requests.RequestException):
        looker_sandbox.control("faults", {})


@pytest.fixture
def looker_conn(sandbox: LookerSandbox, monkeypatch: pytest.MonkeyPatch) -> str:
    """``looker_default`` pointing at the sandbox through ``AIRFLOW_CONN_LOOKER_DEFAULT``."""
    extra = {"ca_bundle": sandbox.ca_path} if sandbox.ca_path else {}
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOKER_DEFAULT",
        json.dumps(
            {
                "conn_type": "looker_api",
                "host": sandbox.base_url,
                "login": CLIENT_ID,
                "password": CLIENT_SECRET,
                "extra": extra,
            }
        ),
    )
    return "looker_default"
