"""The ServiceTitan source of the sync engine on a stand-in hook: cursors per page, replay by id, window ends."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.hooks.servicetitan import ExportPage
from airflow_provider_b1.sources.servicetitan import ServiceTitanSource
from airflow_provider_b1.sync.cursors import TokenCursor
from airflow_provider_b1.sync.flows import Stream

INVOICES = Stream("invoices", cursor=TokenCursor, target="Invoices")


class StandInHook:
    def __init__(self, pages=(), by_ids=()):
        self.pages = list(pages)
        self.by_ids = list(by_ids)
        self.calls: list[tuple] = []
        self.closed = False

    def iter_export(self, kind, start, *, include_recent_changes=False):
        self.calls.append(("export", kind, start, include_recent_changes))
        yield from self.pages

    def iter_by_ids(self, kind, ids):
        self.calls.append(("ids", kind, list(ids)))
        yield from self.by_ids

    def close(self):
        self.closed = True


def test_each_page_carries_the_continuation_it_reached_and_is_resumable():
    hook = StandInHook(
        [
            ExportPage([{"id": 1}, {"id": 2}], "t1", True),
            ExportPage([{"id": 3}], "t2", True),
            ExportPage([], "t3", False),
        ]
    )
    pages = list(ServiceTitanSource(hook).read(INVOICES, TokenCursor("t0"), until=None))
    assert hook.calls == [("export", "invoices", "t0", False)]
    assert [(list(p.records), p.reached, p.resumable) for p in pages] == [
        ([{"id": 1}, {"id": 2}], TokenCursor("t1"), True),
        ([{"id": 3}], TokenCursor("t2"), True),
        ([], TokenCursor("t3"), True),
    ]


def test_a_first_run_reads_from_the_beginning_and_recent_changes_are_asked_for_when_wanted():
    hook = StandInHook([ExportPage([], "t1", False)])
    list(ServiceTitanSource(hook, include_recent_changes=True).read(INVOICES, None, until=None))
    assert hook.calls == [("export", "invoices", None, True)]


def test_a_window_end_leaves_out_records_modified_at_or_after_it():
    until = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    hook = StandInHook(
        [
            ExportPage(
                [
                    {"id": 1, "modifiedOn": "2024-02-29T23:59:59.9999999Z"},
                    {"id": 2, "modifiedOn": "2024-03-01T00:00:00Z"},
                    {"id": 3},
                ],
                "t1",
                False,
            )
        ]
    )
    (page,) = ServiceTitanSource(hook).read(INVOICES, None, until=until)
    assert [r["id"] for r in page.records] == [1, 3]


def test_replay_reads_the_ids_through_the_lookup_and_skips_keys_that_cannot_be_ids():
    hook = StandInHook(by_ids=[[{"id": 5}], [{"id": 7}]])
    pages = list(ServiceTitanSource(hook).read_keys(INVOICES, ["5", " 7 ", "(no key)", "x1"]))
    assert hook.calls == [("ids", "invoices", ["5", "7"])]
    assert [list(p.records) for p in pages] == [[{"id": 5}], [{"id": 7}]]
    assert all(p.reached is None for p in pages)


def test_the_key_of_a_record_is_its_id():
    source = ServiceTitanSource(StandInHook())
    assert source.key_of(INVOICES, {"id": 42, "referenceNumber": "R-1"}) == 42
    assert source.key_of(INVOICES, b"not a record") is None


def test_a_window_start_is_an_export_from_that_moment():
    moment = dt.datetime(2024, 3, 1, 6, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    cursor = ServiceTitanSource(StandInHook()).cursor_at(INVOICES, moment)
    assert cursor == TokenCursor("2024-03-01T12:00:00Z")


def test_an_unknown_stream_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        list(ServiceTitanSource(StandInHook()).read(Stream("jobs"), None, until=None))


def test_closing_the_source_closes_the_hook():
    hook = StandInHook()
    ServiceTitanSource(hook).close()
    assert hook.closed
