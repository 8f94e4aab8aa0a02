"""Issue 9: the ServiceTitan sandbox's generated tenant: deterministic, realistic, adding up."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

import msgspec
import pytest

from airflow_provider_b1.sandbox.servicetitan.data import (
    GL_ACCOUNTS,
    US_PER_DAY,
    Dataset,
    dec,
    fmt_ts,
    generate,
    parse_ts,
    to_us,
)

ANCHOR = dt.date(2025, 6, 1)


@pytest.fixture(scope="module")
def tenant() -> Dataset:
    return generate(11, customers=200, invoices=900, anchor=ANCHOR)


def _encoded(dataset: Dataset) -> dict[str, bytes]:
    return {name: msgspec.json.encode(rows) for name, rows in dataset.records.items()}


def test_the_same_seed_gives_byte_identical_records(tenant):
    assert _encoded(generate(11, customers=200, invoices=900, anchor=ANCHOR)) == _encoded(tenant)


def test_another_seed_or_anchor_gives_other_records(tenant):
    other = _encoded(generate(12, customers=200, invoices=900, anchor=ANCHOR))
    later = _encoded(generate(11, customers=200, invoices=900, anchor=ANCHOR + dt.timedelta(days=1)))
    mine = _encoded(tenant)
    assert all(other[name] != mine[name] for name in ("customers", "invoices", "payments"))
    assert later["invoices"] != mine["invoices"]


def test_sizes_are_honoured(tenant):
    assert len(tenant.records["customers"]) == 200
    assert len(tenant.records["invoices"]) == 900
    assert len(tenant.records["business-units"]) == 6
    assert 0.6 * 900 < len(tenant.records["payments"]) < 1.2 * 900
    tiny = generate(1, customers=2, invoices=0, business_units=1, anchor=ANCHOR)
    assert (len(tiny.records["customers"]), tiny.records["invoices"]) == (2, [])
    big_units = generate(1, customers=10, invoices=10, business_units=10, anchor=ANCHOR)
    names = [u["name"] for u in big_units.records["business-units"]]
    assert len(set(names)) == 10


def test_records_span_a_year_and_end_well_before_the_anchor(tenant):
    end = to_us(dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc))
    for rows in tenant.records.values():
        for record in rows:
            assert parse_ts(record["modifiedOn"]) <= end - 20 * 3_600_000_000  # far outside the 15-min lag
    dates = sorted(parse_ts(i["invoiceDate"]) for i in tenant.records["invoices"])
    assert (dates[-1] - dates[0]) / US_PER_DAY > 330


def test_records_come_in_the_order_they_were_last_modified(tenant):
    for name, rows in tenant.records.items():
        stamps = [parse_ts(r["modifiedOn"]) for r in rows]
        assert stamps == sorted(stamps), name


def test_invoice_totals_add_up(tenant):
    for invoice in tenant.records["invoices"]:
        items = invoice["items"]
        assert 1 <= len(items) <= 6
        assert sum(Decimal(i["total"]) for i in items) == Decimal(invoice["subTotal"])
        assert Decimal(invoice["subTotal"]) + Decimal(invoice["salesTax"]) == Decimal(invoice["total"])
        taxable = sum(Decimal(i["total"]) for i in items if i["taxable"])
        rate = Decimal(repr(invoice["salesTaxCode"]["taxRate"]))
        assert abs(taxable * rate - Decimal(invoice["salesTax"])) <= Decimal("0.005")
        for item in items:
            assert Decimal(item["quantity"]) * Decimal(item["price"]) - Decimal(item["total"]) < Decimal(
                "0.01"
            )


def test_balances_are_totals_less_the_payments_applied(tenant):
    applied: dict[int, Decimal] = {}
    for payment in tenant.records["payments"]:
        entries = payment["appliedTo"]
        spent = sum((Decimal(e["appliedAmount"]) for e in entries), Decimal(0))
        assert Decimal(payment["total"]) - spent == Decimal(payment["unappliedAmount"]) >= 0
        for entry in entries:
            applied[entry["appliedTo"]] = applied.get(entry["appliedTo"], Decimal(0)) + Decimal(
                entry["appliedAmount"]
            )
    by_customer: dict[int, Decimal] = {}
    for invoice in tenant.records["invoices"]:
        balance = Decimal(invoice["total"]) - applied.get(invoice["id"], Decimal(0))
        assert balance == Decimal(invoice["balance"]) >= 0
        by_customer[invoice["customer"]["id"]] = (
            by_customer.get(invoice["customer"]["id"], Decimal(0)) + balance
        )
    for customer in tenant.records["customers"]:
        assert Decimal(repr(customer["balance"])) == by_customer.get(customer["id"], Decimal(0))


def test_payments_cover_every_kind_a_ledger_meets(tenant):
    payments = tenant.records["payments"]
    invoices = tenant.records["invoices"]
    per_invoice: dict[int, int] = {}
    for payment in payments:
        for entry in payment["appliedTo"]:
            per_invoice[entry["appliedTo"]] = per_invoice.get(entry["appliedTo"], 0) + 1
    assert any(len(p["appliedTo"]) > 1 for p in payments)  # one check, several invoices
    assert any(not p["appliedTo"] for p in payments)  # a deposit on account
    assert any(p["appliedTo"] and Decimal(p["unappliedAmount"]) > 0 for p in payments)  # overpaid
    assert any(n > 1 for n in per_invoice.values())  # a partial payment settled later
    assert any(Decimal(0) < Decimal(i["balance"]) < Decimal(i["total"]) for i in invoices)  # still partial
    assert any(Decimal(i["balance"]) == Decimal(i["total"]) > 0 for i in invoices)  # unpaid
    assert {p["type"] for p in payments} == {"Check", "Credit Card", "Cash", "ACH"}


def test_invoices_are_edited_after_creation_now_and_then(tenant):
    edited = [
        i
        for i in tenant.records["invoices"]
        if parse_ts(i["modifiedOn"]) - parse_ts(i["createdOn"]) > US_PER_DAY
    ]
    assert 0.1 * 900 < len(edited) < 0.9 * 900


def test_items_book_to_a_small_fixed_chart_of_accounts(tenant):
    chart = {(a["number"], a["name"], a["type"]) for a in GL_ACCOUNTS.values()}
    used = {
        (
            i["generalLedgerAccount"]["number"],
            i["generalLedgerAccount"]["name"],
            i["generalLedgerAccount"]["type"],
        )
        for invoice in tenant.records["invoices"]
        for i in invoice["items"]
    }
    assert used <= chart
    assert {("4000", "Service Revenue", "Income"), ("4010", "Maintenance Agreements", "Income")} <= used
    assert ("4100", "Parts & Materials", "Income") in used
    assert any(
        Decimal(i["total"]) < 0 for inv in tenant.records["invoices"] for i in inv["items"]
    )  # discounts


def test_customers_are_varied_and_merges_point_at_survivors(tenant):
    customers = tenant.records["customers"]
    ids = {c["id"] for c in customers}
    merged = [c for c in customers if c["mergedToId"] is not None]
    assert merged
    for customer in merged:
        assert customer["active"] is False
        assert customer["mergedToId"] in ids
        target = next(c for c in customers if c["id"] == customer["mergedToId"])
        assert target["mergedToId"] is None
    assert any(not c["active"] and c["mergedToId"] is None for c in customers)
    assert {c["type"] for c in customers} == {"Residential", "Commercial"}
    names = [c["name"] for c in customers]
    assert any("'" in n for n in names)
    assert any(not n.isascii() for n in names)
    assert not {i["customer"]["id"] for i in tenant.records["invoices"]} & {c["id"] for c in merged}


def test_ids_grow_with_gaps(tenant):
    ids = sorted(i["id"] for i in tenant.records["invoices"])
    steps = {b - a for a, b in itertools.pairwise(ids)}
    assert min(steps) >= 1
    assert len(steps) > 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05T10:00:00Z", "2024-03-05T10:00:00Z"),
        ("2024-03-05T10:00:00.1234567Z", "2024-03-05T10:00:00.123456Z"),
        ("2024-03-05T10:00:00.5+02:00", "2024-03-05T08:00:00.5Z"),
        ("2024-03-05T10:00:00-0530", "2024-03-05T15:30:00Z"),
        ("2024-03-05", "2024-03-05T00:00:00Z"),
        ("2024-03-05T10:00", "2024-03-05T10:00:00Z"),
    ],
)
def test_timestamps_parse_as_rfc_3339_and_print_as_dotnet_does(text, expected):
    assert fmt_ts(parse_ts(text)) == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "2024-02-30T00:00:00Z", "", None, 20240101])
def test_what_is_not_a_timestamp_does_not_parse(text):
    assert parse_ts(text) is None


def test_millis_style_always_writes_three_digits():
    assert fmt_ts(parse_ts("2024-03-05T10:00:00Z"), "millis") == "2024-03-05T10:00:00.000Z"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120.00", Decimal("120.00")),
        (12.5, Decimal("12.5")),
        ("12,50", None),
        (True, None),
        ("1e99999", None),
    ],
)
def test_money_reads_strings_and_numbers_only(value, expected):
    assert dec(value) == expected
