"""The one COPY encoder and the dialect-neutral migrations, without a database."""

from __future__ import annotations

import pytest

from airflow_provider_b1.utils.migrations import render
from airflow_provider_b1.utils.sql import (
    DatabaseConfigError,
    copy_encoder,
    encode_copy_text,
    validate_identifier,
)


def test_copy_encoder_escapes_what_copy_text_format_needs():
    rows = [(1, "tab\there", True, 1.5, None, "back\\slash\nnew\rline"), (None, None, False, None, None, "")]
    kinds = ("int", "text", "bool", "num", "date", "text")
    expected = "1\ttab\\there\tt\t1.5\t\\N\tback\\\\slash\\nnew\\rline\n\\N\t\\N\tf\t\\N\t\\N\t\n"
    assert copy_encoder(kinds)(rows) == expected
    assert encode_copy_text(rows) == expected


def test_the_generic_encoder_renders_times_as_iso_8601():
    import datetime as dt

    moment = dt.datetime(2024, 5, 1, 13, 14, 45, tzinfo=dt.timezone.utc)
    assert encode_copy_text([(moment, "x")]) == "2024-05-01T13:14:45+00:00\tx\n"


def test_statements_render_types_and_schema_per_dialect():
    statement = "CREATE TABLE {s}t (id {id}, at {ts}, h {hash}, j {json})"
    assert render(statement, "postgres", "b1_audit") == (
        "CREATE TABLE b1_audit.t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at TIMESTAMPTZ, "
        "h char(64), j JSONB)"
    )
    assert render(statement, "sqlite", "b1_audit") == (
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT, h TEXT, j TEXT)"
    )


def test_identifiers_put_into_sql_are_plain_and_refused_with_a_permanent_error():
    assert validate_identifier("sap_b1") == "sap_b1"
    for bad in ("Sap", "a-b", "x; drop table y", ""):
        with pytest.raises(DatabaseConfigError, match="must match"):
            validate_identifier(bad)


def test_the_copy_encoder_refuses_a_nul_character_instead_of_dropping_it():
    with pytest.raises(ValueError, match="NUL"):
        encode_copy_text([("a\x00b",)])
    with pytest.raises(ValueError, match="NUL"):
        copy_encoder(("text",))([("a\x00b",)])
