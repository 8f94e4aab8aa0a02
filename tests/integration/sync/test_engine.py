"""The run loop against real databases: SQLite and PostgreSQL, with the audit trail in the target's
database (one transaction per page) and apart from it."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass

import pytest
from feeds import Feed, records, table_sink

from airflow_provider_b1.sync import (
    Action,
    AuditTrail,
    Flow,
    KeysetCursor,
    Stream,
    SyncWindow,
    TableSink,
    TokenCursor,
    replay_failed,
    sync_stream,
    unregister_flow,
)
from airflow_provider_b1.utils.sql import mark_of, open_database, query, transaction


@dataclass
class Setup:
    flow: Flow
    feed: Feed
    trail: AuditTrail
    database: object
    schema: str | None

    def run(self, cursor=None, *, mode="incremental", writers=1, run_id="run", try_number=1, sink=None):
        window = SyncWindow(mode, cursor=cursor, previous_cursor=cursor)
        with self.trail.session(self.flow.name, "dag", run_id, "load", try_number) as session:
            own = sink or table_sink(self.database, schema=self.schema)
            try:
                return sync_stream(
                    self.flow, self.flow.streams[0], self.feed, own, session, window, writers=writers
                )
            finally:
                own.close()

    def rows(self, sql, params=()):
        conn = self.database.connect()
        try:
            table = f"{self.schema}.thing" if self.schema else "thing"
            return query(conn, sql.replace("{thing}", table), params)
        finally:
            conn.close()

    def use_tokens(self):
        """The feed as a server-ordered export whose pages end with continuation tokens."""
        self.feed.order = "token"
        self.flow = Flow(
            self.flow.name,
            "feed",
            "target",
            (Stream("things", cursor=TokenCursor),),
            open_source=self.flow.open_source,
            open_sink=self.flow.open_sink,
        )

    def change(self, sql, params=()):
        """One statement on the target, committed; ``{s}`` is its schema prefix, ``{p}`` a parameter."""
        conn = self.database.connect()
        try:
            with transaction(conn) as cursor:
                prefix = f"{self.schema}." if self.schema else ""
                cursor.execute(sql.replace("{s}", prefix).replace("{p}", mark_of(cursor)), params)
        finally:
            conn.close()

    def audit(self):
        return query(
            self.trail.connection(),
            f"SELECT source_key, action, error, attempt, run_id FROM {self.trail.table} ORDER BY id",
        )


@pytest.fixture(params=["sqlite-shared", "sqlite-apart", "postgres-shared", "postgres-apart"])
def setup(request, tmp_path, monkeypatch):
    dialect, where = request.param.split("-")
    name = f"engine_test_{secrets.token_hex(3)}"
    if dialect == "postgres":
        pg = request.getfixturevalue("pg_database")
        conn = request.getfixturevalue("pg_airflow_connection")
        target, audit = conn, conn
        schema = f"t_{secrets.token_hex(3)}"
        audit_schema = schema if where == "shared" else f"a_{secrets.token_hex(3)}"
        if where == "apart":  # another database: the same server under another connection identity
            audit = {**conn, "host": "localhost" if pg["host"] == "127.0.0.1" else pg["host"]}
    else:
        target = {"conn_type": "sqlite", "host": str(tmp_path / "target.db")}
        audit = target if where == "shared" else {"conn_type": "sqlite", "host": str(tmp_path / "audit.db")}
        schema, audit_schema = None, "b1_audit"
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_TARGET", json.dumps(target))
    monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}_AUDIT", json.dumps(audit))
    database = open_database(f"{name}_target")
    feed = Feed(records(35))
    flow = Flow(
        name,
        "feed",
        "target",
        (Stream("things", cursor=KeysetCursor),),
        open_source=lambda options: feed,
        open_sink=lambda options: table_sink(database, schema=schema),
    )
    trail = AuditTrail(f"{name}_audit", schema=audit_schema)
    trail.ensure_schema()
    assert database.same_as(trail.database) == (where == "shared")
    try:
        yield Setup(flow, feed, trail, database, schema)
    finally:
        trail.close()
        unregister_flow(name)


def test_a_stream_loads_once_audits_every_record_and_a_second_run_changes_nothing(setup):
    first = setup.run()
    assert (first.read, first.created, first.failed) == (35, 35, 0)
    assert first.cursor == {"kind": "keyset", "position": ["2024-05-01T10:00:34", "k0034"]}
    assert setup.rows("SELECT count(*) FROM {thing}") == [(35,)]
    assert [a[1] for a in setup.audit()] == ["created"] * 35
    again = setup.run(first.cursor)
    assert (again.read, again.cursor) == (0, first.cursor)
    setup.feed.put("k0003", name="renamed", amount=3, modified="2024-05-01T11:00:00")
    third = setup.run(first.cursor)
    assert (third.read, third.updated) == (1, 1)
    assert setup.rows("SELECT name FROM {thing} WHERE key = 'k0003'") == [("renamed",)]


def test_the_same_key_twice_in_a_page_is_written_once_as_its_later_copy_and_both_reads_are_audited(setup):
    setup.feed.records = {}
    setup.feed.page_size = 50
    page = records(5)
    later = {**page[1], "name": "later copy", "modified": "2024-05-01T10:00:59"}
    setup.feed.read = lambda stream, start, *, until: iter([_page([*page, later])])
    summary = setup.run()
    assert (summary.read, summary.created, summary.skipped) == (6, 5, 1)
    assert setup.rows("SELECT name FROM {thing} WHERE key = 'k0001'") == [("later copy",)]
    trail = [(key, action) for key, action, *_ in setup.audit() if key == "k0001"]
    assert trail == [("k0001", "skipped"), ("k0001", "created")]


def _page(rows):
    from airflow_provider_b1.sync import Page

    return Page(rows, reached=KeysetCursor((rows[-1]["modified"], rows[-1]["key"])), resumable=True)


def test_a_bad_record_fails_alone_with_its_reason_and_replay_writes_it_once_fixed(setup):
    setup.feed.put("k0007", name="bad", amount=-1, modified="2024-05-01T10:00:07")
    summary = setup.run()
    assert (summary.created, summary.failed) == (34, 1)
    (failed,) = [a for a in setup.audit() if a[1] == "failed"]
    assert failed[0] == "k0007"
    assert "amount -1 is not a positive number" in failed[2]

    setup.feed.put("k0007", name="fixed", amount=7, modified="2024-05-01T10:00:07")
    replayed = replay_failed(setup.trail, setup.flow.name, session_info={"dag_id": "replay", "run_id": "r"})
    assert (replayed.selected, replayed.counts["created"]) == (1, 1)
    assert [(a[1], a[3]) for a in setup.audit() if a[0] == "k0007"] == [("failed", 1), ("created", 2)]
    assert setup.trail.records_for_replay(setup.flow.name) == []
    again = replay_failed(setup.trail, setup.flow.name)
    assert again.selected == 0
    assert setup.rows("SELECT count(*) FROM {thing}") == [(35,)]


def test_an_emptied_target_is_read_again_from_the_beginning_and_the_log_says_why(setup, caplog):
    first = setup.run()
    setup.change("DELETE FROM {s}thing")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_b1.sync.engine"):
        second = setup.run(first.cursor)
    assert (second.read, second.created) == (35, 35)
    assert "the target holds nothing of things" in caplog.text
    assert "reading everything instead of continuing" in caplog.text


def test_a_target_restored_to_an_older_checkpoint_is_read_from_that_checkpoint(setup, caplog):
    first = setup.run()
    setup.feed.put("k0100", name="new", amount=1, modified="2024-05-01T12:00:00")
    second = setup.run(first.cursor)
    assert second.created == 1
    # The target goes back to how it was after the first run: its row and its checkpoint.
    setup.change("DELETE FROM {s}thing WHERE key = 'k0100'")
    setup.change("UPDATE {s}sync_checkpoint SET cursor = {p}", (json.dumps(first.cursor),))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_b1.sync.engine"):
        third = setup.run(second.cursor)
    assert (third.read, third.created) == (1, 1)
    assert "is behind the last successful run's cursor" in caplog.text


def test_a_page_whose_commit_fails_leaves_neither_rows_nor_trail_and_the_rerun_completes(setup):
    class FailsOnThirdPage(TableSink):
        pages = 0

        def after_turn(self, stream, items, outcomes):
            FailsOnThirdPage.pages += 1
            if FailsOnThirdPage.pages == 3:
                raise ConnectionError("the target went away before the commit")

    sink = table_sink(setup.database, schema=setup.schema, cls=FailsOnThirdPage)
    with pytest.raises(ConnectionError):
        setup.run(sink=sink)
    # Two pages committed, each with its trail; the third left nothing.
    assert setup.rows("SELECT count(*) FROM {thing}") == [(20,)]
    assert len(setup.audit()) == 20
    assert setup.rows(
        "SELECT count(*) FROM " + (f"{setup.schema}." if setup.schema else "") + "sync_checkpoint"
    ) in (
        [(1,)],
        [(0,)],
    )
    # The feed is in keyset order: the next try resumes after the last committed page.
    rerun = setup.run(try_number=2)
    assert (rerun.read, rerun.created, rerun.failed) == (15, 15, 0)
    keys = [row[0] for row in setup.rows("SELECT key FROM {thing} ORDER BY key")]
    assert keys == sorted({f"k{i:04d}" for i in range(35)})
    written = {key for key, action, *_ in setup.audit() if action == "created"}
    assert written == set(keys)  # every row in the target has the trail of the try that wrote it


def test_a_token_feed_killed_mid_read_resumes_after_its_last_committed_page(setup):
    setup.use_tokens()
    setup.feed.fail_after = 2
    with pytest.raises(ConnectionError):
        setup.run()
    assert setup.rows("SELECT count(*) FROM {thing}") == [(20,)]
    # No run returned a cursor; the target's checkpoint says where it got to.
    setup.feed.fail_after = None
    resumed = setup.run(try_number=2)
    assert (resumed.read, resumed.created) == (15, 15)
    assert resumed.cursor == {"kind": "token", "token": "pos-35"}
    assert setup.rows("SELECT count(*), count(DISTINCT key) FROM {thing}") == [(35, 35)]


@pytest.mark.postgres
def test_pages_written_side_by_side_commit_in_reading_order(setup):
    if setup.database.dialect != "postgres":
        pytest.skip("PostgreSQL takes several writers; SQLite one")
    committed = []
    lock = threading.Lock()

    class Slow(TableSink):
        last = None

        def write_rows(self, stream, items):
            outcomes = super().write_rows(stream, items)
            if items[0].key == "k0000":
                time.sleep(0.5)  # the first page's writer is overtaken by the next page's
            return outcomes

        def commit(self):
            super().commit()
            if self.last is not None:  # a page's commit, not the lock's or the schema's
                with lock:
                    committed.append(self.last)
                self.last = None

        def after_turn(self, stream, items, outcomes):
            self.last = items[0].key

    sink = table_sink(setup.database, schema=setup.schema, cls=Slow)
    summary = setup.run(writers=3, sink=sink)
    assert summary.created == 35
    assert committed == ["k0000", "k0010", "k0020", "k0030"]


def test_a_key_the_audit_trail_cannot_hold_fails_its_record_alone(setup):
    long_key, nul_key = "k" * 600, "k\x00nul"
    setup.feed.put(long_key, name="long", amount=1, modified="2024-05-01T10:00:01")
    setup.feed.put(nul_key, name="nul", amount=1, modified="2024-05-01T10:00:02")
    summary = setup.run()
    assert (summary.created, summary.failed) == (35, 2)
    failed = {key: error for key, action, error, *_ in setup.audit() if action == "failed"}
    assert failed == {
        # 512 characters, the column's size, the length kept
        "k" * 493 + "...(600 characters)": "not written: its key is 600 characters long; "
        "the audit trail keeps keys of at most 512",
        "k\\0nul": "not written: its key holds a NUL character, which the audit trail cannot store",
    }
    assert setup.rows("SELECT count(*) FROM {thing}") == [(35,)]


def _checkpoint(setup):
    table = f"{setup.schema}.sync_checkpoint" if setup.schema else "sync_checkpoint"
    return setup.rows(f"SELECT cursor, complete FROM {table}")


def test_a_window_run_leaves_the_targets_checkpoint_where_the_incremental_runs_put_it(setup):
    setup.use_tokens()
    first = setup.run()
    before = _checkpoint(setup)
    assert json.loads(before[0][0]) == first.cursor == {"kind": "token", "token": "pos-35"}
    window = setup.run(mode="window", run_id="reload")
    assert window.read == 35
    assert _checkpoint(setup) == before


def test_a_target_loaded_before_it_kept_checkpoints_continues_from_the_cursor(setup, caplog):
    first = setup.run()
    setup.change("DELETE FROM {s}sync_checkpoint")  # as a warehouse upgraded from before checkpoints
    setup.feed.put("k0100", name="new", amount=1, modified="2024-05-01T12:00:00")
    with caplog.at_level(logging.INFO, logger="airflow_provider_b1.sync.engine"):
        second = setup.run(first.cursor)
    assert (second.read, second.created) == (1, 1)
    assert "keeps no checkpoint of things yet" in caplog.text
    assert len(_checkpoint(setup)) == 1  # and from now on it does


def test_a_retry_of_an_older_run_never_moves_the_checkpoint_back(setup):
    first = setup.run(run_id="r1")
    setup.feed.put("k0100", name="new", amount=1, modified="2024-05-01T12:00:00")
    second = setup.run(first.cursor, run_id="r2")
    ahead = _checkpoint(setup)
    assert json.loads(ahead[0][0]) == second.cursor
    setup.run(first.cursor, run_id="r1", try_number=2)  # r1 cleared and run again: its window only
    assert _checkpoint(setup) == ahead


def test_an_api_sink_that_fails_half_way_through_a_page_leaves_the_trail_of_what_it_wrote(setup):
    from airflow_provider_b1.sync import Item, Outcome, PartialWrite, Sink

    class Endpoint(Sink):
        """An API: each record is written on its own; the third call of the page fails."""

        system = "api"

        def __init__(self):
            self.stored = {}

        def prepare(self, stream, records):
            return [Item(r["key"], r, None) for r in records]

        def write(self, stream, items, page):
            page.turn()
            written = {}
            for item in items:
                if len(self.stored) == 12:
                    raise PartialWrite(written, ConnectionError("503 from the API"))
                self.stored[item.key] = item.data
                written[item.key] = Outcome(item.key, Action.CREATED)
            return written

    endpoint = Endpoint()  # it does not fork: one writer, whatever is asked
    with pytest.raises(ConnectionError, match="503"):
        setup.run(sink=endpoint, writers=2)
    assert len(endpoint.stored) == 12
    created = [key for key, action, *_ in setup.audit() if action == "created"]
    assert sorted(created) == sorted(endpoint.stored)  # every record the API took has its trail


def test_an_api_sink_writes_pages_side_by_side_and_a_later_page_keeps_its_trail_when_an_earlier_fails(setup):
    """Writers of an API (a session each) take pages at once. When an earlier page fails, what a
    later page already wrote stays in the API with its trail; the cursor stays before the failed
    page, and the next run writes it and finds the later page's records there already."""
    from airflow_provider_b1.sync import Item, Outcome, Sink

    stored: dict[str, dict] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(2, timeout=10)
    fail = threading.Event()
    fail.set()  # the first page's first write fails, once the second page is written

    class Endpoint(Sink):
        system = "api"
        page_limit = 5  # the feed's pages of 10 are written in parts of 5

        def __init__(self, name):
            self.name = name
            self.forks = []

        def prepare(self, stream, records):
            return [Item(r["key"], r, None) for r in records]

        def write(self, stream, items, page):
            if page.number == 0 and fail.is_set():
                barrier.wait()  # page 1 is in the other writer at the same time
                barrier.wait()  # ... and has written its records
                fail.clear()
                raise ConnectionError("503 from the API")
            outcomes = {}
            with lock:
                for item in items:
                    found = item.key in stored
                    stored[item.key] = item.data
                    outcomes[item.key] = Outcome(
                        item.key, Action.UNCHANGED if found else Action.CREATED, None, None, self.name
                    )
            if page.number == 1 and fail.is_set():
                barrier.wait()
                barrier.wait()
            return outcomes

        def fork(self):
            another = Endpoint(f"session {len(self.forks) + 1}")
            self.forks.append(another)
            return another

    first = Endpoint("session 0")
    with pytest.raises(ConnectionError, match="503"):
        setup.run(sink=first, writers=2)
    assert len(first.forks) == 1
    created = sorted(key for key, action, *_ in setup.audit() if action == "created")
    assert created == sorted(stored) == [f"k{i:04d}" for i in range(5, 10)]  # page 1, with its trail
    assert setup.trail.checkpoint(setup.flow.name, "things") is None  # the cursor stays before page 0
    summary = setup.run(sink=Endpoint("session 0"), writers=2)
    assert summary.failed == 0
    assert sorted(stored) == sorted(setup.feed.records)
    actions: dict[str, list[str]] = {}
    for key, action, *_ in setup.audit():
        actions.setdefault(key, []).append(action)
    assert all(a.count("created") == 1 for a in actions.values())  # each record created once
    assert actions["k0005"] == ["created", "unchanged"]
