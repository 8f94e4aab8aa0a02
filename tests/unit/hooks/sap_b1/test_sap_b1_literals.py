"""OData literals, keys, filters and the entity table: the one place values enter a Service Layer URL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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
from airflow_provider_b1.hooks.sap_b1.literals import (
    any_of_chunks,
    quote_path,
    quote_query_value,
    request_line_length,
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


# -- keys are values, never paths (issue 8, defect 7) ------------------------------------------------


def test_entity_path_percent_encodes_the_key_inside_its_literal():
    assert (
        entity_path("BusinessPartners", "/../Invoices(5)/x")
        == "BusinessPartners('%2F..%2FInvoices%285%29%2Fx')"
    )
    assert entity_path("BusinessPartners", "Ü ?#%\n") == "BusinessPartners('%C3%9C%20%3F%23%25%0A')"
    assert entity_path("BusinessPartners", "C'1") == "BusinessPartners('C''1')"  # the quote escape stays


def test_entity_set_names_cannot_be_paths():
    for entity in ("BusinessPartners/../Invoices", "Orders(5)", "", "Orders?$top=1"):
        with pytest.raises(ValueError, match="not an entity set name"):
            entity_path(entity, 1)


def test_paths_keep_the_keys_escapes_and_encode_what_is_raw():
    path = entity_path("BusinessPartners", "50%") + "/Close"
    assert quote_path(path) == "BusinessPartners('50%25')/Close"  # not %2525
    assert quote_path("Items('a b')") == "Items('a%20b')"
    assert quote_path("Items('50%')") == "Items('50%25')"


# -- literals that say exactly what was given, or nothing (issue 8, defect 8) -------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (float("inf"), "float infinity"),
        (float("-inf"), "float infinity"),
        (float("nan"), "float NaN"),
        (Decimal("NaN"), "Decimal NaN"),
        (Decimal("sNaN"), "Decimal NaN"),
        (Decimal("Infinity"), "Decimal infinity"),
    ],
)
def test_infinity_and_nan_are_refused_naming_the_kind_of_value(value, kind):
    with pytest.raises(ValueError, match=kind):
        odata_literal(value)
    with pytest.raises(ValueError, match=kind):
        odata_eq("DocTotal", value)


def test_an_aware_datetime_keeps_its_utc_offset():
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert (
        odata_literal(dt.datetime(2024, 5, 1, 13, 14, 45, tzinfo=plus_two)) == "'2024-05-01T13:14:45+02:00'"
    )
    assert odata_literal(dt.datetime(2024, 5, 1, 13, 14, 45, tzinfo=dt.timezone.utc)) == (
        "'2024-05-01T13:14:45+00:00'"
    )
    minus = dt.timezone(-dt.timedelta(hours=5, minutes=30))
    assert odata_literal(dt.datetime(2024, 5, 1, 8, 0, tzinfo=minus)) == "'2024-05-01T08:00:00-05:30'"
    with pytest.raises(ValueError, match="offset with seconds"):
        odata_literal(dt.datetime(2024, 5, 1, tzinfo=dt.timezone(dt.timedelta(seconds=30))))


def test_a_naive_datetime_is_the_servers_wall_time_whole_and_without_an_offset():
    assert odata_literal(dt.datetime(2024, 5, 1, 13, 14, 45)) == "'2024-05-01T13:14:45'"
    assert odata_literal(dt.datetime(2024, 5, 1, 13, 14, 45, 120000)) == "'2024-05-01T13:14:45.120000'"


def test_years_before_1000_are_zero_padded_to_four_digits():
    assert odata_literal(dt.datetime(999, 1, 2, 3, 4, 5)) == "'0999-01-02T03:04:05'"
    assert odata_literal(dt.datetime(5, 1, 2, tzinfo=dt.timezone.utc)) == "'0005-01-02T00:00:00+00:00'"
    assert odata_literal(dt.date(999, 1, 2)) == "'0999-01-02'"


@pytest.mark.parametrize(
    "key", [5.7, Decimal("5.7"), "5.7", 5.000001, float("inf"), float("nan"), Decimal("NaN")]
)
def test_a_non_integral_number_for_an_integer_key_is_refused_not_truncated(key):
    with pytest.raises(ValueError, match="Invoices keys are integers"):
        entity_path("Invoices", key)


def test_an_integral_number_for_an_integer_key_is_that_key():
    assert entity_path("Invoices", 5.0) == "Invoices(5)"
    assert entity_path("Invoices", Decimal("5.00")) == "Invoices(5)"
    assert entity_path("Invoices", " 5 ") == "Invoices(5)"
    for key in (True, None):
        with pytest.raises(ValueError, match="Invoices keys"):
            entity_path("Invoices", key)


def test_numbers_are_written_in_full_never_in_exponent_form_or_rounded():
    assert odata_literal(0.1 + 0.2) == "0.30000000000000004"
    assert odata_literal(1e20) == "100000000000000000000"
    assert odata_literal(1e-7) == "0.0000001"
    assert odata_literal(Decimal("1E+2")) == "100"
    assert odata_literal(Decimal("12.50")) == "12.50"


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, 1j, object(), dt.time(13, 14)])
def test_values_without_an_odata_literal_are_refused_naming_their_kind(value):
    with pytest.raises(TypeError, match=f"A {type(value).__name__} value has no OData literal"):
        odata_literal(value)


# -- lookups split by the bytes of their request line (issue 8, defect 9) -----------------------------


def test_any_of_is_split_by_encoded_length_not_by_count():
    cjk = ["東" * 100 + str(i) for i in range(20)]  # 900 bytes each once percent-encoded
    chunks, too_long = any_of_chunks("NumAtCard", cjk, room=2000)
    assert too_long == []
    assert [values for values, _ in chunks] == [cjk[i : i + 2] for i in range(0, 20, 2)]
    for values, text in chunks:
        assert text == odata_any_of("NumAtCard", values)
        assert len(quote_query_value(text)) <= 2000
    short = [f"A{i}" for i in range(100)]
    chunks, _ = any_of_chunks("NumAtCard", short, room=2000)
    assert len(chunks) < 5  # not 100 / 20
    assert [v for values, _ in chunks for v in values] == short
    chunks, _ = any_of_chunks("NumAtCard", short, room=2000, max_values=20)
    assert [len(values) for values, _ in chunks] == [20] * 5


def test_a_value_too_long_for_a_lookup_alone_is_set_apart_and_the_rest_still_split():
    values = ["a", "東" * 300, "b"]
    chunks, too_long = any_of_chunks("NumAtCard", values, room=1000)
    assert too_long == ["東" * 300]
    assert chunks == [(["a", "b"], "NumAtCard eq 'a' or NumAtCard eq 'b'")]


def test_the_request_line_is_measured_as_sent():
    url = "https://h:50000/b1s/v2/Orders?$filter=NumAtCard%20eq%20'%E6%9D%B1'"
    assert request_line_length("GET", url) == len(
        "GET /b1s/v2/Orders?$filter=NumAtCard%20eq%20'%E6%9D%B1' HTTP/1.1"
    )
