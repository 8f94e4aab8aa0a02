"""Shared by the ``sap_b1_to_teams`` flow's tests: a clean slate (SAP and Teams sandboxes, the audit
database in PostgreSQL), the flow's task run as a worker runs it, and checks of what Teams received."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "adaptive-card-1.4.json"
AUDIT_SCHEMA = "b1_teams_test"
SAP_INVOICES = 40  # 20 purchase orders and 20 purchase invoices, a few payments


class TaskInstance:
    """What the sync task reads of its task instance: ids, try, and the last successful summary."""

    def __init__(self, task_id: str, run_id: str, try_number: int, previous: Any) -> None:
        self.dag_id, self.task_id, self.map_index = "sap_b1_to_teams", task_id, -1
        self.run_id, self.try_number = run_id, try_number
        self.previous = previous

    def xcom_pull(self, **kwargs: Any) -> Any:
        return self.previous


def run_task(
    stream: str,
    run_id: str,
    *,
    try_number: int = 1,
    previous: Any = None,
    params: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One try of the flow's task for ``stream``, as ``SyncOperator`` runs it; its summary."""
    from airflow_provider_b1.operators.sync import SyncOperator
    from airflow_provider_b1.teams.flow import TEAMS_FLOW

    operator = SyncOperator(
        task_id=stream,
        flow=TEAMS_FLOW,
        streams=[stream],
        options=dict(options or {}),
        audit_schema=AUDIT_SCHEMA,
    )
    context = {
        "ti": TaskInstance(stream, run_id, try_number, previous),
        "params": dict(params or {}),
        "dag_run": None,
    }
    return operator.execute(context)


@dataclass
class TeamsFlow:
    """Sandboxes, the audit database and helpers of one test."""

    sap: Any
    teams: Any
    pg: dict
    routing_path: Path
    summaries: dict[str, Any] = field(default_factory=dict)

    def route(self, document: Mapping[str, Any]) -> None:
        self.routing_path.write_text(yaml.safe_dump(dict(document)), encoding="utf-8")

    def run(self, stream: str, run_id: str, *, incremental: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Run a stream's task; by default from the cursor of its last successful run here."""
        previous = self.summaries.get(stream) if incremental else None
        options = {"routing": str(self.routing_path), "ledger_schema": AUDIT_SCHEMA}
        summary = run_task(stream, run_id, previous=previous, options=options, **kwargs)
        self.summaries[stream] = summary
        return summary

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.pg["dsn"], autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def ledger(self) -> list[tuple]:
        return self.query(
            f"SELECT destination, doc_type, doc_entry, event, state, card FROM {AUDIT_SCHEMA}.b1_teams_sent ORDER BY 1, 2, 3, 4"
        )

    def channel(self, index: int) -> dict[str, Any]:
        return self.teams.tenant()["channels"][index]


def posted_markers(posts: list[dict]) -> Counter:
    """How many times each card (by the marker its first element carries) was posted (updates apart)."""
    found: Counter = Counter()
    for post in posts:
        if post.get("action") == "update":
            continue
        for attachment in post["attachments"]:
            body = attachment["content"].get("body") or [{}]
            found[body[0].get("id")] += 1
    return found


def assert_all_valid(posts: list[dict]) -> int:
    """Every card Teams received (posts and updates) is a valid Adaptive Card 1.4; returns how many."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    count = 0
    for post in posts:
        for attachment in post["attachments"]:
            card = attachment["content"]
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(card)]
            assert not errors, errors[:5]
            assert card["version"] == "1.4"
            count += 1
    return count


@pytest.fixture
def teams_flow(
    sap_sandbox, teams_sandbox, pg_database, pg_airflow_connection, set_connection, monkeypatch, tmp_path
) -> Iterator[TeamsFlow]:
    """A clean slate: a small SAP company, the seeded Teams tenant, an empty audit schema, connections."""
    import gc

    import psycopg

    sap_sandbox.restore(invoices=SAP_INVOICES)
    teams_sandbox.restore()
    with psycopg.connect(pg_database["dsn"], autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {AUDIT_SCHEMA} CASCADE")
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "teams-tokens"))
    monkeypatch.setenv("B1_RATE_LIMIT_DIR", str(tmp_path / "limits"))
    set_connection("sap_b1_default", sap_sandbox.connection())
    set_connection("b1_audit_default", pg_airflow_connection)
    set_connection("b1_teams_webhook_default", teams_sandbox.webhook_connection(0))
    set_connection("b1_teams_bot_default", teams_sandbox.bot_connection())
    state = TeamsFlow(sap_sandbox, teams_sandbox, pg_database, tmp_path / "routing.yaml")
    try:
        yield state
    finally:
        teams_sandbox.faults()
        gc.collect()


def run_until_done(
    flow: TeamsFlow, stream: str, run_id: str, *, tries: int = 12
) -> tuple[dict[str, Any], int]:
    """Run a stream's task as Airflow retries it (same run, next try) until a try succeeds; the
    summary and how many tries failed."""
    from airflow_provider_b1.exceptions import RetryableError

    for try_number in range(1, tries + 1):
        try:
            return flow.run(stream, run_id, try_number=try_number), try_number - 1
        except RetryableError:
            continue
    raise AssertionError(f"{stream} did not succeed in {tries} tries")


def sap_action(sap: Any, entity: str, key: int, action: str) -> None:
    """``POST <entity>(<key>)/<action>`` in SAP (Close, Cancel), as a user would."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook("sap_b1_default")
    try:
        hook.request("POST", f"{entity}({key})/{action}")
    finally:
        hook.close()


def open_documents(entity: str, count: int) -> list[int]:
    """``DocEntry`` of the first ``count`` open, not cancelled documents."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook("sap_b1_default")
    try:
        found = [
            r["DocEntry"]
            for r in hook.iter_records(entity, select=["DocEntry", "DocumentStatus", "Cancelled"])
            if r["DocumentStatus"] == "bost_Open" and r["Cancelled"] == "tNO"
        ]
    finally:
        hook.close()
    return found[:count]


def audit_outcomes(flow: TeamsFlow, run_id: str) -> dict[str, tuple[str, str | None]]:
    """``{DocEntry: (action, error)}`` of one run's audit rows (the latest try's)."""
    rows = flow.query(
        f"SELECT source_key, action, error FROM {AUDIT_SCHEMA}.audit_record WHERE run_id = %s ORDER BY id",
        (run_id,),
    )
    return {key: (action, error) for key, action, error in rows}
