"""sObject REST against the Salesforce sandbox with simple-salesforce: describe, get (15- and
18-character ids, ``fields``), create, update, upsert by external id (201/200/300/404), delete,
and the error replies of each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceResourceNotFound,
)


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


def test_global_describe_lists_the_objects_with_their_key_prefixes(sf):
    objects = {o["name"]: o for o in sf.describe()["sobjects"]}
    prefixes = {name: objects[name]["keyPrefix"] for name in objects}
    assert prefixes["Account"] == "001"
    assert prefixes["Opportunity"] == "006"
    assert prefixes["OpportunityLineItem"] == "00k"
    assert prefixes["Product2"] == "01t"
    assert prefixes["Pricebook2"] == "01s"
    assert prefixes["PricebookEntry"] == "01u"
    assert objects["Account"]["urls"]["describe"] == "/services/data/v62.0/sobjects/Account/describe"


def test_describe_uses_the_real_key_names(sf):
    described = sf.Account.describe()
    fields = {f["name"]: f for f in described["fields"]}
    code = fields["SAP_Card_Code__c"]
    assert code["externalId"] is True
    assert code["unique"] is True
    assert code["idLookup"] is True
    assert code["custom"] is True
    assert code["type"] == "string"
    assert code["length"] == 15
    assert code["soapType"] == "xsd:string"
    assert fields["Name"]["nillable"] is False
    assert fields["Name"]["createable"] is True
    assert fields["Id"]["type"] == "id"
    assert fields["SystemModstamp"]["updateable"] is False
    assert fields["SAP_Credit_Limit__c"]["type"] == "currency"
    assert fields["SAP_Last_Payment_Date__c"]["type"] == "date"
    assert {"Opportunities"} <= {c["relationshipName"] for c in described["childRelationships"]}
    opp = {f["name"]: f for f in sf.Opportunity.describe()["fields"]}
    assert opp["AccountId"]["referenceTo"] == ["Account"]
    assert opp["AccountId"]["relationshipName"] == "Account"
    assert opp["IsWon"]["calculated"] is True
    assert opp["IsWon"]["updateable"] is False
    stages = [v["value"] for v in opp["StageName"]["picklistValues"]]
    assert {
        "Prospecting",
        "Qualification",
        "Proposal/Price Quote",
        "Negotiation/Review",
        "Closed Won",
        "Closed Lost",
    } <= set(stages)
    line = {f["name"]: f for f in sf.OpportunityLineItem.describe()["fields"]}
    assert line["TotalPrice"]["calculated"] is True
    assert line["Product2Id"]["relationshipName"] == "Product2"


def test_basic_info_and_recent_items(sf):
    info = sf.Account.metadata()
    assert info["objectDescribe"]["name"] == "Account"
    assert 0 < len(info["recentItems"]) <= 10


def test_get_by_15_or_18_character_id_and_selected_fields(sf, org):
    record = org.truth("Account")[5]
    full = sf.Account.get(record["Id"])
    assert full["attributes"] == {
        "type": "Account",
        "url": f"/services/data/v62.0/sobjects/Account/{record['Id']}",
    }
    assert full["Name"] == record["Name"]
    assert full["SystemModstamp"].endswith("+0000")
    assert sf.Account.get(record["Id"][:15])["Id"] == record["Id"]
    assert sf.Account.get(record["Id"].lower())["Id"] == record["Id"]  # 18 characters survive any case
    few = sf.Account.get(record["Id"], params={"fields": "Name,AccountNumber"})
    assert list(few) == ["attributes", "Name", "AccountNumber"]
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Account.get("001Dn0000000000AAA")
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.get(record["Id"], params={"fields": "Name,Nope"})
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_create_update_delete_move_the_stamps(sf, org):
    created = sf.Account.create({"Name": "Fresh Co", "Phone": "(512) 555-0199", "Industry": "Energy"})
    assert created["success"] is True
    assert created["id"].startswith("001")
    first = sf.Account.get(created["id"])
    assert first["CreatedDate"] == first["LastModifiedDate"] == first["SystemModstamp"]
    assert sf.Account.update(created["id"], {"Website": "https://fresh.example"}) == 204
    second = sf.Account.get(created["id"])
    assert second["SystemModstamp"] > first["SystemModstamp"]
    assert second["LastModifiedDate"] == second["SystemModstamp"]
    assert second["CreatedDate"] == first["CreatedDate"]
    assert sf.Account.delete(created["id"]) == 204
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Account.get(created["id"])
    assert caught.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    assert created["id"] not in {a["Id"] for a in org.truth("Account")}


def test_create_and_update_errors(sf, org):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.create({"Phone": "5125550100"})
    assert caught.value.content == [
        {
            "message": "Required fields are missing: [Name]",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": ["Name"],
        }
    ]
    opp = org.truth("Opportunity")[0]
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Opportunity.update(opp["Id"], {"IsWon": True})
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Opportunity.update(opp["Id"], {"CloseDate": "2024-13-45"})
    assert caught.value.content[0]["errorCode"] == "JSON_PARSER_ERROR"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Opportunity.update(opp["Id"], {"AccountId": "not-an-id"})
    assert caught.value.content[0]["errorCode"] == "MALFORMED_ID"
    with pytest.raises(SalesforceResourceNotFound):
        sf.Opportunity.update("006Dn0000000000AAA", {"Name": "ghost"})


def test_stage_changes_derive_is_won_and_probability(sf, org):
    opp = next(o for o in org.truth("Opportunity") if o["StageName"] == "Prospecting")
    sf.Opportunity.update(opp["Id"], {"StageName": "Closed Won"})
    after = sf.Opportunity.get(opp["Id"])
    assert after["IsWon"] is True
    assert after["IsClosed"] is True
    assert after["Probability"] == 100


def test_upsert_one_created_updated_and_not_external(sf, org):
    created = sf.Account.upsert("SAP_Card_Code__c/C71000", {"Name": "Via Upsert"}, raw_response=True)
    assert created.status_code == 201
    body = created.json()
    assert body["created"] is True
    assert body["success"] is True
    updated = sf.Account.upsert("SAP_Card_Code__c/C71000", {"Phone": "5125550123"}, raw_response=True)
    assert updated.status_code == 200
    assert updated.json() == {"id": body["id"], "success": True, "errors": [], "created": False}
    fetched = sf.Account.get_by_custom_id("SAP_Card_Code__c", "C71000")
    assert fetched["Phone"] == "5125550123"
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.Account.upsert("Name/Anything", {"Phone": "5125550123"})
    assert (
        "Provided external ID field does not exist or is not accessible: Name"
        in caught.value.content[0]["message"]
    )


def test_upsert_on_a_non_unique_external_id_with_several_matches_answers_300(sf, org):
    opps = org.truth("Opportunity")[:2]
    for opp in opps:
        sf.Opportunity.update(opp["Id"], {"SAP_Order_Number__c": "DUP-1"})
    with pytest.raises(SalesforceMoreThanOneRecord) as caught:
        sf.Opportunity.upsert("SAP_Order_Number__c/DUP-1", {"Description": "which one?"})
    assert caught.value.status == 300
    assert sorted(caught.value.content) == sorted(
        f"/services/data/v62.0/sobjects/Opportunity/{o['Id']}" for o in opps
    )


def test_line_items_roll_up_into_the_opportunity_amount(sf, org):
    opp = next(o for o in org.truth("Opportunity") if not o["IsClosed"])
    product = next(p for p in org.truth("Product2") if p["IsActive"])
    existing = [line for line in org.truth("OpportunityLineItem") if line["OpportunityId"] == opp["Id"]]
    line = sf.OpportunityLineItem.create(
        {"OpportunityId": opp["Id"], "Product2Id": product["Id"], "Quantity": 3, "UnitPrice": 10.5}
    )
    created = sf.OpportunityLineItem.get(line["id"])
    assert created["TotalPrice"] == 31.5
    assert created["PricebookEntryId"].startswith("01u")
    expected = round(31.5 + sum(x["TotalPrice"] for x in existing), 2)
    assert sf.Opportunity.get(opp["Id"])["Amount"] == expected
