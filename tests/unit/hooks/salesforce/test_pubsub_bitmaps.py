"""Change event header bitmaps (``changedFields``, ``nulledFields``, ``diffFields``) as field names.

The bitmap layout is Salesforce's ("Event Deserialization Considerations" in the Pub/Sub API
guide, and its ChangeEventHeaderUtility.py): the first element is a hex bitmap of the record's
top-level fields, bit ``i`` (counting from the least significant) standing for the schema's field
``i`` (``ChangeEventHeader`` is field 0); ``"<pos>-<hex>"`` elements name parts of the compound
field at ``pos``.
"""

from __future__ import annotations

import pytest

from airflow_provider_b1.hooks.salesforce.pubsub.events import decode_bitmap, encode_bitmap

ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "com.sforce.eventbus",
    "fields": [
        {"name": part, "type": ["null", "string"], "default": None}
        for part in ("Street", "City", "State", "PostalCode", "Country")
    ],
}


def _schema(n: int = 40) -> dict:
    """A change event schema: the header, ``F1``..``F<n-1>``, with compound addresses at 4 and 7."""
    fields: list[dict] = [
        {"name": "ChangeEventHeader", "type": {"type": "record", "name": "H", "fields": []}}
    ]
    for i in range(1, n):
        if i == 4:
            fields.append({"name": "BillingAddress", "type": ["null", ADDRESS], "default": None})
        elif i == 7:
            fields.append(
                {"name": "ShippingAddress", "type": ["null", "com.sforce.eventbus.Address"], "default": None}
            )
        else:
            fields.append({"name": f"F{i}", "type": ["null", "string"], "default": None})
    return {"type": "record", "name": "AccountChangeEvent", "fields": fields}


def test_a_hex_bitmap_names_the_fields_at_its_set_bits():
    assert decode_bitmap(_schema(), ["0x0A"]) == ["F1", "F3"]  # bits 1 and 3
    assert decode_bitmap(_schema(), ["0x1"]) == ["ChangeEventHeader"]
    assert decode_bitmap(_schema(), ["0X0100"]) == ["F8"]


def test_salesforce_documented_example_decodes_top_level_and_compound_parts():
    # 'changedFields': ['0x650004E0','4-0x10','7-0x06'], the example of Salesforce's guide
    names = decode_bitmap(_schema(), ["0x650004E0", "4-0x10", "7-0x06"])
    assert names == [
        "F5",
        "F6",
        "ShippingAddress",
        "F10",
        "F24",
        "F26",
        "F29",
        "F30",
        "BillingAddress.Country",
        "ShippingAddress.City",
        "ShippingAddress.State",
    ]


def test_a_compound_type_named_by_reference_is_followed():
    assert decode_bitmap(_schema(), ["7-0x01"]) == ["ShippingAddress.Street"]


def test_empty_and_absent_bitmaps_name_nothing():
    assert decode_bitmap(_schema(), []) == []
    assert decode_bitmap(_schema(), None) == []


def test_names_delivered_as_names_are_kept():
    assert decode_bitmap(_schema(), ["Phone", "LastModifiedDate"]) == ["Phone", "LastModifiedDate"]


def test_a_bit_past_the_schema_means_the_wrong_schema():
    with pytest.raises(ValueError, match="names field 9"):
        decode_bitmap(_schema(n=5), ["0x200"])
    with pytest.raises(ValueError, match="not compound"):
        decode_bitmap(_schema(), ["3-0x01"])


def test_encoding_and_decoding_are_inverse():
    names = ["F1", "F3", "F33", "BillingAddress.City", "ShippingAddress.Country"]
    bitmap = encode_bitmap(_schema(), names)
    assert bitmap == ["0x020000000A", "4-0x02", "7-0x10"]
    assert decode_bitmap(_schema(), bitmap) == names
