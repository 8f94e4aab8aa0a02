"""Issue 9: what a ServiceTitan -> SAP A/R flow writes: service-type A/R invoices, credit memos
based on them, and incoming payments applied to them.

Over HTTPS to the running sandbox, as a third-party client would call it; every test reseeds the
company afterwards (``sap_control``).
"""

from __future__ import annotations

import uuid

import pytest

TAX = 0.0825  # TX8


@pytest.fixture
def ar(sap_https_sessions, sap_control):
    """``(root, v2 session, card code of a fresh USD customer)``."""
    base, _, v2 = sap_https_sessions
    root = f"{base}/b1s/v2/"
    code = f"R{uuid.uuid4().hex[:8]}"
    r = v2.post(
        root + "BusinessPartners",
        json={"CardCode": code, "CardName": "O'Brien Heating", "CardType": "cCustomer", "Currency": "USD"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return root, v2, code


def service_invoice(card: str, *lines: dict, **header) -> dict:
    return {
        "CardCode": card,
        "DocType": "dDocument_Service",
        "DocDate": "2026-11-02",
        "NumAtCard": header.pop("NumAtCard", uuid.uuid4().hex),
        "DocumentLines": list(lines),
        **header,
    }


def line(total: float, account: str = "421001", **extra) -> dict:
    return {"ItemDescription": "Repair visit", "AccountCode": account, "LineTotal": total, **extra}


def post(session, url: str, body: dict, status: int = 201) -> dict:
    r = session.post(url, json=body, timeout=10)
    assert r.status_code == status, r.text
    return r.json()


def error_of(r) -> tuple[int, str, str]:
    error = r.json()["error"]
    return r.status_code, error["code"], error["message"]


def invoice_state(session, root: str, entry: int) -> tuple[float, str]:
    doc = session.get(root + f"Invoices({entry})?$select=PaidToDate,DocumentStatus", timeout=10).json()
    return doc["PaidToDate"], doc["DocumentStatus"]


def test_service_invoice_keeps_accounts_centres_and_num_at_card_and_totals_as_sap_does(
    ar, sap_https_sessions
):
    root, v2, card = ar
    ext = f"ST-{uuid.uuid4().hex[:6]}"
    body = service_invoice(
        card,
        line(120.0, "421001", TaxCode="TX8", CostingCode="OPS", ItemDescription="Repair visit 1"),
        line(35.5, "421002", CostingCode="SALES", CostingCode2="WEST"),
        line(12.44, "211001", ItemDescription="Sales tax"),
        NumAtCard=ext,
    )
    doc = post(v2, root + "Invoices", body)
    assert (doc["DocType"], doc["NumAtCard"], doc["CardCode"], doc["DocObjectCode"]) == (
        "dDocument_Service",
        ext,
        card,
        "oInvoices",
    )
    vat = round(120.0 * TAX, 2)
    assert doc["VatSum"] == vat
    assert doc["DocTotal"] == round(120.0 + 35.5 + 12.44 + vat, 2)
    assert (doc["PaidToDate"], doc["DocumentStatus"]) == (0.0, "bost_Open")
    lines = doc["DocumentLines"]
    assert [(x["LineNum"], x["ItemCode"], x["AccountCode"], x["LineTotal"]) for x in lines] == [
        (0, None, "421001", 120.0),
        (1, None, "421002", 35.5),
        (2, None, "211001", 12.44),
    ]
    assert [x["ItemDescription"] for x in lines] == ["Repair visit 1", "Repair visit", "Sales tax"]
    assert [(x["TaxCode"], x["TaxTotal"]) for x in lines] == [("TX8", vat), ("EX", 0.0), ("EX", 0.0)]
    assert (lines[0]["CostingCode"], lines[1]["CostingCode"], lines[1]["CostingCode2"]) == (
        "OPS",
        "SALES",
        "WEST",
    )
    # Without tax codes there is no VAT: DocTotal is the sum of the lines.
    plain = post(v2, root + "Invoices", service_invoice(card, line(80.0), line(20.25)))
    assert (plain["VatSum"], plain["DocTotal"]) == (0.0, 100.25)
    # A PATCH adds or changes service lines (still no item) and the totals follow; the type stays.
    url = root + f"Invoices({plain['DocEntry']})"
    r = v2.patch(url, json={"DocumentLines": [{"LineNum": 1, "LineTotal": 19.75}, line(5.0)]}, timeout=10)
    assert r.status_code == 204, r.text
    assert v2.get(url + "?$select=DocTotal", timeout=10).json()["DocTotal"] == 104.75
    r = v2.patch(url, json={"DocType": "dDocument_Items"}, timeout=10)
    assert error_of(r) == (400, "-10", "Cannot change the document type (DocType) of an existing document")
    # Found again by its foreign id, in both protocol versions.
    base, v1, _ = sap_https_sessions
    for session, version in ((v1, "v1"), (v2, "v2")):
        found = session.get(
            f"{base}/b1s/{version}/Invoices",
            params={"$filter": f"NumAtCard eq '{ext}'", "$select": "DocEntry,DocType,DocTotal"},
            timeout=10,
        ).json()["value"]
        assert [(x["DocEntry"], x["DocType"], x["DocTotal"]) for x in found] == [
            (doc["DocEntry"], "dDocument_Service", doc["DocTotal"])
        ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"AccountCode": "499999"}, "Invalid account code '499999'"),
        ({"AccountCode": "410000"}, "Invalid account code '410000'"),  # a title account, not postable
        ({"CostingCode": "NOPE"}, "Invalid profit center 'NOPE' for dimension 1"),
        ({"CostingCode": "LEGACY"}, "Invalid profit center 'LEGACY' for dimension 1"),  # inactive
        ({"CostingCode": "WEST"}, "Invalid profit center 'WEST' for dimension 1"),  # of dimension 2
        ({"TaxCode": "VAT99"}, "Invalid tax code 'VAT99'"),
        ({"AccountCode": None}, "G/L account is not valid [DocumentLines.AccountCode][line: 1]"),
        ({"ItemCode": "A00001"}, "Item code is not allowed in a service document (line 0)"),
    ],
)
def test_service_invoice_refuses_what_sap_refuses_and_writes_nothing(ar, change, message):
    root, v2, card = ar
    ext = uuid.uuid4().hex
    r = v2.post(
        root + "Invoices", json=service_invoice(card, {**line(50.0), **change}, NumAtCard=ext), timeout=10
    )
    assert error_of(r) == (400, "-10", message)
    assert (
        v2.get(root + "Invoices/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "0"
    )


def test_credit_memo_based_on_an_invoice_reduces_its_open_amount_and_closes_it_when_all_is_credited(ar):
    root, v2, card = ar
    inv = post(v2, root + "Invoices", service_invoice(card, line(100.0, TaxCode="TX8"), line(40.0)))
    entry, total = inv["DocEntry"], inv["DocTotal"]
    assert total == round(140.0 + 100.0 * TAX, 2)
    # Line 0 in full (amount, account, tax code copied from the base line), line 1 in part.
    memo = post(
        v2,
        root + "CreditNotes",
        {
            "CardCode": card,
            "NumAtCard": "CM-1",
            "DocumentLines": [
                {"BaseType": 13, "BaseEntry": entry, "BaseLine": 0},
                {"BaseType": 13, "BaseEntry": entry, "BaseLine": 1, "LineTotal": 15.0},
            ],
        },
    )
    assert memo["DocObjectCode"] == "oCreditNotes"
    assert memo["DocType"] == "dDocument_Service"  # taken from the base invoice
    credited = round(100.0 + 100.0 * TAX + 15.0, 2)
    assert (memo["DocTotal"], memo["PaidToDate"], memo["DocumentStatus"]) == (
        credited,
        credited,
        "bost_Close",
    )
    assert [
        (x["AccountCode"], x["TaxCode"], x["LineTotal"], x["BaseEntry"], x["BaseLine"])
        for x in memo["DocumentLines"]
    ] == [
        ("421001", "TX8", 100.0, entry, 0),
        ("421001", "EX", 15.0, entry, 1),
    ]
    assert invoice_state(v2, root, entry) == (credited, "bost_Open")
    lines = v2.get(root + f"Invoices({entry})?$select=DocumentLines", timeout=10).json()["DocumentLines"]
    assert [(x["OpenAmount"], x["LineStatus"]) for x in lines] == [(0.0, "bost_Close"), (25.0, "bost_Open")]
    # The rest of line 1 closes the invoice.
    post(
        v2,
        root + "CreditNotes",
        {"CardCode": card, "DocumentLines": [{"BaseType": 13, "BaseEntry": entry, "BaseLine": 1}]},
    )
    assert invoice_state(v2, root, entry) == (total, "bost_Close")
    # Credit memos are read like any document: by key, by filter, counted.
    got = v2.get(
        root + "CreditNotes", params={"$filter": f"CardCode eq '{card}'", "$orderby": "DocEntry"}, timeout=10
    )
    assert [x["DocTotal"] for x in got.json()["value"]] == [credited, 25.0]
    assert v2.get(root + f"CreditNotes({memo['DocEntry']})", timeout=10).json()["NumAtCard"] == "CM-1"
    # A memo on no invoice stays open, owed back to the customer.
    alone = post(v2, root + "CreditNotes", service_invoice(card, line(30.0)))
    assert (alone["DocTotal"], alone["PaidToDate"], alone["DocumentStatus"]) == (30.0, 0.0, "bost_Open")


def test_credit_memo_refuses_another_partners_invoice_a_closed_line_and_more_than_is_open(ar):
    root, v2, card = ar
    inv = post(v2, root + "Invoices", service_invoice(card, line(60.0), line(10.0)))
    entry = inv["DocEntry"]
    other = post(
        v2,
        root + "BusinessPartners",
        {"CardCode": f"R{uuid.uuid4().hex[:8]}", "CardType": "cCustomer", "Currency": "USD"},
    )["CardCode"]

    def memo(card_code: str, **base) -> tuple[int, str, str]:
        ref = {"BaseType": 13, "BaseEntry": entry, "BaseLine": 0, **base}
        return error_of(
            v2.post(root + "CreditNotes", json={"CardCode": card_code, "DocumentLines": [ref]}, timeout=10)
        )

    assert memo(other) == (400, "-10", "Base document card and target document card do not match.")
    assert memo(card, LineTotal=60.01) == (
        400,
        "-10",
        f"Amount 60.01 exceeds the open amount 60.00 of line 0 of base document {entry}",
    )
    assert memo(card, BaseLine=7) == (400, "-10", f"Base line 7 does not exist in document {entry}")
    assert memo(card, BaseEntry=999999) == (400, "-10", "Base document 999999 does not exist")
    assert memo(card, BaseType=17)[2].startswith("Invalid base document type 17")
    assert invoice_state(v2, root, entry) == (0.0, "bost_Open")  # nothing refused was half-applied
    post(
        v2,
        root + "CreditNotes",
        {"CardCode": card, "DocumentLines": [{"BaseType": 13, "BaseEntry": entry, "BaseLine": 0}]},
    )
    assert memo(card) == (400, "-10", f"Base line 0 of document {entry} is closed")
    assert (
        v2.get(root + "CreditNotes/$count", params={"$filter": f"CardCode eq '{card}'"}, timeout=10).text
        == "1"
    )


def test_credit_memos_in_a_batch_changeset_commit_or_roll_back_with_their_invoice(ar):
    root, v2, card = ar
    entry = post(v2, root + "Invoices", service_invoice(card, line(50.0), line(50.0)))["DocEntry"]

    def changeset(*bodies: str) -> bytes:
        parts = "".join(
            f"--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {n}\r\n\r\n"
            f"POST /b1s/v2/CreditNotes HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{body}\r\n"
            for n, body in enumerate(bodies, 1)
        )
        return (
            f"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n{parts}--cs--\r\n--b--\r\n"
        ).encode()

    def ref(base_line: int, amount: float) -> str:
        return (
            f'{{"CardCode": "{card}", "DocumentLines": [{{"BaseType": 13, "BaseEntry": {entry}, '
            f'"BaseLine": {base_line}, "LineTotal": {amount}}}]}}'
        )

    headers = {"Content-Type": "multipart/mixed; boundary=b"}
    # The second memo over-credits line 0: the whole changeset, the first memo's effect included, is undone.
    r = v2.post(root + "$batch", data=changeset(ref(0, 30.0), ref(0, 30.0)), headers=headers, timeout=10)
    assert r.status_code == 200
    assert r.text.count("HTTP/1.1 ") == 1
    assert "exceeds the open amount" in r.text
    assert invoice_state(v2, root, entry) == (0.0, "bost_Open")
    assert (
        v2.get(root + "CreditNotes/$count", params={"$filter": f"CardCode eq '{card}'"}, timeout=10).text
        == "0"
    )
    r = v2.post(root + "$batch", data=changeset(ref(0, 30.0), ref(1, 20.0)), headers=headers, timeout=10)
    assert r.text.count("HTTP/1.1 201 Created") == 2, r.text
    assert "/b1s/v2/CreditNotes(" in r.text
    assert invoice_state(v2, root, entry) == (50.0, "bost_Open")


def test_payment_pays_invoices_in_part_or_in_full_and_keeps_the_rest_on_account(ar):
    root, v2, card = ar
    first = post(v2, root + "Invoices", service_invoice(card, line(100.0)))["DocEntry"]
    second = post(v2, root + "Invoices", service_invoice(card, line(50.0)))["DocEntry"]
    ref = uuid.uuid4().hex[:20]
    payment = post(
        v2,
        root + "IncomingPayments",
        {
            "CardCode": card,
            "DocDate": "2026-11-05",
            "CounterReference": ref,
            "TransferSum": 150.0,
            "TransferAccount": "111002",
            "TransferDate": "2026-11-05",
            "PaymentInvoices": [
                {"DocEntry": first, "SumApplied": 100.0, "InvoiceType": "it_Invoice"},
                {"DocEntry": second, "SumApplied": 30.0, "InvoiceType": "it_Invoice"},
            ],
        },
    )
    assert (payment["CardCode"], payment["TransferSum"], payment["TransferAccount"]) == (
        card,
        150.0,
        "111002",
    )
    assert payment["TransferDate"] == "2026-11-05T00:00:00Z"
    assert [(x["DocEntry"], x["SumApplied"], x["InvoiceType"]) for x in payment["PaymentInvoices"]] == [
        (first, 100.0, "it_Invoice"),
        (second, 30.0, "it_Invoice"),
    ]
    # 20.00 of the 150.00 applied to nothing: it stays on account.
    assert payment["TransferSum"] - sum(x["SumApplied"] for x in payment["PaymentInvoices"]) == 20.0
    assert invoice_state(v2, root, first) == (100.0, "bost_Close")
    assert invoice_state(v2, root, second) == (30.0, "bost_Open")
    # A cash payment settles the rest of the second one.
    post(
        v2,
        root + "IncomingPayments",
        {
            "CardCode": card,
            "DocDate": "2026-11-06",
            "CashSum": 20.0,
            "CashAccount": "111001",
            "PaymentInvoices": [{"DocEntry": second, "SumApplied": 20.0, "InvoiceType": "it_Invoice"}],
        },
    )
    assert invoice_state(v2, root, second) == (50.0, "bost_Close")
    found = v2.get(root + "IncomingPayments", params={"$filter": f"CounterReference eq '{ref}'"}, timeout=10)
    assert [x["DocEntry"] for x in found.json()["value"]] == [payment["DocEntry"]]
    # Cancelling a payment takes it back: its invoices owe again.
    assert v2.post(root + f"IncomingPayments({payment['DocEntry']})/Cancel", timeout=10).status_code == 204
    assert invoice_state(v2, root, first) == (0.0, "bost_Open")
    assert invoice_state(v2, root, second) == (20.0, "bost_Open")


def test_payment_refuses_overpaying_another_partners_or_a_missing_invoice_and_writes_nothing(ar):
    root, v2, card = ar
    entry = post(v2, root + "Invoices", service_invoice(card, line(80.0)))["DocEntry"]
    post(
        v2,
        root + "IncomingPayments",
        {"CardCode": card, "CashSum": 30.0, "PaymentInvoices": [{"DocEntry": entry, "SumApplied": 30.0}]},
    )
    other = v2.get(
        root + "Invoices",
        params={"$filter": f"CardCode ne '{card}' and DocumentStatus eq 'bost_Open'", "$top": "1"},
        timeout=10,
    ).json()["value"][0]["DocEntry"]
    count = v2.get(root + "IncomingPayments/$count", timeout=10).text

    def pay(applied: list[dict], means: float = 500.0) -> tuple[int, str, str]:
        body = {
            "CardCode": card,
            "TransferSum": means,
            "TransferAccount": "111002",
            "PaymentInvoices": applied,
        }
        return error_of(v2.post(root + "IncomingPayments", json=body, timeout=10))

    # 50.00 is still owed; SAP's own words, the line counted from 1.
    assert pay([{"DocEntry": entry, "SumApplied": 50.01}]) == (
        400,
        "-10",
        "Payment amount is greater than invoice amount  [RCT2.SumApplied][line: 1]",
    )
    # Twice the same invoice adds up: the second line is one too many.
    twice = [{"DocEntry": entry, "SumApplied": 30.0}, {"DocEntry": entry, "SumApplied": 30.0}]
    assert pay(twice)[2] == "Payment amount is greater than invoice amount  [RCT2.SumApplied][line: 2]"
    assert pay([{"DocEntry": other, "SumApplied": 1.0}]) == (
        400,
        "-10",
        f"Invalid document number {other} in PaymentInvoices",
    )
    assert pay([{"DocEntry": 999999, "SumApplied": 1.0}]) == (
        400,
        "-10",
        "Invalid document number 999999 in PaymentInvoices",
    )
    assert pay([{"DocEntry": entry, "SumApplied": 40.0}], means=39.0) == (
        400,
        "-10",
        "Total applied to documents (40.00) exceeds the payment amount (39.00)",
    )
    assert pay([{"DocEntry": entry, "SumApplied": 1.0, "InvoiceType": "it_PurchaseInvoice"}])[:2] == (
        400,
        "-5006",
    )
    assert v2.get(root + "IncomingPayments/$count", timeout=10).text == count
    assert invoice_state(v2, root, entry) == (30.0, "bost_Open")
