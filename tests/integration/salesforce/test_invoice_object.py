"""SAP invoices as records of the org's invoice object, between the SAP and Salesforce sandboxes.

The org has no Revenue Cloud, so the mapping's ``invoices`` section names a custom object
(``SAP_Invoice__c``, see ``INVOICE_OBJECT`` in the conftest) with an External ID field for SAP's
``DocEntry``. What is under test: each invoice of a linked partner is upserted once, by external
id, in one sObject Collections call per page; a second pass writes nothing; a payment moves the
record's paid amount and status; a record Salesforce refuses fails alone; the mapping check names
an object or field the org lacks.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml
from salesforce_flow_helpers import MAPPING

from airflow_provider_b1.operators.salesforce import SalesforceMappingCheckOperator, SalesforceMappingMismatch
from airflow_provider_b1.salesforce.mapping import INVOICE_STATUS
from airflow_provider_b1.salesforce.reconcile import reconcile
from airflow_provider_b1.salesforce.to_salesforce import SapToSalesforceSink
from airflow_provider_b1.salesforce.to_sap import SalesforceToSapSink
from airflow_provider_b1.sync.engine import Item
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action

TODAY = dt.date(2026, 3, 1)
#: The seeded partners whose accounts the tests link.
LINKED = [f"C{n:05d}" for n in range(1, 11)]
#: Call kinds the sandbox counts that change records.
WRITE_KINDS = ("sobject_create", "sobject_update", "sobject_delete", "upsert_one", "bulk_ingest_create")


def write(sink, stream, records):
    prepared = sink.prepare(Stream(stream), records)
    items = [p for p in prepared if isinstance(p, Item)]
    outcomes = dict(sink.write(Stream(stream), items, None)) if items else {}
    outcomes.update({p.key: p for p in prepared if not isinstance(p, Item)})
    return outcomes


def writes(org) -> dict[str, int]:
    """The org's write calls so far, by kind."""
    return {
        kind: n
        for kind, n in org.stats()["calls"].items()
        if kind in WRITE_KINDS or (kind.startswith("collections_") and kind != "collections_retrieve")
    }


def records(org) -> dict[str, dict[str, Any]]:
    """The invoice object's records by external id."""
    return {r["SAP_Doc_Entry__c"]: r for r in org.truth("SAP_Invoice__c")}


def link(org, source, salesforce, sap, ledger, codes) -> dict[str, str]:
    """Link the seeded accounts of ``codes`` to their partners, as the accounts stream does;
    ``{CardCode: Account id}``."""
    accounts = {r["AccountNumber"]: r["Id"] for r in org.truth("Account") if r["AccountNumber"] in codes}
    found = [r for page in source.read_keys(Stream("Account"), list(accounts.values())) for r in page.records]
    write(SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger), "Account", found)
    return accounts


def invoices_of(sap, codes) -> list[dict[str, Any]]:
    return [r for page in sap.iter_any_of("Invoices", "CardCode", codes) for r in page]


def new_invoice(sap, code: str, total: float, deal: str | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "CardCode": code,
        "DocDate": "2026-01-20",
        "DocDueDate": "2026-02-20",
        "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": total}],
    }
    if deal:
        fields["NumAtCard"] = deal
    return sap.get("Invoices", sap.create("Invoices", fields)["DocEntry"])


def pay(sap, code: str, entry: int, amount: float) -> dict[str, Any]:
    payment = sap.create(
        "IncomingPayments",
        {
            "CardCode": code,
            "DocDate": "2026-02-01",
            "TransferAccount": "111002",
            "TransferSum": amount,
            "PaymentInvoices": [{"DocEntry": entry, "SumApplied": amount, "InvoiceType": "it_Invoice"}],
        },
    )
    return sap.get("IncomingPayments", payment["DocEntry"])


def won_deal(org, account_id: str, name: str, amount: float) -> str:
    return org.edit(
        "Opportunity",
        None,
        Name=name,
        AccountId=account_id,
        StageName="Closed Won",
        CloseDate="2026-01-15",
        Amount=amount,
    )["id"]


def test_invoices_are_upserted_once_a_page_and_a_second_pass_writes_nothing(
    invoice_org, salesforce, source, sap, ledger, invoice_mapping
):
    org = invoice_org
    accounts = link(org, source, salesforce, sap, ledger, LINKED)
    documents = invoices_of(sap, [*LINKED, "C00011"])
    linked = [d for d in documents if d["CardCode"] in LINKED]
    unlinked = [d for d in documents if d["CardCode"] == "C00011"]
    assert linked
    assert unlinked
    assert len(documents) <= 200
    sink = SapToSalesforceSink(salesforce, lambda: sap, invoice_mapping, ledger, today=lambda: TODAY)
    before = writes(org)

    outcomes = write(sink, "Invoices", documents)
    assert {outcomes[d["DocEntry"]].action for d in linked} == {Action.CREATED}
    assert {outcomes[d["DocEntry"]].action for d in unlinked} == {Action.SKIPPED}
    calls = writes(org)
    # One upsert call for the page's invoices, one update call for the accounts' balances.
    assert calls.get("collections_upsert", 0) - before.get("collections_upsert", 0) == 1
    assert calls.get("collections_update", 0) - before.get("collections_update", 0) == 1
    held = records(org)
    assert set(held) == {str(d["DocEntry"]) for d in linked}
    for doc in linked:
        record = held[str(doc["DocEntry"])]
        assert record["Name"] == str(doc["DocNum"])
        assert record["Account__c"] == accounts[doc["CardCode"]]
        assert record["Opportunity__c"] is None
        assert record["Total__c"] == pytest.approx(doc["DocTotal"], abs=0.005)
        assert record["Paid__c"] == pytest.approx(doc["PaidToDate"], abs=0.005)
        assert record["Due_Date__c"] == doc["DocDueDate"][:10]
        assert record["Invoice_Date__c"] == doc["DocDate"][:10]
        status = "Cancelled" if doc["Cancelled"] == "tYES" else INVOICE_STATUS[doc["DocumentStatus"]]
        assert record["Status__c"] == status

    # The same page again (re-read: stamps may move, values do not): nothing written.
    again = write(sink, "Invoices", invoices_of(sap, [*LINKED, "C00011"]))
    assert {again[d["DocEntry"]].action for d in linked} == {Action.UNCHANGED}
    assert writes(org) == calls
    assert {r["Id"] for r in records(org).values()} == {r["Id"] for r in held.values()}
    # The reconciliation finds one equal record per invoice of these partners, and names the
    # invoices of the partners this test left unlinked (the DAG links every account).
    report = reconcile(salesforce, sap, invoice_mapping, today=TODAY)
    assert report.invoices == len(linked)
    assert not [p for p in report.problems if any(f"(partner {code})" in p for code in LINKED)]
    missing = f"invoice {unlinked[0]['DocEntry']} (partner C00011) has no SAP_Invoice__c records"
    assert missing in report.problems


def test_a_payment_updates_the_invoice_record_and_its_opportunity_link(
    invoice_org, salesforce, source, sap, ledger, invoice_mapping
):
    org = invoice_org
    accounts = link(org, source, salesforce, sap, ledger, ["C00006"])
    deal = won_deal(org, accounts["C00006"], "Deal 4", 400.0)
    invoice = new_invoice(sap, "C00006", 400.0, deal)
    entry = invoice["DocEntry"]
    sink = SapToSalesforceSink(salesforce, lambda: sap, invoice_mapping, ledger, today=lambda: TODAY)
    assert write(sink, "Invoices", [invoice])[entry].action is Action.CREATED
    record = records(org)[str(entry)]
    assert (record["Opportunity__c"], record["Paid__c"], record["Status__c"]) == (deal, 0.0, "Open")
    upserts = writes(org).get("collections_upsert", 0)

    outcome = write(sink, "IncomingPayments", [pay(sap, "C00006", entry, 150.0)])
    assert outcome[next(iter(outcome))].action is Action.UPDATED
    assert writes(org)["collections_upsert"] == upserts + 1
    record = records(org)[str(entry)]
    assert (record["Paid__c"], record["Status__c"], record["Total__c"]) == (150.0, "Open", 400.0)
    # The opportunity's balances move as before.
    opportunity = next(o for o in org.truth("Opportunity") if o["Id"] == deal)
    assert (opportunity["SAP_Paid_Amount__c"], opportunity["SAP_Payment_Status__c"]) == (
        150.0,
        "Partially paid",
    )

    # Paid in full: SAP closes the invoice, and the record says so.
    write(sink, "IncomingPayments", [pay(sap, "C00006", entry, 250.0)])
    record = records(org)[str(entry)]
    assert (record["Paid__c"], record["Status__c"]) == (400.0, "Closed")
    calls = writes(org)
    # The invoice stream reads the paid invoice again: its record is already what SAP says.
    assert write(sink, "Invoices", [sap.get("Invoices", entry)])[entry].action is Action.UNCHANGED
    assert writes(org) == calls
    assert len(records(org)) == 1


def test_a_record_salesforce_refuses_fails_alone_with_its_reason(
    invoice_org, salesforce, source, sap, ledger, invoice_mapping
):
    org = invoice_org
    accounts = link(org, source, salesforce, sap, ledger, ["C00007"])
    gone = won_deal(org, accounts["C00007"], "Deal withdrawn", 300.0)
    org.control("POST", "edit", {"object": "Opportunity", "id": gone, "action": "delete"})
    bad = new_invoice(sap, "C00007", 300.0, gone)
    good = new_invoice(sap, "C00007", 120.0)
    sink = SapToSalesforceSink(salesforce, lambda: sap, invoice_mapping, ledger, today=lambda: TODAY)
    before = writes(org).get("collections_upsert", 0)

    outcomes = write(sink, "Invoices", [bad, good])
    assert outcomes[good["DocEntry"]].action is Action.CREATED
    failed = outcomes[bad["DocEntry"]]
    assert failed.action is Action.FAILED
    # Salesforce's reason, for the record (the deleted opportunity's balances fail alike).
    refused = f"Salesforce refused SAP_Invoice__c {bad['DocEntry']}: ENTITY_IS_DELETED: entity is deleted"
    assert f"{refused} (Opportunity__c)" in failed.error
    assert writes(org)["collections_upsert"] == before + 1  # both in one call
    assert set(records(org)) == {str(good["DocEntry"])}
    # Nothing was agreed for the refused record: the next pass sends it again (and only it).
    again = write(sink, "Invoices", [bad, good])
    assert (again[bad["DocEntry"]].action, again[good["DocEntry"]].action) == (
        Action.FAILED,
        Action.UNCHANGED,
    )
    assert writes(org)["collections_upsert"] == before + 2


def _document(invoices: dict[str, Any]) -> dict[str, Any]:
    document = yaml.safe_load((Path(__file__).parents[3] / "dags" / "salesforce_mapping.yaml").read_text())
    document["invoices"] = invoices
    return document


def check(document: dict[str, Any]) -> str:
    operator = SalesforceMappingCheckOperator(task_id="check_mapping", options={"mapping": document})
    with pytest.raises(SalesforceMappingMismatch) as caught:
        operator.run({})
    return str(caught.value)


def test_the_mapping_check_names_a_missing_object(org, salesforce, invoices_section):
    message = check(_document(invoices_section))
    assert "the org has no SAP_Invoice__c object" in message
    assert "Revenue Cloud" in message
    assert "custom object" in message
    assert "Account." not in message
    assert "Opportunity." not in message


def test_the_mapping_check_names_missing_and_mistyped_fields(invoice_org, salesforce, invoices_section):
    section = copy.deepcopy(invoices_section)
    section["external_id"] = "Invoice_Number__c"  # not in the object
    section["account"] = "Opportunity__c"  # a reference, but to Opportunity
    section["opportunity"] = None
    section["fields"] = {"DocNum": "SAP_Doc_Entry__c", "DocumentStatus": "Total__c", "VatSum": "Tax__c"}
    message = check(_document(section))
    assert "SAP_Invoice__c.Invoice_Number__c does not exist in the org" in message
    assert "SAP_Invoice__c.Tax__c does not exist in the org" in message
    assert "SAP_Invoice__c.Total__c is a currency field; the mapping puts text in it" in message
    assert (
        "SAP_Invoice__c.Opportunity__c is a reference field (to Opportunity); the mapping puts a "
        "reference to Account in it"
    ) in message

    section = copy.deepcopy(invoices_section)
    section["external_id"] = "Name"
    section["fields"] = {"DocTotal": "Total__c"}
    assert "SAP_Invoice__c.Name is not marked External ID" in check(_document(section))

    # The conftest's section fits the object.
    operator = SalesforceMappingCheckOperator(
        task_id="check_mapping", options={"mapping": _document(invoices_section)}
    )
    assert "SAP_Invoice__c" in operator.run({})["checked"]
