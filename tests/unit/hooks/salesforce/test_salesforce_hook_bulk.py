"""Bulk API 2.0 CSV both ways, typed values, and each record's result matched back to its input."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from airflow_provider_b1.hooks.salesforce import RecordError
from airflow_provider_b1.hooks.salesforce.bulk import (
    csv_value,
    encode_uploads,
    ingest_results,
    nest,
    parse_bulk_error,
    queried_object,
    read_csv,
    typed,
)


def test_values_are_written_as_bulk_csv_takes_them():
    assert csv_value(None) == "#N/A"
    assert csv_value(True) == "true"
    assert csv_value(Decimal("12.50")) == "12.50"
    assert csv_value(1.5) == "1.5"
    assert csv_value(dt.date(2024, 5, 1)) == "2024-05-01"
    moment = dt.datetime(2024, 5, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert csv_value(moment) == "2024-05-01T12:00:00.000Z"
    with pytest.raises(ValueError, match="time zone"):
        csv_value(dt.datetime(2024, 5, 1))


def test_uploads_share_one_header_and_a_missing_field_is_left_alone():
    (upload,) = encode_uploads(
        [
            {"Ext__c": "A", "Name": 'Say "hi", x'},
            {"Ext__c": "B", "Phone": None, "Account": {"SAP_Card_Code__c": "C1"}},
        ]
    )
    assert upload.columns == ("Ext__c", "Name", "Phone", "Account.SAP_Card_Code__c")
    header, rows = read_csv(upload.data.decode())
    assert header == list(upload.columns)
    assert rows == [["A", 'Say "hi", x', "", ""], ["B", "", "#N/A", "C1"]]


def test_uploads_split_by_size_and_keep_the_offsets():
    records = [{"Ext__c": f"K{i:03d}", "Name": "x" * 50} for i in range(100)]
    uploads = encode_uploads(records, max_bytes=1000)
    assert len(uploads) > 1
    assert all(len(u.data) <= 1000 for u in uploads)
    assert [u.offset for u in uploads] == [sum(u.count for u in uploads[:i]) for i in range(len(uploads))]
    assert sum(u.count for u in uploads) == 100


def test_cells_are_typed_as_the_rest_api_types_them():
    assert typed("", "string") is None
    assert typed("true", "boolean") is True
    assert typed("false", "boolean") is False
    assert typed("42", "int") == 42
    assert typed("12.5", "currency") == 12.5
    assert typed("2024-05-01", "date") == "2024-05-01"
    assert typed("x", None) == "x"


def test_relationship_columns_nest_and_an_empty_parent_keeps_its_fields():
    assert nest({"Id": "1", "Account.Name": "A", "Account.Owner.Name": None}) == {
        "Id": "1",
        "Account": {"Name": "A", "Owner": {"Name": None}},
    }
    assert nest({"Id": "1", "Account.Name": None}) == {"Id": "1", "Account": {"Name": None}}


@pytest.mark.parametrize(
    ("cell", "error"),
    [
        (
            "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --",
            RecordError("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ("Name",)),
        ),
        (
            "DUPLICATE_VALUE:duplicate value found: SAP_Card_Code__c duplicates value on record with id: 001x:--",
            RecordError(
                "DUPLICATE_VALUE",
                "duplicate value found: SAP_Card_Code__c duplicates value on record with id: 001x",
            ),
        ),
        ("something odd", RecordError("UNKNOWN", "something odd")),
    ],
)
def test_bulk_error_cells_become_record_errors(cell, error):
    assert parse_bulk_error(cell) == [error]


def test_results_come_back_in_input_order_whatever_order_salesforce_lists_them():
    records = [
        {"Ext__c": "A", "Name": "a"},
        {"Ext__c": "B", "Name": "b"},
        {"Ext__c": "C", "Name": "c"},
        {"Ext__c": "A", "Name": "a2"},
    ]
    (upload,) = encode_uploads(records)
    upload = type(upload)(10, upload.count, upload.columns, upload.data)
    successful = '"sf__Id","sf__Created","Ext__c","Name"\n"001C","true","C","c"\n"001A","false","A","a"\n"001A","false","A","a2"\n'
    failed = '"sf__Id","sf__Error","Ext__c","Name"\n"","REQUIRED_FIELD_MISSING:Required fields are missing: [X]:X --","B","b"\n'
    results = ingest_results(upload, "Ext__c", successful, failed, "")
    assert [r.index for r in results] == [10, 11, 12, 13]
    assert [(r.id, r.success, r.created) for r in results] == [
        ("001A", True, False),
        (None, False, None),
        ("001C", True, True),
        ("001A", True, False),
    ]
    assert results[1].error_codes == ("REQUIRED_FIELD_MISSING",)


def test_unprocessed_and_unmentioned_records_are_failed_results():
    (upload,) = encode_uploads([{"Ext__c": "A"}, {"Ext__c": "B"}])
    results = ingest_results(upload, "Ext__c", "", "", '"Ext__c"\n"A"\n')
    assert results[0].error_codes == ("UNPROCESSED",)
    assert results[1].error_codes == ("UNKNOWN",)


def test_the_queried_object_is_read_from_the_soql():
    assert queried_object("SELECT Id, Account.Name FROM Opportunity WHERE IsWon = true") == "Opportunity"
    assert queried_object("select id from account") == "account"
