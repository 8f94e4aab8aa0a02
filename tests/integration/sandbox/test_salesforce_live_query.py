"""SOQL against the Salesforce sandbox with simple-salesforce: batches and ``nextRecordsUrl``,
parent fields and child subqueries as Salesforce nests them, COUNT, queryAll, and the errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest


@pytest.fixture
def org(salesforce_sandbox) -> Iterator:
    yield salesforce_sandbox
    salesforce_sandbox.restore()


@pytest.fixture
def sf(org) -> Iterator[Salesforce]:
    http = requests.Session()
    http.verify = org.ca_path
    http.trust_env = False
    token = org.token()
    yield Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], version="62.0", session=http
    )
    http.close()


def test_query_pages_by_the_default_batch_and_query_more_follows(sf, org):
    first = sf.query("SELECT Id, Name FROM Account ORDER BY Name")
    assert first["totalSize"] == 40
    assert first["done"] is False
    assert len(first["records"]) == 25
    assert first["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    assert first["nextRecordsUrl"].endswith("-25")
    second = sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert second["done"] is True
    assert "nextRecordsUrl" not in second
    names = [r["Name"] for r in first["records"] + second["records"]]
    assert names == sorted(names, key=str.casefold)
    assert {r["Id"] for r in first["records"] + second["records"]} == {r["Id"] for r in org.truth("Account")}
    # The cursor is gone once read to the end.
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert caught.value.content[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_batch_size_header_is_honoured_within_200_to_2000(sf):
    reply = sf.query("SELECT Id FROM Opportunity", headers={"Sforce-Query-Options": "batchSize=200"})
    assert reply["done"] is True
    assert len(reply["records"]) == reply["totalSize"] == 80


def test_query_all_collects_every_page(sf, org):
    result = sf.query_all("SELECT Id, StageName, IsWon, IsClosed FROM Opportunity")
    assert result["totalSize"] == 80
    assert org.stats()["calls"]["query_more"] == 3
    for record in result["records"]:
        assert record["attributes"]["type"] == "Opportunity"
        assert record["attributes"]["url"] == f"/services/data/v62.0/sobjects/Opportunity/{record['Id']}"
        assert len(record["Id"]) == 18
        assert record["Id"].startswith("006")
        assert record["IsWon"] == (record["StageName"] == "Closed Won")
        assert record["IsClosed"] == record["StageName"].startswith("Closed")


def test_parent_fields_are_nested_or_null(sf, org):
    accounts = {a["Id"]: a for a in org.truth("Account")}
    records = sf.query_all("SELECT Id, AccountId, Account.AccountNumber, Account.Name FROM Opportunity")[
        "records"
    ]
    with_parent = [r for r in records if r["AccountId"]]
    assert with_parent
    for r in with_parent:
        parent = r["Account"]
        assert list(parent) == ["attributes", "AccountNumber", "Name"]
        assert parent["attributes"]["type"] == "Account"
        assert parent["AccountNumber"] == accounts[r["AccountId"]]["AccountNumber"]
    for r in records:
        if not r["AccountId"]:
            assert r["Account"] is None


def test_child_subqueries_list_line_items_or_null(sf, org):
    lines = org.truth("OpportunityLineItem")
    products = {p["Id"]: p["ProductCode"] for p in org.truth("Product2")}
    by_opp: dict[str, list] = {}
    for line in lines:
        by_opp.setdefault(line["OpportunityId"], []).append(line)
    records = sf.query_all(
        "SELECT Id, Amount, (SELECT Id, Quantity, UnitPrice, TotalPrice, Product2.ProductCode "
        "FROM OpportunityLineItems ORDER BY SortOrder) FROM Opportunity"
    )["records"]
    assert any(r["OpportunityLineItems"] is None for r in records)
    for r in records:
        children = r["OpportunityLineItems"]
        if children is None:
            assert r["Id"] not in by_opp
            continue
        assert children["done"] is True
        assert children["totalSize"] == len(children["records"]) == len(by_opp[r["Id"]])
        assert r["Amount"] == pytest.approx(sum(c["TotalPrice"] for c in children["records"]))
        for child in children["records"]:
            assert child["attributes"]["type"] == "OpportunityLineItem"
            assert child["TotalPrice"] == pytest.approx(child["Quantity"] * child["UnitPrice"], abs=0.01)
            assert child["Product2"]["ProductCode"] in products.values()
            assert child["Product2"]["ProductCode"].startswith("A0")


def test_where_filters_and_order_by_with_nulls_and_limit_offset(sf, org):
    truth = org.truth("Account")
    known = sorted(a["AccountNumber"] for a in truth if a["AccountNumber"] and a["AccountNumber"] < "C09")
    reply = sf.query(
        "SELECT AccountNumber FROM Account WHERE AccountNumber LIKE 'c0%' AND (NOT AccountNumber LIKE 'C09%') "
        "ORDER BY AccountNumber ASC LIMIT 5 OFFSET 2"
    )
    assert [r["AccountNumber"] for r in reply["records"]] == known[2:7]
    nulls_last = sf.query_all("SELECT AccountNumber FROM Account ORDER BY AccountNumber DESC NULLS LAST")[
        "records"
    ]
    values = [r["AccountNumber"] for r in nulls_last]
    missing = sum(1 for a in truth if a["AccountNumber"] is None)
    assert missing
    assert values[-missing:] == [None] * missing
    in_list = sf.query(
        f"SELECT Id FROM Account WHERE AccountNumber IN ('{known[0]}', '{known[1]}', 'C77777')"
    )
    assert in_list["totalSize"] == 2
    not_in = sf.query(f"SELECT COUNT() FROM Account WHERE AccountNumber NOT IN ('{known[0]}')")
    assert not_in["totalSize"] == 39


def test_datetime_and_date_literals_in_every_spelling(sf, org):
    stamps = sorted(a["SystemModstamp"] for a in org.truth("Account"))
    middle = stamps[20]  # 2024-05-01T12:00:00.000+0000
    expected = sum(1 for s in stamps if s > middle)
    day, time_ = middle[:10], middle[11:19]
    for literal in (f"{day}T{time_}.{middle[20:23]}+0000", f"{day}T{time_}.{middle[20:23]}Z"):
        assert (
            sf.query(f"SELECT COUNT() FROM Account WHERE SystemModstamp > {literal}")["totalSize"] == expected
        )
    # Whole seconds with a colon in the offset: every stamp after the start of that second.
    after_second = sum(
        1 for s in stamps if s[:19] > middle[:19] or (s[:19] == middle[:19] and s[20:23] != "000")
    )
    reply = sf.query(f"SELECT COUNT() FROM Account WHERE SystemModstamp > {day}T{time_}+00:00")
    assert reply["totalSize"] == after_second
    closed = [o for o in org.truth("Opportunity") if o["CloseDate"] < "2100-01-01"]
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE CloseDate < 2100-01-01")["totalSize"] == len(
        closed
    )
    assert sf.query("SELECT COUNT() FROM Opportunity WHERE CreatedDate < TODAY")["totalSize"] == 80


def test_count_forms(sf):
    assert sf.query("SELECT COUNT() FROM Opportunity") == {"totalSize": 80, "done": True, "records": []}
    aggregate = sf.query("SELECT COUNT(Id) FROM Opportunity WHERE IsWon = true")
    assert aggregate["totalSize"] == 1
    row = aggregate["records"][0]
    assert row["attributes"] == {"type": "AggregateResult"}
    assert 0 < row["expr0"] < 80
    aliased = sf.query("SELECT COUNT(Id) won FROM Opportunity WHERE IsWon = true")
    assert aliased["records"][0]["won"] == row["expr0"]


def test_query_all_includes_deleted_records(sf, org):
    victim = org.truth("Account")[0]["Id"]
    sf.Account.delete(victim)
    assert sf.query(f"SELECT Id FROM Account WHERE Id = '{victim}'")["totalSize"] == 0
    found = sf.query_all(
        f"SELECT Id, IsDeleted FROM Account WHERE Id = '{victim[:15]}'", include_deleted=True
    )
    assert found["records"][0]["IsDeleted"] is True


@pytest.mark.parametrize(
    ("soql", "code", "needle"),
    [
        ("SELECT Id FROM Account WHERE", "MALFORMED_QUERY", "unexpected token"),
        ("SELECT Id, Nope__c FROM Account", "INVALID_FIELD", "No such column 'Nope__c' on entity 'Account'"),
        ("SELECT Id FROM Invoice__c", "INVALID_TYPE", "sObject type 'Invoice__c' is not supported"),
        ("SELECT Id FROM Account WHERE Name = 'a' AND Phone = 'b' OR Type = 'c'", "MALFORMED_QUERY", "OR"),
        (
            "SELECT Id FROM Opportunity WHERE CloseDate > '2024-01-01'",
            "MALFORMED_QUERY",
            "must be of type date",
        ),
        ("SELECT Id FROM Account WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: abc"),
        ("SELECT Id, Foo.Name FROM Opportunity", "INVALID_FIELD", "Didn't understand relationship 'Foo'"),
        ("SELECT Id, (SELECT Id FROM Nothings) FROM Account", "INVALID_TYPE", "Nothings"),
    ],
)
def test_bad_soql_is_refused_with_the_real_codes(sf, soql, code, needle):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query(soql)
    error = caught.value.content[0]
    assert error["errorCode"] == code
    assert needle in error["message"]
    assert "ERROR at Row:1:Column:" in error["message"]
