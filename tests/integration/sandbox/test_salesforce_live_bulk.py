"""Bulk API 2.0 against the Salesforce sandbox with simple-salesforce's ``bulk2``: ingest jobs
(upsert, insert, update, delete) processed asynchronously with per-row results, query jobs paged
by ``Sforce-Locator``, and the raw protocol where the client hides it."""

from __future__ import annotations

import csv
import io
import time
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


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_upsert_job_writes_rows_and_reports_each(sf, org):
    linked = next(a for a in org.truth("Account") if a["SAP_Card_Code__c"])
    result = sf.bulk2.Account.upsert(
        records=[
            {"SAP_Card_Code__c": "C72001", "Name": "Bulk New", "SAP_Open_Balance__c": "10.25"},
            {"SAP_Card_Code__c": linked["SAP_Card_Code__c"], "Name": "", "SAP_Open_Balance__c": "77"},
            {"SAP_Card_Code__c": "C72002", "Name": "", "SAP_Open_Balance__c": "1"},
            {"SAP_Card_Code__c": "C72003", "Name": "Bad Number", "SAP_Open_Balance__c": "lots"},
        ],
        external_id_field="SAP_Card_Code__c",
        wait=0,
    )
    assert result == [
        {
            "numberRecordsFailed": 2,
            "numberRecordsProcessed": 4,
            "numberRecordsTotal": 4,
            "job_id": result[0]["job_id"],
        }
    ]
    job_id = result[0]["job_id"]
    assert job_id.startswith("750")
    ok = rows(sf.bulk2.Account.get_successful_records(job_id))
    assert [(r["sf__Created"], r["SAP_Card_Code__c"]) for r in ok] == [
        ("true", "C72001"),
        ("false", linked["SAP_Card_Code__c"]),
    ]
    assert ok[1]["sf__Id"] == linked["Id"]
    failed = rows(sf.bulk2.Account.get_failed_records(job_id))
    assert [r["SAP_Card_Code__c"] for r in failed] == ["C72002", "C72003"]
    assert failed[0]["sf__Error"] == "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --"
    assert failed[1]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    truth = {a["Id"]: a for a in org.truth("Account")}
    assert truth[linked["Id"]]["SAP_Open_Balance__c"] == 77
    assert truth[linked["Id"]]["Name"] == linked["Name"]  # an empty cell leaves the field alone
    assert org.stats()["records_written"]["bulk_ingest"] == 2


def test_insert_update_and_delete_jobs(sf, org):
    inserted = sf.bulk2.Product2.insert(records=[{"Name": "Bulk Widget", "ProductCode": "A09001"}], wait=0)
    job = inserted[0]["job_id"]
    new_id = rows(sf.bulk2.Product2.get_successful_records(job))[0]["sf__Id"]
    assert new_id.startswith("01t")
    sf.bulk2.Product2.update(records=[{"Id": new_id, "Description": "#N/A", "Family": "Hardware"}], wait=0)
    product = next(p for p in org.truth("Product2") if p["Id"] == new_id)
    assert product["Family"] == "Hardware"
    deleted = sf.bulk2.Product2.delete(records=[{"Id": new_id}], wait=0)
    assert deleted[0]["numberRecordsFailed"] == 0
    assert new_id not in {p["Id"] for p in org.truth("Product2")}


def test_query_job_pages_with_the_locator(sf, org):
    pages = list(
        sf.bulk2.Opportunity.query(
            "SELECT Id, Name, Account.AccountNumber, Amount, IsWon FROM Opportunity", max_records=30, wait=0
        )
    )
    assert len(pages) == 3
    records = [r for page in pages for r in rows(page)]
    assert len(records) == 80
    assert list(records[0]) == ["Id", "Name", "Account.AccountNumber", "Amount", "IsWon"]
    truth = {o["Id"]: o for o in org.truth("Opportunity")}
    accounts = {a["Id"]: a for a in org.truth("Account")}
    for r in records:
        opp = truth[r["Id"]]
        assert r["IsWon"] == ("true" if opp["IsWon"] else "false")
        number = accounts[opp["AccountId"]]["AccountNumber"] if opp["AccountId"] else None
        assert r["Account.AccountNumber"] == (number or "")


def test_query_results_headers_on_the_wire(org):
    token = org.token()["access_token"]
    http = requests.Session()
    http.verify = org.ca_path
    http.trust_env = False
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    base = f"{org.base_url}/services/data/v62.0/jobs/query"
    job = http.post(
        base,
        json={"operation": "query", "query": "SELECT Id, CreatedDate FROM Account"},
        headers=headers,
        timeout=10,
    ).json()
    assert job["state"] == "UploadComplete"
    early = http.get(f"{base}/{job['id']}/results", headers=headers, timeout=10)
    assert early.status_code == 400
    deadline = time.monotonic() + 10
    while http.get(f"{base}/{job['id']}", headers=headers, timeout=10).json()["state"] != "JobComplete":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    first = http.get(f"{base}/{job['id']}/results", params={"maxRecords": 25}, headers=headers, timeout=10)
    assert first.headers["Sforce-NumberOfRecords"] == "25"
    assert first.headers["Content-Type"].startswith("text/csv")
    locator = first.headers["Sforce-Locator"]
    assert locator != "null"
    assert first.text.splitlines()[1].endswith('Z"')  # 2024-05-01T12:00:00.000Z
    last = http.get(
        f"{base}/{job['id']}/results",
        params={"maxRecords": 25, "locator": locator},
        headers=headers,
        timeout=10,
    )
    assert last.headers["Sforce-NumberOfRecords"] == "15"
    assert last.headers["Sforce-Locator"] == "null"
    assert "Sforce-Limit-Info" in last.headers
    assert http.delete(f"{base}/{job['id']}", headers=headers, timeout=10).status_code == 204
    http.close()


def test_query_jobs_refuse_what_bulk_api_2_cannot_do(sf):
    with pytest.raises(SalesforceMalformedRequest) as caught:
        list(
            sf.bulk2.Opportunity.query(
                "SELECT Id, (SELECT Id FROM OpportunityLineItems) FROM Opportunity", wait=0
            )
        )
    assert caught.value.content[0]["errorCode"] == "API_ERROR"
    with pytest.raises(SalesforceMalformedRequest) as caught:
        list(sf.bulk2.Opportunity.query("SELECT Nope FROM Opportunity", wait=0))
    assert caught.value.content[0]["errorCode"] == "INVALID_FIELD"


def test_a_header_naming_no_field_fails_the_job(sf, org):
    from simple_salesforce.exceptions import SalesforceOperationError

    with pytest.raises(SalesforceOperationError) as caught:
        sf.bulk2.Account.insert(records=[{"Name": "X", "Nope__c": "1"}], wait=0)
    assert "InvalidBatch : Field name not found : Nope__c" in str(caught.value)


def test_aborted_jobs_leave_their_rows_unprocessed(org):
    token = org.token()["access_token"]
    http = requests.Session()
    http.verify = org.ca_path
    http.trust_env = False
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    base = f"{org.base_url}/services/data/v62.0/jobs/ingest"
    job = http.post(
        base,
        json={"object": "Account", "operation": "insert", "lineEnding": "CRLF"},
        headers=headers,
        timeout=10,
    ).json()
    assert job["state"] == "Open"
    assert job["contentUrl"] == f"services/data/v62.0/jobs/ingest/{job['id']}/batches"
    put = http.put(
        f"{base}/{job['id']}/batches",
        data=b"Name,Phone\r\nAborted One,5125550100\r\n",
        headers={**headers, "Content-Type": "text/csv"},
        timeout=10,
    )
    assert put.status_code == 201
    aborted = http.patch(f"{base}/{job['id']}", json={"state": "Aborted"}, headers=headers, timeout=10).json()
    assert aborted["state"] == "Aborted"
    left = http.get(f"{base}/{job['id']}/unprocessedrecords", headers=headers, timeout=10)
    assert left.text == '"Name","Phone"\r\n"Aborted One","5125550100"\r\n'
    assert "Aborted One" not in {a["Name"] for a in org.truth("Account")}
    http.close()
