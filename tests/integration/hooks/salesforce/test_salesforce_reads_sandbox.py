"""Salesforce reads against the sandbox over HTTPS: query paging, record shapes, Bulk API 2.0 extracts, look-ups."""

from __future__ import annotations

import pytest

from airflow_provider_b1.hooks.salesforce import SalesforceNotFoundError


def _walk(value):
    if isinstance(value, dict):
        yield value
        for inner in value.values():
            yield from _walk(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _walk(inner)


def test_query_pages_follow_next_records_url_until_done(sandbox, make_hook):
    hook = make_hook()
    pages = list(
        hook.query_pages("SELECT Id, Name, AccountNumber, SAP_Card_Code__c FROM Account ORDER BY Id")
    )
    assert [len(p) for p in pages] == [25, 15]  # the sandbox's default batch is 25
    ids = [r["Id"] for p in pages for r in p]
    assert sorted(ids) == sorted(r["Id"] for r in sandbox.truth("Account"))
    assert all("attributes" not in r for p in pages for r in p)
    assert pages[0][0]["AccountNumber"].startswith("C")
    calls = sandbox.stats()["calls"]
    assert (calls["query"], calls["query_more"]) == (1, 1)


def test_a_batch_size_asks_salesforce_for_bigger_pages(sandbox, make_hook):
    pages = list(make_hook(batch_size=200).query_pages("SELECT Id FROM Account"))
    assert [len(p) for p in pages] == [40]
    assert "query_more" not in sandbox.stats()["calls"]


def test_parents_and_child_queries_keep_their_nesting_without_attributes(sandbox, make_hook):
    hook = make_hook()
    soql = (
        "SELECT Id, Name, Account.AccountNumber, "
        "(SELECT Id, Quantity, UnitPrice, Product2.ProductCode FROM OpportunityLineItems) "
        "FROM Opportunity"
    )
    records = [r for page in hook.query_pages(soql) for r in page]
    assert len(records) == 80
    with_lines = next(r for r in records if r["OpportunityLineItems"])
    assert with_lines["Account"]["AccountNumber"].startswith("C")
    line = with_lines["OpportunityLineItems"]["records"][0]
    assert line["Product2"]["ProductCode"].startswith("A")
    assert not any("attributes" in d for d in _walk(records))


def test_query_all_pages_read_deleted_records_too(sandbox, make_hook):
    hook = make_hook()
    gone = sandbox.truth("Account")[0]["Id"]
    sandbox.control("POST", "edit", {"object": "Account", "id": gone, "action": "delete"})
    live = {r["Id"] for p in hook.query_pages("SELECT Id FROM Account") for r in p}
    every = {r["Id"]: r for p in hook.query_all_pages("SELECT Id, IsDeleted FROM Account") for r in p}
    assert gone not in live
    assert every[gone]["IsDeleted"] is True
    assert len(every) == len(live) + 1


def test_count_is_one_call(sandbox, make_hook):
    hook = make_hook()
    assert hook.count("SELECT COUNT() FROM Account") == 40
    assert hook.count("SELECT Id FROM Opportunity WHERE IsWon = true") == sum(
        1 for r in sandbox.truth("Opportunity") if r["IsWon"]
    )
    assert sandbox.stats()["calls"]["query"] == 2


def test_a_bulk_extract_gives_the_records_the_rest_api_gives(sandbox, make_hook):
    hook = make_hook()
    soql = "SELECT Id, Name, IsWon, Amount, Probability, CloseDate, LastModifiedDate, Account.AccountNumber FROM Opportunity"
    rest = sorted((r for p in hook.query_pages(soql) for r in p), key=lambda r: r["Id"])
    for record in rest:  # a CSV cannot tell a missing parent from one with empty fields
        record["Account"] = record["Account"] or {"AccountNumber": None}
    pages = list(hook.bulk_query_pages(soql, max_records=30))
    bulk = sorted((r for p in pages for r in p), key=lambda r: r["Id"])
    assert [len(p) for p in pages] == [30, 30, 20]  # paged by Sforce-Locator
    assert bulk == rest
    assert isinstance(bulk[0]["IsWon"], bool)
    calls = sandbox.stats()["calls"]
    assert (calls["bulk_query_create"], calls["bulk_query_results"]) == (1, 3)


def test_describe_is_asked_once_per_hook(sandbox, make_hook):
    hook = make_hook()
    first = hook.describe("Account")
    assert hook.describe("account") is first
    assert "SAP_Card_Code__c" in hook.fields_of("Account")
    assert sandbox.stats()["calls"]["describe"] == 1


def test_an_unknown_object_is_not_found(sandbox, make_hook):
    with pytest.raises(SalesforceNotFoundError) as raised:
        make_hook().describe("Nope__c")
    assert raised.value.status == 404
    assert raised.value.error_code == "NOT_FOUND"


def test_get_many_reads_200_ids_a_call_and_leaves_unknown_ids_out(sandbox, make_hook):
    hook = make_hook()
    created = hook.upsert_many(
        "Account",
        "SAP_Card_Code__c",
        [{"SAP_Card_Code__c": f"G{i:04d}", "Name": f"Get {i}"} for i in range(230)],
    )
    ids = [r.id for r in created]
    gone = ids[0]
    sandbox.control("POST", "edit", {"object": "Account", "id": gone, "action": "delete"})
    found = hook.get_many("Account", [*ids, ids[5], ids[7][:15]], ["Name", "SAP_Card_Code__c"])
    assert gone not in found
    assert found[ids[5]] == {"Id": ids[5], "Name": "Get 5", "SAP_Card_Code__c": "G0005"}
    assert found[ids[7][:15]]["Id"] == ids[7]  # also under the 15-character id it was asked by
    assert len({r["Id"] for r in found.values()}) == 229
    assert sandbox.stats()["calls"]["collections_retrieve"] == 2
