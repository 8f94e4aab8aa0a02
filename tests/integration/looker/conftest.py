"""The suite's Looker sandbox (``looker_sandbox`` in ``tests/conftest.py``, HTTPS) for the Looker integration tests."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests


@pytest.fixture
def sandbox(looker_sandbox: Any) -> Iterator[Any]:
    """The session's sandbox, reset to its seeded state before each test."""
    looker_sandbox.restore()
    yield looker_sandbox
    with contextlib.suppress(requests.RequestException):
        looker_sandbox.control("faults", {})


@pytest.fixture
def looker_conn(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """``looker_default`` pointing at the sandbox through ``AIRFLOW_CONN_LOOKER_DEFAULT``."""
    monkeypatch.setenv("AIRFLOW_CONN_LOOKER_DEFAULT", json.dumps(sandbox.connection()))
    return "looker_default"
