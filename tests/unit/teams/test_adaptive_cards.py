"""Adaptive Cards for SAP documents, digests and failed tasks: what they show, SAP values shown
literally, amounts exact, messages under Teams' 28 KB, every card valid against schema 1.4."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_b1.hooks.teams.hook import MAX_MESSAGE_BYTES, message_of
from airflow_provider_b1.teams import cards
from airflow_provider_b1.teams.cards import (
    digest_card,
    document_card,
    escape,
    failure_card,
    failure_card_from_context,
    format_amount,
    incoming_payment_card,
    message_bytes,
    purchase_invoice_card,
    purchase_order_card,
    vendor_payment_card,
)

DASH = f" {cards.MISSING} "


def _lines(count: int, description: str = "Copper wire 2.5mm") -> list[dict[str, Any]]:
    return [
        {
            "LineNum": n,
            "ItemCode": f"A{n:05d}",
            "ItemDescription": f"{description} #{n}",
            "Quantity": 3.0,
            "LineTotal": 30.1,
        }
        for n in range(count)
    ]


def _order(**fields: Any) -> dict[str, Any]:
    order = {
        "DocEntry": 311,
        "DocNum": 1042,
        "CardCode": "V10000",
        "CardName": "Acme Supplies Ltd",
        "DocTotal": 1234.5,
        "DocCurrency": "EUR",
        "DocDate": "2024-03-01T00:00:00Z",
        "DocDueDate": "2024-03-31T00:00:00Z",
        "DocumentStatus": "bost_Open",
        "Cancelled": "tNO",
        "DocumentLines": _lines(3),
    }
    order.update(fields)
    return order


def _payment(**fields: Any) -> dict[str, Any]:
    payment = {
        "DocEntry": 700012,
        "DocNum": 88,
        "DocDate": "2024-04-02",
        "CardCode": "V10000",
        "CardName": "Acme Supplies Ltd",
        "CashSum": 0.0,
        "TransferSum": 1500.1,
        "DocCurrency": "USD",
        "Cancelled": "tNO",
        "PaymentInvoices": [
            {"LineNum": 0, "DocEntry": 501, "SumApplied": 1000.1, "InvoiceType": "it_PurchaseInvoice"},
            {"LineNum": 1, "DocEntry": 502, "SumApplied": 500, "InvoiceType": "it_PurchaseInvoice"},
        ],
    }
    payment.update(fields)
    return payment


def _texts(card: dict[str, Any]) -> list[str]:
    """Every TextBlock text and fact (``title: value``) of a card, in order."""
    out = []
    for element in card["body"]:
        if element["type"] == "TextBlock":
            out.append(element["text"])
        elif element["type"] == "FactSet":
            out.extend(f"{f['title']}: {f['value']}" for f in element["facts"])
    return out


def _facts(card: dict[str, Any], index: int = 0) -> dict[str, str]:
    sets = [e for e in card["body"] if e["type"] == "FactSet"]
    return {f["title"]: f["value"] for f in sets[index]["facts"]}


def test_a_purchase_order_card_shows_number_partner_amount_dates_status_and_lines(valid):
    card = valid(purchase_order_card(_order(), url="https://sap.example/b1s/PurchaseOrders(311)"))
    assert card["body"][0]["text"] == "Purchase order 1042"
    assert _facts(card) == {
        "Partner": "Acme Supplies Ltd (V10000)",
        "Amount": "1,234.50 EUR",
        "Date": "2024-03-01",
        "Due": "2024-03-31",
        "Status": "Open",
    }
    assert "Lines (3)" in _texts(card)
    assert _facts(card, 1)[f"A00000{DASH}Copper wire 2.5mm #0"] == "Qty 3 · 30.10 EUR"
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://sap.example/b1s/PurchaseOrders(311)"}
    ]
    assert not any("more" in t for t in _texts(card))


def test_at_most_n_lines_are_shown_then_how_many_more(valid):
    card = valid(purchase_order_card(_order(DocumentLines=_lines(25)), max_lines=5))
    assert len(_facts(card, 1)) == 5
    assert _texts(card)[-1] == "and 20 more lines"
    one_more = valid(purchase_order_card(_order(DocumentLines=_lines(6)), max_lines=5))
    assert _texts(one_more)[-1] == "and 1 more line"


def test_a_500_line_order_is_cut_to_fit_under_28_kb_and_says_how_many_were_left_out(valid):
    order = _order(DocumentLines=_lines(500, description="Stainless hex bolt M12x80, DIN 933, A4-80 " * 2))
    default = valid(purchase_order_card(order))
    assert len(_facts(default, 1)) == 20
    assert _texts(default)[-1] == "and 480 more lines"

    card = valid(purchase_order_card(order, max_lines=500))  # as many as fit
    shown = len(_facts(card, 1))
    assert 20 < shown < 500
    assert _texts(card)[-1] == f"and {500 - shown} more lines"
    assert message_bytes(card) <= cards.MAX_CARD_BYTES
    assert len(json.dumps(message_of(card)).encode()) < MAX_MESSAGE_BYTES  # the hook sends it
    # The most that fit: one line more would not.
    assert (
        message_bytes(purchase_order_card(order, max_lines=shown + 1, max_bytes=10**6)) > cards.MAX_CARD_BYTES
    )


def test_sap_values_show_literally_never_as_markdown(valid):
    order = _order(
        CardName="*bold* [x](y)\nsecond line",
        CardCode="_V1_",
        DocumentLines=[
            {
                "ItemCode": "# head",
                "ItemDescription": "- not a list\r\n1. nor this",
                "Quantity": 1,
                "LineTotal": 2,
            },
        ],
    )
    card = valid(purchase_order_card(order))
    assert _facts(card)["Partner"] == r"\*bold\* \[x\]\(y\) second line (\_V1\_)"
    (line,) = _facts(card, 1)
    assert line == "\\# head" + DASH + "\\- not a list 1. nor this"  # one line: "1." starts nothing
    assert escape("{{DATE(2024-01-01T00:00:00Z, SHORT)}}") == r"\{\{DATE\(2024-01-01T00:00:00Z, SHORT\)\}\}"
    assert escape("back\\slash `code` <b>~x~ #1") == r"back\\slash \`code\` \<b\>\~x\~ #1"
    assert escape("a\x00b\x1bc") == "abc"
    assert escape("x" * 1000).endswith("…")
    assert len(escape("x" * 1000)) == cards.MAX_TEXT_CHARS
    assert (
        escape("one\n\n\n- two\n# three\n 2. four", multiline=True)
        == "one\n\n\\- two\n\n\\# three\n\n2\\. four"
    )


def test_amounts_are_exact_with_their_currency():
    assert format_amount(0.1, "EUR") == "0.10 EUR"
    assert format_amount(1234567.891, "EUR") == "1,234,567.891 EUR"
    assert format_amount(Decimal("19.999999"), "USD") == "19.999999 USD"
    assert format_amount("1000", "$") == "1,000.00 $"
    assert format_amount(-42, "*X*") == r"-42.00 \*X\*"
    assert format_amount(None, "EUR") == cards.MISSING
    assert format_amount("n/a") == cards.MISSING


def test_a_cancelled_or_closed_document_says_so(valid):
    cancelled = valid(purchase_invoice_card(_order(Cancelled="tYES", DocumentStatus="bost_Close")))
    assert cancelled["body"][1] == {
        "type": "TextBlock",
        "text": "Cancelled",
        "wrap": True,
        "color": "Attention",
        "weight": "Bolder",
        "spacing": "None",
    }
    assert _facts(cancelled)["Status"] == "Cancelled"
    closed = valid(purchase_invoice_card(_order(DocumentStatus="bost_Close")))
    assert closed["body"][0]["text"] == "Purchase invoice 1042"
    assert _facts(closed)["Status"] == "Closed"


def test_a_document_without_lines_or_optional_fields_still_renders(valid):
    card = valid(purchase_order_card({"DocEntry": 5, "DocumentLines": []}))
    assert card["body"][0]["text"] == "Purchase order 5"
    assert _facts(card)["Amount"] == cards.MISSING
    assert "actions" not in card


def test_payment_cards_show_the_total_and_the_invoices_they_pay(valid):
    card = valid(vendor_payment_card(_payment(), invoice_numbers={501: 9001}))
    assert card["body"][0]["text"] == "Vendor payment 88"
    assert _facts(card) == {
        "Partner": "Acme Supplies Ltd (V10000)",
        "Amount": "1,500.10 USD",
        "Date": "2024-04-02",
        "Status": "Posted",
    }
    assert "Pays (2)" in _texts(card)
    assert _facts(card, 1) == {
        "Purchase invoice 9001": "1,000.10 USD",
        "Purchase invoice (entry 502)": "500.00 USD",
    }
    incoming = _payment(
        CashSum=10,
        TransferSum=0,
        PaymentChecks=[{"CheckSum": 0.2}],
        PaymentCreditCards=[{"CreditSum": 0.1}],
        Cancelled="tYES",
        PaymentInvoices=[{"DocEntry": 7, "SumApplied": 10.3, "InvoiceType": "it_Invoice"}] * 12,
    )
    card = valid(incoming_payment_card(incoming, max_lines=10))
    assert card["body"][0]["text"] == "Incoming payment 88"
    assert _facts(card)["Amount"] == "10.30 USD"  # 10 + 0.2 + 0.1, no float drift
    assert _facts(card)["Status"] == "Cancelled"
    assert _facts(card, 1) == {"A/R invoice (entry 7)": "10.30 USD"}  # same title: one fact per title here
    assert _texts(card)[-1] == "and 2 more invoices"


def test_document_card_picks_the_builder_by_entity(valid):
    assert valid(document_card("VendorPayments", _payment()))["body"][0]["text"] == "Vendor payment 88"
    with pytest.raises(ValueError, match="No card for 'Orders'"):
        document_card("Orders", _order())


def test_a_digest_lists_documents_for_one_destination_with_totals(valid):
    entries = [
        ("PurchaseOrders", _order()),
        ("PurchaseInvoices", _order(DocNum=2001, DocTotal="0.1")),
        ("PurchaseInvoices", _order(DocNum=2002, DocTotal=99, Cancelled="tYES")),
        ("VendorPayments", _payment()),
    ]
    card = valid(digest_card("Synced to Salesforce", entries, subtitle="Run 2024-04-02 *nightly*"))
    texts = _texts(card)
    assert texts[:3] == [
        "Synced to Salesforce",
        r"Run 2024-04-02 \*nightly\*",
        "4 documents: 1,234.60 EUR, 1,500.10 USD",  # the cancelled invoice is not counted
    ]
    assert texts[3] == "Purchase order 1042: Acme Supplies Ltd (V10000) · 1,234.50 EUR · Open"
    assert texts[5] == "Purchase invoice 2002: Acme Supplies Ltd (V10000) · 99.00 EUR · Cancelled"
    assert texts[6] == "Vendor payment 88: Acme Supplies Ltd (V10000) · 1,500.10 USD · Posted"


def test_a_long_digest_is_cut_by_count_then_by_size(valid):
    entries = [("PurchaseOrders", _order(DocNum=n, CardName="Acme " * 50)) for n in range(2000)]
    capped = valid(digest_card("Orders", entries[:60]))
    assert len(_facts(capped)) == 50
    assert _texts(capped)[-1] == "and 10 more documents"
    card = valid(digest_card("Orders", entries, max_entries=2000))
    shown = len(_facts(card))
    assert 0 < shown < 2000
    assert _texts(card)[-1] == f"and {2000 - shown} more documents"
    assert len(json.dumps(message_of(card)).encode()) < MAX_MESSAGE_BYTES
    empty = valid(digest_card("Nothing today", []))
    assert _texts(empty) == ["Nothing today", "0 documents"]


def test_a_failure_card_names_the_task_and_links_its_log_and_required_actions(valid):
    card = valid(
        failure_card(
            dag_id="sap_b1_to_warehouse",
            task_id="load_documents",
            run_id="scheduled__2024-04-02T00:00:00+00:00",
            try_number=3,
            max_tries=3,
            log_url="https://airflow.example/dags/sap_b1_to_warehouse/runs/r/tasks/load_documents?try_number=3",
            error="SAP answered 400:\n*Invalid* [document](x)",
            hitl_url="https://airflow.example/required_actions?dag_id=sap_b1_to_warehouse",
        )
    )
    assert card["body"][0]["text"] == r"Task failed: load\_documents"
    assert _facts(card) == {
        "DAG": r"sap\_b1\_to\_warehouse",
        "Task": r"load\_documents",
        "Run": r"scheduled\_\_2024-04-02T00:00:00+00:00",
        "Try": "3 of 3",
    }
    assert card["body"][-1]["text"] == "SAP answered 400:\n\n\\*Invalid\\* \\[document\\]\\(x\\)"
    assert [(a["type"], a["title"]) for a in card["actions"]] == [
        ("Action.OpenUrl", "View log"),
        ("Action.OpenUrl", "Required actions"),
    ]
    with pytest.raises(ValueError, match="http"):
        failure_card(dag_id="d", task_id="t", run_id="r", try_number=1, log_url="javascript:alert(1)")
    with pytest.raises(ValueError, match="log URL"):
        failure_card(dag_id="d", task_id="t", run_id="r", try_number=1, log_url="")


def test_a_huge_error_is_cut_so_the_alert_fits(valid):
    card = valid(
        failure_card(
            dag_id="d",
            task_id="t",
            run_id="r",
            try_number=1,
            log_url="https://airflow.example/log",
            error="Traceback line\n" * 10_000,
            max_bytes=4_000,
        )
    )
    assert message_bytes(card) <= 4_000
    assert card["body"][-1]["text"].endswith("…")


def test_a_failure_card_from_an_airflow_context(valid):
    ti = SimpleNamespace(
        dag_id="d",
        task_id="t",
        run_id="manual__1",
        try_number=2,
        max_tries=4,
        log_url="https://airflow.example/l",
    )
    card = valid(failure_card_from_context({"ti": ti, "exception": RuntimeError("boom")}))
    assert _facts(card)["Try"] == "2 of 4"
    assert card["body"][-1]["text"] == "boom"


def test_the_schema_check_itself_refuses_what_teams_would(card_validator):
    good = purchase_order_card(_order())
    assert card_validator.is_valid(good)
    assert not card_validator.is_valid({**good, "body": [{"type": "TextBlock", "txt": "typo"}]})
    assert not card_validator.is_valid({**good, "actions": [{"type": "Action.OpenUrl", "title": "no url"}]})


def test_a_foreign_currency_document_shows_its_own_currencys_totals_not_the_local_ones(valid):
    """SAP keeps ``DocTotal`` and ``LineTotal`` in the company's local currency; a EUR order's card
    shows ``DocTotalFc`` and ``RowTotalFC``, labelled EUR, in the card and in a digest."""
    order = _order(DocTotal="1358.00", DocTotalFc="1234.50")
    for line in order["DocumentLines"]:
        line["RowTotalFC"], line["LineTotal"] = line["LineTotal"], "999.99"
    card = valid(purchase_order_card(order))
    assert _facts(card)["Amount"] == "1,234.50 EUR"
    assert _facts(card, 1)[f"A00000{DASH}Copper wire 2.5mm #0"] == "Qty 3 · 30.10 EUR"
    digest = valid(digest_card("New orders", [("PurchaseOrders", order)]))
    assert "1 document: 1,234.50 EUR" in _texts(digest)
