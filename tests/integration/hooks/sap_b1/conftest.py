"""Fixtures for the SAP hook's integration tests: the suite's HTTPS sandbox, a fresh connection per test.

The sandbox itself (``sap_sandbox``, session-scoped, HTTPS) comes from ``tests/conftest.py``.
Each test gets it back in its seeded state with no faults, an isolated session cache
directory, and the ``sap_b1_default`` connection set through ``AIRFLOW_CONN_SAP_B1_DEFAULT``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

PASSWORD = "manager-secret-1"
COMPANY = "SBODEMOUS"
USER = "manager"


@pytest.fixture
def sandbox(sap_sandbox: Any) -> Iterator[Any]:
    """The sandbox, seeded afresh, no faults, counters at zero, default settings."""
    sap_sandbox.restore(invoices=2000)
    yield sap_sandbox
    sap_sandbox.faults()


@pytest.fixture
def connect(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``connect(version="v2", **connection_overrides)`` sets the default connection; returns its JSON.

    Extras go in ``extra=...`` and replace the default (CA bundle, page size 500, Chicago).
    """
    cache_dir = tmp_path / "sessions"
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(cache_dir))

    def _connect(version: str = "v2", **overrides: Any) -> str:
        value = json.dumps(sandbox.connection(version, **overrides))
        monkeypatch.setenv("AIRFLOW_CONN_SAP_B1_DEFAULT", value)
        return value

    _connect.cache_dir = cache_dir  # type: ignore[attr-defined]
    return _connect
