"""Records without Salesforce's attributes, and a result per written record in input order."""

from __future__ import annotations

import pytest

from airflow_provider_b1.hooks.salesforce import RecordError, SalesforcePermanentError, UpsertResult
from airflow_provider_b1.hooks.salesforce.results import clean, collection_record, collection_results


def test_attributes_go_but_parents_and_child_queries_stay_nested():
    record = {
        "attributes": {"type": "Opportunity", "url": "/services/data/v62.0/sobjects/Opportunity/006"},
        "Id": "006",
        "Account": {"attributes": {"type": "Account"}, "AccountNumber": "C00001", "Owner": None},
        "OpportunityLineItems": {
            "totalSize": 1,
            "done": True,
            "records": [
                {
                    "attributes": {"type": "OpportunityLineItem"},
                    "Quantity": 2.0,
                    "Product2": {"attributes": {}, "ProductCode": "A00001"},
                }
            ],
        },
    }
    assert clean(record) == {
        "Id": "006",
        "Account": {"AccountNumber": "C00001", "Owner": None},
        "OpportunityLineItems": {
            "totalSize": 1,
            "done": True,
            "records": [{"Quantity": 2.0, "Product2": {"ProductCode": "A00001"}}],
        },
    }


def test_collection_results_keep_the_input_index_and_typed_errors():
    reply = [
        {"id": "001A", "success": True, "errors": [], "created": True},
        {
            "success": False,
            "errors": [
                {
                    "statusCode": "REQUIRED_FIELD_MISSING",
                    "message": "Required fields are missing: [Name]",
                    "fields": ["Name"],
                }
            ],
        },
        {"id": "001C", "success": True, "errors": [], "created": False},
    ]
    results = collection_results(reply, 200, 3, "upserting Account")
    assert [r.index for r in results] == [200, 201, 202]
    assert results[0] == UpsertResult(200, "001A", True, True, ())
    assert results[1].success is False
    assert results[1].errors == (
        RecordError("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", ("Name",)),
    )
    assert results[1].error == "REQUIRED_FIELD_MISSING: Required fields are missing: [Name] (Name)"
    assert results[2].created is False
    assert results[2].error is None


def test_a_reply_that_is_not_one_result_per_record_is_an_error():
    with pytest.raises(SalesforcePermanentError, match="2 results for 3 records"):
        collection_results([{}, {}], 0, 3, "upserting Account")


def test_a_collection_record_gets_its_type():
    assert collection_record("Account", {"Name": "A", "attributes": {"type": "Wrong"}}) == {
        "attributes": {"type": "Account"},
        "Name": "A",
    }
