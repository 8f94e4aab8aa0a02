"""The sandbox's SOQL: parsing, binding to the schema, running and printing, without HTTP."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.sandbox.salesforce import soql
from airflow_provider_b1.sandbox.salesforce.data import seed_org
from airflow_provider_b1.sandbox.salesforce.schema import build_schema, parse_datetime
from airflow_provider_b1.sandbox.salesforce.store import Store


@pytest.fixture(scope="module")
def store() -> Store:
    s = Store(build_schema())
    seed_org(
        s, seed=3, accounts=30, opportunities=60, products=20, anchor=dt.date(2025, 6, 1), custom_fields=True
    )
    return s


def run(store: Store, text: str, deleted: bool = False) -> list[dict]:
    query = soql.bind(soql.parse(text), store.schema)
    runner = soql.Runner(store, parse_datetime("2025-06-01T00:00:00Z"), deleted)
    return soql.Printer(runner, "62.0", store.schema).json_rows(query, runner.select(query))


def error(store: Store, text: str) -> soql.SoqlError:
    with pytest.raises(soql.SoqlError) as caught:
        soql.bind(soql.parse(text), store.schema)
    return caught.value


def test_string_literals_with_escapes_and_case_insensitive_equality(store):
    target = next(iter(store.tables["Account"].values()))
    name = target["Name"].upper()
    found = run(store, f"SELECT Id FROM Account WHERE Name = '{name}'")
    assert [r["Id"] for r in found] == [target["Id"]]
    token = soql.tokenize(r"'it\'s a \\ back\nslash'")[0]
    assert token.value == "it's a \\ back\nslash"


def test_keywords_and_field_names_ignore_case_and_print_canonically(store):
    rows = run(
        store, "select id, NAME, account.accountnumber from OPPORTUNITY where ACCOUNTID != null limit 1"
    )
    assert list(rows[0]) == ["attributes", "Id", "Name", "Account"]
    assert list(rows[0]["Account"]) == ["attributes", "AccountNumber"]


def test_and_or_not_with_parentheses(store):
    opps = list(store.tables["Opportunity"].values())
    expected = {
        o["Id"]
        for o in opps
        if (o["StageName"] == "Closed Won" or o["StageName"] == "Closed Lost")
        and not (o["Amount"] or 0) > 20000
    }
    rows = run(
        store,
        "SELECT Id FROM Opportunity WHERE (StageName = 'Closed Won' OR StageName = 'Closed Lost') AND NOT Amount > 20000",
    )
    assert {r["Id"] for r in rows} == expected


def test_like_wildcards_and_escapes(store):
    codes = {p["ProductCode"] for p in store.tables["Product2"].values()}
    rows = run(store, "SELECT ProductCode FROM Product2 WHERE ProductCode LIKE 'a0001_'")
    assert {r["ProductCode"] for r in rows} == {c for c in codes if c.startswith("A0001") and len(c) == 6}
    assert run(store, r"SELECT Id FROM Product2 WHERE ProductCode LIKE 'A\%'") == []


def test_order_by_several_keys_with_nulls(store):
    rows = run(store, "SELECT AccountNumber, Name FROM Account ORDER BY AccountNumber NULLS LAST, Name DESC")
    numbers = [r["AccountNumber"] for r in rows]
    present = [n for n in numbers if n is not None]
    assert present == sorted(present)
    assert numbers[len(present) :] == [None] * (len(numbers) - len(present))
    first = run(store, "SELECT AccountNumber FROM Account ORDER BY AccountNumber ASC")
    assert first[0]["AccountNumber"] is None  # ASC puts nulls first by default


def test_limit_offset_and_the_offset_cap(store):
    every = run(store, "SELECT Id FROM Account ORDER BY Id")
    assert run(store, "SELECT Id FROM Account ORDER BY Id LIMIT 3 OFFSET 4") == every[4:7]
    assert error(store, "SELECT Id FROM Account OFFSET 2001").code == "NUMBER_OUTSIDE_VALID_RANGE"


def test_semi_join(store):
    with_lines = {line["OpportunityId"] for line in store.tables["OpportunityLineItem"].values()}
    rows = run(
        store, "SELECT Id FROM Opportunity WHERE Id IN (SELECT OpportunityId FROM OpportunityLineItem)"
    )
    assert {r["Id"] for r in rows} == with_lines
    rows = run(
        store, "SELECT Id FROM Opportunity WHERE Id NOT IN (SELECT OpportunityId FROM OpportunityLineItem)"
    )
    assert not {r["Id"] for r in rows} & with_lines


def test_date_literals(store):
    closed_before = {o["Id"] for o in store.tables["Opportunity"].values() if o["CloseDate"] < "2025-06-01"}
    assert {
        r["Id"] for r in run(store, "SELECT Id FROM Opportunity WHERE CloseDate < TODAY")
    } == closed_before
    recent = {
        o["Id"]
        for o in store.tables["Opportunity"].values()
        if o["CreatedDate"] >= parse_datetime("2025-05-02T00:00:00Z")
    }
    assert {
        r["Id"] for r in run(store, "SELECT Id FROM Opportunity WHERE CreatedDate = LAST_N_DAYS:30")
    } == recent


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("SELECT FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id Account", "MALFORMED_QUERY"),
        ('SELECT Id FROM Account WHERE Name = "x"', "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Name", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account LIMIT x", "MALFORMED_QUERY"),
        ("SELECT Id, Id FROM Account", "MALFORMED_QUERY"),
        ("SELECT COUNT(), Name FROM Account", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE IsDeleted = 'false'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE CreatedDate > 2024-01-01T00:00:00", "MALFORMED_QUERY"),
        ("SELECT Id FROM Account WHERE Amount > 5", "INVALID_FIELD"),
        ("SELECT Id FROM Account WHERE Description = 'x'", "INVALID_FIELD"),
        ("SELECT Id FROM Account ORDER BY Description", "INVALID_FIELD"),
        ("SELECT Id FROM Accounts", "INVALID_TYPE"),
        ("SELECT FIELDS(ALL) FROM Account", "MALFORMED_QUERY"),
    ],
)
def test_errors(store, text, code):
    assert error(store, text).code == code


def test_error_messages_point_at_the_culprit(store):
    message = error(store, "SELECT Id,\n  Bogus FROM Account").message
    assert message.startswith("\n  Bogus FROM Account\n  ^\nERROR at Row:2:Column:3\n")


def test_fields_all_with_a_limit(store):
    rows = run(store, "SELECT FIELDS(ALL) FROM Account LIMIT 2")
    assert len(rows) == 2
    assert "SAP_Card_Code__c" in rows[0]
    assert "Name" in rows[0]
    custom = run(store, "SELECT FIELDS(CUSTOM) FROM Account LIMIT 1")[0]
    assert all(k.endswith("__c") for k in custom if k != "attributes")


def test_relationships_walk_several_levels(store):
    rows = run(store, "SELECT Id, Opportunity.Account.AccountNumber FROM OpportunityLineItem LIMIT 5")
    for row in rows:
        assert "Account" in row["Opportunity"]
