"""The Salesforce flow's two sinks between the SAP sandbox and the Salesforce sandbox.

Both sides are real servers over HTTPS, spoken to by the real hooks; Salesforce records are read
as the flow reads them (its SOQL, through :class:`SalesforceSource`), and edited as a user would
in the UI. What is under test is what reaches SAP, what is written back to Salesforce (the org's
own records, and its count of API calls: one sObject Collections call per page written), and that
no write echoes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from salesforce_flow_helpers import MAPPING

from airflow_provider_b1.salesforce.to_salesforce import SapFigures, SapToSalesforceSink
from airflow_provider_b1.salesforce.to_sap import SalesforceToSapSink
from airflow_provider_b1.sync.engine import Item
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action

#: Call kinds the sandbox counts that change records.
WRITE_KINDS = ("sobject_create", "sobject_update", "sobject_delete", "upsert_one", "bulk_ingest_create")


def write(sink, stream, records):
    prepared = sink.prepare(Stream(stream), records)
    items = [p for p in prepared if isinstance(p, Item)]
    outcomes = dict(sink.write(Stream(stream), items, None)) if items else {}
    outcomes.update({p.key: p for p in prepared if not isinstance(p, Item)})
    return outcomes


def writes(org) -> dict[str, Any]:
    """The org's write calls so far, by kind, and the records they wrote."""
    stats = org.stats()
    calls = {
        kind: n
        for kind, n in stats["calls"].items()
        if kind in WRITE_KINDS or (kind.startswith("collections_") and kind != "collections_retrieve")
    }
    return {"calls": calls, "records": stats["records_written"]}


def fetch(source, stream: str, *ids: str) -> list[dict[str, Any]]:
    """The records as the flow reads them (its SOQL), in the order of ``ids``."""
    found = {r["Id"]: r for page in source.read_keys(Stream(stream), list(ids)) for r in page.records}
    return [found[i] for i in ids]


def held(org, obj: str, record_id: str) -> dict[str, Any]:
    """The record as the org holds it."""
    return next(r for r in org.truth(obj) if r["Id"] == record_id)


def numbered(org, number: str) -> str:
    """The id of the seeded account whose number is SAP's customer ``number``."""
    return next(r["Id"] for r in org.truth("Account") if r["AccountNumber"] == number)


def won_deal(org, account_id: str, name: str, *, amount: float | None = None, lines=()) -> str:
    """A new Closed Won opportunity (with products ``[(code, quantity, price)]``); its id."""
    fields: dict[str, Any] = {
        "Name": name,
        "AccountId": account_id,
        "StageName": "Closed Won",
        "CloseDate": "2026-01-15",
    }
    if amount is not None:
        fields["Amount"] = amount
    deal = org.edit("Opportunity", None, **fields)["id"]
    entries = {e["ProductCode"]: e["Id"] for e in org.truth("PricebookEntry")}
    for code, quantity, price in lines:
        org.edit(
            "OpportunityLineItem",
            None,
            OpportunityId=deal,
            PricebookEntryId=entries[code],
            Quantity=quantity,
            UnitPrice=price,
        )
    return deal


def line_items(org, deal: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in org.truth("OpportunityLineItem") if r["OpportunityId"] == deal), key=lambda r: r["Id"]
    )


def partner(sap, code):
    return sap.get("BusinessPartners", code)


def orders_of(sap, deals: list[str]) -> list[dict[str, Any]]:
    return [
        r
        for page in sap.iter_any_of("Orders", "NumAtCard", deals, select=["DocEntry", "NumAtCard"])
        for r in page
    ]


def test_accounts_become_partners_linked_once_and_a_second_run_writes_nothing(
    org, salesforce, source, sap, ledger
):
    known = numbered(org, "C00001")
    org.edit(
        "Account",
        known,
        Name="Renamed in Salesforce",
        Phone=None,
        Website=None,
        BillingStreet=None,
        BillingCity=None,
        BillingPostalCode=None,
    )
    new = org.edit("Account", None, Name="Brand New Ltd")["id"]
    accounts = fetch(source, "Account", known, new)
    sink = SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger)
    first = write(sink, "Account", accounts)
    assert first[known].action is Action.UPDATED
    assert first[new].action is Action.CREATED
    new_code = first[new].target_key
    assert new_code == MAPPING.card_code_for(new)
    assert partner(sap, "C00001")["CardName"] == "Renamed in Salesforce"
    created = partner(sap, new_code)
    assert (created["CardName"], created["U_SalesforceId"]) == ("Brand New Ltd", new)
    # The new code went back to the account's number, in one call.
    assert held(org, "Account", new)["AccountNumber"] == new_code
    assert writes(org) == {"calls": {"collections_update": 1}, "records": {"collections_update": 1}}

    # The write-back moved the account's stamp: read again, it changes nothing anywhere.
    again = fetch(source, "Account", known, new)
    assert again[1]["SystemModstamp"] > accounts[1]["SystemModstamp"]
    assert {o.action for o in write(sink, "Account", again).values()} == {Action.UNCHANGED}
    assert writes(org)["calls"] == {"collections_update": 1}
    # SAP's stream fills in what only SAP held (C00001's phone and address), in one call...
    back = SapToSalesforceSink(salesforce, lambda: sap, MAPPING, ledger)
    partners = [partner(sap, "C00001"), partner(sap, new_code)]
    filled = write(back, "BusinessPartners", partners)
    assert filled["C00001"].action is Action.UPDATED
    # The flow's own partner: its fields are an echo; only SAP's balances are new to the account.
    assert filled[new_code].action is Action.UPDATED
    created_account = held(org, "Account", new)
    assert (created_account["Name"], created_account["SAP_Open_Balance__c"]) == ("Brand New Ltd", 0)
    shown = held(org, "Account", known)
    assert (shown["Phone"], shown["BillingCity"]) == (partners[0]["Phone1"], partners[0]["City"])
    assert shown["Name"] == "Renamed in Salesforce"
    assert writes(org) == {"calls": {"collections_update": 2}, "records": {"collections_update": 3}}
    # ...and from then on neither direction writes anything.
    assert {o.action for o in write(back, "BusinessPartners", partners).values()} == {Action.UNCHANGED}
    assert {o.action for o in write(sink, "Account", fetch(source, "Account", known, new)).values()} == {
        Action.UNCHANGED
    }
    assert writes(org)["calls"] == {"collections_update": 2}


def test_a_first_sync_of_the_whole_org_writes_back_once_per_page(org, salesforce, source, sap, ledger):
    sink = SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger)
    pages = list(source.read(Stream("Account"), None, until=None))
    assert [len(p.records) for p in pages] == [25, 15]
    without_number = {r["Id"] for p in pages for r in p.records if not r["AccountNumber"]}
    assert without_number  # the seeded org has accounts no partner is known for
    outcomes: dict[str, Any] = {}
    for page in pages:
        before = writes(org)["calls"].get("collections_update", 0)
        outcomes.update(write(sink, "Account", page.records))
        # At most one Salesforce call per page, however many numbers it writes back.
        assert writes(org)["calls"].get("collections_update", 0) - before <= 1
    assert all(o.action is not Action.FAILED for o in outcomes.values()), outcomes
    assert writes(org)["records"] == {"collections_update": len(without_number)}
    numbers = {r["Id"]: r["AccountNumber"] for r in org.truth("Account")}
    assert all(numbers[key] == outcome.target_key for key, outcome in outcomes.items())

    # Back from SAP: one page of the 40 linked partners is one Collections call, whatever it fills.
    back = SapToSalesforceSink(salesforce, lambda: sap, MAPPING, ledger)
    before = writes(org)["calls"]["collections_update"]
    partners = [partner(sap, code) for code in numbers.values()]
    filled = write(back, "BusinessPartners", partners)
    updated = [code for code, o in filled.items() if o.action is Action.UPDATED]
    # SAP owns the phone: a first sync takes SAP's where both differ; and every newly linked
    # account gets SAP's balances.
    assert len(updated) > 25
    assert writes(org)["calls"]["collections_update"] - before == 1
    assert writes(org)["records"] == {"collections_update": len(without_number) + len(updated)}
    phones = {r["AccountNumber"]: r["Phone"] for r in org.truth("Account")}
    assert all(phones[p["CardCode"]] == p["Phone1"] for p in partners if p["CardCode"] in updated)
    # Converged: a second round writes nothing on either side.
    before = writes(org)
    assert {o.action for o in write(back, "BusinessPartners", partners).values()} == {Action.UNCHANGED}
    for page in source.read(Stream("Account"), None, until=None):
        assert {o.action for o in write(sink, "Account", page.records).values()} == {Action.UNCHANGED}
    assert writes(org) == before


def test_a_field_changed_on_one_side_flows_and_a_conflict_goes_to_its_system_of_record(
    org, salesforce, source, sap, ledger
):
    account = numbered(org, "C00003")
    org.edit("Account", account, Phone="111 1111", Website="a.example")
    to_sap = SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger)
    to_salesforce = SapToSalesforceSink(salesforce, lambda: sap, MAPPING, ledger)
    write(to_sap, "Account", fetch(source, "Account", account))  # first sync: Phone is SAP's
    write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")])
    assert held(org, "Account", account)["Phone"] == partner(sap, "C00003")["Phone1"]

    # SAP changes the phone (owned by SAP), Salesforce the website (owned by Salesforce)...
    sap.update("BusinessPartners", "C00003", {"Phone1": "222 2222"})
    org.edit("Account", account, Website="b.example")
    write(to_sap, "Account", fetch(source, "Account", account))
    write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")])
    assert partner(sap, "C00003")["Website"] == "b.example"
    assert held(org, "Account", account)["Phone"] == "222 2222"

    # ...then both change both: each field goes to its owner, and the conflict is told.
    sap.update("BusinessPartners", "C00003", {"Phone1": "333 3333", "Website": "sap.example"})
    org.edit("Account", account, Phone="444 4444", Website="sf.example")
    outcome = write(to_sap, "Account", fetch(source, "Account", account))[account]
    assert "conflict" in outcome.error
    assert "Website" in outcome.error
    calls = writes(org)["calls"]["collections_update"]
    back = write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")])["C00003"]
    assert "conflict" in back.error
    assert "Phone1" in back.error
    assert writes(org)["calls"]["collections_update"] == calls + 1
    sap_side = partner(sap, "C00003")
    assert (sap_side["Website"], sap_side["Phone1"]) == ("sf.example", "333 3333")
    shown = held(org, "Account", account)
    assert (shown["Website"], shown["Phone"]) == ("sf.example", "333 3333")

    # Converged: another cycle writes nothing on either side.
    before = writes(org)
    assert {o.action for o in write(to_sap, "Account", fetch(source, "Account", account)).values()} == {
        Action.UNCHANGED
    }
    assert {
        o.action for o in write(to_salesforce, "BusinessPartners", [partner(sap, "C00003")]).values()
    } == {Action.UNCHANGED}
    assert writes(org) == before


def test_won_opportunities_become_one_sales_order_each_updated_while_open(
    org, salesforce, source, sap, ledger
):
    acme = numbered(org, "C00004")
    with_products = won_deal(org, acme, "Deal 1", lines=[("A00001", 2, 10.0), ("A00002", 1, 5.5)])
    service = won_deal(org, acme, "Deal 2", amount=250.0)  # no products: the service line
    deals = [with_products, service]
    sink = SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger)
    first = write(sink, "Opportunity", fetch(source, "Opportunity", *deals))
    assert {o.action for o in first.values()} == {Action.CREATED}
    orders = {d: sap.find_by("Orders", "NumAtCard", d) for d in deals}
    assert [(line["ItemCode"], line["Quantity"]) for line in orders[with_products]["DocumentLines"]] == [
        ("A00001", 2.0),
        ("A00002", 1.0),
    ]
    assert orders[service]["DocTotal"] == 250.0
    shown = held(org, "Opportunity", with_products)
    assert shown["SAP_Order_Number__c"] == str(orders[with_products]["DocNum"])
    assert (shown["SAP_Order_Status__c"], shown["SAP_Payment_Status__c"]) == ("Open", "Not invoiced")
    # Both opportunities' numbers went back in one call.
    assert writes(org) == {"calls": {"collections_update": 1}, "records": {"collections_update": 2}}

    # Re-run and replay (the write-back moved their stamps): nothing posted twice, nothing written back.
    assert {o.action for o in write(sink, "Opportunity", fetch(source, "Opportunity", *deals)).values()} == {
        Action.UNCHANGED
    }
    assert writes(org)["calls"] == {"collections_update": 1}
    assert len(orders_of(sap, deals)) == 2

    # A changed opportunity updates its open order, lines through LineNum.
    first_line, second_line = line_items(org, with_products)
    org.control(
        "POST", "edit", {"object": "OpportunityLineItem", "id": second_line["Id"], "action": "delete"}
    )
    org.edit("OpportunityLineItem", first_line["Id"], Quantity=3)
    outcome = write(sink, "Opportunity", fetch(source, "Opportunity", with_products))[with_products]
    assert outcome.action is Action.UPDATED
    order = sap.find_by("Orders", "NumAtCard", with_products)
    assert [(line["ItemCode"], line["Quantity"]) for line in order["DocumentLines"]] == [("A00001", 3.0)]

    # Once the order is closed, a change is reported, not applied; the opportunity shows it closed.
    sap.request("POST", f"Orders({order['DocEntry']})/Close")
    org.edit("OpportunityLineItem", first_line["Id"], Quantity=9)
    outcome = write(sink, "Opportunity", fetch(source, "Opportunity", with_products))[with_products]
    assert outcome.action is Action.SKIPPED
    assert "closed" in outcome.error
    assert sap.find_by("Orders", "NumAtCard", with_products)["DocumentLines"][0]["Quantity"] == 3.0
    assert held(org, "Opportunity", with_products)["SAP_Order_Status__c"] == "Closed"
    assert len(orders_of(sap, deals)) == 2


def test_an_opportunity_whose_account_has_no_partner_yet_waits_for_it(org, salesforce, source, sap, ledger):
    orphan = org.edit("Account", None, Name="Not In SAP Yet")["id"]
    deal = won_deal(org, orphan, "Deal 3", amount=100.0)
    sink = SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger)
    outcome = write(sink, "Opportunity", fetch(source, "Opportunity", deal))[deal]
    assert outcome.action is Action.FAILED
    assert outcome.waiting_for == f"account {orphan}"
    assert orders_of(sap, [deal]) == []
    assert writes(org)["calls"] == {}


def test_invoices_and_payments_put_sap_balances_on_the_account_and_the_opportunity(
    org, salesforce, source, sap, ledger
):
    acme = numbered(org, "C00006")
    deal = won_deal(org, acme, "Deal 4", amount=400.0)
    write(
        SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger),
        "Account",
        fetch(source, "Account", acme),
    )
    invoice = sap.create(
        "Invoices",
        {
            "CardCode": "C00006",
            "NumAtCard": deal,
            "DocDate": "2026-01-20",
            "DocDueDate": "2026-02-20",
            "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": 400.0}],
        },
    )
    sink = SapToSalesforceSink(salesforce, lambda: sap, MAPPING, ledger, today=lambda: dt.date(2026, 3, 1))
    calls = writes(org)["calls"].get("collections_update", 0)
    outcome = write(sink, "Invoices", [sap.get("Invoices", invoice["DocEntry"])])[invoice["DocEntry"]]
    assert outcome.action is Action.UPDATED
    # One call per object written: the account's balances, the opportunity's amounts.
    assert writes(org)["calls"]["collections_update"] == calls + 2
    figures = SapFigures(sap, MAPPING, dt.date(2026, 3, 1)).partners(["C00006"])["C00006"]
    shown = held(org, "Account", acme)
    assert shown["SAP_Open_Balance__c"] == figures["open_balance"]
    assert shown["SAP_Overdue_Balance__c"] >= 400.0  # this invoice is past due on 1 March
    assert shown["SAP_Credit_Limit__c"] == figures["credit_limit"]
    opp = held(org, "Opportunity", deal)
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
    opp = held(org, "Opportunity", deal)
    assert (opp["SAP_Paid_Amount__c"], opp["SAP_Payment_Status__c"]) == (150.0, "Partially paid")
    latest = SapFigures(sap, MAPPING, dt.date(2026, 3, 1)).partners(["C00006"])["C00006"]["last_payment_date"]
    assert held(org, "Account", acme)["SAP_Last_Payment_Date__c"] == latest >= "2026-02-01"
    # Read again (the stamps moved, nothing else did): nothing is written.
    before = writes(org)
    assert (
        write(sink, "IncomingPayments", [sap.get("IncomingPayments", payment["DocEntry"])])[
            payment["DocEntry"]
        ].action
        is Action.UNCHANGED
    )
    assert writes(org) == before


def test_an_order_sap_keeps_for_approval_is_pending_once_and_its_draft_number_goes_back(
    org, salesforce, source, sap_sandbox, sap, ledger
):
    sap_sandbox.control("POST", "approvals", {"entity": "Orders", "threshold": 1000})
    try:
        big = numbered(org, "C00007")
        deal = won_deal(org, big, "Deal 5", amount=5000.0)
        sink = SalesforceToSapSink(sap, lambda: salesforce, MAPPING, ledger)
        outcome = write(sink, "Opportunity", fetch(source, "Opportunity", deal))[deal]
        assert outcome.action is Action.SKIPPED
        assert outcome.error.startswith("pending approval (draft ")
        shown = held(org, "Opportunity", deal)
        draft = shown["SAP_Draft_Number__c"]
        assert outcome.error == f"pending approval (draft {draft})"
        assert (shown["SAP_Order_Status__c"], shown["SAP_Order_Number__c"]) == ("Pending approval", None)
        assert writes(org) == {"calls": {"collections_update": 1}, "records": {"collections_update": 1}}
        # Run again: the draft is found, not posted a second time, and nothing is written back.
        again = write(sink, "Opportunity", fetch(source, "Opportunity", deal))[deal]
        assert again.error == f"pending approval (draft {draft})"
        drafts = [
            d
            for page in sap.iter_any_of("Drafts", "NumAtCard", [deal], select=["DocEntry", "NumAtCard"])
            for d in page
        ]
        assert len(drafts) == 1
        assert orders_of(sap, [deal]) == []
        assert writes(org)["calls"] == {"collections_update": 1}
    finally:
        sap_sandbox.control("POST", "approvals", {})
