"""ServiceTitan records into SAP receivables through the flow's sink, against the SAP sandbox over
HTTPS: partners, service invoices and payments written once, whatever is re-run."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal

import pytest

from airflow_provider_b1.servicetitan.customers import CustomerMap
from airflow_provider_b1.servicetitan.flow import SERVICETITAN_FLOW
from airflow_provider_b1.servicetitan.mappings import parse_mappings
from airflow_provider_b1.servicetitan.sink import SapReceivablesSink
from airflow_provider_b1.sync import AuditTrail, Page, Source, SyncWindow, TokenCursor, sync_stream
from airflow_provider_b1.utils.sql import open_database

MAPPINGS = {
    "card_code": "T{id}",
    "gl_accounts": {"4000": "421001", "4100": "411001"},
    "business_units": {"HVAC Service": "OPS"},
    "sales_tax_account": "211001",
    "payment_types": {"Cash": {"cash": "111001"}, "Check": {"transfer": "111002"}},
}


class StFeed(Source):
    """ServiceTitan-shaped records of one stream, as an export would page them."""

    system = "servicetitan"

    def __init__(self) -> None:
        self.records: dict[str, dict[str, dict]] = {"customers": {}, "invoices": {}, "payments": {}}

    def read(self, stream, start, *, until) -> Iterator[Page]:
        rows = list(self.records[stream.name].values())
        done = int(start.token[1:]) if start is not None else 0  # records added since come after
        if rows[done:]:
            yield Page(rows[done:], reached=TokenCursor(f"t{len(rows)}"), resumable=True)

    def read_keys(self, stream, keys) -> Iterator[Page]:
        wanted = {str(k) for k in keys}  # keys as the audit trail holds them
        found = [r for k, r in self.records[stream.name].items() if str(k) in wanted]
        if found:
            yield Page(found)


def customer(n: int, **fields) -> dict:
    return {"id": n, "name": f"O'Brien Heating & Cooling {n}", "type": "Commercial", "active": True, **fields}


def invoice(n: int, customer_id: int, *amounts: str, tax: str = "0.00", **fields) -> dict:
    items = [
        {
            "id": n * 10 + i,
            "skuName": f"Repair visit {i}",
            "quantity": "1",
            "price": amount,
            "total": amount,
            "generalLedgerAccount": {"name": "Service Revenue", "number": "4000", "type": "Income"},
        }
        for i, amount in enumerate(amounts)
    ]
    sub = sum(Decimal(a) for a in amounts)
    return {
        "id": n,
        "referenceNumber": f"INV-{n}",
        "invoiceDate": "2026-11-02T00:00:00Z",
        "dueDate": "2026-12-02T00:00:00Z",
        "subTotal": str(sub),
        "salesTax": tax,
        "total": str(sub + Decimal(tax)),
        "balance": str(sub + Decimal(tax)),
        "customer": {"id": customer_id, "name": f"Customer {customer_id}"},
        "businessUnit": {"id": 7, "name": "HVAC Service"},
        "items": items,
        **fields,
    }


@pytest.fixture
def setup(sap_sandbox, set_connection, tmp_path, monkeypatch):
    sap_sandbox.restore(invoices=200)
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    set_connection("sap_b1_default", sap_sandbox.connection())
    set_connection("st_audit", {"conn_type": "sqlite", "host": str(tmp_path / "audit.db")})
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    audit = AuditTrail("st_audit")
    audit.ensure_schema()
    customers = CustomerMap(open_database("st_audit"), None, tenant=f"t{secrets.token_hex(3)}")
    sink = SapReceivablesSink(SapB1Hook("sap_b1_default"), parse_mappings(MAPPINGS), customers)
    feed = StFeed()

    class Setup:
        def run(self, stream: str, run_id: str = "r1", cursor: dict | None = None):
            """A full read, or with ``cursor`` an incremental one from there."""
            window = SyncWindow("incremental", cursor=cursor) if cursor else SyncWindow("full")
            with audit.session(SERVICETITAN_FLOW.name, "dag", run_id, stream, 1) as session:
                return sync_stream(
                    SERVICETITAN_FLOW, SERVICETITAN_FLOW.stream(stream), feed, sink, session, window
                )

        def failed(self) -> dict:
            return {
                (r.source_entity, r.source_key): r.error
                for r in audit.records_for_replay(SERVICETITAN_FLOW.name)
            }

    s = Setup()
    s.feed, s.sink, s.customers, s.sap, s.hook = feed, sink, customers, sap_sandbox, sink.hook
    s.audit = audit
    yield s
    sink.close()
    audit.close()


def _partner(hook, code: str) -> dict:
    return hook.get("BusinessPartners", code)


def test_customers_become_partners_once_and_a_merged_customer_never_gets_its_own(setup):
    for n in (1, 2, 3):
        setup.feed.records["customers"][n] = customer(n)
    first = setup.run("customers")
    assert (first.created, first.failed) == (3, 0)
    assert _partner(setup.hook, "T1")["CardName"] == "O'Brien Heating & Cooling 1"
    assert setup.run("customers", "r2").unchanged == 3

    setup.feed.records["customers"][2] = customer(2, name="Zoë's Plumbing", active=False)
    setup.feed.records["customers"][4] = customer(4, mergedToId=1)
    third = setup.run("customers", "r3")
    assert (third.updated, third.unchanged, third.skipped) == (1, 2, 1)
    renamed = _partner(setup.hook, "T2")
    assert (renamed["CardName"], renamed["Valid"], renamed["Frozen"]) == ("Zoë's Plumbing", "tNO", "tYES")
    assert setup.hook.count("BusinessPartners", "CardCode eq 'T4'") == 0
    assert setup.customers.get([4]) == {"4": ("T1", "1")}


def test_invoices_post_once_as_service_documents_and_a_changed_one_fails_with_both_totals(setup):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"] = {
        100: invoice(100, 1, "120.00", "35.50", tax="12.44"),
        101: invoice(101, 1, "80.00"),
        102: invoice(102, 9, "10.00"),  # its customer was never loaded
    }
    bad_gl = invoice(103, 1, "10.00")
    bad_gl["items"][0]["generalLedgerAccount"] = {"name": "Rebates", "number": "4999"}
    setup.feed.records["invoices"][103] = bad_gl
    first = setup.run("invoices")
    assert (first.created, first.failed) == (2, 2)
    failed = setup.failed()
    assert failed["invoices", "102"].startswith("waiting for customer 'Customer 9' (9), not in SAP yet")
    assert (
        failed["invoices", "103"]
        == "GL account 4999 (Rebates) has no SAP account in the mapping's gl_accounts"
    )
    (posted,) = list(
        setup.hook.iter_pages(
            "Invoices", filter="NumAtCard eq '100'", select=["DocEntry", "DocTotal", "DocType", "CardCode"]
        )
    )
    assert (posted[0]["DocTotal"], posted[0]["DocType"], posted[0]["CardCode"]) == (
        167.94,
        "dDocument_Service",
        "T1",
    )

    assert setup.run("invoices", "r2").unchanged == 2
    setup.feed.records["invoices"][101] = invoice(101, 1, "95.00")
    third = setup.run("invoices", "r3")
    assert setup.failed()["invoices", "101"].startswith("changed after posting: needs a correction")
    assert "totals 80.00, ServiceTitan now 95.00" in setup.failed()["invoices", "101"]
    assert third.created == 0
    assert setup.hook.count("Invoices", "NumAtCard eq '101'") == 1


def test_payments_apply_to_the_invoices_they_pay_and_wait_for_missing_ones(setup):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"] = {200: invoice(200, 1, "100.00"), 201: invoice(201, 1, "50.00")}
    setup.run("invoices")
    setup.feed.records["payments"] = {
        300: {
            "id": 300,
            "date": "2026-11-05T00:00:00Z",
            "type": "Check",
            "total": "130.00",
            "unappliedAmount": "0.00",
            "customer": {"id": 1, "name": "Customer 1"},
            "appliedTo": [
                {"appliedTo": 200, "appliedAmount": "100.00"},
                {"appliedTo": 201, "appliedAmount": "30.00"},
            ],
        },
        301: {
            "id": 301,
            "date": "2026-11-05T00:00:00Z",
            "type": "Cash",
            "total": "20.00",
            "unappliedAmount": "0.00",
            "customer": {"id": 1, "name": "Customer 1"},
            "appliedTo": [{"appliedTo": 299, "appliedAmount": "20.00"}],
        },
    }
    first = setup.run("payments")
    assert (first.created, first.failed) == (1, 1)
    assert (
        setup.failed()["payments", "301"]
        == "waiting for invoice 299, not in SAP yet: the next run posts it once it is"
    )
    paid = {
        r["NumAtCard"]: r
        for page in setup.hook.iter_pages(
            "Invoices",
            filter="NumAtCard eq '200' or NumAtCard eq '201'",
            select=["NumAtCard", "PaidToDate", "DocumentStatus"],
        )
        for r in page
    }
    assert (paid["200"]["PaidToDate"], paid["200"]["DocumentStatus"]) == (100.0, "bost_Close")
    assert (paid["201"]["PaidToDate"], paid["201"]["DocumentStatus"]) == (30.0, "bost_Open")
    assert setup.run("payments", "r2").created == 0
    assert setup.hook.count("IncomingPayments", "CounterReference eq '300'") == 1
    setup.feed.records["payments"][300]["total"] = "140.00"  # edited in ServiceTitan after posting
    setup.run("payments", "r3")
    assert setup.failed()["payments", "300"].startswith("changed after posting: needs a correction")
    assert "totals 130.00, ServiceTitan now 140.00" in setup.failed()["payments", "300"]


@pytest.mark.parametrize("reply", ["error", "draft"])
def test_an_invoice_held_for_approval_is_pending_and_never_posted_again(setup, reply):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.sap.control("POST", "approvals", {"entity": "Invoices", "threshold": 1000, "post_reply": reply})
    try:
        setup.feed.records["invoices"] = {400: invoice(400, 1, "2500.00"), 401: invoice(401, 1, "10.00")}
        first = setup.run("invoices")
        assert (first.created, first.skipped, first.failed) == (1, 1, 0)
        again = setup.run("invoices", "r2")
        assert (again.created, again.skipped) == (0, 1)
        drafts = list(setup.hook.iter_pages("Drafts", filter="NumAtCard eq '400'", select=["DocEntry"]))
        assert len(drafts[0]) == 1
        assert setup.hook.count("Invoices", "NumAtCard eq '400'") == 0
    finally:
        setup.sap.control("POST", "approvals", {})


def test_a_customer_already_in_sap_is_linked_by_its_user_field_not_created_again(setup):
    setup.hook.create(
        "BusinessPartners",
        {
            "CardCode": "C-LINK77",
            "CardName": "O'Brien Heating & Cooling 77",
            "CardType": "cCustomer",
            "U_ExternalId": "77",
        },
    )
    setup.sink.mappings = parse_mappings({**MAPPINGS, "link_field": "U_ExternalId"})
    setup.feed.records["customers"][77] = customer(77)
    summary = setup.run("customers")
    assert (summary.created, summary.unchanged) == (0, 1)
    assert setup.customers.get([77]) == {"77": ("C-LINK77", None)}
    assert setup.hook.count("BusinessPartners", "CardCode eq 'T77'") == 0


def test_a_payment_waiting_for_its_invoice_is_posted_by_the_next_run_applied_to_it(setup):
    """The invoice's customer is not in SAP at first: the invoice waits for the customer, the payment
    for the invoice. Once the customer is loaded, the next incremental runs post both, the payment
    applied to the invoice, each once."""
    setup.feed.records["customers"][5] = customer(5, name="")  # refused: no name
    setup.feed.records["invoices"][500] = invoice(500, 5, "70.00")
    setup.feed.records["payments"][600] = {
        "id": 600,
        "date": "2026-11-05T00:00:00Z",
        "type": "Cash",
        "total": "70.00",
        "customer": {"id": 5, "name": "Customer 5"},
        "appliedTo": [{"appliedTo": 500, "appliedAmount": "70.00"}],
    }
    cursors = {}
    for stream in ("customers", "invoices", "payments"):
        summary = setup.run(stream)
        assert summary.failed == 1
        cursors[stream] = summary.cursor
    assert setup.failed()["payments", "600"].startswith("waiting for invoice 500")
    assert setup.hook.count("IncomingPayments", "CounterReference eq '600'") == 0

    setup.feed.records["customers"][5] = customer(5)  # its name fixed in ServiceTitan
    assert setup.run("customers", "r2").created == 1
    invoices = setup.run("invoices", "r2", cursors["invoices"])
    assert (invoices.retried, invoices.created, invoices.failed) == (1, 1, 0)
    payments = setup.run("payments", "r2", cursors["payments"])
    assert (payments.retried, payments.created, payments.failed) == (1, 1, 0)
    (posted,) = list(
        setup.hook.iter_pages(
            "Invoices", filter="NumAtCard eq '500'", select=["PaidToDate", "DocumentStatus"]
        )
    )
    assert (posted[0]["PaidToDate"], posted[0]["DocumentStatus"]) == (70.0, "bost_Close")
    again = setup.run("payments", "r3", payments.cursor)
    assert (again.retried, again.read) == (0, 0)
    assert setup.hook.count("IncomingPayments", "CounterReference eq '600'") == 1
    assert setup.failed() == {}


def _documents(hook, entity: str, where: str) -> dict[str, dict]:
    select = ["DocEntry", "NumAtCard", "DocTotal", "PaidToDate", "DocumentStatus"]
    return {r["NumAtCard"]: r for page in hook.iter_pages(entity, filter=where, select=select) for r in page}


def _repost(setup, **settings):
    setup.sink.mappings = parse_mappings(
        {**MAPPINGS, "changed_after_posting": "credit_and_repost", **settings}
    )


@pytest.mark.parametrize("lines", ["base_document", "copy"])
def test_an_invoice_changed_after_posting_is_credited_and_posted_again_once(setup, lines):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"][101] = invoice(101, 1, "80.00")
    setup.run("invoices")
    _repost(setup, credit_memo_lines=lines)
    setup.feed.records["invoices"][101] = invoice(101, 1, "95.00")
    changed = setup.run("invoices", "r2")
    assert (changed.updated, changed.failed) == (1, 0)
    invoices = _documents(setup.hook, "Invoices", "startswith(NumAtCard, '101')")
    memos = _documents(setup.hook, "CreditNotes", "startswith(NumAtCard, '101')")
    assert {k: r["DocTotal"] for k, r in invoices.items()} == {"101": 80.0, "101-r2": 95.0}
    assert {k: r["DocTotal"] for k, r in memos.items()} == {"101": 80.0}
    if lines == "base_document":  # SAP closes the invoice against the credit memo based on it
        assert (invoices["101"]["DocumentStatus"], invoices["101"]["PaidToDate"]) == ("bost_Close", 80.0)
    (row,) = [r for r in setup.audit.history(SERVICETITAN_FLOW.name, "invoices", 101) if r["run_id"] == "r2"]
    assert (row["action"], row["target_key"]) == ("updated", str(invoices["101-r2"]["DocEntry"]))
    assert row["error"] == (
        f"changed after posting: credit memo {memos['101']['DocEntry']} cancels invoice "
        f"{invoices['101']['DocEntry']} (totals 80.00), posted again as invoice "
        f"{invoices['101-r2']['DocEntry']} (totals 95.00)"
    )

    assert setup.run("invoices", "r3").unchanged == 1  # the live version holds ServiceTitan's total
    setup.feed.records["invoices"][101] = invoice(101, 1, "60.00")
    assert setup.run("invoices", "r4").updated == 1
    invoices = _documents(setup.hook, "Invoices", "startswith(NumAtCard, '101')")
    memos = _documents(setup.hook, "CreditNotes", "startswith(NumAtCard, '101')")
    assert sorted(invoices) == ["101", "101-r2", "101-r3"]
    assert {k: r["DocTotal"] for k, r in memos.items()} == {"101": 80.0, "101-r2": 95.0}

    # A payment of the invoice applies to its live version.
    setup.feed.records["payments"][700] = {
        "id": 700,
        "date": "2026-11-06T00:00:00Z",
        "type": "Cash",
        "total": "60.00",
        "customer": {"id": 1, "name": "Customer 1"},
        "appliedTo": [{"appliedTo": 101, "appliedAmount": "60.00"}],
    }
    assert setup.run("payments").created == 1
    invoices = _documents(setup.hook, "Invoices", "startswith(NumAtCard, '101')")
    assert (invoices["101-r3"]["PaidToDate"], invoices["101-r3"]["DocumentStatus"]) == (60.0, "bost_Close")
    assert setup.failed() == {}


def test_a_load_killed_between_the_credit_memo_and_the_new_invoice_ends_with_one_live_invoice(setup):
    from airflow_provider_b1.sync import replay_keys

    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"][102] = invoice(102, 1, "40.00")
    setup.run("invoices")
    _repost(setup)
    setup.feed.records["invoices"][102] = invoice(102, 1, "45.00")
    real = setup.hook.create_many

    def killed_before_the_invoice(entity, payloads, **kwargs):
        if entity == "Invoices":
            raise KeyboardInterrupt  # the worker dies: nothing after the credit memo is sent
        return real(entity, payloads, **kwargs)

    setup.hook.create_many = killed_before_the_invoice
    with pytest.raises(KeyboardInterrupt):
        setup.run("invoices", "r2")
    del setup.hook.create_many
    assert sorted(_documents(setup.hook, "CreditNotes", "startswith(NumAtCard, '102')")) == ["102"]
    assert sorted(_documents(setup.hook, "Invoices", "startswith(NumAtCard, '102')")) == ["102"]

    again = setup.run("invoices", "r2")  # the next try of the same run
    assert (again.updated, again.failed) == (1, 0)
    with setup.audit.session(SERVICETITAN_FLOW.name, "replay", "r3", "replay", 1) as session:
        (replayed,) = replay_keys(
            SERVICETITAN_FLOW, SERVICETITAN_FLOW.stream("invoices"), setup.feed, setup.sink, session, ["102"]
        )
    assert replayed.action == "unchanged"
    assert setup.run("invoices", "r4").unchanged == 1
    invoices = _documents(setup.hook, "Invoices", "startswith(NumAtCard, '102')")
    memos = _documents(setup.hook, "CreditNotes", "startswith(NumAtCard, '102')")
    assert {k: r["DocTotal"] for k, r in invoices.items()} == {"102": 40.0, "102-r2": 45.0}
    assert {k: r["DocTotal"] for k, r in memos.items()} == {"102": 40.0}  # one per replaced version


def test_a_paid_invoice_changed_after_posting_is_not_credited_and_fails_saying_why(setup):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"][103] = invoice(103, 1, "50.00")
    setup.run("invoices")
    setup.feed.records["payments"][701] = {
        "id": 701,
        "date": "2026-11-06T00:00:00Z",
        "type": "Cash",
        "total": "20.00",
        "customer": {"id": 1, "name": "Customer 1"},
        "appliedTo": [{"appliedTo": 103, "appliedAmount": "20.00"}],
    }
    setup.run("payments")
    _repost(setup)
    setup.feed.records["invoices"][103] = invoice(103, 1, "55.00")
    assert setup.run("invoices", "r2").failed == 1
    reason = setup.failed()["invoices", "103"]
    assert reason.startswith("changed after posting (SAP invoice ")
    assert "totals 50.00, ServiceTitan now 55.00), and SAP invoice" in reason
    assert "has 20.00 applied to it: SAP does not credit a paid invoice in full" in reason
    assert setup.hook.count("CreditNotes", "NumAtCard eq '103'") == 0
    assert setup.hook.count("Invoices", "startswith(NumAtCard, '103')") == 1


def test_without_the_setting_a_changed_invoice_fails_naming_it(setup):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"][104] = invoice(104, 1, "50.00")
    setup.run("invoices")
    setup.feed.records["invoices"][104] = invoice(104, 1, "51.00")
    setup.run("invoices", "r2")
    assert setup.failed()["invoices", "104"].endswith(
        "totals 50.00, ServiceTitan now 51.00), or set changed_after_posting: credit_and_repost"
    )


def test_a_credit_memo_held_for_approval_is_pending_and_never_posted_twice(setup):
    setup.feed.records["customers"][1] = customer(1)
    setup.run("customers")
    setup.feed.records["invoices"][105] = invoice(105, 1, "30.00")
    setup.run("invoices")
    _repost(setup)
    setup.feed.records["invoices"][105] = invoice(105, 1, "35.00")
    setup.sap.control("POST", "approvals", {"entity": "CreditNotes", "threshold": 0, "post_reply": "draft"})
    try:
        for run_id in ("r2", "r3"):
            summary = setup.run("invoices", run_id)
            assert (summary.skipped, summary.updated, summary.failed) == (1, 0, 0)
    finally:
        setup.sap.control("POST", "approvals", {})
    drafts = list(setup.hook.iter_pages("Drafts", filter="NumAtCard eq '105'", select=["DocEntry"]))
    assert len(drafts[0]) == 1
    (row,) = [r for r in setup.audit.history(SERVICETITAN_FLOW.name, "invoices", 105) if r["run_id"] == "r3"]
    assert row["error"] == f"credit memo pending approval (draft {drafts[0][0]['DocEntry']})"
    assert setup.hook.count("Invoices", "startswith(NumAtCard, '105')") == 1
