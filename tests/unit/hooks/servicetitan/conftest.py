"""A ServiceTitan connection for the hook's unit tests: nothing listens there, nothing is sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from st_unit_helpers import APP_KEY, CLIENT_ID, CLIENT_SECRET, TENANT


@pytest.fixture
def st_connection(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``st_connection(**extra)`` sets ``servicetitan_default``; ``login=``/``password=`` override those."""
    monkeypatch.setenv("B1_SERVICETITAN_CACHE_DIR", str(tmp_path / "tokens"))
    monkeypatch.setenv("B1_RATE_LIMIT_DIR", str(tmp_path / "limits"))

    def _set(*, login: str | None = CLIENT_ID, password: str | None = CLIENT_SECRET, **extra: Any) -> None:
        base = {"tenant_id": TENANT, "app_key": APP_KEY}
        base.update(extra)
        connection = {
            "conn_type": "servicetitan",
            "login": login,
            "password": password,
            "extra": {k: v for k, v in base.items() if v is not None},
        }
        monkeypatch.setenv("AIRFLOW_CONN_SERVICETITAN_DEFAULT", json.dumps(connection))

    return _set
