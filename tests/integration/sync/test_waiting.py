"""Records that wait for another record are retried by the next incremental run on their own, and an
API target whose audit trail lost its checkpoints is read again from the beginning."""

from __future__ import annotations

import logging
import secrets

import pytest
from feeds import Feed

from airflow_provider_b1.sync import (
    Action,
    Flow,
    Item,
    Outcome,
    Sink,
    Stream,
    SyncWindow,
    TokenCursor,
    payload_hash,
    replay_failed,
    sync_stream,
    unregister_flow,
    waiting,
)
from airflow_provider_b1.sync.audit import AUDIT_MIGRATIONS
from airflow_provider_b1.utils.sql import query, transaction


class Ledger(Sink):
    """An API: a record naming a ``parent`` waits until that parent is in :attr:`parents`."""

    system = "api"

    def __init__(self) -> None:
        self.parents: set[str] = set()
        self.stored: dict[str, dict] = {}
        self.posts: list[str] = []

    def prepare(self, stream, records):
        return [Item(r["key"], r, payload_hash(r)) for r in records]

    def write(self, stream, items, page):
        outcomes = {}
        for item in items:
            parent = item.data.get("parent")
            if parent is not None and parent not in self.parents:
                outcomes[item.key] = waiting(
                    item.key,
                    f"parent {parent}",
                    f"waiting for parent {parent}, not in the ledger yet",
                    item.payload_hash,
                )
                continue
            if item.key in self.stored:
                outcomes[item.key] = Outcome(item.key, Action.UNCHANGED, None, item.payload_hash)
                continue
            self.stored[item.key] = item.data
            self.posts.append(item.key)
            outcomes[item.key] = Outcome(item.key, Action.CREATED, None, item.payload_hash)
        return outcomes


def thing(n: int, minute: int = 0, **fields) -> dict:
    return {"key": f"k{n:03d}", "modified": f"2024-05-01T10:{minute:02d}:{n % 60:02d}", **fields}


@pytest.fixture
def ledger(audit_trail):
    name = f"waiting_{secrets.token_hex(3)}"
    feed = Feed([thing(n) for n in range(6)], order="token", page_size=4)
    sink = Ledger()
    flow = Flow(
        name,
        "feed",
        "api",
        (Stream("things", cursor=TokenCursor),),
        open_source=lambda options: feed,
        open_sink=lambda options: sink,
    )

    class Setup:
        def __init__(self):
            self.flow, self.feed, self.sink, self.trail = flow, feed, sink, audit_trail
            self.runs = 0

        def run(self, cursor=None, *, mode="incremental", stream=None, **kwargs):
            self.runs += 1
            window = SyncWindow(mode, cursor=cursor, previous_cursor=cursor)
            with audit_trail.session(name, "dag", f"run{self.runs}", "load", 1) as session:
                return sync_stream(flow, stream or flow.streams[0], feed, sink, session, window, **kwargs)

        def history(self, key):
            return [(r["action"], r["waiting_for"]) for r in audit_trail.history(name, "things", key)]

    yield Setup()
    unregister_flow(name)


def test_a_waiting_record_is_retried_by_the_next_run_and_written_once_what_it_waits_for_is_there(ledger):
    ledger.feed.put("k001", modified="2024-05-01T10:00:01", parent="p1")
    first = ledger.run()
    assert (first.read, first.created, first.failed, first.waiting) == (6, 5, 1, 1)
    assert ledger.trail.waiting(ledger.flow.name, "things") == [("k001", "parent p1")]
    (failed,) = ledger.trail.records_for_replay(ledger.flow.name)  # still failed: nothing is hidden
    assert (failed.source_key, failed.waiting_for) == ("k001", "parent p1")

    second = ledger.run(first.cursor)  # nothing new, the parent still missing: it waits on
    assert (second.retried, second.read, second.failed, second.waiting) == (1, 1, 1, 1)

    ledger.sink.parents.add("p1")
    ledger.feed.put("k100", modified="2024-05-01T11:00:00")
    third = ledger.run(second.cursor)
    assert (third.retried, third.read, third.created, third.failed) == (1, 2, 2, 0)
    assert ledger.sink.posts[-2:] == ["k001", "k100"]  # the waiting record first, then what is new
    assert ledger.history("k001") == [("failed", "parent p1"), ("failed", "parent p1"), ("created", None)]
    assert ledger.trail.waiting(ledger.flow.name, "things") == []
    assert ledger.trail.records_for_replay(ledger.flow.name) == []

    fourth = ledger.run(third.cursor)
    assert (fourth.retried, fourth.read) == (0, 0)
    assert ledger.sink.posts.count("k001") == 1


def test_retries_are_bounded_and_the_least_recently_tried_go_first(ledger):
    for n in (1, 2, 3):
        ledger.feed.put(f"k00{n}", modified=f"2024-05-01T10:00:0{n}", parent=f"p{n}")
    first = ledger.run()
    assert first.waiting == 3
    second = ledger.run(first.cursor, retry_waiting=2)
    assert (second.retried, second.waiting) == (2, 2)
    # k003 was not tried again: it is now the oldest and goes first.
    assert [key for key, _ in ledger.trail.waiting(ledger.flow.name, "things")] == ["k003", "k001", "k002"]
    ledger.sink.parents.update({"p1", "p3"})
    third = ledger.run(second.cursor, retry_waiting=2)
    assert (third.retried, third.created, third.waiting) == (2, 2, 0)
    assert ledger.trail.waiting(ledger.flow.name, "things") == [("k002", "parent p2")]
    assert ledger.run(third.cursor, retry_waiting=0).retried == 0


def test_a_waiting_record_gone_from_the_source_is_settled_as_skipped(ledger):
    ledger.feed.put("k001", modified="2024-05-01T10:00:01", parent="p1")
    first = ledger.run()
    del ledger.feed.records["k001"]
    second = ledger.run(first.cursor)
    assert (second.retried, second.read, second.skipped) == (1, 0, 1)
    assert ledger.history("k001")[-1] == ("skipped", None)
    assert ledger.trail.waiting(ledger.flow.name, "things") == []


def test_window_and_full_reads_leave_waiting_records_to_incremental_runs_and_replay(ledger):
    ledger.feed.put("k001", modified="2024-05-01T10:00:01", parent="p1")
    first = ledger.run()
    ledger.sink.parents.add("p1")
    window = ledger.run(first.cursor, mode="window")
    assert window.retried == 0
    assert ledger.history("k001")[-1] == ("created", None)  # read again by the window itself
    ledger.feed.put("k050", modified="2024-05-01T10:00:50", parent="p2")
    full = ledger.run(mode="full")
    assert (full.retried, full.waiting) == (0, 1)
    replayed = replay_failed(ledger.trail, ledger.flow.name)
    assert (replayed.selected, replayed.counts["failed"]) == (1, 1)
    assert ledger.history("k050")[-1] == ("failed", "parent p2")  # still waiting after the replay
    ledger.sink.parents.add("p2")
    replayed = replay_failed(ledger.trail, ledger.flow.name)
    assert replayed.counts["created"] == 1
    assert ledger.trail.waiting(ledger.flow.name, "things") == []


def test_a_failure_while_retrying_leaves_the_records_waiting_and_the_run_reads_what_is_new(ledger, caplog):
    ledger.feed.put("k001", modified="2024-05-01T10:00:01", parent="p1")
    first = ledger.run()
    ledger.feed.put("k100", modified="2024-05-01T11:00:00")

    def broken(stream, keys):
        raise ValueError("the source cannot read these ids")

    ledger.feed.read_keys = broken
    with caplog.at_level(logging.WARNING, logger="airflow_provider_b1.sync.engine"):
        second = ledger.run(first.cursor)
    assert (second.read, second.created) == (1, 1)
    assert "they wait for the next run: ValueError: the source cannot read these ids" in caplog.text
    assert ledger.trail.waiting(ledger.flow.name, "things") == [("k001", "parent p1")]


def test_only_a_failed_record_waits():
    with pytest.raises(ValueError, match="Only a failed record waits"):
        Outcome("k", Action.CREATED, waiting_for="parent p1")


def test_an_api_target_whose_audit_trail_lost_its_checkpoint_is_read_from_the_beginning(ledger, caplog):
    first = ledger.run()
    assert ledger.trail.checkpoint(ledger.flow.name, "things") is not None
    ledger.feed.put("k100", modified="2024-05-01T11:00:00")
    # The audit database is reset: Airflow still holds the last run's cursor, nothing else does.
    with transaction(ledger.trail.connection()) as cursor:
        cursor.execute(f"DELETE FROM {ledger.trail.checkpoints._table(cursor)}")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_b1.sync.engine"):
        second = ledger.run(first.cursor)
    assert (second.read, second.created, second.unchanged) == (7, 1, 6)
    assert "the audit trail keeps no checkpoint of things" in caplog.text
    assert first.cursor["token"] in caplog.text
    assert ledger.trail.checkpoint(ledger.flow.name, "things") is not None  # and it keeps one again
    third = ledger.run(second.cursor)
    assert third.read == 0


def test_an_audit_trail_of_the_previous_version_gains_the_waiting_column_and_keeps_its_rows(audit_trail):
    conn = audit_trail.connection()
    table = audit_trail.table
    name = f"upgrade_{secrets.token_hex(3)}"
    with audit_trail.session(name, "dag", "r", "t", 1) as session:
        session.record_many([])
    # Back to version 2, as a trail written before records could wait.
    with transaction(conn) as cursor:
        cursor.execute(
            f"DROP INDEX IF EXISTS {audit_trail.schema + '.' if audit_trail.dialect == 'postgres' else ''}audit_record_waiting_idx"
        )
        cursor.execute(f"ALTER TABLE {table} DROP COLUMN waiting_for")
        versions = (
            "audit_schema_version"
            if audit_trail.dialect == "sqlite"
            else f"{audit_trail.schema}.audit_schema_version"
        )
        cursor.execute(f"DELETE FROM {versions} WHERE version >= 3")
    from airflow_provider_b1.sync import AuditRecord

    with transaction(conn) as cursor:
        cursor.execute(
            f"INSERT INTO {table} (at, flow, source_system, source_entity, source_key, action, error, attempt) "
            f"VALUES ({'%s, ' * 7 + '%s' if audit_trail.dialect == 'postgres' else '?, ' * 7 + '?'})",
            ("2024-05-01T00:00:00+00:00", name, "feed", "things", "old", "failed", "before", 1),
        )
    assert AUDIT_MIGRATIONS.apply(conn, audit_trail.schema, target=3) == 3
    with audit_trail.session(name, "dag", "r2", "t", 1) as session:
        session.write(
            [AuditRecord("feed", "things", "new", Action.FAILED, error="e", waiting_for="parent p")]
        )
    assert audit_trail.waiting(name, "things") == [("new", "parent p")]
    assert [r["waiting_for"] for r in audit_trail.history(name, "things", "old")] == [None]
    assert query(conn, f"SELECT count(*) FROM {table} WHERE flow = {{p}}", (name,)) == [(2,)]
