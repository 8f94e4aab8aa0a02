"""OData literals, keys, filters and the entity table: the one place values enter a Service Layer URL."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.hooks.sap_b1 import (
    ENTITIES,
    TEST_AREAS,
    entity_path,
    odata_any_of,
    odata_eq,
    odata_literal,
    update_stamp_filter,
)


def test_string_literals_double_single_quotes():
    assert odata_literal("O'Hara") == "'O''Hara'"
    assert odata_literal("x' or 1 eq 1 or 'a") == "'x'' or 1 eq 1 or ''a'"


def test_non_string_literals():
    assert odata_literal(5) == "5"
    assert odata_literal(True) == "true"
    assert odata_literal(None) == "null"
    assert odata_literal(dt.date(2024, 5, 1)) == "'2024-05-01'"
    with pytest.raises(TypeError):
        odata_literal(object())


def test_entity_path_renders_integer_keys_bare_and_strings_quoted():
    assert entity_path("Orders", 22) == "Orders(22)"
    assert entity_path("Orders", "22") == "Orders(22)"
    assert entity_path("BusinessPartners", "C'1") == "BusinessPartners('C''1')"
    assert entity_path("Dimensions", 3) == "Dimensions(3)"
    assert entity_path("Unknown", "a") == "Unknown('a')"
    with pytest.raises(ValueError, match="integers"):
        entity_path("Invoices", "abc")


def test_filters_escape_every_value():
    assert odata_eq("NumAtCard", "a'b") == "NumAtCard eq 'a''b'"
    assert odata_any_of("NumAtCard", ["a", "b'"]) == "NumAtCard eq 'a' or NumAtCard eq 'b'''"


# -- the day filter of incremental reads and reconciliation ----------------------------------------


def test_update_stamp_filter_renders_both_days_through_odata_literals():
    assert (
        update_stamp_filter("Invoices", "2024-04-30", dt.date(2024, 5, 1))
        == "UpdateDate ge '2024-04-30' and UpdateDate le '2024-05-01'"
    )
    assert update_stamp_filter(ENTITIES["JournalEntries"], None, "2024-05-01") == "UpdateDate le '2024-05-01'"
    assert update_stamp_filter("Invoices", "2024-05-01", None) == "UpdateDate ge '2024-05-01'"
    # a value is escaped like any other: a quote cannot end the literal
    assert update_stamp_filter("Invoices", "x' or 1 eq 1", None) == "UpdateDate ge 'x'' or 1 eq 1'"


def test_update_stamp_filter_is_none_without_bounds_or_without_an_update_stamp():
    assert update_stamp_filter("Invoices", None, None) is None
    assert update_stamp_filter("ChartOfAccounts", "2024-05-01", "2024-05-02") is None


def test_update_stamp_filter_refuses_a_datetime_whose_day_depends_on_the_time_zone():
    with pytest.raises(TypeError, match="time zone"):
        update_stamp_filter("Invoices", dt.datetime(2024, 5, 1, 23, 0, tzinfo=dt.timezone.utc), None)


def test_update_stamp_filter_refuses_an_undeclared_entity_by_name():
    with pytest.raises(KeyError, match="not declared in ENTITIES"):
        update_stamp_filter("Nope", "2024-05-01", None)


# -- the entity table ---------------------------------------------------------------------------------


def test_documents_dedupe_on_num_at_card_and_partners_and_items_on_their_own_key():
    documents = ("Orders", "Invoices", "CreditNotes", "DeliveryNotes", "PurchaseOrders", "Quotations")
    assert {ENTITIES[name].dedupe for name in documents} == {"NumAtCard"}
    assert ENTITIES["BusinessPartners"].dedupe is None
    assert ENTITIES["Items"].dedupe is None
    assert {ENTITIES[name].dedupe for name in ("IncomingPayments", "VendorPayments")} == {"CounterReference"}
    assert all(name in ENTITIES for _, name in TEST_AREAS)
