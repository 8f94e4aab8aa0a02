"""Fixtures for the Salesforce hook's integration tests: the sandbox over HTTPS, a fresh connection per test.

The session's ``salesforce_sandbox`` (tests/conftest.py) serves a small org (40 accounts, 80
opportunities, query batches of 25) from a thread of this process over HTTPS, self-signed: the
connection trusts its CA bundle. Each test gets it freshly seeded with counters at zero and no
faults, its own token cache directory (so no two tests share a token), and
``b1_salesforce_default`` pointing at it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sf_sandbox_helpers import FAST

from airflow_provider_b1.hooks.salesforce import SalesforceHook


@pytest.fixture
def sandbox(salesforce_sandbox) -> Iterator[Any]:
    """The sandbox, freshly seeded, counters at zero, no faults."""
    salesforce_sandbox.restore()
    yield salesforce_sandbox
    salesforce_sandbox.faults()


@pytest.fixture
def connect(sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``connect(**changes)`` sets ``b1_salesforce_default`` to the sandbox and returns the connection.

    ``host``/``login``/``password`` replace those fields; anything else is an extra (``None``
    removes one). ``connect.env`` holds what another task process of the worker needs.
    """
    env = {"B1_SALESFORCE_CACHE_DIR": str(tmp_path / "tokens")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def _connect(**changes: Any) -> dict[str, Any]:
        connection = sandbox.connection()
        extra = dict(connection["extra"])
        for name, value in changes.items():
            if name in ("host", "login", "password"):
                connection[name] = value
            elif value is None:
                extra.pop(name, None)
            else:
                extra[name] = value
        connection["extra"] = extra
        value = json.dumps(connection)
        monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", value)
        env["AIRFLOW_CONN_B1_SALESFORCE_DEFAULT"] = value
        return connection

    _connect.env = env  # type: ignore[attr-defined]
    return _connect


@pytest.fixture
def make_hook(connect):
    """``make_hook(**hook_arguments)``: a hook on the sandbox connection, retrying without waits."""
    hooks: list[SalesforceHook] = []

    def _make(**arguments: Any) -> SalesforceHook:
        if "AIRFLOW_CONN_B1_SALESFORCE_DEFAULT" not in connect.env:
            connect()
        arguments.setdefault("retry_policy", FAST)
        arguments.setdefault("bulk_poll_interval", 0.1)
        hook = SalesforceHook(**arguments)
        hooks.append(hook)
        return hook

    yield _make
    for hook in hooks:
        hook.close()
