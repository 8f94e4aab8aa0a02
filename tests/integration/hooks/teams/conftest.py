"""Fixtures for the Teams hooks' integration tests: the session's Teams sandbox, restored before
each test, with the two connections pointing at it and a token cache of the test's own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def teams(teams_sandbox) -> Iterator[Any]:
    """The Teams sandbox, seeded afresh: no tokens, posts, faults or counts, default settings."""
    teams_sandbox.restore()
    yield teams_sandbox
    teams_sandbox.faults()


@pytest.fixture
def connect(teams, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """``connect.webhook(**overrides)`` / ``connect.bot(**extra)`` set ``b1_teams_webhook_default`` /
    ``b1_teams_bot_default`` to the sandbox; tokens are cached in the test's own folder."""
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "tokens"))

    class Connect:
        @staticmethod
        def webhook(**overrides: Any) -> dict[str, Any]:
            connection = teams.webhook_connection(**overrides)
            monkeypatch.setenv("AIRFLOW_CONN_B1_TEAMS_WEBHOOK_DEFAULT", json.dumps(connection))
            return connection

        @staticmethod
        def bot(**extra: Any) -> dict[str, Any]:
            connection = teams.bot_connection(**extra)
            monkeypatch.setenv("AIRFLOW_CONN_B1_TEAMS_BOT_DEFAULT", json.dumps(connection))
            return connection

    return Connect
