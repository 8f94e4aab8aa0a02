"""The change event Avro schema the sandbox publishes, and the client decoding its events.

The sandbox writes events with its own encoder (schema from the object's declared fields,
Salesforce's bitmaps) and the client reads them with its own decoder: two independent readings
of the format that must agree.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from types import SimpleNamespace

import fastavro
import pytest

from airflow_provider_b1.hooks.salesforce.pubsub.events import EventDecoder, change_event
from airflow_provider_b1.sandbox.salesforce.pubsub import (
    HEADER_SCHEMA,
    build_event_schema,
    decode_replay_id,
    encode_event,
    encode_replay_id,
)
from airflow_provider_b1.sandbox.salesforce.schema import build_schema

HEADER_FIELDS = [
    ("entityName", "string"),
    ("recordIds", {"type": "array", "items": "string"}),
    ("changeType", "enum"),
    ("changeOrigin", "string"),
    ("transactionKey", "string"),
    ("sequenceNumber", "int"),
    ("commitTimestamp", "long"),
    ("commitNumber", "long"),
    ("commitUser", "string"),
    ("nulledFields", {"type": "array", "items": "string"}),
    ("diffFields", {"type": "array", "items": "string"}),
    ("changedFields", {"type": "array", "items": "string"}),
]


@pytest.fixture(scope="module")
def objects():
    return build_schema()


def _change(**overrides):
    change = {
        "seq": 42,
        "object": "Account",
        "record_ids": ["001Dn000000001AAAA"],
        "change_type": "UPDATE",
        "changed_fields": [],
        "commit_timestamp": 1_714_564_800_000,
        "transaction_key": "0001d2c1-5a5d-4e3a-b6a3-000000000001",
        "sequence_number": 1,
        "commit_user": "005Dn000000002AAAA",
        "origin": "api",
        "record": {},
    }
    change.update(overrides)
    return SimpleNamespace(**change)


def test_the_header_is_the_first_field_with_salesforce_field_names_and_types(objects):
    es = build_event_schema(objects["Account"])
    header = es.schema["fields"][0]
    assert header["name"] == "ChangeEventHeader"
    declared = [
        (f["name"], f["type"] if not isinstance(f["type"], dict) or f["type"]["type"] != "enum" else "enum")
        for f in HEADER_SCHEMA["fields"]
    ]
    assert declared == HEADER_FIELDS
    enum = HEADER_SCHEMA["fields"][2]["type"]
    assert enum["symbols"][:4] == ["CREATE", "UPDATE", "DELETE", "UNDELETE"]
    assert "GAP_OVERFLOW" in enum["symbols"]


def test_object_fields_are_nullable_unions_and_addresses_are_compound(objects):
    es = build_event_schema(objects["Account"])
    fields = {f["name"]: f for f in es.schema["fields"][1:]}
    assert not {"Id", "IsDeleted", "SystemModstamp"} & set(fields)
    assert not {"BillingCity", "BillingStreet"} & set(fields)
    billing = fields["BillingAddress"]["type"]
    assert billing[0] == "null"
    assert [f["name"] for f in billing[1]["fields"]][:5] == [
        "Street",
        "City",
        "State",
        "PostalCode",
        "Country",
    ]
    for field in fields.values():
        assert field["type"][0] == "null"
        assert field["default"] is None
    assert fields["SAP_Open_Balance__c"]["type"] == ["null", "double"]
    assert fields["SAP_Last_Payment_Date__c"]["type"] == ["null", "int"]
    assert fields["CreatedDate"]["type"] == ["null", "long"]
    fastavro.parse_schema(es.schema)  # a valid Avro schema


def test_schema_ids_are_fingerprints(objects):
    account, again = build_event_schema(objects["Account"]), build_event_schema(build_schema()["Account"])
    assert account.schema_id == again.schema_id
    assert len(account.schema_id) == 22
    assert account.schema_id != build_event_schema(objects["Opportunity"]).schema_id
    assert build_event_schema(build_schema(custom_fields=False)["Account"]).schema_id != account.schema_id


def test_an_update_encoded_by_the_sandbox_decodes_with_its_changed_and_nulled_fields(objects):
    es = build_event_schema(objects["Account"])
    change = _change(
        changed_fields=["Phone", "Website", "BillingCity", "LastModifiedDate", "SystemModstamp"],
        record={
            "Name": "Acme",
            "Phone": "(512) 555-0100",
            "Website": None,
            "BillingCity": "Austin",
            "LastModifiedDate": "2024-05-01T12:00:00.000+0000",
        },
    )
    payload = encode_event(es, change)
    decoder = EventDecoder(lambda schema_id: {es.schema_id: es.json}[schema_id])
    record = decoder.decode_payload(es.schema_id, payload)
    event = change_event(
        "/data/AccountChangeEvent", encode_replay_id(42), es.schema_id, "e1", record, json.loads(es.json)
    )
    assert event.change_type == "UPDATE"
    assert event.record_ids == ("001Dn000000001AAAA",)
    assert event.changed_fields == ("Phone", "Website", "LastModifiedDate", "BillingAddress.City")
    assert event.nulled_fields == ("Website",)
    assert event.values["Phone"] == "(512) 555-0100"
    assert event.values["BillingAddress"]["City"] == "Austin"
    assert event.values["LastModifiedDate"] == 1_714_564_800_000
    assert "Name" not in event.values  # unchanged: null in an update
    assert event.header["changeOrigin"] == "com/salesforce/api/rest/62.0"
    assert event.header["changedFields"][0].startswith("0x")
    assert event.commit_timestamp == 1_714_564_800_000


def test_a_create_carries_its_values_and_dates_as_days(objects):
    es = build_event_schema(objects["Opportunity"])
    change = _change(
        object="Opportunity",
        change_type="CREATE",
        changed_fields=["Name", "CloseDate", "Amount"],
        record={"Name": "Deal", "CloseDate": "2024-05-01", "Amount": 1200, "StageName": "Prospecting"},
        origin="ui",
    )
    raw = fastavro.schemaless_reader(io.BytesIO(encode_event(es, change)), fastavro.parse_schema(es.schema))
    event = change_event(
        "/data/OpportunityChangeEvent", encode_replay_id(1), es.schema_id, "e2", raw, es.schema
    )
    assert event.changed_fields == ()
    assert event.values == {
        "Name": "Deal",
        "CloseDate": (dt.date(2024, 5, 1) - dt.date(1970, 1, 1)).days,
        "Amount": 1200.0,
        "StageName": "Prospecting",
    }
    assert event.header["changeOrigin"] == ""


def test_a_delete_carries_no_values(objects):
    es = build_event_schema(objects["Account"])
    raw = fastavro.schemaless_reader(
        io.BytesIO(encode_event(es, _change(change_type="DELETE", record={"Name": "Gone"}))),
        fastavro.parse_schema(es.schema),
    )
    event = change_event("/data/AccountChangeEvent", encode_replay_id(7), es.schema_id, "e3", raw, es.schema)
    assert event.change_type == "DELETE"
    assert event.values == {}


def test_sandbox_replay_ids_are_eight_bytes_and_unknown_shapes_are_none():
    assert encode_replay_id(2_458_760) == bytes([0, 0, 0, 0, 0, 37, 132, 136])
    assert decode_replay_id(encode_replay_id(99)) == 99
    assert decode_replay_id(b"\x01\x02") is None
