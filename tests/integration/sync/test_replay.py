"""Replay derived from a flow's declaration: its own source re-reads the failed records, its own
sink writes them, every attempt is audited; no replayer is written by hand."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sync import (
    Action,
    AuditRecord,
    Flow,
    Item,
    Outcome,
    Page,
    Sink,
    Source,
    Stream,
    payload_hash,
    replay_failed,
    unregister_flow,
)

FLOW = "replay_flow"


def seed(trail, keys, *, entity="Invoices"):
    with trail.session(FLOW, "dag", "run-1", "load", 1) as session:
        for key in keys:
            session.record(
                AuditRecord("src", entity, key, Action.FAILED, target_system="tgt", error="bad ref")
            )


class Records(Source):
    """The source system: every record exists; reads by key are noted."""

    system = "src"

    def __init__(self):
        self.calls = []
        self.crash_after = None

    def read(self, stream, start, *, until):
        return iter(())

    def read_keys(self, stream, keys):
        self.calls.append([(stream.name, key) for key in keys])
        for key in keys:
            if self.crash_after is not None and key > self.crash_after:
                raise ConnectionError("reset by peer; Authorization: Bearer abc.def.ghi")
            yield Page([{"entity": stream.name, "key": key}])


class Target(Sink):
    """A tiny idempotent target: upsert by key, reports created / unchanged; poisoned keys fail."""

    system = "tgt"

    def __init__(self, poison=()):
        self.rows: dict[tuple[str, str], dict] = {}
        self.poison = set(poison)

    def prepare(self, stream, records):
        return [Item(r["key"], r, payload_hash(r)) for r in records]

    def write(self, stream, items, page):
        outcomes = {}
        for item in items:
            if item.key in self.poison:
                outcomes[item.key] = Outcome(item.key, Action.FAILED, "still bad")
                continue
            existing = self.rows.get((stream.name, item.key))
            self.rows[(stream.name, item.key)] = item.data
            action = Action.UNCHANGED if existing == item.data else Action.CREATED
            outcomes[item.key] = Outcome(item.key, action, None, item.payload_hash)
        return outcomes


@pytest.fixture
def flow():
    state = {"source": Records(), "target": Target(), "options": None}

    def open_source(options):
        state["options"] = dict(options)
        return state["source"]

    declared = Flow(
        FLOW,
        "src",
        "tgt",
        (Stream("Invoices"), Stream("Orders")),
        open_source=open_source,
        open_sink=lambda options: state["target"],
        options={"target_conn_id": "default"},
    )
    yield declared, state
    unregister_flow(FLOW)


def test_dry_run_selects_and_writes_nothing(audit_trail, flow):
    _, state = flow
    seed(audit_trail, ["1", "2"])
    summary = replay_failed(audit_trail, FLOW, dry_run=True)
    assert summary.selected == 2
    assert summary.sample == ["Invoices:1", "Invoices:2"]
    assert state["source"].calls == []
    assert len(audit_trail.records_for_replay(FLOW)) == 2


def test_replay_resends_failed_records_as_new_attempts_and_twice_changes_nothing(audit_trail, flow):
    _, state = flow
    seed(audit_trail, ["1", "2", "3"])
    seed(audit_trail, ["1"], entity="Orders")
    target = state["target"]
    target.poison = {"3"}
    summary = replay_failed(
        audit_trail,
        FLOW,
        session_info={"dag_id": "b1_replay_failed", "run_id": "r1", "task_id": "replay"},
    ).to_xcom()
    assert (summary["selected"], summary["created"], summary["failed"]) == (4, 3, 1)
    # one read per entity
    assert sorted(state["source"].calls) == [
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
    again = replay_failed(audit_trail, FLOW).to_xcom()
    assert (again["selected"], again["created"]) == (1, 1)
    assert audit_trail.records_for_replay(FLOW) == []
    assert len(target.rows) == 4


def test_a_crashing_or_empty_source_leaves_the_records_failed_with_a_reason(audit_trail, flow):
    _, state = flow
    seed(audit_trail, ["1", "2"])
    state["source"].crash_after = "1"
    summary = replay_failed(audit_trail, FLOW, batch_size=5)
    assert (summary.counts["created"], summary.counts["failed"]) == (1, 1)
    (left,) = audit_trail.records_for_replay(FLOW)
    assert left.source_key == "2"
    assert left.attempt == 2
    assert left.error == "ConnectionError: reset by peer; Authorization: ***"

    # the record is gone from the source: nothing left to replay, and it no longer comes back
    state["source"].read_keys = lambda stream, keys: iter(())
    gone = replay_failed(audit_trail, FLOW)
    assert (gone.selected, gone.counts["skipped"]) == (1, 1)
    assert audit_trail.records_for_replay(FLOW) == []
    (last,) = [h for h in audit_trail.history(FLOW, "Invoices", "2") if h["attempt"] == 3]
    assert (last["action"], last["error"]) == ("skipped", "Invoices 2 is no longer in src: nothing to replay")


def test_an_error_no_retry_can_fix_stops_the_replay_instead_of_failing_every_record(audit_trail, flow):
    from airflow_provider_b1.exceptions import PermanentError, RetryableError

    _, state = flow
    seed(audit_trail, ["1", "2"])
    for error in (PermanentError("Login to company SBODEMOUS as manager failed"), RetryableError("503")):

        def refuse(stream, keys, error=error):
            raise error

        state["source"].read_keys = refuse
        with pytest.raises(type(error)):
            replay_failed(audit_trail, FLOW)
        # nothing was recorded: the task fails (at once, or to be retried by Airflow)
        assert [r.attempt for r in audit_trail.records_for_replay(FLOW)] == [1, 1]


def test_the_flow_is_found_by_name_and_opened_with_its_options_and_the_overrides(audit_trail, flow):
    _, state = flow
    seed(audit_trail, ["1"])
    summary = replay_failed(audit_trail, FLOW, options={"target_conn_id": "wh"})
    assert summary.counts["created"] == 1
    assert state["options"] == {"target_conn_id": "wh"}


def test_since_after_until_is_refused_and_an_unknown_flow_is_named(audit_trail, flow):
    import datetime as dt

    from airflow_provider_b1.sync import SyncWindowError, UnknownFlowError

    day = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    with pytest.raises(SyncWindowError, match="must be before"):
        replay_failed(audit_trail, FLOW, since=day, until=day)
    with pytest.raises(UnknownFlowError, match="no_such_flow"):
        replay_failed(audit_trail, "no_such_flow")
