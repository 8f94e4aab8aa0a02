"""The SAP hook's reads against the sandbox over real HTTPS: paging, next links, prefetch, incremental and raw reads."""

from __future__ import annotations

import datetime as dt
import json
import threading

import msgspec
import pytest
from sap_hook_helpers import FAST_RETRIES, keys_digest, read_all

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor
from airflow_provider_b1.utils.params import ParamError


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_reading_10000_invoices_in_pages_of_500_costs_at_most_21_requests_and_one_login(
    sandbox, connect, version
):
    sandbox.reset(invoices=10_000)
    connect(version)
    hook = SapB1Hook()
    keys = read_all(hook, page_size=500)
    stats = sandbox.stats()
    truth = sandbox.truth("Invoices")
    assert len(keys) == len(set(keys)) == truth["count"] == 10_000
    assert keys_digest(keys) == truth["keys_sha256"]
    assert stats["logins"] == 1
    assert stats["requests_total"] <= 21


@pytest.mark.parametrize(("version", "style"), [("v1", "path"), ("v2", "url"), ("v2", "relative")])
def test_next_links_of_every_style_are_followed_as_given(sandbox, connect, version, style):
    connect(version)
    sandbox.config(next_link_style=style)
    keys = read_all(SapB1Hook(), page_size=700)
    assert keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]


def test_prefetching_reader_returns_the_same_records(sandbox, connect):
    connect()
    keys = read_all(SapB1Hook(prefetch=True), page_size=300)
    assert keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]
    assert sandbox.stats()["logins"] == 1


# A task process: imports first (Airflow takes seconds to import), says "ready", waits for
# "go", then reads through the hook. Overlapping the imports keeps the tests fast while the
# reads themselves happen exactly when the test says.


def test_incremental_read_then_nothing_new(sandbox, connect):
    connect()
    hook = SapB1Hook()
    first = hook.read_incremental("Invoices", None, select=["DocTotal"])
    keys = [r["DocEntry"] for page in first for r in page]
    assert keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]
    cursor = SapCursor.from_dict(json.loads(json.dumps(first.cursor.to_dict())))
    second = hook.read_incremental("Invoices", cursor, select=["DocTotal"])
    # Only records stamped within the last seconds of the server clock may come again.
    assert sum(len(page) for page in second) <= len(keys) // 100
    assert second.cursor is not None


def test_raw_reads_yield_the_records_as_sent_with_the_same_cursor(sandbox, connect):
    connect()
    hook = SapB1Hook()
    as_dicts = hook.read_incremental("Invoices", None, select=["DocTotal"], page_size=300)
    dict_records = [r for page in as_dicts for r in page]
    as_sent = hook.read_incremental("Invoices", None, select=["DocTotal"], page_size=300, raw=True)
    raw_records = [r for page in as_sent for r in page]
    assert all(type(r) is bytes for r in raw_records)
    assert [msgspec.json.decode(r) for r in raw_records] == dict_records
    assert as_sent.cursor == as_dicts.cursor
    # From a cursor, the raw read drops what the cursor has seen, as the dict read does.
    again = hook.read_incremental("Invoices", as_dicts.cursor, select=["DocTotal"], raw=True)
    assert [msgspec.json.decode(r) for page in again for r in page] == [
        r for page in hook.read_incremental("Invoices", as_dicts.cursor, select=["DocTotal"]) for r in page
    ]


def test_reads_under_503s_and_resets_return_exactly_the_source(sandbox, connect):
    connect()
    sandbox.faults(error_rate=0.1, reset_rate=0.05, seed=7)
    keys = read_all(SapB1Hook(retry_policy=FAST_RETRIES), page_size=100)
    sandbox.faults()
    truth = sandbox.truth("Invoices")
    assert len(keys) == len(set(keys)) == truth["count"]
    assert keys_digest(keys) == truth["keys_sha256"]


def test_raw_pages_of_iter_pages_are_bytes_exactly_as_the_server_sent_them(sandbox, connect):
    connect()
    hook = SapB1Hook()
    sandbox.config(v2_indent=True)  # as a real v2 server answers: tab-indented, " : " separators
    try:
        raw = [
            r
            for page in hook.iter_pages("Invoices", select="DocEntry,DocTotal", top=50, raw=True)
            for r in page
        ]
    finally:
        sandbox.config(v2_indent=False)
    decoded = [r for page in hook.iter_pages("Invoices", select="DocEntry,DocTotal", top=50) for r in page]
    assert all(type(r) is bytes for r in raw)
    assert [msgspec.json.decode(r) for r in raw] == decoded
    # the server's own bytes, not a re-encoding
    assert all(r.startswith(b"{\n\t\t\t") and b'"DocEntry" : ' in r for r in raw)


def _prefetch_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "sap-b1-prefetch")


def test_a_plain_read_starts_no_background_thread(sandbox, connect):
    connect()
    hook = SapB1Hook()
    before = _prefetch_threads()  # a thread of an earlier test may still be finishing
    during = []
    for page in hook.iter_pages("Invoices", select="DocEntry", page_size=500):
        assert page
        during.append(_prefetch_threads())
    assert len(during) == 4
    assert max(during) <= before
    # the check does see the thread when prefetch is asked for
    prefetching = hook.iter_pages("Invoices", select="DocEntry", page_size=500, prefetch=True)
    next(prefetching)
    assert _prefetch_threads() == before + 1
    prefetching.close()


@pytest.mark.parametrize(
    ("until", "says"),
    [
        ("2024-13-01", "is not a real date"),
        ("yesterday", "is not a date or date-time"),
        (dt.datetime(2024, 3, 1), "has no time zone"),
    ],
)
def test_an_incremental_reads_end_is_parsed_strictly_and_a_naive_one_refused(sandbox, connect, until, says):
    connect()
    with pytest.raises(ParamError, match="until") as refused:
        SapB1Hook().read_incremental("Invoices", None, until=until)
    assert says in str(refused.value)


def test_an_incremental_reads_end_may_be_text_or_an_aware_datetime(sandbox, connect):
    connect()
    hook = SapB1Hook()
    as_text = hook.read_incremental("Invoices", None, select=["DocTotal"], until="2000-01-01T00:00:00Z")
    aware = hook.read_incremental(
        "Invoices", None, select=["DocTotal"], until=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    )
    assert as_text.until == aware.until
    assert sum(len(page) for page in as_text) == 0
