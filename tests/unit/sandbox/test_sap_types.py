"""The sandbox's values typed as SAP's $metadata types them, and writes checked against those types."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_b1.sandbox.sap import schema
from airflow_provider_b1.sandbox.sap.data import Dataset, generate
from airflow_provider_b1.sandbox.sap.odata import QueryError, normalize_date


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(5, 400, dt.date(2025, 6, 1))


def _problems(template: schema.Template, record: dict[str, Any], where: str) -> list[str]:
    out = []
    for prop, value in record.items():
        if prop.startswith("@") or value is None:
            continue
        kind = template.type_of(prop)
        problem = schema.type_problem(kind, value)
        if problem is not None:
            out.append(f"{where}.{prop}={value!r}: {problem} expected")
        elif kind == schema.COLLECTION and prop in schema.CHILDREN:
            for i, child in enumerate(value):
                out.extend(_problems(schema.CHILDREN[prop], child, f"{where}.{prop}[{i}]"))
    return out


def test_every_generated_value_has_its_declared_type(dataset: Dataset):
    problems: list[str] = []
    for name, ent in dataset.entities.items():
        for row in list(ent.rows.values())[:150]:
            for v2 in (False, True):
                problems.extend(_problems(ent.template, ent.serialize(row, v2), name))
    assert problems == [], problems[:20]


def test_printed_and_external_recon_no_are_typed_as_sap_types_them():
    assert schema.DOCUMENT.type_of("Printed") == "PrintStatusEnum"
    assert schema.JOURNAL_ENTRY.type_of("Printed") == "PrintStatusEnum"
    assert schema.PAYMENT.type_of("Printed") == "BoYesNoEnum"
    assert schema.ENUMS["PrintStatusEnum"] == ("psNo", "psYes", "psAmended")
    assert schema.DOCUMENT["Printed"] == "psNo"
    assert schema.ACCOUNT.type_of("ExternalReconNo") == schema.INT
    assert schema.ACCOUNT["ExternalReconNo"] == 0
    assert set(schema.ENUMS["BoStatus"]) == {"bost_Open", "bost_Close", "bost_Paid", "bost_Delivered"}
    assert schema.ENUMS["BoYesNoEnum"] == ("tNO", "tYES")
    assert schema.ENUMS[schema.BUSINESS_PARTNER.type_of("CardType")] == ("cCustomer", "cSupplier", "cLid")
    assert schema.ENUMS[schema.DOCUMENT.type_of("DocType")] == ("dDocument_Items", "dDocument_Service")
    assert schema.DOCUMENT_LINE.type_of("ShipDate") == schema.DATE
    assert schema.JOURNAL_LINE.type_of("ReferenceDate1") == schema.DATE  # a date not named "...Date"
    assert schema.ITEM.type_of("LeadTime") == schema.INT  # named "...Time", but days of lead time


def test_a_default_outside_its_type_fails_at_import():
    with pytest.raises(ValueError, match="Printed"):
        schema.parse("Document", "Printed:N", {"PrintStatusEnum": "Printed"})
    with pytest.raises(ValueError, match="Nope"):
        schema.parse("Document", "Printed", {"PrintStatusEnum": "Nope"})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"Printed": "tNO"}, "Printed"),
        ({"DocumentStatus": "Open"}, "DocumentStatus"),
        ({"SalesPersonCode": "3"}, "SalesPersonCode"),
        ({"SalesPersonCode": 2**31}, "SalesPersonCode"),
        ({"SalesPersonCode": False}, "SalesPersonCode"),
        ({"DocRate": "1.5"}, "DocRate"),
        ({"Comments": 5}, "Comments"),
        ({"DocDate": "2024-02-30"}, "DocDate"),
        ({"DocDate": "2024-02-29T24:00:00Z"}, "DocDate"),
        ({"StartDeliveryTime": "12:60"}, "StartDeliveryTime"),
        ({"DocumentLines": {"LineNum": 0}}, "DocumentLines"),
        ({"DocumentLines": [{"ShipDate": "2023-02-29"}]}, "ShipDate"),
        ({"DocumentLines": [{"Nope": 1}]}, "Property 'Nope' of 'DocumentLine' is invalid"),
        ({"Nope": 1}, "Property 'Nope' of 'Document' is invalid"),
    ],
)
def test_clean_refuses_what_sap_refuses(payload, message):
    with pytest.raises(schema.TypeMismatch, match=message):
        schema.clean(schema.DOCUMENT, payload, schema.CHILDREN)


def test_clean_keeps_values_in_the_servers_form():
    cleaned = schema.clean(
        schema.DOCUMENT,
        {
            "DocDate": "20240229",
            "DocDueDate": "2024-03-31T00:00:00Z",
            "StartDeliveryTime": "09:30",
            "DocRate": 1,
            "Printed": "psAmended",
            "Comments": None,
            "DocumentLines": [{"ShipDate": "2024-06-30T00:00:00Z", "Quantity": 2}],
        },
        schema.CHILDREN,
    )
    assert cleaned == {
        "DocDate": "2024-02-29",
        "DocDueDate": "2024-03-31",
        "StartDeliveryTime": "09:30:00",
        "DocRate": 1,
        "Printed": "psAmended",
        "Comments": None,
        "DocumentLines": [{"ShipDate": "2024-06-30", "Quantity": 2}],
    }
    partner = schema.clean(schema.BUSINESS_PARTNER, {"CardType": "S"}, schema.CHILDREN)
    assert partner == {"CardType": "cSupplier"}  # names or letters in, names out


@pytest.mark.parametrize(
    "text", ["2024-02-30", "2023-02-29", "2024-04-31", "2024-00-01", "2024-1-01", "20241301", "2024-0501", ""]
)
def test_days_that_do_not_exist_are_not_dates(text):
    assert schema.parse_day(text) is None
    with pytest.raises(QueryError):
        normalize_date(text)
