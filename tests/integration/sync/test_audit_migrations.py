"""An audit trail created before the deletion check's actions existed migrates, on PostgreSQL and SQLite.

The trail is built at version 3 (created .. failed, waiting_for) and given rows, then upgraded:
the old rows keep their ids, values and attempts, ``deleted`` and ``restored`` are accepted,
anything else is still refused, the indexes are back, and new ids follow the old ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_b1.sync import Action, AuditRecord, AuditTrail
from airflow_provider_b1.sync.audit import AUDIT_MIGRATIONS, TABLE

FLOW = "sap_b1_to_warehouse"
INDEXES = {f"{TABLE}_key_idx", f"{TABLE}_failed_idx", f"{TABLE}_run_idx", f"{TABLE}_waiting_idx"}


@pytest.fixture
def old_trail(trail_connection: tuple[str, str]) -> Iterator[AuditTrail]:
    """An audit trail migrated only to version 3, as a deployment of the previous release left it."""
    conn_id, schema = trail_connection
    trail = AuditTrail(conn_id, schema=schema)
    assert AUDIT_MIGRATIONS.apply(trail.connection(), trail.schema, target=3) == 3
    try:
        yield trail
    finally:
        if trail.dialect == "postgres":
            conn = trail.connection()
            conn.rollback()
            conn.cursor().execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.commit()
        trail.close()


def _rec(key: str, action: Action, **fields) -> AuditRecord:
    return AuditRecord(
        "sap_b1", "BusinessPartners", key, action, "warehouse", "dim_business_partner", **fields
    )


def _refuses(trail: AuditTrail, action: str) -> bool:
    """Whether the table's CHECK constraint refuses a row with this action (written around the
    Action enum, which refuses unknown actions itself)."""
    conn = trail.connection()
    mark = "%s" if trail.dialect == "postgres" else "?"
    sql = (
        f"INSERT INTO {trail.table} (at, flow, source_system, source_entity, source_key, action, attempt) "
        f"VALUES ('2026-01-01T00:00:00+00:00', 'f', 's', 'e', 'k', {mark}, 1)"
    )
    try:
        if trail.dialect == "sqlite":
            conn.execute("BEGIN")
        conn.cursor().execute(sql, (action,))
    except Exception as exc:
        return "check" in str(exc).lower()
    finally:
        if trail.dialect == "sqlite":
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        else:
            conn.rollback()
    return False


def _indexes(trail: AuditTrail) -> set[str]:
    if trail.dialect == "postgres":
        rows = trail._query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = {p} AND tablename = {p}",
            (trail.schema, TABLE),
        )
    else:
        rows = trail._query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = {p}", (TABLE,)
        )
    return {name for (name,) in rows} & INDEXES


def test_a_trail_at_the_previous_version_migrates_keeping_its_rows_and_accepts_deleted_and_restored(
    old_trail,
):
    trail = old_trail
    assert _refuses(trail, "deleted")  # the previous version's CHECK
    with trail.session(FLOW, "dag", "run-1", "load", 1) as session:
        session.record_many(
            [
                _rec("C1", Action.CREATED),
                _rec("C1", Action.UPDATED),
                _rec("C2", Action.FAILED, error="SAP said no", waiting_for="partner C0"),
                _rec("C3", Action.SKIPPED, error="repeated in its page"),
            ]
        )
    before = {
        (r["id"], r["action"], r["attempt"], r["error"], r["waiting_for"])
        for r in trail.history(FLOW, "BusinessPartners", "C1")
    }
    before |= {
        (r["id"], r["action"], r["attempt"], r["error"], r["waiting_for"])
        for r in trail.history(FLOW, "BusinessPartners", "C2")
    }
    assert len(before) == 3

    trail.ensure_schema()
    trail.ensure_schema()  # the second time finds nothing to do
    after = {
        (r["id"], r["action"], r["attempt"], r["error"], r["waiting_for"])
        for r in trail.history(FLOW, "BusinessPartners", "C1")
    }
    after |= {
        (r["id"], r["action"], r["attempt"], r["error"], r["waiting_for"])
        for r in trail.history(FLOW, "BusinessPartners", "C2")
    }
    assert after == before
    assert _indexes(trail) == INDEXES
    assert [r.source_key for r in trail.records_for_replay(FLOW)] == ["C2"]
    assert trail.waiting(FLOW, "BusinessPartners") == [("C2", "partner C0")]

    # the new actions are accepted, numbered after the old attempts, with ids after the old ones
    with trail.session(FLOW, "dag", "check-1", "check_deletions", 1) as session:
        session.record_many(
            [
                _rec("C1", Action.DELETED, error="not among SAP's 2 keys at 2026-01-01T00:00:00Z"),
                _rec("C2", Action.DELETED, error="not among SAP's 2 keys at 2026-01-01T00:00:00Z"),
            ]
        )
    with trail.session(FLOW, "dag", "run-2", "load", 1) as session:
        session.record(_rec("C1", Action.RESTORED))
    history = trail.history(FLOW, "BusinessPartners", "C1")
    assert [(r["action"], r["attempt"]) for r in history] == [
        ("created", 1),
        ("updated", 2),
        ("deleted", 3),
        ("restored", 4),
    ]
    assert min(r["id"] for r in history[2:]) > max(i for i, *_ in before)
    assert trail.counts_for_run("dag", "check-1") == {
        "created": 0,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "failed": 0,
        "deleted": 2,
        "restored": 0,
    }
    # a failure followed by the record's deletion in SAP is settled: nothing to replay or wait for
    assert trail.records_for_replay(FLOW) == []
    assert trail.waiting(FLOW, "BusinessPartners") == []
    assert _refuses(trail, "vanished")
