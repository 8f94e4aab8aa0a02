"""A Service Layer connection for the hook's unit tests: nothing listens there, nothing is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture
def sap_connection(monkeypatch: pytest.MonkeyPatch):
    """``sap_connection(host=..., **extra)`` sets ``sap_b1_default`` to an unreachable Service Layer."""

    def _set(host: str = "https://sap.example:50000/b1s/v2/", **extra: Any) -> None:
        connection = {
            "conn_type": "sap_b1",
            "host": host,
            "schema": "SBODEMOUS",
            "login": "manager",
            "password": "pw-123456",
            "extra": extra,
        }
        monkeypatch.setenv("AIRFLOW_CONN_SAP_B1_DEFAULT", json.dumps(connection))

    return _set
