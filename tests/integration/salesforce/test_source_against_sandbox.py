"""The flow's Salesforce source against the Salesforce sandbox, through the real hook.

The fixture's org answers queries in batches of 25 records when the client asks for no batch
size (the ``source`` fixture), so 40 accounts come in two pages through ``nextRecordsUrl``. Every
write to the org takes a stamp from one millisecond clock, and one write call stamps all of its
records alike, as Salesforce does: records sharing a ``SystemModstamp`` come from one sObject
Collections call here.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from salesforce_flow_helpers import MAPPING

from airflow_provider_b1.salesforce.flow import BATCH, reads
from airflow_provider_b1.sandbox.salesforce.ids import make_id
from airflow_provider_b1.sources.salesforce import IDS_PER_QUERY, SalesforceSource, parse_stamp
from airflow_provider_b1.sync.cursors import KeysetCursor
from airflow_provider_b1.sync.flows import Stream

ACCOUNTS = Stream("Account")
OPPORTUNITIES = Stream("Opportunity")


def position(record: dict[str, Any]) -> tuple[str, str]:
    return (record["SystemModstamp"], record["Id"])


def in_order(records: list[dict[str, Any]]) -> list[str]:
    """Ids in the source's order: ``(SystemModstamp, Id)``."""
    return [r["Id"] for r in sorted(records, key=position)]


def ids_read(source, stream, start, until=None) -> list[str]:
    return [r["Id"] for page in source.read(stream, start, until=until) for r in page.records]


def calls(org, kind: str) -> int:
    return org.stats()["calls"].get(kind, 0)


def early_in_a_second(share: float = 0.3) -> None:
    """Wait for the start of a second, so that a few quick writes share it."""
    while time.time() % 1 > share:
        time.sleep(0.01)


def stamp(org, obj: str, record_id: str) -> str:
    return next(r["SystemModstamp"] for r in org.truth(obj) if r["Id"] == record_id)


def test_pages_stream_through_next_records_url_in_keyset_order(org, source):
    accounts = org.truth("Account")
    pages = source.read(ACCOUNTS, None, until=None)
    first = next(pages)
    # Nothing is read ahead: the second batch is asked for once the first page is taken.
    assert (calls(org, "query"), calls(org, "query_more")) == (1, 0)
    rest = list(pages)
    assert (calls(org, "query"), calls(org, "query_more")) == (1, 1)
    read = [first, *rest]
    assert [len(p.records) for p in read] == [25, 15]
    assert [r["Id"] for p in read for r in p.records] == in_order(accounts)
    for page in read:
        assert page.resumable
        assert page.reached == KeysetCursor(position(page.records[-1]))
    # The mapping's fields, as Salesforce prints them, without the records' attributes.
    record = read[0].records[0]
    truth = next(a for a in accounts if a["Id"] == record["Id"])
    assert record == {name: truth[name] for name in record}
    assert set(record) >= {"Id", "SystemModstamp", "AccountNumber", *(f.salesforce for f in MAPPING.fields)}
    assert "attributes" not in record


def test_won_opportunities_come_with_their_account_number_and_products(org, source):
    won = [o for o in org.truth("Opportunity") if o["IsWon"]]
    pages = list(source.read(OPPORTUNITIES, None, until=None))
    assert [len(p.records) for p in pages] == [25, len(won) - 25]
    records = [r for p in pages for r in p.records]
    assert [r["Id"] for r in records] == in_order(won)
    numbers = {a["Id"]: a["AccountNumber"] for a in org.truth("Account")}
    items: dict[str, list[str]] = {}
    for item in org.truth("OpportunityLineItem"):
        items.setdefault(item["OpportunityId"], []).append(item["Id"])
    for record in records:
        assert record["Account"]["AccountNumber"] == numbers[record["AccountId"]]
        children = record["OpportunityLineItems"]
        assert sorted(i["Id"] for i in (children or {}).get("records", [])) == sorted(
            items.get(record["Id"], [])
        )
    assert any(r["OpportunityLineItems"] for r in records)
    assert any(r["OpportunityLineItems"] is None for r in records)


def test_the_flow_s_batch_size_asks_salesforce_for_pages_of_200(org, salesforce):
    source = SalesforceSource(salesforce, reads(MAPPING), batch_size=BATCH, bulk_threshold=None)
    assert [len(p.records) for p in source.read(ACCOUNTS, None, until=None)] == [40]
    assert (calls(org, "query"), calls(org, "query_more")) == (1, 0)


def test_a_read_resumes_right_after_any_page(org, source):
    pages = list(source.read(ACCOUNTS, None, until=None))
    everything = [r["Id"] for p in pages for r in p.records]
    assert len(pages) == 2
    for index, page in enumerate(pages):
        later = [r["Id"] for p in pages[index + 1 :] for r in p.records]
        assert ids_read(source, ACCOUNTS, page.reached) == later
    assert everything == in_order(org.truth("Account"))


def test_records_sharing_the_cursor_s_stamp_are_neither_lost_nor_read_twice(org, salesforce, source):
    accounts = in_order(org.truth("Account"))
    before, batch, after = accounts[0], accounts[1:21], accounts[21]
    # The three writes must fall in one second; a pause of the machine between them (a busy CI
    # runner) can push the last into the next, so the writes are made again, at most three times.
    for attempt in range(3):
        early_in_a_second()
        org.edit("Account", before, Description=f"edited alone, first ({attempt})")
        results = salesforce.update_many(
            "Account", [{"Id": i, "Description": f"edited together ({attempt})"} for i in batch]
        )
        assert all(r.success for r in results)
        org.edit("Account", after, Description=f"edited alone, last ({attempt})")
        stamps = {i: stamp(org, "Account", i) for i in [before, *batch, after]}
        if stamps[before][:19] == stamps[after][:19]:
            break
    shared = stamps[batch[0]]
    # One call, one stamp; the three writes fall in one second, each in a millisecond of its own.
    assert {stamps[i] for i in batch} == {shared}
    assert stamps[before] < shared < stamps[after]
    assert stamps[before][:19] == stamps[after][:19], "the writes took over a second"
    together = sorted(batch)

    # Positions inside the shared millisecond: exactly the records after each one.
    for index in (0, 5, 19):
        cursor = KeysetCursor((shared, together[index]))
        assert ids_read(source, ACCOUNTS, cursor) == [*together[index + 1 :], after]
    # The millisecond before (same second), and the one after.
    assert ids_read(source, ACCOUNTS, KeysetCursor((stamps[before], before))) == [*together, after]
    assert ids_read(source, ACCOUNTS, KeysetCursor((shared, together[-1]))) == [after]

    # Page by page, a page boundary falling inside the shared millisecond: resuming after each
    # page reads every record once.
    pages = list(source.read(ACCOUNTS, None, until=None))
    assert [len(p.records) for p in pages] == [25, 15]
    assert pages[0].reached.position[0] == shared  # the boundary splits the records of one call
    resumed = ids_read(source, ACCOUNTS, pages[0].reached)
    assert [r["Id"] for r in pages[0].records] + resumed == in_order(org.truth("Account"))
    assert resumed == [r["Id"] for r in pages[1].records]


def test_until_bounds_the_read_at_a_whole_second(org, source):
    early = org.edit("Account", None, Name="Before The Bound")["id"]
    bound = parse_stamp(stamp(org, "Account", early)).replace(microsecond=0) + dt.timedelta(seconds=1)
    while dt.datetime.now(dt.timezone.utc) < bound:
        time.sleep(0.02)
    late = org.edit("Account", None, Name="After The Bound")["id"]
    read = ids_read(source, ACCOUNTS, None, until=bound)
    assert early in read
    assert late not in read
    assert read == [i for i in in_order(org.truth("Account")) if i != late]
    # From a cursor as well: the bound holds with a start.
    start = source.cursor_at(ACCOUNTS, bound - dt.timedelta(seconds=1))
    assert ids_read(source, ACCOUNTS, start, until=bound) == [early]
    assert ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, bound)) == [late]


def test_two_windows_meeting_inside_a_second_read_every_record_once(org, source):
    early_in_a_second(0.5)
    first = org.edit("Account", None, Name="First In The Second")["id"]
    second = org.edit("Account", None, Name="Second In The Second")["id"]
    stamps = [stamp(org, "Account", first), stamp(org, "Account", second)]
    assert stamps[0][:19] == stamps[1][:19], "the writes took over a second"
    # The windows meet at the second record's stamp: the first holds the first record only.
    meet = parse_stamp(stamps[1])
    since = meet - dt.timedelta(minutes=1)
    window_one = ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, since), until=meet)
    window_two = ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, meet))
    assert window_two == [second]
    assert window_one == [first]


def test_cursor_at_a_moment_reads_what_changed_at_or_after_it(org, source):
    accounts = in_order(org.truth("Account"))
    early_in_a_second(0.5)
    for record_id in accounts[:3]:
        org.edit("Account", record_id, Description="touched")
    moments = [parse_stamp(stamp(org, "Account", i)) for i in accounts[:3]]
    assert ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, moments[0])) == accounts[:3]
    # At the millisecond, even inside the second of an earlier record.
    assert ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, moments[1])) == accounts[1:3]
    assert ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, moments[2])) == accounts[2:3]
    after = moments[2] + dt.timedelta(milliseconds=1)
    assert ids_read(source, ACCOUNTS, source.cursor_at(ACCOUNTS, after)) == []
    # Before every seeded stamp: the whole object.
    assert ids_read(
        source, ACCOUNTS, source.cursor_at(ACCOUNTS, dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc))
    ) == (in_order(org.truth("Account")))


def test_a_cursor_read_of_opportunities_keeps_to_the_won_ones(org, source):
    opportunities = org.truth("Opportunity")
    won = next(o["Id"] for o in opportunities if o["IsWon"])
    lost = next(o["Id"] for o in opportunities if o["IsClosed"] and not o["IsWon"])
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(milliseconds=5)
    org.edit("Opportunity", won, Description="touched")
    org.edit("Opportunity", lost, Description="touched")
    assert ids_read(source, OPPORTUNITIES, source.cursor_at(OPPORTUNITIES, moment)) == [won]


def test_read_keys_reads_by_id_in_chunks_of_200(org, source):
    accounts = [a["Id"] for a in org.truth("Account")]
    absent = [make_id("001", 9_000_000 + n) for n in range(IDS_PER_QUERY)]
    keys = [*accounts, *absent, accounts[0], "", None, "001' OR Name != '"]
    pages = list(source.read_keys(ACCOUNTS, keys))
    read = [r["Id"] for p in pages for r in p.records]
    assert sorted(read) == sorted(accounts)  # each once; absent ids simply missing
    assert all(p.reached is None for p in pages)  # a read by key does not move a cursor
    # 240 distinct ids: two queries; the 40 found come in batches of 25.
    assert (calls(org, "query"), calls(org, "query_more")) == (2, 1)
    assert [len(p.records) for p in pages if p.records] == [25, 15]


def test_read_keys_reads_opportunities_with_the_stream_s_condition(org, source):
    opportunities = org.truth("Opportunity")
    won = [o["Id"] for o in opportunities if o["IsWon"]][:3]
    lost = [o["Id"] for o in opportunities if not o["IsWon"]][:3]
    records = [r for p in source.read_keys(OPPORTUNITIES, [*won, *lost]) for r in p.records]
    assert sorted(r["Id"] for r in records) == sorted(won)
    assert all("OpportunityLineItems" in r and "Account" in r for r in records)


def test_a_large_first_read_goes_through_a_bulk_query_job_with_the_same_records_in_order(org, salesforce):
    """Over the threshold, a first read of accounts is one Bulk API 2.0 query job (one COUNT() to
    decide): the same records, typed and ordered as the query pages give them, each page resumable.
    Opportunities, whose query has a child subquery, stay on query pages; reads from a cursor are
    never counted."""
    rest = SalesforceSource(salesforce, reads(MAPPING), batch_size=200, bulk_threshold=None)
    bulk = SalesforceSource(salesforce, reads(MAPPING), batch_size=200, bulk_threshold=10)
    expected = [r for page in rest.read(ACCOUNTS, None, until=None) for r in page.records]
    before = org.stats()["calls"]
    pages = list(bulk.read(ACCOUNTS, None, until=None))
    after = org.stats()["calls"]
    assert after.get("bulk_query_create", 0) - before.get("bulk_query_create", 0) == 1
    assert after.get("query", 0) - before.get("query", 0) == 1  # the COUNT()
    got = [r for page in pages for r in page.records]
    assert [r["Id"] for r in got] == [r["Id"] for r in expected]
    assert [{k: v for k, v in r.items() if k != "attributes"} for r in got] == [
        {k: v for k, v in r.items() if k != "attributes"} for r in expected
    ]
    assert all(page.resumable for page in pages)
    assert pages[-1].reached == KeysetCursor(position(got[-1]))

    before = org.stats()["calls"]
    list(bulk.read(Stream("Opportunity"), None, until=None))
    list(bulk.read(ACCOUNTS, pages[0].reached, until=None))
    after = org.stats()["calls"]
    assert after.get("bulk_query_create", 0) == before.get("bulk_query_create", 0)
