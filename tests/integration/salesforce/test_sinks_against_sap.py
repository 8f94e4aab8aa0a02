"""The Salesforce flow's two sinks against the real SAP sandbox.

Salesforce itself is a small in-memory org here (:class:`Org`: ``get_many`` and ``update_many``
with per-record results, counting calls) until the Salesforce sandbox carries these tests; what
is under test is what reaches SAP, what is written back, and that no write echoes.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import pytest

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
from airflow_provider_b1.salesforce.mapping import load_mapping
from airflow_provider_b1.salesforce.to_salesforce import SapFigures, SapToSalesforceSink
from airflow_provider_b1.salesforce.to_sap import SalesforceToSapSink
from airflow_provider_b1.sync.engine import Item
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action
from airflow_provider_b1.sync.pairs import PairLedger
from airflow_provider_b1.utils.sql import Database

MAPPING = load_mapping(Path(__file__).parents[3] / "dags" / "salesforce_mapping.yaml")


class Org:
    """Accounts and opportunities by id; every call counted."""

    def __init__(self, records):
        self.records = {r["Id"]: copy.deepcopy(r) for r in records}
        self.calls = []

    def get_many(self, sobject, ids, fields):
        self.calls.append(("get_many", sobject, len(ids)))
        return {i: ({f: self.records[i].get(f) for f in fields} if i in self.records else None) for i in ids}

    def update_many(self, sobject, records):
        self.calls.append(("update_many", sobject, len(records)))
        results = []
        for record in records:
            held = self.records.get(record["Id"])
            if held is None:
                results.append(
                    {"success": False, "errors": [{"errorCode": "ENTITY_IS_DELETED", "message": "deleted"}]}
                )
            else:
                held.update({k: v for k, v in record.items() if k != "Id"})
                results.append({"id": record["Id"], "success": True, "errors": []})
        return results

    def writes(self):
        return [c for c in self.calls if c[0] == "update_many"]

    def close(self):
        pass


def account(i, number=None, **fields):
    return {
        "Id": f"0010000000000{i:02d}AAA",
        "SystemModstamp": "2026-01-01T00:00:00.000+0000",
        "AccountNumber": number,
        "Name": f"Account {i}",
        "Phone": None,
        "Website": None,
        "BillingStreet": None,
        "BillingCity": None,
        "BillingPostalCode": None,
        **fields,
    }


def opportunity(i, account_record, lines=(), amount=100.0):
    return {
        "Id": f"0060000000000{i:02d}AAA",
        "Name": f"Deal {i}",
        "AccountId": account_record["Id"],
        "Account": {"AccountNumber": account_record.get("AccountNumber")},
        "Amount": amount,
        "CloseDate": "2026-01-15",
        "OpportunityLineItems": {
            "records": [
                {"Id": f"00k{i}{n}", "Quantity": q, "UnitPrice": p, "Product2": {"ProductCode": code}}
                for n, (code, q, p) in enumerate(lines)
            ]
        }
        if lines
        else None,
    }


@pytest.fixture
def sap(sap_sandbox, set_connection):
    sap_sandbox.restore(invoices=200)
    set_connection("sap_b1_default", sap_sandbox.connection())
    hook = SapB1Hook("sap_b1_default")
    yield hook
    hook.close()


@pytest.fixture
def ledger(tmp_path):
    path = str(tmp_path / "audit.db")
    return PairLedger(Database("audit", "sqlite", (path,), path), None, "salesforce:00Dtest")


def write(sink, stream, records):
    prepared = sink.prepare(Stream(stream), records)
    items = [p for p in prepared if isinstance(p, Item)]
    outcomes = dict(sink.write(Stream(stream), items, None)) if items else {}
    outcomes.update({p.key: p for p in prepared if not isinstance(p, Item)})
    return outcomes


def partner(sap, code):
    return sap.get("BusinessPartners", code)


def test_accounts_become_partners_linked_once_and_a_second_run_writes_nothing(sap, ledger):
    accounts = [account(1, "C00001", Name="Renamed in Salesforce"), account(2, None, Name="Brand New Ltd")]
    org = Org(accounts)
    sink = SalesforceToSapSink(sap, lambda: org, MAPPING, ledger)
    first = write(sink, "Account", accounts)
    assert first[accounts[0]["Id"]].action is Action.UPDATED
    assert first[accounts[1]["Id"]].action is Action.CREATED
    new_code = first[accounts[1]["Id"]].target_key
    assert new_code == MAPPING.card_code_for(accounts[1]["Id"])
    assert partner(sap, "C00001")["CardName"] == "Renamed in Salesforce"
    created = partner(sap, new_code)
    assert (created["CardName"], created["U_SalesforceId"]) == ("Brand New Ltd", accounts[1]["Id"])
    # The new code went back to the account's number, in one call.
    assert org.records[accounts[1]["Id"]]["AccountNumber"] == new_code
    assert org.writes() == [("update_many", "Account", 1)]

    # The write-back moved the account's stamp: read again, it changes nothing anywhere.
    again = write(sink, "Account", list(org.records.values()))
    assert {o.action for o in again.values()} == {Action.UNCHANGED}
    assert org.writes() == [("update_many", "Account", 1)]
    # SAP's stream fills in what only SAP held (C00001's phone and address), in one call...
    back = SapToSalesforceSink(org, lambda: sap, MAPPING, ledger)
    partners = [partner(sap, "C00001"), partner(sap, new_code)]
    filled = write(back, "BusinessPartners", partners)
    assert filled[("C00001")].action is Action.UPDATED
    assert filled[new_code].action is Action.UNCHANGED  # the flow's own partner: an echo
    assert org.records[accounts[0]["Id"]]["Phone"] == partners[0]["Phone1"]
    assert org.writes() == [("update_many", "Account", 1), ("update_many", "Account", 1)]
    # ...and from then on neither direction writes anything.
    assert {o.action for o in write(back, "BusinessPartners", partners).values()} == {Action.UNCHANGED}
    assert {o.action for o in write(sink, "Account", list(org.records.values())).values()} == {
        Action.UNCHANGED
    }
    assert len(org.writes()) == 2


def test_a_field_changed_on_one_side_flows_and_a_conflict_goes_to_its_system_of_record(sap, ledger):
    accounts = [account(3, "C00003", Phone="111 1111", Website="a.example")]
    org = Org(accounts)
    to_sap = SalesforceToSapSink(sap, lambda: org, MAPPING, ledger)
    to_salesforce = SapToSalesforceSink(org, lambda: sap, MAPPING, ledger)
    write(to_sap, "Account", accounts)  # first sync: Phone is SAP's, so SAP's phone stays
    write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")])
    assert org.records[accounts[0]["Id"]]["Phone"] == partner(sap, "C00003")["Phone1"]

    # SAP changes the phone (owned by SAP), Salesforce the website (owned by Salesforce)...
    sap.update("BusinessPartners", "C00003", {"Phone1": "222 2222"})
    edited = {**org.records[accounts[0]["Id"]], "Website": "b.example"}
    org.records[edited["Id"]] = edited
    write(to_sap, "Account", [edited])
    write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")])
    assert partner(sap, "C00003")["Website"] == "b.example"
    assert org.records[edited["Id"]]["Phone"] == "222 2222"

    # ...then both change both: each field goes to its owner, and the conflict is told.
    sap.update("BusinessPartners", "C00003", {"Phone1": "333 3333", "Website": "sap.example"})
    edited = {**org.records[edited["Id"]], "Phone": "444 4444", "Website": "sf.example"}
    org.records[edited["Id"]] = edited
    outcome = write(to_sap, "Account", [edited])[edited["Id"]]
    assert "conflict" in outcome.error
    assert "Website" in outcome.error
    write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")])
    held = partner(sap, "C00003")
    assert (held["Website"], held["Phone1"]) == ("sf.example", "333 3333")
    assert (org.records[edited["Id"]]["Website"], org.records[edited["Id"]]["Phone"]) == (
        "sf.example",
        "333 3333",
    )

    # Converged: another cycle writes nothing on either side.
    before = len(org.writes())
    assert {o.action for o in write(to_sap, "Account", [org.records[edited["Id"]]]).values()} == {
        Action.UNCHANGED
    }
    assert {
        o.action for o in write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")]).values()
    } == {Action.UNCHANGED}
    assert len(org.writes()) == before


def test_won_opportunities_become_one_sales_order_each_updated_while_open(sap, ledger):
    acme = account(4, "C00004")
    deals = [
        opportunity(1, acme, [("A00001", 2, 10.0), ("A00002", 1, 5.5)]),
        opportunity(2, acme, amount=250.0),  # no products: the service line
    ]
    org = Org([acme, *deals])
    sink = SalesforceToSapSink(sap, lambda: org, MAPPING, ledger)
    first = write(sink, "Opportunity", deals)
    assert {o.action for o in first.values()} == {Action.CREATED}
    orders = {d["Id"]: sap.find_by("Orders", "NumAtCard", d["Id"]) for d in deals}
    assert orders[deals[1]["Id"]]["DocTotal"] == 250.0
    assert org.records[deals[0]["Id"]]["SAP_Order_Number__c"] == str(orders[deals[0]["Id"]]["DocNum"])
    assert org.records[deals[0]["Id"]]["SAP_Order_Status__c"] == "Open"

    # Re-run and replay: nothing posted twice, nothing written back again.
    writes = len(org.writes())
    assert {o.action for o in write(sink, "Opportunity", deals).values()} == {Action.UNCHANGED}
    assert len(org.writes()) == writes
    assert (
        len(
            sap.truth
            if False
            else [
                r
                for page in sap.iter_any_of(
                    "Orders", "NumAtCard", [d["Id"] for d in deals], select=["DocEntry", "NumAtCard"]
                )
                for r in page
            ]
        )
        == 2
    )

    # A changed opportunity updates its open order, lines through LineNum.
    changed = opportunity(1, acme, [("A00001", 3, 10.0)])
    outcome = write(sink, "Opportunity", [changed])[changed["Id"]]
    assert outcome.action is Action.UPDATED
    order = sap.find_by("Orders", "NumAtCard", changed["Id"])
    assert [(line["ItemCode"], line["Quantity"]) for line in order["DocumentLines"]] == [("A00001", 3.0)]

    # Once the order is closed, a change is reported, not applied.
    sap.request("POST", f"Orders({order['DocEntry']})/Close")
    late = opportunity(1, acme, [("A00001", 9, 10.0)])
    outcome = write(sink, "Opportunity", [late])[late["Id"]]
    assert outcome.action is Action.SKIPPED
    assert "closed" in outcome.error
    assert sap.find_by("Orders", "NumAtCard", late["Id"])["DocumentLines"][0]["Quantity"] == 3.0


def test_an_opportunity_whose_account_has_no_partner_yet_waits_for_it(sap, ledger):
    orphan = account(5, None)
    deal = opportunity(3, orphan)
    sink = SalesforceToSapSink(sap, lambda: Org([orphan, deal]), MAPPING, ledger)
    outcome = write(sink, "Opportunity", [deal])[deal["Id"]]
    assert outcome.action is Action.FAILED
    assert outcome.waiting_for == f"account {orphan['Id']}"


def test_invoices_and_payments_put_sap_balances_on_the_account_and_the_opportunity(sap, ledger):
    acme = account(6, "C00006")
    deal = opportunity(4, acme, amount=400.0)
    org = Org([acme, deal])
    write(SalesforceToSapSink(sap, lambda: org, MAPPING, ledger), "Account", [acme])
    invoice = sap.create(
        "Invoices",
        {
            "CardCode": "C00006",
            "NumAtCard": deal["Id"],
            "DocDate": "2026-01-20",
            "DocDueDate": "2026-02-20",
            "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": 400.0}],
        },
    )
    sink = SapToSalesforceSink(org, lambda: sap, MAPPING, ledger, today=lambda: dt.date(2026, 3, 1))
    outcome = write(sink, "Invoices", [sap.get("Invoices", invoice["DocEntry"])])[invoice["DocEntry"]]
    assert outcome.action is Action.UPDATED
    figures = SapFigures(sap, MAPPING, dt.date(2026, 3, 1)).partners(["C00006"])["C00006"]
    shown = org.records[acme["Id"]]
    assert shown["SAP_Open_Balance__c"] == figures["open_balance"]
    assert shown["SAP_Overdue_Balance__c"] >= 400.0  # this invoice is past due on 1 March
    opp = org.records[deal["Id"]]
    assert (opp["SAP_Invoiced_Amount__c"], opp["SAP_Paid_Amount__c"], opp["SAP_Payment_Status__c"]) == (
        400.0,
        0.0,
        "Unpaid",
    )

    payment = sap.create(
        "IncomingPayments",
        {
            "CardCode": "C00006",
            "DocDate": "2026-02-01",
            "TransferAccount": "111002",
            "TransferSum": 150.0,
            "PaymentInvoices": [
                {"DocEntry": invoice["DocEntry"], "SumApplied": 150.0, "InvoiceType": "it_Invoice"}
            ],
        },
    )
    outcome = write(sink, "IncomingPayments", [sap.get("IncomingPayments", payment["DocEntry"])])[
        payment["DocEntry"]
    ]
    assert outcome.action is Action.UPDATED
    assert (opp["SAP_Paid_Amount__c"], opp["SAP_Payment_Status__c"]) == (150.0, "Partially paid")
    latest = SapFigures(sap, MAPPING, dt.date(2026, 3, 1)).partners(["C00006"])["C00006"]["last_payment_date"]
    assert shown["SAP_Last_Payment_Date__c"] == latest >= "2026-02-01"
    # Read again (the stamps moved, nothing else did): nothing is written.
    writes = len(org.writes())
    assert (
        write(sink, "IncomingPayments", [sap.get("IncomingPayments", payment["DocEntry"])])[
            payment["DocEntry"]
        ].action
        is Action.UNCHANGED
    )
    assert len(org.writes()) == writes


def test_an_order_sap_keeps_for_approval_is_pending_once_and_its_draft_number_goes_back(
    sap_sandbox, sap, ledger
):
    sap_sandbox.control("POST", "approvals", {"entity": "Orders", "threshold": 1000})
    try:
        big = account(7, "C00007")
        deal = opportunity(5, big, amount=5000.0)
        org = Org([big, deal])
        sink = SalesforceToSapSink(sap, lambda: org, MAPPING, ledger)
        outcome = write(sink, "Opportunity", [deal])[deal["Id"]]
        assert outcome.action is Action.SKIPPED
        assert outcome.error.startswith("pending approval (draft ")
        draft = org.records[deal["Id"]]["SAP_Draft_Number__c"]
        assert outcome.error == f"pending approval (draft {draft})"
        assert org.records[deal["Id"]]["SAP_Order_Status__c"] == "Pending approval"
        # Run again: the draft is found, not posted a second time, and nothing is written back.
        writes = len(org.writes())
        assert write(sink, "Opportunity", [deal])[deal["Id"]].error == f"pending approval (draft {draft})"
        drafts = [
            d
            for page in sap.iter_any_of("Drafts", "NumAtCard", [deal["Id"]], select=["DocEntry", "NumAtCard"])
            for d in page
        ]
        assert len(drafts) == 1
        assert len(org.writes()) == writes
    finally:
        sap_sandbox.control("POST", "approvals", {})
