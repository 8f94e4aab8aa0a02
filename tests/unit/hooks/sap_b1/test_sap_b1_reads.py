"""Cursor logic and paging safety of the SAP hook's reads, without a server."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest
import requests

from airflow_provider_b1.hooks.sap_b1 import IncrementalRead, ODataNextLinks, SapB1Error, SapB1Hook, SapCursor

CHICAGO = ZoneInfo("America/Chicago")


class _FakeHook:
    """Stands in for the hook: serves fixed pages and a server clock."""

    server_tz = CHICAGO

    def __init__(self, pages, server_now="Wed, 01 May 2024 20:00:00 GMT"):
        self.pages = pages
        self.server_now = server_now
        self.asked: dict = {}

    def _pages(self, entity, *, on_first_response=None, **kwargs):
        self.asked = kwargs
        response = requests.Response()
        response.headers["Date"] = self.server_now
        on_first_response(response)
        yield from self.pages


def _inv(key, date, time_of_day):
    return {"DocEntry": key, "UpdateDate": date, "UpdateTime": time_of_day}


def test_cursor_round_trips_through_primitives():
    cursor = SapCursor("2024-05-01", "13:14:45", (3, 4))
    data = cursor.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert SapCursor.from_dict(data) == cursor


def test_cursor_from_window_start_uses_server_time_zone():
    start = dt.datetime(2024, 5, 1, 18, 30, tzinfo=dt.timezone.utc)
    assert SapCursor.from_datetime(start, CHICAGO) == SapCursor("2024-05-01", "13:30:00")
    assert SapCursor.from_datetime(start, CHICAGO, date_only=True) == SapCursor("2024-05-01")
    with pytest.raises(ValueError, match="aware"):
        SapCursor.from_datetime(dt.datetime(2024, 5, 1), CHICAGO)


def test_incremental_read_filters_by_day_and_drops_what_the_cursor_saw():
    cursor = SapCursor("2024-05-01", "10:00:00", (5,))
    hook = _FakeHook(
        [
            [
                _inv(4, "2024-05-01", "09:59:59"),  # before the cursor
                _inv(5, "2024-05-01", "10:00:00"),  # at the cursor, already seen
                _inv(6, "2024-05-01T00:00:00Z", "10:00:00"),  # at the cursor, new (v2 date form)
            ],
            [_inv(7, "2024-05-01", "11:00:00"), _inv(8, "2024-05-01", "11:00:00")],
        ]
    )
    read = IncrementalRead(hook, "Invoices", cursor, select=["DocTotal"])
    records = [r for page in read for r in page]
    assert [r["DocEntry"] for r in records] == [6, 7, 8]
    assert hook.asked["filter"] == "UpdateDate ge '2024-05-01'"
    assert hook.asked["orderby"] == "DocEntry"
    assert hook.asked["select"] == "DocTotal,DocEntry,UpdateDate,UpdateTime"
    assert read.cursor == SapCursor("2024-05-01", "11:00:00", (7, 8))
    assert (read.read, read.new) == (5, 3)


@pytest.mark.parametrize("raw", [False, True], ids=["dicts", "encoded"])
def test_odd_stamps_and_records_that_are_not_objects_reach_the_caller_without_stopping_the_read(raw):
    import msgspec

    page = [
        _inv(1, "2024-05-01", "PT11H5M0S"),  # an OData v4 duration
        _inv(2, "2024-05-01", "not a time"),  # counts as the start of its day
        "not an object",  # no stamp at all: kept, for the loader to refuse
        _inv(3, "2024-05-01", "9:5:7"),
    ]
    if raw:
        page = [msgspec.json.encode(r) for r in page]
    read = IncrementalRead(_FakeHook([page]), "Invoices", None, raw=raw)
    records = [r for p in read for r in p]
    assert len(records) == 4
    assert read.cursor == SapCursor("2024-05-01", "11:05:00", (1,))


def test_nothing_new_keeps_the_cursor_and_same_stamp_merges_seen_keys():
    cursor = SapCursor("2024-05-01", "10:00:00", (5,))
    read = IncrementalRead(_FakeHook([[_inv(5, "2024-05-01", "10:00:00")]]), "Invoices", cursor)
    assert [r for p in read for r in p] == []
    assert read.cursor == cursor
    read = IncrementalRead(
        _FakeHook([[_inv(5, "2024-05-01", "10:00:00"), _inv(9, "2024-05-01", "10:00:00")]]),
        "Invoices",
        cursor,
    )
    assert [r["DocEntry"] for p in read for r in p] == [9]
    assert read.cursor == SapCursor("2024-05-01", "10:00:00", (5, 9))


def test_cursor_never_passes_the_server_clock_so_late_writes_are_read_again():
    # Server clock 15:00:00 Chicago; a record stamped later (a write during the read) is
    # delivered now and again next time rather than risking a gap.
    hook = _FakeHook([[_inv(1, "2024-05-01", "14:00:00"), _inv(2, "2024-05-01", "14:59:58")]])
    read = IncrementalRead(hook, "Invoices", None)
    assert len([r for p in read for r in p]) == 2
    assert read.cursor == SapCursor("2024-05-01", "14:59:55", ())
    assert hook.asked["filter"] is None
    again = IncrementalRead(_FakeHook([[_inv(2, "2024-05-01", "14:59:58")]]), "Invoices", read.cursor)
    assert [r["DocEntry"] for p in again for r in p] == [2]


def test_until_is_exclusive_and_added_to_the_filter():
    until = dt.datetime(2024, 5, 1, 17, 0, tzinfo=dt.timezone.utc)  # 12:00 Chicago
    hook = _FakeHook([[_inv(1, "2024-05-01", "11:59:59"), _inv(2, "2024-05-01", "12:00:00")]])
    read = IncrementalRead(hook, "Invoices", SapCursor("2024-04-30", "00:00:00"), until=until)
    assert [r["DocEntry"] for p in read for r in p] == [1]
    assert hook.asked["filter"] == "UpdateDate ge '2024-04-30' and UpdateDate le '2024-05-01'"


def test_date_only_entities_use_a_date_cursor_that_stops_at_the_last_complete_day():
    pages = [
        [
            {"JdtNum": 1, "UpdateDate": "2024-04-29"},
            {"JdtNum": 2, "UpdateDate": "2024-04-30"},
            {"JdtNum": 3, "UpdateDate": "2024-05-01"},  # today on the server: may still change
        ]
    ]
    read = IncrementalRead(_FakeHook(pages), "JournalEntries", SapCursor("2024-04-29", None, (1,)))
    assert [r["JdtNum"] for p in read for r in p] == [2, 3]
    assert read.cursor == SapCursor("2024-04-30", None, (2,))


def test_entities_without_update_stamp_are_read_in_full():
    hook = _FakeHook([[{"Code": "1"}, {"Code": "2"}]])
    read = IncrementalRead(hook, "ChartOfAccounts", None)
    assert len([r for p in read for r in p]) == 2
    assert read.cursor is None


# -- paging safety on the real hook with a stubbed transport --------------------------------------


@pytest.fixture
def hook(sap_connection, tmp_path):
    sap_connection("https://sap.example:50000/b1s/v1")
    return SapB1Hook(session_cache_dir=str(tmp_path))


def _stub(hook, monkeypatch, documents):
    calls = []

    def fake_call(method, target, **kwargs):
        calls.append((target, kwargs.get("headers")))
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(documents[len(calls) - 1]).encode()
        return response

    monkeypatch.setattr(hook, "_call", fake_call)
    return calls


def test_next_links_are_followed_exactly_as_given(hook, monkeypatch):
    calls = _stub(
        hook,
        monkeypatch,
        [
            {"value": [{"a": 1}], "odata.nextLink": "Invoices?$skip=1&$filter=A eq 'x'"},
            {"value": [{"a": 2}], "@odata.nextLink": "/b1s/v1/Invoices?$skip=2"},
            {"value": [{"a": 3}]},
        ],
    )
    pages = list(hook.iter_pages("Invoices", filter="A eq 'x'", page_size=1))
    assert pages == [[{"a": 1}], [{"a": 2}], [{"a": 3}]]
    assert calls[0][0] == "https://sap.example:50000/b1s/v1/Invoices?$filter=A%20eq%20'x'"
    assert calls[1][0] == "https://sap.example:50000/b1s/v1/Invoices?$skip=1&$filter=A eq 'x'"
    assert calls[2][0] == "https://sap.example:50000/b1s/v1/Invoices?$skip=2"
    assert all(headers == {"Prefer": "odata.maxpagesize=1"} for _, headers in calls)


def test_a_next_link_seen_twice_stops_the_read(hook, monkeypatch):
    _stub(
        hook,
        monkeypatch,
        [
            {"value": [{"a": 1}], "odata.nextLink": "Invoices?$skip=1"},
            {"value": [{"a": 2}], "odata.nextLink": "Invoices?$skip=2"},
            {"value": [{"a": 3}], "odata.nextLink": "Invoices?$skip=1"},
        ],
    )
    with pytest.raises(SapB1Error, match="same next link twice"):
        list(hook.iter_pages("Invoices"))


def test_empty_pages_with_next_links_stop_the_read(hook, monkeypatch):
    _stub(hook, monkeypatch, [{"value": [], "odata.nextLink": f"Invoices?$skip={i}"} for i in range(5)])
    with pytest.raises(SapB1Error, match="empty pages"):
        list(hook.iter_pages("Invoices"))


def test_raw_pages_hold_each_record_as_bytes_exactly_as_sent(hook, monkeypatch):
    indented = b'{\n\t"value" : [\n\t\t{"a" : 1,  "b" : "x"},\n\t\t{"a" : 2}\n\t]\n}'

    def fake_call(method, target, **kwargs):
        response = requests.Response()
        response.status_code = 200
        response._content = indented
        return response

    monkeypatch.setattr(hook, "_call", fake_call)
    (page,) = list(hook.iter_pages("Invoices", raw=True))
    assert page == [b'{"a" : 1,  "b" : "x"}', b'{"a" : 2}']
    assert all(type(record) is bytes for record in page)


# -- the OData next-link paginator -----------------------------------------------------------------


def _reply(body: bytes) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = body
    return response


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ('"odata.nextLink": "Invoices?$skip=2"', "https://h/b1s/v1/Invoices?$skip=2"),
        ('"@odata.nextLink": "/b1s/v2/Invoices?$skip=2"', "https://h/b1s/v2/Invoices?$skip=2"),
        (
            '"@odata.nextLink": "https://other:50000/b1s/v2/Invoices?$skip=2"',
            "https://other:50000/b1s/v2/Invoices?$skip=2",
        ),
    ],
    ids=["v1 relative", "v2 absolute path", "v2 full URL"],
)
def test_next_links_of_both_versions_resolve_against_the_service_root_as_given(link, expected):
    base = "https://h/b1s/v2/" if "v2" in expected else "https://h/b1s/v1/"
    page = ODataNextLinks(base).read(_reply(b'{"value": [{"a": 1}], ' + link.encode() + b"}"))
    assert page.next == expected
    assert not page.empty
    assert bytes(page.content) == b'[{"a": 1}]'


def test_a_page_without_records_or_a_link_is_empty_and_last():
    for body in (b'{"value": [ \n ]}', b"{}", b""):
        page = ODataNextLinks("https://h/b1s/v2/").read(_reply(body))
        assert page.empty
        assert page.next is None


def test_a_number_beyond_a_double_does_not_fail_the_whole_page():
    from airflow_provider_b1.hooks.sap_b1.reads import decode_json

    assert decode_json(b'{"value": [{"DocTotal": 1e309}, {"DocTotal": 2.5}]}') == {
        "value": [{"DocTotal": float("inf")}, {"DocTotal": 2.5}]
    }
