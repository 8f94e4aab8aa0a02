"""sObject Collections against the Salesforce sandbox through simple-salesforce's ``restful``:
upsert by external id with per-record results and failures in order, allOrNone, the 200-record
cap, create/update/retrieve/delete many."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceResourceNotFound


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


def account(code: str | None, **fields) -> dict:
    record = {"attributes": {"type": "Account"}, **fields}
    if code is not None:
        record["SAP_Card_Code__c"] = code
    return record


def upsert(sf: Salesforce, records: list[dict], all_or_none: bool = False) -> list[dict]:
    return sf.restful(
        "composite/sobjects/Account/SAP_Card_Code__c",
        method="PATCH",
        json={"allOrNone": all_or_none, "records": records},
    )


def test_upsert_creates_and_updates_with_results_in_order(sf, org):
    linked = next(a for a in org.truth("Account") if a["SAP_Card_Code__c"])
    results = upsert(
        sf,
        [
            account("C70001", Name="Brand New Ltd", AccountNumber="C70001", SAP_Open_Balance__c=125.5),
            account(
                linked["SAP_Card_Code__c"].lower(),
                SAP_Open_Balance__c=99.99,
                SAP_Last_Payment_Date__c="2024-05-01",
            ),
        ],
    )
    assert results[0]["success"] is True
    assert results[0]["created"] is True
    assert results[0]["errors"] == []
    assert results[1] == {"id": linked["Id"], "success": True, "errors": [], "created": False}
    truth = {a["Id"]: a for a in org.truth("Account")}
    created = truth[results[0]["id"]]
    assert created["Name"] == "Brand New Ltd"
    assert created["SAP_Open_Balance__c"] == 125.5
    updated = truth[linked["Id"]]
    assert updated["SAP_Open_Balance__c"] == 99.99
    assert updated["SAP_Last_Payment_Date__c"] == "2024-05-01"
    assert updated["Name"] == linked["Name"]
    # One call, one stamp: both records share SystemModstamp, later than any seeded one.
    assert created["SystemModstamp"] == updated["SystemModstamp"] == updated["LastModifiedDate"]
    assert updated["SystemModstamp"] > max(a["SystemModstamp"] for a in org.truth("Opportunity"))
    assert org.stats()["records_written"]["collections_upsert"] == 2


def test_per_record_failures_in_the_real_shapes(sf, org):
    taken = next(a for a in org.truth("Account") if a["SAP_Card_Code__c"])
    results = upsert(
        sf,
        [
            account("C70010", Phone="555-0100-12"),  # no Name
            account("C70011", Name="Short Phone", Phone="12-34"),
            account("C70012", Name="x" * 256),
            account("C70013", Name="Ok Co", Industry="Banking"),
            account(None, Name="No Code"),
            account("C70014", Name="Read Only", IsDeleted=True),
        ],
    )
    assert [r["success"] for r in results] == [False, False, False, True, False, False]
    assert results[0]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [Name]",
            "fields": ["Name"],
        }
    ]
    assert results[1]["errors"] == [
        {
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Phone must have at least 7 digits",
            "fields": ["Phone"],
        }
    ]
    assert results[2]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert "max length=255" in results[2]["errors"][0]["message"]
    assert results[4]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert results[5]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert results[5]["errors"][0]["fields"] == ["IsDeleted"]
    assert all("id" not in r for r in results if not r["success"])
    codes = {a["SAP_Card_Code__c"] for a in org.truth("Account")}
    assert "C70013" in codes
    assert not {"C70010", "C70011", "C70012", "C70014"} & codes
    # Setting a unique field to a value another record holds: DUPLICATE_VALUE.
    other = next(a for a in org.truth("Account") if a["SAP_Card_Code__c"] is None)
    clash = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={
            "records": [
                {
                    "attributes": {"type": "Account"},
                    "Id": other["Id"],
                    "SAP_Card_Code__c": taken["SAP_Card_Code__c"],
                }
            ]
        },
    )
    assert clash[0]["success"] is False
    assert clash[0]["id"] == other["Id"]
    assert clash[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert taken["Id"] in clash[0]["errors"][0]["message"]


def test_the_same_external_id_twice_in_one_request_fails_both(sf):
    results = upsert(
        sf, [account("C70020", Name="A"), account("c70020", Name="B"), account("C70021", Name="C")]
    )
    assert [r["success"] for r in results] == [False, False, True]
    assert results[0]["errors"][0]["statusCode"] == "DUPLICATE_EXTERNAL_ID"


def test_all_or_none_rolls_every_record_back(sf, org):
    before = org.truth("Account")
    results = upsert(
        sf, [account("C70030", Name="Fine"), account("C70031"), account("C70032", Name="Also fine")], True
    )
    assert [r["success"] for r in results] == [False, False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert results[2]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert org.truth("Account") == before


def test_whole_request_errors(sf):
    too_many = [account(f"C8{i:04d}", Name=f"N{i}") for i in range(201)]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        upsert(sf, too_many)
    assert caught.value.content[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        upsert(sf, [account("C70040", Name="X", Bogus__c=1)])
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
    assert "Bogus__c" in caught.value.content[0]["message"]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        upsert(sf, [account("C70041", Name="X", SAP_Open_Balance__c="lots")])
    assert caught.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.restful("composite/sobjects/Account/Name", method="PATCH", json={"records": []})
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"


def test_upsert_by_id_updates_and_a_missing_id_is_an_error(sf, org):
    target = org.truth("Account")[3]
    results = sf.restful(
        "composite/sobjects/Account/Id",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "Account"},
                    "Id": target["Id"][:15],
                    "Website": "https://example.com",
                },
                {"attributes": {"type": "Account"}, "Name": "No Id"},
            ],
        },
    )
    assert results[0] == {"id": target["Id"], "success": True, "errors": [], "created": False}
    assert results[1]["success"] is False
    assert results[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"


def test_opportunities_upsert_with_the_parent_named_by_its_external_id(sf, org):
    parent = next(a for a in org.truth("Account") if a["SAP_Card_Code__c"])
    results = sf.restful(
        "composite/sobjects/Opportunity/SAP_Order_Number__c",
        method="PATCH",
        json={
            "allOrNone": False,
            "records": [
                {
                    "attributes": {"type": "Opportunity"},
                    "SAP_Order_Number__c": "990001",
                    "Name": "SAP order 990001",
                    "StageName": "Closed Won",
                    "CloseDate": "2024-05-01",
                    "Amount": 1500,
                    "Account": {"SAP_Card_Code__c": parent["SAP_Card_Code__c"]},
                },
                {
                    "attributes": {"type": "Opportunity"},
                    "SAP_Order_Number__c": "990002",
                    "Name": "Bad stage",
                    "StageName": "Won-ish",
                    "CloseDate": "2024-05-01",
                },
                {
                    "attributes": {"type": "Opportunity"},
                    "SAP_Order_Number__c": "990003",
                    "Name": "Unknown customer",
                    "StageName": "Prospecting",
                    "CloseDate": "2024-05-01",
                    "Account": {"SAP_Card_Code__c": "C99999"},
                },
            ],
        },
    )
    assert results[0]["success"] is True
    assert results[0]["created"] is True
    assert results[1]["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert results[2]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert "C99999" in results[2]["errors"][0]["message"]
    created = next(o for o in org.truth("Opportunity") if o["Id"] == results[0]["id"])
    assert created["AccountId"] == parent["Id"]
    assert created["IsWon"] is True
    assert created["IsClosed"] is True
    assert created["Probability"] == 100


def test_create_update_retrieve_and_delete_many(sf, org):
    created = sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "allOrNone": False,
            "records": [
                {"attributes": {"type": "Account"}, "Name": "Many One"},
                {"attributes": {"type": "Product2"}, "Name": "Widget", "ProductCode": "A09999"},
                {"attributes": {"type": "Account"}, "Phone": "5125550100"},
            ],
        },
    )
    assert [r["success"] for r in created] == [True, True, False]
    assert created[0]["id"].startswith("001")
    assert created[1]["id"].startswith("01t")
    assert "created" not in created[0]
    updated = sf.restful(
        "composite/sobjects",
        method="PATCH",
        json={"records": [{"attributes": {"type": "Account"}, "Id": created[0]["id"], "Industry": "Energy"}]},
    )
    assert updated == [{"id": created[0]["id"], "success": True, "errors": []}]
    fetched = sf.restful(
        "composite/sobjects/Account",
        params={"ids": f"{created[0]['id']},001Dn0000000000AAA", "fields": "Id,Name,Industry"},
    )
    assert fetched[0]["Industry"] == "Energy"
    assert fetched[0]["Name"] == "Many One"
    assert fetched[1] is None
    deleted = sf.restful("composite/sobjects", method="DELETE", params={"ids": created[0]["id"]})
    assert deleted == [{"id": created[0]["id"], "success": True, "errors": []}]
    again = sf.restful("composite/sobjects", method="DELETE", params={"ids": created[0]["id"]})
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"
