"""Mapping SAP records to warehouse rows: the declarations, the converters, the COPY encoding."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest

from airflow_provider_b1.warehouse.entities import ENTITIES, RecordError, entity_spec
from airflow_provider_b1.warehouse.loader import StampWindow
from airflow_provider_b1.warehouse.schema import MIGRATIONS, render, validate_schema_name

INVOICES = ENTITIES["Invoices"]


def _invoice(**overrides) -> dict:
    record = {
        "@odata.etag": 'W/"abc"',
        "DocEntry": 42,
        "DocNum": 1042,
        "DocDate": "2024-05-01T00:00:00Z",
        "DocDueDate": "2024-05-31",
        "CardCode": "C001",
        "CardName": "O'Hara\tand sons",
        "DocTotal": 108.0,
        "VatSum": 8,
        "DocCurrency": "USD",
        "Cancelled": "tYES",
        "UpdateDate": "2024-05-02T00:00:00Z",
        "UpdateTime": "13:14:45",
        "U_ExternalId": "st-42",
        "U_Unmapped": "kept in raw",
        "DocumentLines": [
            {"LineNum": 0, "ItemCode": "A", "Quantity": 2, "Price": 25.0, "LineTotal": 50.0, "Extra": None},
            {"LineNum": 1, "ItemCode": "B", "Quantity": "1", "Price": 50, "LineTotal": 50.0},
        ],
    }
    record.update(overrides)
    return record


def test_select_lists_the_mapped_fields_the_collections_and_the_extras_once():
    select = INVOICES.select(["U_Region", "DocTotal"])
    assert select[0] == "DocEntry"
    assert "DocumentLines" in select
    assert select[-1] == "U_Region"
    assert len(select) == len(set(select))
    # Line properties come with their collection; they are never selected one by one.
    assert "LineNum" not in select
    assert "^DocDate" not in select


def test_an_invoice_maps_to_its_row_and_lines():
    record = _invoice()
    mapped = INVOICES.map(record)
    row = dict(zip(INVOICES.column_names, mapped.row))
    assert mapped.key == 42
    assert row["doc_date"] == "2024-05-01"
    assert row["update_date"] == "2024-05-02"
    assert row["is_cancelled"] is True
    assert row["vat_sum"] == 8
    assert row["external_id"] == "st-42"
    assert json.loads(row["raw"]) == record
    assert row["payload_hash"] == hashlib.sha256(row["raw"].encode()).hexdigest() == mapped.payload_hash
    (lines,) = mapped.children
    names = INVOICES.children[0].column_names
    first, second = (dict(zip(names, line)) for line in lines)
    assert first["doc_entry"] == 42
    assert (first["doc_date"], first["card_code"]) == ("2024-05-01", "C001")
    assert second["quantity"] == 1.0
    assert len(first) == len(names)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"DocTotal": None}, "DocTotal is null"),
        ({"DocDate": "2024-13-45"}, "DocDate '2024-13-45' is not a date"),
        ({"DocDate": "01/05/2024"}, "DocDate '01/05/2024' is not a date"),
        ({"DocEntry": None}, "DocEntry is null"),
        ({"DocEntry": "x1"}, "DocEntry 'x1' is not an integer"),
        ({"DocTotal": "lots"}, "DocTotal 'lots' is not a number"),
        ({"DocTotal": float("nan")}, "DocTotal nan is not a finite number"),
        ({"Cancelled": "maybe"}, "Cancelled 'maybe' is not tYES/tNO"),
        ({"UpdateTime": "25:00:00"}, "UpdateTime '25:00:00' is not a time of day"),
        ({"DocumentLines": {"LineNum": 0}}, "DocumentLines is not a list"),
        ({"DocumentLines": [{"LineNum": None}]}, "DocumentLines.LineNum is null"),
        ({"DocumentLines": [{"LineNum": 0}, {"LineNum": 0}]}, "DocumentLines repeats the key 0"),
        ({"DocumentLines": [{"LineNum": 0, "Quantity": [1]}]}, "DocumentLines.Quantity [1] is not a number"),
    ],
)
def test_bad_records_are_refused_with_a_clear_reason(change, reason):
    with pytest.raises(RecordError) as caught:
        INVOICES.map(_invoice(**change))
    assert str(caught.value) == reason


def test_a_record_that_is_not_an_object_is_refused():
    with pytest.raises(RecordError, match="not an object"):
        INVOICES.map(["DocEntry", 1])


def _as_sent(record, *, indented: bool = False) -> bytes:
    """A record encoded as a Service Layer sends it: compact, or tab-indented like a v2 server."""
    if indented:
        return json.dumps(record, indent="\t", separators=(",", " : "), ensure_ascii=False).encode()
    return msgspec.json.encode(record)


@pytest.mark.parametrize("indented", [False, True], ids=["compact", "v2-indented"])
def test_an_encoded_record_maps_exactly_as_its_dict_does(indented):
    record = _invoice(Comments="line one\nline two \u00e9\\", DocumentLines=[*_invoice()["DocumentLines"]])
    from_dict = INVOICES.map(record)
    from_raw = INVOICES.map_raw(msgspec.Raw(_as_sent(record, indented=indented)))
    assert from_raw == from_dict
    # raw is the record as sent, whitespace out: the same compact JSON, so the same hash.
    assert json.loads(dict(zip(INVOICES.column_names, from_raw.row))["raw"]) == record


def test_every_entity_maps_encoded_records_as_dicts():
    for spec in ENTITIES.values():
        key = 1 if spec.key_kind == "int" else "K1"
        record = {spec.key_field: key, "Unmapped": {"nested": [1, None]}}
        if spec.amount_field:
            record[spec.amount_field] = 2.5
        for child in spec.children:
            own = [c for c in child.columns if not c.source.startswith("^")]
            item = {c.source: (1 if c.name in child.key_columns else None) for c in own}
            record[child.collection] = [{**item, "Unmapped": [1]}]
        assert spec.map_raw(_as_sent(record)) == spec.map(record)
        assert all(rows for rows in spec.map(record).children)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"DocTotal": None}, "DocTotal is null"),
        ({"DocumentLines": {"LineNum": 0}}, "DocumentLines is not a list"),
        ({"DocumentLines": ["a line"]}, "DocumentLines holds a str, not an object"),
        ({"DocumentLines": [{"LineNum": 0}, {"LineNum": 0}]}, "DocumentLines repeats the key 0"),
        ({"DocDate": "2024-13-45"}, "DocDate '2024-13-45' is not a date"),
    ],
)
def test_encoded_bad_records_are_refused_with_the_same_reason(change, reason):
    with pytest.raises(RecordError) as caught:
        INVOICES.map_raw(_as_sent(_invoice(**change)))
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("sent", "reason"),
    [(b'["DocEntry", 1]', "the record is a list, not an object"), (b'{"DocEntry": 1,', "not valid JSON")],
)
def test_encoded_records_that_are_not_objects_are_refused(sent, reason):
    with pytest.raises(RecordError, match=reason):
        INVOICES.map_raw(sent)


def test_every_entity_maps_a_sparse_record():
    for spec in ENTITIES.values():
        key = 1 if spec.key_kind == "int" else "K1"
        record = {spec.key_field: key, **({spec.amount_field: 1.0} if spec.amount_field else {})}
        mapped = spec.map(record)
        assert mapped.key == key
        assert len(mapped.row) == len(spec.column_names)
        assert mapped.children == tuple([] for _ in spec.children)


def test_business_partner_rows_say_they_are_real_not_inferred():
    spec = ENTITIES["BusinessPartners"]
    row = dict(zip(spec.column_names, spec.map({"CardCode": "C1", "Valid": "tYES"}).row))
    assert row["is_inferred"] is False
    assert row["is_valid"] is True


def test_raw_json_keeps_nul_characters_and_says_the_record_holds_them():
    record = _invoice(Comments="a\x00b")
    for mapped in (INVOICES.map(record), INVOICES.map_raw(msgspec.json.encode(record))):
        raw = dict(zip(INVOICES.column_names, mapped.row))["raw"]
        assert json.loads(raw)["Comments"] == "a\x00b"
        assert mapped.nul is True


def test_text_spelling_backslash_u0000_is_no_nul_character():
    record = _invoice(Comments="\\u0000 and \\\\u0000")
    for mapped in (INVOICES.map(record), INVOICES.map_raw(msgspec.json.encode(record))):
        raw = dict(zip(INVOICES.column_names, mapped.row))["raw"]
        assert json.loads(raw)["Comments"] == "\\u0000 and \\\\u0000"
        assert mapped.nul is False


@pytest.mark.parametrize(
    ("stamp", "inside"),
    [
        (("2024-05-01", "11:59:59"), False),
        (("2024-05-01", "12:00:00"), True),
        (("2024-05-02", "23:59:59"), True),
        (("2024-05-03", "00:00:00"), False),
    ],
)
def test_stamp_window_is_inclusive_at_the_start_and_exclusive_at_the_end(stamp, inside):
    window = StampWindow(("2024-05-01", "12:00:00"), ("2024-05-03", "00:00:00"))
    assert window.contains(stamp[0] + "T00:00:00Z", stamp[1], date_only=False) is inside


def test_date_only_window_covers_each_day_it_touches():
    window = StampWindow(("2024-05-01", "12:00:00"), ("2024-05-03", "00:00:00"))
    assert window.contains("2024-05-01", None, date_only=True)
    assert window.contains("2024-05-02", None, date_only=True)
    assert not window.contains("2024-05-03", None, date_only=True)
    assert StampWindow(None, ("2024-05-03", "06:00:00")).contains("2024-05-03", None, date_only=True)


def test_migrations_render_for_both_dialects():
    for migration in MIGRATIONS:
        for statement in migration.statements:
            postgres = render(statement, "postgres", "sap_b1")
            sqlite = render(statement, "sqlite", None)
            assert "{" not in postgres.replace("{s}", "")
            assert "JSONB" not in sqlite
            assert "sap_b1." not in sqlite
    assert "sap_b1.fact_sales_invoice" in render(MIGRATIONS[0].statements[5], "postgres", "sap_b1")


def test_schema_names_are_plain_identifiers():
    assert validate_schema_name("sap_b1") == "sap_b1"
    for bad in ("Sap", "a-b", "x; drop table y", ""):
        with pytest.raises(ValueError, match="must match"):
            validate_schema_name(bad)


def test_unknown_entities_are_named_in_the_error():
    with pytest.raises(ValueError, match="does not load 'Quotations'"):
        entity_spec("Quotations")
