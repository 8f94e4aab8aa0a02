"""Money, kinds and the two paginators of ServiceTitan, on canned responses."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from st_unit_helpers import response

from airflow_provider_b1.hooks.servicetitan import ServiceTitanPagingError, kind_spec, money, with_decimals
from airflow_provider_b1.hooks.servicetitan.errors import ServiceTitanError
from airflow_provider_b1.hooks.servicetitan.reads import ExportPaginator, ListPaginator, export_from
from airflow_provider_b1.utils.paging import paginate


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120.00", Decimal("120.00")),
        (" -5.5 ", Decimal("-5.5")),
        (0.1, Decimal("0.1")),
        (1234.5, Decimal("1234.5")),
        (7, Decimal(7)),
        (Decimal("3.10"), Decimal("3.10")),
        (None, None),
        ("", None),
    ],
)
def test_money_is_read_exactly(value, expected):
    amount = money(value)
    assert amount == expected
    if expected is not None:
        assert str(amount) == str(expected)


@pytest.mark.parametrize("value", ["12,00", "abc", "NaN", "Infinity", True, [1]])
def test_money_refuses_what_is_not_an_amount(value):
    with pytest.raises(ValueError, match="is not an amount of money"):
        money(value)


def test_with_decimals_reads_an_invoices_money_and_its_items_and_leaves_the_record_alone():
    invoice = {
        "id": 7,
        "subTotal": "100.00",
        "salesTax": "8.25",
        "total": "108.25",
        "balance": "0.00",
        "items": [{"id": 1, "quantity": "2", "price": "50.00", "total": "100.00"}],
    }
    parsed = with_decimals("invoices", invoice)
    assert parsed["total"] == Decimal("108.25")
    assert parsed["items"][0]["price"] == Decimal("50.00")
    assert parsed["items"][0]["quantity"] == "2"  # a quantity is not money
    assert invoice["total"] == "108.25"
    assert invoice["items"][0]["total"] == "100.00"


def test_with_decimals_names_the_field_that_is_not_money():
    with pytest.raises(ValueError, match=r"appliedTo\[1\].appliedAmount"):
        with_decimals(
            "payments", {"total": "5", "appliedTo": [{"appliedAmount": "5"}, {"appliedAmount": "x"}]}
        )


def test_a_customers_numeric_balance_is_read_as_money():
    assert with_decimals("customers", {"balance": 1234.56})["balance"] == Decimal("1234.56")


def test_an_unknown_kind_names_the_kinds_there_are():
    with pytest.raises(ValueError, match="customers, invoices, payments"):
        kind_spec("jobs")


def test_export_from_takes_a_token_a_date_or_an_aware_moment():
    assert export_from(None) is None
    assert export_from("  tok-1 ") == "tok-1"
    assert export_from(dt.date(2024, 3, 1)) == "2024-03-01"
    moment = dt.datetime(2024, 3, 1, 2, 30, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    assert export_from(moment) == "2024-02-29T21:30:00Z"
    with pytest.raises(ValueError, match="time zone"):
        export_from(dt.datetime(2024, 3, 1))
    with pytest.raises(ValueError, match="blank"):
        export_from("  ")


def _feed(*bodies):
    """``send`` for paginate: answers the bodies in order and records what it was asked."""
    asked = []
    replies = iter(bodies)

    def send(request):
        asked.append(request)
        return response(200, next(replies))

    return send, asked


def test_export_follows_continue_from_while_has_more_and_yields_the_last_token():
    send, asked = _feed(
        {"hasMore": True, "continueFrom": "t1", "data": [{"id": 1}]},
        {"hasMore": True, "continueFrom": "t2", "data": [{"id": 2}]},
        {"hasMore": False, "continueFrom": "t3", "data": []},
    )
    pages = list(paginate(send, ExportPaginator("x"), source="ServiceTitan", what="x"))
    assert asked == [None, "t1", "t2"]
    assert [(p.records, p.continue_from, p.has_more) for p in pages] == [
        ([{"id": 1}], "t1", True),
        ([{"id": 2}], "t2", True),
        ([], "t3", False),  # empty, yet handed on: it carries the cursor
    ]


def test_export_that_repeats_its_continue_from_stops_instead_of_looping():
    send, _ = _feed(
        {"hasMore": True, "continueFrom": "same", "data": [{"id": 1}]},
        {"hasMore": True, "continueFrom": "same", "data": [{"id": 2}]},
    )
    with pytest.raises(ServiceTitanPagingError, match="same next link twice"):
        list(
            paginate(
                send, ExportPaginator("x"), source="ServiceTitan", what="x", error=ServiceTitanPagingError
            )
        )


def test_export_that_has_more_but_no_token_is_an_error():
    send, _ = _feed({"hasMore": True, "data": [{"id": 1}]})
    with pytest.raises(ServiceTitanError, match="no continueFrom"):
        list(paginate(send, ExportPaginator("the invoices export"), source="ServiceTitan", what="x"))


def test_export_empty_pages_that_keep_pointing_further_stop_the_read():
    send, _ = _feed(*({"hasMore": True, "continueFrom": f"t{i}", "data": []} for i in range(5)))
    with pytest.raises(ServiceTitanPagingError, match="empty pages"):
        list(
            paginate(
                send, ExportPaginator("x"), source="ServiceTitan", what="x", error=ServiceTitanPagingError
            )
        )


def test_list_pages_go_up_while_has_more():
    send, asked = _feed(
        {"page": 1, "pageSize": 2, "hasMore": True, "data": [{"id": 1}, {"id": 2}]},
        {"page": 2, "pageSize": 2, "hasMore": False, "data": [{"id": 3}]},
    )
    pages = list(paginate(send, ListPaginator("customers"), source="ServiceTitan", what="customers"))
    assert asked == [None, 2]
    assert pages == [[{"id": 1}, {"id": 2}], [{"id": 3}]]


def test_a_body_that_is_not_json_names_the_content_type():
    def send(request):
        reply = response(200, b"<html>login</html>", headers={"Content-Type": "text/html"})
        return reply

    with pytest.raises(ServiceTitanError, match="text/html"):
        list(paginate(send, ListPaginator("customers"), source="ServiceTitan", what="customers"))
