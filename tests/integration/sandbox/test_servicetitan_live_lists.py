"""Issue 9: the ServiceTitan sandbox's list endpoints (paging, filters, shapes), over HTTPS."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

MONEY = re.compile(r"^-?\d+\.\d{2}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")


def _all(servicetitan, module, resource, **params):
    records, page = [], 1
    while True:
        body = servicetitan.ok(module, resource, page=page, **params)
        records += body["data"]
        if not body["hasMore"]:
            return records
        page += 1


def _when(stamp: str) -> dt.datetime:
    head, _, frac = stamp.rstrip("Z").partition(".")
    moment = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return moment + dt.timedelta(microseconds=int((frac or "0")[:6].ljust(6, "0")))


def test_pages_walk_every_invoice_once_and_total_only_on_request(servicetitan):
    first = servicetitan.ok("accounting", "invoices", pageSize=250)
    assert (first["page"], first["pageSize"], first["totalCount"], first["hasMore"]) == (1, 250, None, True)
    counted = servicetitan.ok("accounting", "invoices", pageSize=250, includeTotal="true")
    assert counted["totalCount"] == 600
    invoices = _all(servicetitan, "accounting", "invoices", pageSize=250)
    ids = [i["id"] for i in invoices]
    assert len(ids) == len(set(ids)) == 600
    assert ids == sorted(ids)
    last = servicetitan.ok("accounting", "invoices", pageSize=250, page=3)
    assert (len(last["data"]), last["hasMore"]) == (100, False)
    beyond = servicetitan.ok("accounting", "invoices", pageSize=250, page=4)
    assert (beyond["data"], beyond["hasMore"]) == ([], False)


def test_page_size_defaults_to_50_and_refuses_more_than_5000(servicetitan):
    body = servicetitan.ok("accounting", "payments")
    assert (body["pageSize"], len(body["data"])) == (50, 50)
    assert len(servicetitan.ok("accounting", "payments", pageSize=5000)["data"]) > 50
    refused = servicetitan.get("accounting", "payments", pageSize=5001)
    assert refused.status_code == 400
    problem = refused.json()
    assert problem["title"] == "One or more validation errors occurred."
    assert "pageSize" in problem["errors"]
    assert problem["traceId"]


def test_modified_window_keeps_records_modified_on_or_after_and_before(servicetitan):
    everything = _all(servicetitan, "accounting", "invoices", pageSize=5000)
    stamps = sorted(_when(i["modifiedOn"]) for i in everything)
    lo, hi = stamps[100], stamps[300]
    expected = {i["id"] for i in everything if lo <= _when(i["modifiedOn"]) < hi}
    window = _all(
        servicetitan,
        "accounting",
        "invoices",
        pageSize=5000,
        modifiedOnOrAfter=lo.isoformat().replace("+00:00", "Z"),
        modifiedBefore=hi.isoformat().replace("+00:00", "Z"),
    )
    assert {i["id"] for i in window} == expected
    assert len(expected) >= 199
    # The same instant written with an offset selects the same records.
    shifted = lo.astimezone(dt.timezone(dt.timedelta(hours=-5))).isoformat()
    again = _all(servicetitan, "accounting", "invoices", pageSize=5000, modifiedOnOrAfter=shifted)
    assert {i["id"] for i in again} == {i["id"] for i in everything if _when(i["modifiedOn"]) >= lo}


def test_ids_filter_returns_exactly_those_records_and_refuses_more_than_50(servicetitan):
    some = servicetitan.ok("crm", "customers", pageSize=10)["data"]
    wanted = [c["id"] for c in some[::3]]
    body = servicetitan.ok("crm", "customers", ids=",".join(map(str, wanted)))
    assert [c["id"] for c in body["data"]] == wanted
    assert servicetitan.ok("crm", "customers", ids="1,2,3")["data"] == []
    too_many = servicetitan.get("crm", "customers", ids=",".join(str(n) for n in range(1, 52)))
    assert too_many.status_code == 400
    assert "ids" in too_many.json()["errors"]


def test_customer_lists_default_to_active_and_take_active_any(servicetitan):
    active = _all(servicetitan, "crm", "customers", pageSize=5000)
    every = _all(servicetitan, "crm", "customers", pageSize=5000, active="Any")
    inactive = _all(servicetitan, "crm", "customers", pageSize=5000, active="False")
    assert all(c["active"] for c in active)
    assert len(every) == 120 == len(active) + len(inactive)
    merged = [c for c in every if c["mergedToId"] is not None]
    assert merged
    assert all(not c["active"] for c in merged)
    survivors = {c["id"] for c in every}
    assert all(c["mergedToId"] in survivors for c in merged)


def test_query_parameter_names_ignore_case(servicetitan):
    body = servicetitan.ok("accounting", "invoices", pagesize=7, INCLUDETOTAL="true")
    assert (body["pageSize"], body["totalCount"]) == (7, 600)


def test_malformed_values_answer_a_validation_problem(servicetitan):
    for params, field in (
        ({"page": "0"}, "page"),
        ({"pageSize": "many"}, "pageSize"),
        ({"modifiedOnOrAfter": "yesterday"}, "modifiedOnOrAfter"),
        ({"includeTotal": "yes"}, "includeTotal"),
        ({"ids": "1,x"}, "ids"),
        ({"sort": "+Name"}, "sort"),
    ):
        reply = servicetitan.get("accounting", "invoices", **params)
        assert reply.status_code == 400, params
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert field in reply.json()["errors"]


def test_sort_by_modified_on_descending(servicetitan):
    body = servicetitan.ok("accounting", "invoices", pageSize=20, sort="-ModifiedOn")
    stamps = [_when(i["modifiedOn"]) for i in body["data"]]
    assert stamps == sorted(stamps, reverse=True)


def test_single_customer_and_business_unit_by_id(servicetitan):
    customer = servicetitan.ok("crm", "customers", pageSize=1)["data"][0]
    assert servicetitan.ok("crm", f"customers/{customer['id']}") == customer
    units = servicetitan.ok("settings", "business-units", active="Any")["data"]
    assert len(units) == 6
    assert any(not u["active"] for u in units)
    assert servicetitan.ok("settings", f"business-units/{units[0]['id']}")["name"] == units[0]["name"]


def test_invoices_add_up_and_carry_general_ledger_accounts(servicetitan):
    invoices = _all(servicetitan, "accounting", "invoices", pageSize=5000)
    payments = _all(servicetitan, "accounting", "payments", pageSize=5000)
    applied: dict[int, Decimal] = {}
    for payment in payments:
        for entry in payment["appliedTo"]:
            applied[entry["appliedTo"]] = applied.get(entry["appliedTo"], Decimal(0)) + Decimal(
                entry["appliedAmount"]
            )
    accounts = set()
    edited = 0
    for invoice in invoices:
        for field in ("subTotal", "salesTax", "total", "balance"):
            assert MONEY.match(invoice[field]), (field, invoice[field])
        assert STAMP.match(invoice["modifiedOn"])
        assert 1 <= len(invoice["items"]) <= 6
        assert sum(Decimal(i["total"]) for i in invoice["items"]) == Decimal(invoice["subTotal"])
        assert Decimal(invoice["subTotal"]) + Decimal(invoice["salesTax"]) == Decimal(invoice["total"])
        assert Decimal(invoice["total"]) - applied.get(invoice["id"], Decimal(0)) == Decimal(
            invoice["balance"]
        )
        assert set(invoice["customer"]) == {"id", "name"}
        assert set(invoice["businessUnit"]) == {"id", "name"}
        for item in invoice["items"]:
            gl = item["generalLedgerAccount"]
            assert isinstance(gl["number"], str)
            accounts.add((gl["number"], gl["name"], gl["type"]))
        edited += _when(invoice["modifiedOn"]) - _when(invoice["createdOn"]) > dt.timedelta(days=1)
    assert {("4000", "Service Revenue", "Income"), ("4100", "Parts & Materials", "Income")} <= accounts
    assert len({a[0] for a in accounts}) <= 6
    assert edited > 10


def test_payments_are_full_partial_combined_and_sometimes_leave_money_unapplied(servicetitan):
    payments = _all(servicetitan, "accounting", "payments", pageSize=5000)
    invoices = {i["id"]: i for i in _all(servicetitan, "accounting", "invoices", pageSize=5000)}
    types = {p["type"] for p in payments}
    assert {"Check", "Credit Card"} <= types
    for payment in payments:
        applied = sum((Decimal(e["appliedAmount"]) for e in payment["appliedTo"]), Decimal(0))
        assert Decimal(payment["total"]) - applied == Decimal(payment["unappliedAmount"])
        assert MONEY.match(payment["total"])
        assert MONEY.match(payment["unappliedAmount"])
        assert all(e["appliedTo"] in invoices for e in payment["appliedTo"])
    assert any(len(p["appliedTo"]) > 1 for p in payments)
    assert any(Decimal(p["unappliedAmount"]) > 0 for p in payments)
    partial = [i for i in invoices.values() if Decimal(0) < Decimal(i["balance"]) < Decimal(i["total"])]
    assert partial


def test_customer_names_keep_apostrophes_and_non_ascii_letters(servicetitan):
    names = [c["name"] for c in _all(servicetitan, "crm", "customers", pageSize=5000, active="Any")]
    assert any("'" in n for n in names)
    assert any(not n.isascii() for n in names)
    types = {c["type"] for c in _all(servicetitan, "crm", "customers", pageSize=5000, active="Any")}
    assert types == {"Residential", "Commercial"}
