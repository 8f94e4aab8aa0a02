"""The Salesforce sandbox's control plane and org shapes: reset with other sizes, orgs without
the custom fields or with a custom invoice object, the duplicate rule, validation rules from
config, stats by kind, and the ``b1-sandbox`` connection line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


def test_the_seeded_org_matches_the_sap_sandbox_codes(org):
    accounts = org.truth("Account")
    assert len(accounts) == 40
    numbers = [a["AccountNumber"] for a in accounts]
    known = sorted(n for n in numbers if n and not n.startswith("C09"))
    assert known == [f"C{i:05d}" for i in range(1, len(known) + 1)]
    assert None in numbers
    assert any(n and n.startswith("C09") for n in numbers)
    linked = [a for a in accounts if a["SAP_Card_Code__c"]]
    assert linked
    assert all(a["SAP_Card_Code__c"] == a["AccountNumber"] for a in linked)
    products = org.truth("Product2")
    assert sorted(p["ProductCode"] for p in products) == [f"A{i:05d}" for i in range(1, 61)]
    opps = org.truth("Opportunity")
    stages = {o["StageName"] for o in opps}
    assert {"Closed Won", "Closed Lost", "Prospecting"} <= stages
    assert sum(o["StageName"] == "Closed Won" for o in opps) >= 15
    with_lines = {line["OpportunityId"] for line in org.truth("OpportunityLineItem")}
    assert 0 < len(with_lines) < len(opps)
    for record in accounts + opps:
        assert record["Id"][15:]
        assert len(record["Id"]) == 18
        assert record["SystemModstamp"] == record["LastModifiedDate"] >= record["CreatedDate"]


def test_reset_with_other_sizes_then_restore(sf, org):
    assert org.control("POST", "reset", {"accounts": 300, "opportunities": 10})["Account"] == 300
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 300
    assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 10
    org.restore()
    assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 40


def test_reset_puts_settings_back_and_clears_usage(sf, org):
    org.control("POST", "config", {"query_batch_size": 5, "api_daily_limit": 1000})
    assert len(sf.query("SELECT Id FROM Account")["records"]) == 5
    org.restore()
    assert len(sf.query("SELECT Id FROM Account")["records"]) == 25
    assert org.control("GET", "usage") == {"used": 1, "limit": 100_000}


def test_an_org_without_the_custom_fields(sf, org):
    org.control("POST", "reset", {"custom_fields": False})
    names = {f["name"] for f in sf.Account.describe()["fields"]}
    assert "AccountNumber" in names
    assert not {n for n in names if n.endswith("__c")}
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.query("SELECT SAP_Card_Code__c FROM Account")
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"
    with pytest.raises(SalesforceResourceNotFound) as caught:
        sf.restful("composite/sobjects/Account/SAP_Card_Code__c", method="PATCH", json={"records": []})
    assert caught.value.content[0]["errorCode"] == "NOT_FOUND"


def test_an_org_with_a_custom_invoice_object(sf, org):
    invoice = {
        "name": "SAP_Invoice__c",
        "key_prefix": "a0B",
        "label": "SAP Invoice",
        "fields": [
            {"name": "SAP_Doc_Entry__c", "type": "string", "length": 20, "externalId": True, "unique": True},
            {
                "name": "Account__c",
                "type": "reference",
                "referenceTo": ["Account"],
                "relationshipName": "Account__r",
                "childRelationshipName": "SAP_Invoices__r",
            },
            {"name": "Total__c", "type": "currency"},
            {"name": "Due_Date__c", "type": "date"},
        ],
    }
    org.control("POST", "reset", {"custom_objects": [invoice], "cdc_objects": ["Account", "SAP_Invoice__c"]})
    account = next(a for a in org.truth("Account") if a["SAP_Card_Code__c"])
    results = sf.restful(
        "composite/sobjects/SAP_Invoice__c/SAP_Doc_Entry__c",
        method="PATCH",
        json={
            "records": [
                {
                    "attributes": {"type": "SAP_Invoice__c"},
                    "SAP_Doc_Entry__c": "4711",
                    "Total__c": 250.0,
                    "Due_Date__c": "2024-06-30",
                    "Account__r": {"SAP_Card_Code__c": account["SAP_Card_Code__c"]},
                }
            ]
        },
    )
    assert results[0]["id"].startswith("a0B")
    found = sf.query("SELECT Name, Account__r.AccountNumber FROM SAP_Invoice__c")["records"][0]
    assert found["Name"] == results[0]["id"]
    assert found["Account__r"]["AccountNumber"] == account["AccountNumber"]
    parent = sf.query(
        f"SELECT (SELECT Total__c FROM SAP_Invoices__r) FROM Account WHERE Id = '{account['Id']}'"
    )
    assert parent["records"][0]["SAP_Invoices__r"]["records"][0]["Total__c"] == 250.0
    assert org.control("GET", "changes?objects=SAP_Invoice__c")["changes"][0]["change_type"] == "CREATE"


def test_duplicate_rule_on_account_names(sf, org):
    existing = org.truth("Account")[0]
    org.control("POST", "config", {"duplicate_rule_account_name": True})
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Account.create({"Name": existing["Name"].upper()})
    error = caught.value.content[0]
    assert error["errorCode"] == "DUPLICATES_DETECTED"
    assert error["duplicateResult"]["matchResults"][0]["matchRecords"][0]["record"]["Id"] == existing["Id"]
    allowed = sf.Account.create(
        {"Name": existing["Name"]}, headers={"Sforce-Duplicate-Rule-Header": "allowSave=true"}
    )
    assert allowed["success"] is True


def test_validation_rules_from_config(sf, org):
    org.control(
        "POST",
        "config",
        {
            "validation_rules": [
                {
                    "object": "Opportunity",
                    "name": "Won_Needs_Amount",
                    "message": "A won opportunity needs an amount",
                    "error_field": "Amount",
                    "error_when": "IsWon = true AND Amount = null",
                },
                {
                    "object": "Account",
                    "name": "Https",
                    "message": "Websites use https",
                    "pattern": {"Website": "^https://"},
                },
            ]
        },
    )
    with pytest.raises(SalesforceMalformedRequest) as caught:
        sf.Opportunity.create({"Name": "Won", "StageName": "Closed Won", "CloseDate": "2024-01-01"})
    assert caught.value.content[0] == {
        "message": "A won opportunity needs an amount",
        "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "fields": ["Amount"],
    }
    with pytest.raises(SalesforceMalformedRequest):
        sf.Account.create({"Name": "Plain Web", "Website": "http://plain.example"})
    assert sf.Account.create({"Name": "Short Phone Now Fine", "Phone": "12"})["success"] is True


def test_stats_count_calls_by_kind(sf, org):
    org.control("POST", "stats/reset")
    sf.query("SELECT Id FROM Account")
    sf.query_more(sf.query("SELECT Id FROM Account")["nextRecordsUrl"], identifier_is_url=True)
    sf.Account.describe()
    stats = org.stats()
    assert stats["calls"]["query"] == 2
    assert stats["calls"]["query_more"] == 1
    assert stats["calls"]["describe"] == 1
    assert stats["api_usage"]["used"] >= 4


def test_edit_create_and_delete_through_the_control_plane(org):
    created = org.edit("Account", None, Name="Typed In", Phone="(512) 555-0111")
    assert created["id"].startswith("001")
    assert created["record"]["Name"] == "Typed In"
    refused = requests.post(
        f"{org.base_url}/_sandbox/edit",
        json={"object": "Account", "id": created["id"], "fields": {"Phone": "1"}},
        verify=org.ca_path,
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    org.control("POST", "edit", {"object": "Account", "id": created["id"], "action": "delete"})
    assert created["id"] not in {a["Id"] for a in org.truth("Account")}


def test_b1_sandbox_prints_the_salesforce_connection(tmp_path: Path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_b1.sandbox",
            "--only",
            "salesforce",
            "--salesforce-accounts",
            "12",
            "--salesforce-opportunities",
            "20",
            "--state-dir",
            str(tmp_path),
            "--ready-file",
            str(ready),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        (line,) = [c for c in info["connections"] if c.startswith("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT=")]
        conn = json.loads(line.split("=", 1)[1].strip("'"))
        assert set(conn) == {"conn_type", "host", "login", "password", "extra"}
        assert conn["conn_type"] == "b1_salesforce"
        assert conn["host"] == info["sandboxes"]["salesforce"]["base_url"]
        assert conn["extra"] == {
            "api_version": "62.0",
            "ca_bundle": info["sandboxes"]["salesforce"]["ca_path"],
            # the Pub/Sub (CDC) service beside it, on the same certificate
            "pubsub_endpoint": info["sandboxes"]["salesforce"]["pubsub_endpoint"],
            "pubsub_ca_bundle": info["sandboxes"]["salesforce"]["ca_path"],
        }
        http = requests.Session()
        http.verify = conn["extra"]["ca_bundle"]
        http.trust_env = False
        token = http.post(
            f"{conn['host']}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": conn["login"],
                "client_secret": conn["password"],
            },
            timeout=10,
        ).json()
        sf = Salesforce(
            instance_url=token["instance_url"], session_id=token["access_token"], version="62.0", session=http
        )
        assert sf.query("SELECT COUNT() FROM Account")["totalSize"] == 12
        http.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
