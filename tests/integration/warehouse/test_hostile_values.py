"""Values a record may hold that a database cannot take as they are: each record keeps its value
exactly or fails alone with the reason; the rest of its page loads; nothing is silently changed.

Every case runs on PostgreSQL and on SQLite, and with the record as a dict and as the JSON bytes
SAP sent (the flow's fast path).
"""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest
from wh_records import invoice, rows

from airflow_provider_b1.warehouse.entities import ENTITIES

INVOICES = ENTITIES["Invoices"]


@pytest.fixture(params=["dict", "bytes"])
def as_sent(request):
    """A record as a dict, or as the bytes of its JSON (numbers then keep every digit SAP sent)."""
    if request.param == "dict":
        return lambda record: record
    return lambda record: msgspec.json.encode(record) if isinstance(record, dict) else record


def _outcomes(result) -> dict:
    return {o.key: (o.action.value, o.error) for o in result.outcomes}


def _invoice_json(doc_entry: int, total: str) -> bytes:
    """An invoice whose DocTotal is the JSON number text ``total``, exactly as written."""
    record = invoice(doc_entry, lines=1)
    record["DocTotal"] = 0
    return msgspec.json.encode(record).replace(b'"DocTotal":0', b'"DocTotal":' + total.encode())


def test_nul_in_a_text_value_is_kept_where_storable_and_fails_its_record_where_not(loader, as_sent):
    bad = invoice(2, Comments="before\x00after")
    bad["DocumentLines"][1]["ItemDescription"] = "tab\x00nul"
    result = loader.load_page(INVOICES, [as_sent(invoice(1)), as_sent(bad), as_sent(invoice(3))])
    outcomes = _outcomes(result)
    assert outcomes[1] == outcomes[3] == ("created", None)
    if loader.dialect == "postgres":
        assert outcomes[2] == (
            "failed",
            "Comments, DocumentLines[1].ItemDescription hold a NUL character (U+0000), which PostgreSQL "
            "cannot store; remove it in SAP, then replay the record",
        )
        assert rows(loader, "SELECT doc_entry FROM {s}fact_sales_invoice ORDER BY 1") == [(1,), (3,)]
    else:  # SQLite stores text with NUL as it is
        assert outcomes[2] == ("created", None)
        ((comments, raw),) = rows(
            loader, "SELECT comments, raw FROM {s}fact_sales_invoice WHERE doc_entry = 2"
        )
        assert comments == "before\x00after"
        assert json.loads(raw)["DocumentLines"][1]["ItemDescription"] == "tab\x00nul"


def test_text_holding_a_backslash_u0000_sequence_is_kept_exactly(loader, as_sent):
    text = "C:\\u0000\\path and \\\\u0000 too"  # backslashes and 'u0000', no NUL character
    record = invoice(1, Comments=text)
    record["DocumentLines"][0]["ItemDescription"] = text
    result = loader.load_page(INVOICES, [as_sent(record)])
    assert _outcomes(result) == {1: ("created", None)}
    ((comments, raw),) = rows(loader, "SELECT comments, raw FROM {s}fact_sales_invoice")
    assert comments == text
    stored = raw if isinstance(raw, dict) else json.loads(raw)
    assert stored["Comments"] == stored["DocumentLines"][0]["ItemDescription"] == text


@pytest.mark.parametrize(
    ("total", "reason"),
    [
        (
            "99999999999999999999.99",
            "DocTotal 99999999999999999999.99 is too large: the warehouse keeps amounts below "
            "10000000000000 in size (13 digits before the point, 6 after, as SAP does)",
        ),
        (
            "1e309",
            "DocTotal 1E+309 is too large: the warehouse keeps amounts below "
            "10000000000000 in size (13 digits before the point, 6 after, as SAP does)",
        ),
        (
            "0.1234567",
            "DocTotal 0.1234567 has more than 6 decimal places: the warehouse keeps amounts to 6, as SAP does",
        ),
    ],
)
def test_an_amount_the_warehouse_cannot_keep_exactly_fails_its_record(loader, total, reason):
    result = loader.load_page(INVOICES, [_invoice_json(1, total), _invoice_json(2, "12.5")])
    assert _outcomes(result) == {1: ("failed", reason), 2: ("created", None)}
    assert rows(loader, "SELECT doc_entry FROM {s}fact_sales_invoice") == [(2,)]


def test_an_amount_of_19_digits_is_kept_exactly_where_the_database_can(loader):
    result = loader.load_page(INVOICES, [_invoice_json(1, "1234567890123.456789")])
    if loader.dialect == "postgres":
        assert _outcomes(result) == {1: ("created", None)}
        assert rows(loader, "SELECT doc_total FROM {s}fact_sales_invoice") == [
            (Decimal("1234567890123.456789"),)
        ]
    else:  # a REAL holds about 15 significant digits: SQLite would round it
        assert _outcomes(result) == {
            1: (
                "failed",
                "DocTotal 1234567890123.456789 has more significant digits than SQLite keeps (a REAL "
                "holds about 15); load this warehouse into PostgreSQL to keep it exactly",
            )
        }


@pytest.mark.parametrize("total", ["abc", "12,50", "Infinity"])
def test_an_amount_that_is_not_a_number_fails_its_record(loader, as_sent, total):
    result = loader.load_page(INVOICES, [as_sent(invoice(1, DocTotal=total)), as_sent(invoice(2))])
    outcomes = _outcomes(result)
    assert outcomes[2] == ("created", None)
    assert outcomes[1][0] == "failed"
    assert outcomes[1][1].startswith(f"DocTotal {total!r} is not a number") or "finite" in outcomes[1][1]


def test_an_integer_beyond_what_an_integer_column_holds_fails_its_record(loader, as_sent):
    result = loader.load_page(INVOICES, [as_sent(invoice(1, DocNum=2**31)), as_sent(invoice(2))])
    assert _outcomes(result) == {
        1: ("failed", "DocNum 2147483648 is outside what the warehouse's integer columns hold (±2147483647)"),
        2: ("created", None),
    }


def test_sums_beyond_nine_trillion_reconcile_exactly(loader):
    totals = ["9999999999999.99", "9999999999999.99", "0.03"]
    loader.load_page(INVOICES, [_invoice_json(n, total) for n, total in enumerate(totals, start=1)])
    count, total = loader.stats(INVOICES)
    assert (count, total) == (3, Decimal("20000000000000.01"))
