from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.sync import Action, AuditRecord, AuditTrail, payload_hash

UTC = dt.timezone.utc
FLOW = "test_flow"


def rec(key, action, *, entity="Invoices", error=None, at=None, payload=None):
    return AuditRecord(
        source_system="src",
        source_entity=entity,
        source_key=key,
        action=action,
        target_system="tgt",
        target_entity="fact_" + entity.lower(),
        target_key=None if action == Action.FAILED else f"T{key}",
        error=error,
        payload_hash=payload_hash(payload or {"key": key}),
        at=at,
    )


def run(trail: AuditTrail, run_id: str, records, *, try_number=1, task_id="load"):
    with trail.session(FLOW, "dag", run_id, task_id, try_number) as session:
        session.record_many(records)
    return session


def test_ensure_schema_is_idempotent(audit_trail):
    audit_trail.ensure_schema()
    audit_trail.ensure_schema()
    assert audit_trail.counts_for_run("dag", "nothing") == dict.fromkeys(
        ("created", "updated", "unchanged", "skipped", "failed", "deleted", "restored"), 0
    )


def test_one_row_per_record_with_counts_by_run(audit_trail):
    records = [rec(str(i), Action.CREATED) for i in range(250)]  # crosses two flushes of 100
    records += [rec("x1", Action.FAILED, error="DocTotal is negative"), rec("x2", Action.UNCHANGED)]
    session = run(audit_trail, "run-1", records)
    assert session.written == 252
    assert session.counts == {"created": 250, "failed": 1, "unchanged": 1}
    counts = audit_trail.counts_for_run("dag", "run-1", task_id="load", flow=FLOW)
    assert counts == {
        "created": 250,
        "updated": 0,
        "unchanged": 1,
        "skipped": 0,
        "failed": 1,
        "deleted": 0,
        "restored": 0,
    }


def test_rows_hold_keys_hash_and_clear_error_only(audit_trail):
    run(
        audit_trail,
        "run-1",
        [rec("7", Action.FAILED, error="SAP -10: Invalid BP 'C9'\tCookie: B1SESSION=abc-def-123\nline2")],
    )
    (row,) = audit_trail.history(FLOW, "Invoices", 7)
    assert row["action"] == "failed"
    assert row["attempt"] == 1
    assert row["error"] == "SAP -10: Invalid BP 'C9'\tCookie: ***\nline2"
    assert row["payload_hash"] == payload_hash({"key": "7"})
    assert row["target_key"] is None
    assert (row["flow"], row["dag_id"], row["run_id"], row["task_id"], row["try_number"]) == (
        FLOW,
        "dag",
        "run-1",
        "load",
        1,
    )
    assert row["at"].tzinfo is not None


def test_attempt_counts_every_handling_of_a_record_per_flow_and_entity(audit_trail):
    run(
        audit_trail,
        "run-1",
        [rec("1", Action.FAILED, error="boom"), rec("1", Action.CREATED, entity="Orders")],
    )
    run(audit_trail, "run-2", [rec("1", Action.FAILED, error="boom again")], try_number=2)
    # the same key twice in one buffer counts twice
    run(audit_trail, "run-3", [rec("1", Action.UNCHANGED), rec("1", Action.UNCHANGED)])
    assert [r["attempt"] for r in audit_trail.history(FLOW, "Invoices", "1")] == [1, 2, 3, 4]
    assert [r["attempt"] for r in audit_trail.history(FLOW, "Orders", "1")] == [1]
    with audit_trail.session("other_flow", "dag", "r", "t", 1) as session:
        session.record(rec("1", Action.CREATED))
    assert audit_trail.history("other_flow", "Invoices", "1")[0]["attempt"] == 1


def test_session_flushes_what_it_has_when_the_task_fails(audit_trail):
    def task():
        with audit_trail.session(FLOW, "dag", "run-x", "load", 1) as session:
            session.record(rec("1", Action.CREATED))
            raise RuntimeError("SAP went away")

    with pytest.raises(RuntimeError):
        task()
    assert audit_trail.counts_for_run("dag", "run-x")["created"] == 1


def test_replay_selects_records_whose_latest_attempt_failed(audit_trail):
    t0 = dt.datetime(2024, 5, 1, tzinfo=UTC)
    run(
        audit_trail,
        "run-1",
        [
            rec("fixed", Action.FAILED, error="e", at=t0),
            rec("still", Action.FAILED, error="e1", at=t0),
            rec("ok", Action.CREATED, at=t0),
            rec("late", Action.FAILED, error="e", at=t0 + dt.timedelta(days=10)),
            rec("other-entity", Action.FAILED, error="e", entity="Orders", at=t0),
            rec("gone", Action.FAILED, error="e", at=t0),
            rec("back", Action.FAILED, error="e", at=t0),
        ],
    )
    run(
        audit_trail,
        "run-2",
        [
            # deleted in the source since it failed: nothing left to replay; restored: written
            rec("gone", Action.DELETED, error="not among SAP's 3 keys", at=t0 + dt.timedelta(hours=1)),
            rec("back", Action.RESTORED, at=t0 + dt.timedelta(hours=1)),
            rec("fixed", Action.UPDATED, at=t0 + dt.timedelta(hours=1)),
            rec("still", Action.FAILED, error="e2", at=t0 + dt.timedelta(hours=1)),
            rec("ok", Action.FAILED, error="now broken", at=t0 + dt.timedelta(hours=1)),
        ],
    )
    selected = audit_trail.records_for_replay(FLOW)
    assert [(r.source_entity, r.source_key, r.attempt) for r in selected] == [
        ("Invoices", "late", 1),
        ("Orders", "other-entity", 1),
        ("Invoices", "still", 2),
        ("Invoices", "ok", 2),
    ]
    assert next(r for r in selected if r.source_key == "still").error == "e2"
    in_range = audit_trail.records_for_replay(FLOW, since=t0, until=t0 + dt.timedelta(days=1))
    assert sorted(r.source_key for r in in_range) == ["ok", "other-entity", "still"]
    assert audit_trail.records_for_replay(FLOW, since=t0 + dt.timedelta(days=5))[0].source_key == "late"
    assert len(audit_trail.records_for_replay(FLOW, limit=2)) == 2
    assert audit_trail.records_for_replay("no_such_flow") == []
