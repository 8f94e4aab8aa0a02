"""Resource paths read quote by quote: a key may hold any character."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sandbox.sap.odata import QueryError, parse_resource


@pytest.mark.parametrize(
    ("path", "parsed"),
    [
        ("BusinessPartners('a/b)c')/Close", ("BusinessPartners", "a/b)c", "Close")),
        ("BusinessPartners('two\nlines')", ("BusinessPartners", "two\nlines", None)),
        ("BusinessPartners('NUL\x00')", ("BusinessPartners", "NUL\x00", None)),
        ("BusinessPartners('O''Brien')", ("BusinessPartners", "O'Brien", None)),
        ("BusinessPartners('''')", ("BusinessPartners", "'", None)),
        ("Orders(DocEntry=22)/Cancel", ("Orders", 22, "Cancel")),
        ("Invoices/$count", ("Invoices", None, "$count")),
    ],
)
def test_keys_are_read_quote_by_quote(path, parsed):
    assert parse_resource(path) == parsed


@pytest.mark.parametrize("path", ["BusinessPartners('open", "BusinessPartners('a' b)", "Orders(x)"])
def test_malformed_keys_are_refused(path):
    with pytest.raises(QueryError):
        parse_resource(path)
    assert parse_resource("BusinessPartners('a')b)") is None  # not an entity path at all
