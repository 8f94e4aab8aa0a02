"""A Salesforce connection for the hook's unit tests: nothing listens there, nothing is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sf_unit_helpers import CONSUMER_KEY, CONSUMER_SECRET, HOST


@pytest.fixture
def sf_connection(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``sf_connection(**extra)`` sets ``b1_salesforce_default``; ``host=``/``login=``/``password=`` override those."""
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "tokens"))

    def _set(
        *,
        host: str | None = HOST,
        login: str | None = CONSUMER_KEY,
        password: str | None = CONSUMER_SECRET,
        **extra: Any,
    ) -> None:
        connection = {
            "conn_type": "b1_salesforce",
            "host": host,
            "login": login,
            "password": password,
            "extra": {k: v for k, v in extra.items() if v is not None},
        }
        monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", json.dumps(connection))

    return _set
