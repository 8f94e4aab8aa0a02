"""Pages written side by side on several PostgreSQL connections: reading order still decides.

Two writers each hold a page in an open transaction. What must hold whatever the timing: pages
commit in the order they were read, a record read twice ends as its later copy, partners that
several pages name are inferred once without the writers waiting on each other for ever, and a
writer that fails stops the load without stranding the pages that did commit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import psycopg
import pytest
from wh_records import invoice, postgres_connection

from airflow_provider_b1.sync import Action, Page, Source, SyncWindow, sync_stream
from airflow_provider_b1.sync.engine import CommitOrder, PageAborted
from airflow_provider_b1.utils.sql import Database
from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW
from airflow_provider_b1.warehouse.loader import PostgresLoader

WINDOW = SyncWindow(mode="full", reason="test")
INVOICES = WAREHOUSE_FLOW.stream("Invoices")


class Pages(Source):
    """A source reduced to the pages it yields: the order and repeats a read can produce (a
    record read twice) are what these tests control."""

    system = "sap_b1"

    def __init__(self, pages: Iterable[list[dict]]) -> None:
        self.pages = list(pages)

    def read(self, stream, start, *, until):
        return (Page(page) for page in self.pages)

    def read_keys(self, stream, keys):
        return iter(())


def load(pages: Pages, loader, session, writers: int):
    return sync_stream(WAREHOUSE_FLOW, INVOICES, pages, loader, session, WINDOW, writers=writers)


class RecordingLoader(PostgresLoader):
    """A PostgreSQL loader whose writers note each commit; page ``slow`` takes its time."""

    def __init__(self, conn, schema, *, connect, log, slow=None, fail=None, database=None) -> None:
        super().__init__(conn, schema, connect=connect, database=database)
        self.log, self.slow, self.fail = log, slow, fail
        self._page = None

    def fork(self):
        return RecordingLoader(
            self._connect(),
            self.schema,
            connect=self._connect,
            log=self.log,
            slow=self.slow,
            fail=self.fail,
            database=self.database,
        )

    def rollback(self) -> None:
        super().rollback()
        self._page = None  # its rows are gone: a later commit must not count them

    def _merge(self, spec, mapped):
        first = min(m.key for m in mapped)
        if self.fail is not None and first == self.fail:
            raise psycopg.OperationalError("the connection to the warehouse broke")
        actions = super()._merge(spec, mapped)
        if first == self.slow:
            time.sleep(0.5)  # rows written, not committed: the next page's writer overtakes it
        self._page = first
        return actions

    def commit(self) -> None:
        super().commit()
        if self._page is not None:
            self.log.append(self._page)
            self._page = None


def _run(target, timeout: float = 60.0):
    """Run ``target`` in a thread; a writer waiting for ever fails the test instead of hanging it."""
    outcome = {}

    def body():
        try:
            outcome["value"] = target()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the load did not finish: writers wait on each other"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _recording_loader(pg_database, pg_schema, **kwargs) -> RecordingLoader:
    loader = RecordingLoader(
        postgres_connection(pg_database),
        pg_schema,
        connect=lambda: postgres_connection(pg_database),
        log=[],
        # A database target, as open_loader() makes it: the engine gives it writers side by side.
        database=Database("b1_warehouse_test", "postgres", (pg_database["dsn"],)),
        **kwargs,
    )
    loader.ensure_schema()
    return loader


def _page(first: int, count: int = 20, **overrides) -> list[dict]:
    return [invoice(first + n, lines=2, wide=False, **overrides) for n in range(count)]


def test_commit_order_lets_a_page_through_only_after_every_earlier_page():
    order = CommitOrder()
    passed = []

    def commit(number: int) -> None:
        order.wait(number)
        passed.append(number)
        order.release(number)

    threads = [threading.Thread(target=commit, args=(n,), daemon=True) for n in (3, 1)]
    for thread in threads:
        thread.start()
    order.release(2)  # page 2 committed early: it must not let page 3 pass before page 1
    time.sleep(0.2)
    assert passed == []
    order.release(0)
    for thread in threads:
        thread.join(5)
    assert passed == [1, 3]


def test_no_page_commits_after_a_page_that_failed():
    order = CommitOrder()
    outcome = {}

    def later() -> None:
        try:
            order.wait(2)
            outcome["passed"] = True
        except PageAborted as exc:
            outcome["aborted"] = str(exc)

    thread = threading.Thread(target=later, daemon=True)
    thread.start()
    order.release(0)
    order.fail(1)
    thread.join(5)
    assert outcome == {"aborted": "page 1 failed before page 2 could commit"}


def test_pages_commit_in_reading_order_when_a_later_page_is_written_first(pg_database, pg_schema, session):
    loader = _recording_loader(pg_database, pg_schema, slow=1)
    try:
        pages = Pages([_page(1), _page(21), _page(41), _page(61)])
        summary = _run(lambda: load(pages, loader, session, writers=2))
        assert summary.created == 80
        assert loader.log == [1, 21, 41, 61]
    finally:
        loader.close()


def test_a_record_read_twice_ends_as_its_later_copy(postgres_loader, session):
    first = _page(1)
    later = [invoice(5, lines=3, wide=False, Comments="changed while read"), *_page(100, 5)]
    pages = Pages([first, later, _page(21)])  # the repeat follows at once: both pages could be in flight
    summary = _run(lambda: load(pages, postgres_loader, session, writers=2))
    assert (summary.created, summary.updated) == (45, 1)
    with postgres_loader.conn.cursor() as cur:
        cur.execute(
            f"SELECT raw->>'Comments', (SELECT count(*) FROM {postgres_loader.schema}.fact_sales_invoice_line "
            f"WHERE doc_entry = 5) FROM {postgres_loader.schema}.fact_sales_invoice WHERE doc_entry = 5"
        )
        assert cur.fetchone() == ("changed while read", 3)
    postgres_loader.conn.rollback()
    assert [r["action"] for r in session.trail.history(WAREHOUSE_FLOW.name, "Invoices", 5)] == [
        Action.CREATED,
        Action.UPDATED,
    ]


def test_partners_named_by_pages_in_flight_together_are_inferred_once(postgres_loader, session):
    # Every page names the same three partners the warehouse does not know.
    pages = Pages(
        [
            [invoice(p * 50 + n, lines=1, wide=False, card_code=f"C{n % 3}") for n in range(50)]
            for p in range(8)
        ]
    )
    summary = _run(lambda: load(pages, postgres_loader, session, writers=3))
    assert summary.created == 400
    with postgres_loader.conn.cursor() as cur:
        cur.execute(f"SELECT card_code FROM {postgres_loader.schema}.dim_business_partner WHERE is_inferred")
        assert sorted(r[0] for r in cur.fetchall()) == ["C0", "C1", "C2"]
    postgres_loader.conn.rollback()


def test_a_writer_that_fails_stops_the_load_and_the_committed_pages_keep_their_trail(
    pg_database, pg_schema, session
):
    loader = _recording_loader(pg_database, pg_schema, fail=41)
    try:
        pages = Pages([_page(1), _page(21), _page(41), _page(61), _page(81)])
        with pytest.raises(psycopg.OperationalError, match="broke"):
            _run(lambda: load(pages, loader, session, writers=2))
        committed = set(loader.log)
        assert {1, 21} <= committed
        assert 41 not in committed
        assert not committed & {61, 81}  # no page commits after one that failed
        # Every record of a committed page has its audit row; nothing else has one.
        audited = {
            int(key) for (key,) in session.trail._query(f"SELECT source_key FROM {session.trail.table}", ())
        }
        assert audited == {key for first in committed for key in range(first, first + 20)}
        count, _ = loader.stats(ENTITIES["Invoices"])
        assert count == len(audited)
    finally:
        loader.close()
