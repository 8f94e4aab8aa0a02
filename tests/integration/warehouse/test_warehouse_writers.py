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

from airflow_provider_b1.sync import Action, SyncWindow
from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.loader import PostgresLoader
from airflow_provider_b1.warehouse.pipeline import CommitOrder, load_entity

WINDOW = SyncWindow(mode="full", reason="test")


class Pages:
    """``read_incremental`` of a hook, reduced to the pages it yields: the order and repeats a
    read can produce (a record read twice) are what these tests control."""

    def __init__(self, pages: Iterable[list[dict]]) -> None:
        self.pages = list(pages)
        self.cursor = None

    def read_incremental(self, entity, cursor, **kwargs):
        return self

    def __iter__(self):
        return iter(self.pages)


class Trail:
    """An audit session that keeps the records it is given, in order."""

    def __init__(self) -> None:
        self.records = []

    def record(self, record) -> None:
        self.records.append(record)


class RecordingLoader(PostgresLoader):
    """A PostgreSQL loader whose writers note each commit; page ``slow`` takes its time."""

    def __init__(self, conn, schema, *, connect, log, slow=None, fail=None) -> None:
        super().__init__(conn, schema, connect=connect)
        self.log, self.slow, self.fail = log, slow, fail

    def open_another(self):
        return RecordingLoader(
            self._connect(), self.schema, connect=self._connect, log=self.log, slow=self.slow, fail=self.fail
        )

    def _merge(self, spec, mapped):
        first = min(m.key for m in mapped)
        if self.fail is not None and first == self.fail:
            raise psycopg.OperationalError("the connection to the warehouse broke")
        actions = super()._merge(spec, mapped)
        if first == self.slow:
            time.sleep(0.5)  # rows written, not committed: the next page's writer overtakes it
        self._page = first
        return actions

    def _commit(self) -> None:
        super()._commit()
        self.log.append(self._page)


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
    order.release(2)  # page 2 failed before its turn: it must not hold page 3 back, nor let it pass
    time.sleep(0.2)
    assert passed == []
    order.release(0)
    for thread in threads:
        thread.join(5)
    assert passed == [1, 3]


def test_pages_commit_in_reading_order_when_a_later_page_is_written_first(pg_database, pg_schema):
    loader = _recording_loader(pg_database, pg_schema, slow=1)
    try:
        pages = Pages([_page(1), _page(21), _page(41), _page(61)])
        summary = _run(lambda: load_entity(pages, loader, Trail(), "Invoices", WINDOW, writers=2))
        assert summary.created == 80
        assert loader.log == [1, 21, 41, 61]
    finally:
        loader.close()


def test_a_record_read_twice_ends_as_its_later_copy(postgres_loader):
    first = _page(1)
    later = [invoice(5, lines=3, wide=False, Comments="changed while read"), *_page(100, 5)]
    trail = Trail()
    pages = Pages([first, later, _page(21)])  # the repeat follows at once: both pages could be in flight
    summary = _run(lambda: load_entity(pages, postgres_loader, trail, "Invoices", WINDOW, writers=2))
    assert (summary.created, summary.updated) == (45, 1)
    with postgres_loader.conn.cursor() as cur:
        cur.execute(
            f"SELECT raw->>'Comments', (SELECT count(*) FROM {postgres_loader.schema}.fact_sales_invoice_line "
            f"WHERE doc_entry = 5) FROM {postgres_loader.schema}.fact_sales_invoice WHERE doc_entry = 5"
        )
        assert cur.fetchone() == ("changed while read", 3)
    postgres_loader.conn.rollback()
    assert [r.action for r in trail.records if r.source_key == "5"] == [Action.CREATED, Action.UPDATED]


def test_partners_named_by_pages_in_flight_together_are_inferred_once(postgres_loader):
    # Every page names the same three partners the warehouse does not know.
    pages = Pages(
        [
            [invoice(p * 50 + n, lines=1, wide=False, card_code=f"C{n % 3}") for n in range(50)]
            for p in range(8)
        ]
    )
    summary = _run(lambda: load_entity(pages, postgres_loader, Trail(), "Invoices", WINDOW, writers=3))
    assert summary.created == 400
    with postgres_loader.conn.cursor() as cur:
        cur.execute(f"SELECT card_code FROM {postgres_loader.schema}.dim_business_partner WHERE is_inferred")
        assert sorted(r[0] for r in cur.fetchall()) == ["C0", "C1", "C2"]
    postgres_loader.conn.rollback()


def test_a_writer_that_fails_stops_the_load_and_the_committed_pages_keep_their_trail(pg_database, pg_schema):
    loader = _recording_loader(pg_database, pg_schema, fail=41)
    trail = Trail()
    try:
        pages = Pages([_page(1), _page(21), _page(41), _page(61), _page(81)])
        with pytest.raises(psycopg.OperationalError, match="broke"):
            _run(lambda: load_entity(pages, loader, trail, "Invoices", WINDOW, writers=2))
        committed = set(loader.log)
        assert {1, 21} <= committed
        assert 41 not in committed
        # Every record of a committed page has its audit row; nothing else has one.
        audited = {int(r.source_key) for r in trail.records}
        assert audited == {key for first in committed for key in range(first, first + 20)}
        count, _ = loader.stats(ENTITIES["Invoices"])
        assert count == len(audited)
    finally:
        loader.close()
