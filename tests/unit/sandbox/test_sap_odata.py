from __future__ import annotations

import pytest

from airflow_provider_b1.sandbox.sap.odata import (
    FilterCompiler,
    QueryError,
    key_literal,
    normalize_date,
    parse_orderby,
    parse_resource,
    sort_rows,
    tokenize,
)

PROPS = {"CardCode": 0, "CardName": 1, "DocTotal": 2, "UpdateDate": 3, "Cancelled": 4}
ROWS = [
    ["C1", "O'Brien Ltd.", 100.0, "2024-05-01", "tNO"],
    ["C2", "Müller GmbH", 250.5, "2024-05-02", "tYES"],
    ["C3", "Ñandú S.A.", None, "2024-04-30", "tNO"],
    ["C4", "Acme Inc.", 80, "2024-05-01", "tNO"],
]


def run(text: str) -> list[str]:
    compiler = FilterCompiler(
        lambda p: p in PROPS, lambda p: lambda row, i=PROPS[p]: row[i], lambda p: p.endswith("Date"), "Doc"
    )
    pred = compiler.compile(text)
    return [row[0] for row in ROWS if pred(row)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CardName eq 'O''Brien Ltd.'", ["C1"]),
        ("CardCode ne 'C1'", ["C2", "C3", "C4"]),
        ("DocTotal gt 90", ["C1", "C2"]),
        ("DocTotal le 100", ["C1", "C4"]),
        ("100 le DocTotal", ["C1", "C2"]),
        ("DocTotal eq null", ["C3"]),
        ("startswith(CardName, 'Mü')", ["C2"]),
        ("endswith(CardName,'S.A.')", ["C3"]),
        ("contains(CardName, 'cme')", ["C4"]),
        ("substringof('Bri', CardName)", ["C1"]),
        ("UpdateDate ge '2024-05-01'", ["C1", "C2", "C4"]),
        ("UpdateDate ge '20240501'", ["C1", "C2", "C4"]),
        ("UpdateDate eq datetime'2024-05-01T23:59:59'", ["C1", "C4"]),
        ("UpdateDate lt '2024-05-01T10:00:00Z'", ["C3"]),
        ("Cancelled eq 'tNO' and (DocTotal gt 90 or CardCode eq 'C3')", ["C1", "C3"]),
        ("not (Cancelled eq 'tNO') or CardCode eq 'C4'", ["C2", "C4"]),
        ("CardCode eq 'C1' or CardCode eq 'C2' and DocTotal gt 1000", ["C1"]),
    ],
)
def test_filters(text, expected):
    assert run(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "CardName eq",
        "Nope eq 1",
        "CardName eq 'unterminated",
        "(CardCode eq 'C1'",
        "UpdateDate ge 'yesterday'",
        "UpdateDate ge 5",
        "startswith(CardName)",
        "CardCode",
        "CardCode eq 'a' garbage",
        "DocTotal add 5 eq 6",
    ],
)
def test_bad_filters(text):
    with pytest.raises(QueryError):
        run(text)


def test_tokenize_doubled_quotes():
    assert tokenize("X eq 'a''b'") == [("name", "X"), ("name", "eq"), ("str", "'a''b'")]


def test_normalize_date():
    assert normalize_date("2024-05-01") == "2024-05-01"
    assert normalize_date("20240501") == "2024-05-01"
    assert normalize_date("2024-05-01T13:14:15Z") == "2024-05-01"
    with pytest.raises(QueryError):
        normalize_date("2024-13-01")


def test_orderby_and_sort():
    keys = parse_orderby("Cancelled desc, DocTotal", lambda p: p in PROPS, "Doc")
    assert keys == [("Cancelled", True), ("DocTotal", False)]
    getters = [((lambda row, i=PROPS[name]: row[i]), desc) for name, desc in keys]
    assert [r[0] for r in sort_rows(ROWS, getters)] == ["C2", "C3", "C4", "C1"]
    with pytest.raises(QueryError):
        parse_orderby("Nope", lambda p: p in PROPS, "Doc")
    with pytest.raises(QueryError):
        parse_orderby("CardCode sideways", lambda p: p in PROPS, "Doc")


def test_resources_and_keys():
    assert parse_resource("Invoices") == ("Invoices", None, None)
    assert parse_resource("Invoices(22)") == ("Invoices", 22, None)
    assert parse_resource("Orders(7)/Close") == ("Orders", 7, "Close")
    assert parse_resource("BusinessPartners('O''Brien')") == ("BusinessPartners", "O'Brien", None)
    assert parse_resource("Invoices/$count") == ("Invoices", None, "$count")
    assert key_literal("O'Brien") == "'O''Brien'"
    assert key_literal(5) == "5"
    with pytest.raises(QueryError):
        parse_resource("Invoices(abc)")
