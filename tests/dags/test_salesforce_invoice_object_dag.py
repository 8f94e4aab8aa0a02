"""``sap_b1_salesforce`` with the mapping's ``invoices`` section, end to end with dag.test().

The org has an invoice object (a custom ``SAP_Invoice__c``, as an org without Revenue Cloud
would): after one run every SAP invoice of a linked partner is a record of it (reconcile checks
each, and passes), written through sObject Collections upserts by external id, one call per page
of invoices; a second run writes nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from dag_helpers import forget_runs, salesforce_writes, task_states

from airflow_provider_b1.sandbox.salesforce.schema import SAP_INVOICE_OBJECT as INVOICE_OBJECT

DAG_ID = "sap_b1_salesforce"
DAG_MAPPING = Path(__file__).parents[2] / "dags" / "salesforce_mapping.yaml"

INVOICES = {
    "object": "SAP_Invoice__c",
    "external_id": "SAP_Doc_Entry__c",
    "account": "Account__c",
    "opportunity": "Opportunity__c",
    "fields": {
        "DocNum": "Name",
        "DocDueDate": "Due_Date__c",
        "DocTotal": "Total__c",
        "PaidToDate": "Paid__c",
        "DocumentStatus": "Status__c",
    },
}


@pytest.fixture
def sf(flow, salesforce_sandbox, set_connection, tmp_path, monkeypatch):
    """The org with the invoice object, and the DAG's mapping with the ``invoices`` section (read
    from ``B1_SALESFORCE_MAPPING`` when the DAG is loaded); the default org again afterwards."""
    salesforce_sandbox.restore()
    salesforce_sandbox.control("POST", "reset", {"custom_objects": [INVOICE_OBJECT]})
    forget_runs(DAG_ID)
    document = yaml.safe_load(DAG_MAPPING.read_text())
    document["invoices"] = INVOICES
    mapping = tmp_path / "salesforce_mapping.yaml"
    mapping.write_text(yaml.safe_dump(document, sort_keys=False))
    monkeypatch.setenv("B1_SALESFORCE_MAPPING", str(mapping))
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "sf-tokens"))
    set_connection("b1_salesforce_default", salesforce_sandbox.connection())
    try:
        yield salesforce_sandbox
    finally:
        salesforce_sandbox.faults()
        salesforce_sandbox.control("POST", "reset", {})


def test_a_run_puts_every_invoice_of_a_linked_partner_into_the_object_and_the_next_writes_nothing(
    flow, sf, dag_of, capsys
):
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    run = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(run).values()) == {"success"}, task_states(run)  # reconcile included
    out = capsys.readouterr().out
    assert "Salesforce and SAP agree: 40 accounts" in out
    stats = sf.stats()
    upserts = stats["calls"].get("collections_upsert", 0)
    written = stats["records_written"].get("collections_upsert", 0)

    accounts = {a["AccountNumber"]: a["Id"] for a in sf.truth("Account")}
    sap = SapB1Hook()
    invoices = [
        doc
        for page in sap.iter_any_of(
            "Invoices", "CardCode", list(accounts), select=["DocEntry", "CardCode", "DocNum", "DocTotal"]
        )
        for doc in page
    ]
    assert invoices
    held = {r["SAP_Doc_Entry__c"]: r for r in sf.truth("SAP_Invoice__c")}
    assert set(held) == {str(doc["DocEntry"]) for doc in invoices}
    for doc in invoices:
        record = held[str(doc["DocEntry"])]
        assert record["Account__c"] == accounts[doc["CardCode"]]
        assert record["Name"] == str(doc["DocNum"])
        assert record["Total__c"] == pytest.approx(doc["DocTotal"], abs=0.005)
    assert f"{len(invoices)} invoice records" in out
    # Upserts by external id, one call per page of invoices (200 a page) at most.
    pages = math.ceil(sap.count("Invoices") / 200)
    print(
        f"invoice object: {written} records upserted in {upserts} calls "
        f"({pages} pages of invoices, {len(invoices)} invoices of linked partners)"
    )
    assert written == len(invoices)
    assert 1 <= upserts <= pages

    before = salesforce_writes(sf)
    again = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(again).values()) == {"success"}, task_states(again)
    counts = flow.audit_counts(again.run_id)
    assert (counts.get("created", 0), counts.get("updated", 0)) == (0, 0), counts
    assert salesforce_writes(sf) == before  # nothing written into Salesforce, invoices included
    assert {r["Id"] for r in sf.truth("SAP_Invoice__c")} == {r["Id"] for r in held.values()}
