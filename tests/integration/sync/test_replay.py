from __future__ import annotations

from airflow_provider_b1.sync import Action, AuditRecord, payload_hash, register_replayer, replay_failed
from airflow_provider_b1.sync.flows import unregister_replayer

FLOW = "replay_flow"


def seed(trail, keys, *, entity="Invoices"):
    with trail.session(FLOW, "dag", "run-1", "load", 1) as session:
        for key in keys:
            session.record(
                AuditRecord("src", entity, key, Action.FAILED, target_system="tgt", error="bad ref")
            )


class Target:
    """A tiny idempotent target: upsert by key, reports created / unchanged."""

    def __init__(self, poison=()):
        self.rows: dict[tuple[str, str], dict] = {}
        self.poison = set(poison)
        self.calls = []

    def __call__(self, refs, context):
        self.calls.append([(r.source_entity, r.source_key) for r in refs])
        for ref in refs:
            if ref.source_key in self.poison:
                yield AuditRecord(
                    ref.source_system, ref.source_entity, ref.source_key, Action.FAILED, error="still bad"
                )
                continue
            payload = {"key": ref.source_key, "entity": ref.source_entity}
            existing = self.rows.get((ref.source_entity, ref.source_key))
            self.rows[(ref.source_entity, ref.source_key)] = payload
            yield AuditRecord(
                ref.source_system,
                ref.source_entity,
                ref.source_key,
                Action.UNCHANGED if existing == payload else Action.CREATED,
                target_system="tgt",
                target_key=ref.source_key,
                payload_hash=payload_hash(payload),
            )


def test_dry_run_selects_and_writes_nothing(audit_trail):
    seed(audit_trail, ["1", "2"])
    target = Target()
    summary = replay_failed(audit_trail, FLOW, target, dry_run=True)
    assert summary.selected == 2
    assert summary.sample == ["Invoices:1", "Invoices:2"]
    assert target.calls == []
    assert len(audit_trail.records_for_replay(FLOW)) == 2


def test_replay_resends_failed_records_as_new_attempts_and_twice_changes_nothing(audit_trail):
    seed(audit_trail, ["1", "2", "3"])
    seed(audit_trail, ["1"], entity="Orders")
    target = Target(poison={"3"})
    summary = replay_failed(
        audit_trail,
        FLOW,
        target,
        session_info={"dag_id": "b1_replay_failed", "run_id": "r1", "task_id": "replay"},
    ).to_xcom()
    assert (summary["selected"], summary["created"], summary["failed"]) == (4, 3, 1)
    # one call per entity
    assert sorted(target.calls) == [
        [("Invoices", "1"), ("Invoices", "2"), ("Invoices", "3")],
        [("Orders", "1")],
    ]
    assert set(target.rows) == {("Invoices", "1"), ("Invoices", "2"), ("Orders", "1")}
    history = audit_trail.history(FLOW, "Invoices", "1")
    assert [(h["action"], h["attempt"], h["dag_id"]) for h in history] == [
        ("failed", 1, "dag"),
        ("created", 2, "b1_replay_failed"),
    ]
    assert [(r.source_key, r.attempt) for r in audit_trail.records_for_replay(FLOW)] == [("3", 2)]

    # the cause of "3" is fixed: a second replay sends only it
    target.poison.clear()
    again = replay_failed(audit_trail, FLOW, target).to_xcom()
    assert (again["selected"], again["created"]) == (1, 1)
    assert audit_trail.records_for_replay(FLOW) == []
    assert len(target.rows) == 4


def test_a_crashing_or_silent_replayer_leaves_the_records_failed_with_a_reason(audit_trail):
    seed(audit_trail, ["1", "2"])

    def crashing(refs, context):
        yield AuditRecord("src", "Invoices", "1", Action.CREATED)
        raise ConnectionError("reset by peer; Authorization: Bearer abc.def.ghi")

    summary = replay_failed(audit_trail, FLOW, crashing, batch_size=5)
    assert (summary.counts["created"], summary.counts["failed"]) == (1, 1)
    (left,) = audit_trail.records_for_replay(FLOW)
    assert left.source_key == "2"
    assert left.attempt == 2
    assert left.error == "ConnectionError: reset by peer; Authorization: ***"

    summary = replay_failed(audit_trail, FLOW, lambda refs, context: [])
    (left,) = audit_trail.records_for_replay(FLOW)
    assert left.attempt == 3
    assert "no outcome" in left.error


def test_replayer_is_found_in_the_registry_with_its_options(audit_trail):
    seed(audit_trail, ["1"])
    seen = {}

    def replayer(refs, context):
        seen.update(context.options)
        return [AuditRecord(r.source_system, r.source_entity, r.source_key, Action.UPDATED) for r in refs]

    register_replayer(FLOW, replayer, target_conn_id="wh")
    try:
        summary = replay_failed(audit_trail, FLOW)
    finally:
        unregister_replayer(FLOW)
    assert summary.counts["updated"] == 1
    assert seen == {"target_conn_id": "wh"}
