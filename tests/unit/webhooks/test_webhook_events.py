"""Reading verified deliveries: ids, topics, times and keys, whatever names ServiceTitan settles on."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from airflow_provider_b1.webhooks.events import (
    DeliveryError,
    body_digest,
    parse_timestamp,
    read_sap,
    read_servicetitan,
    servicetitan_topic,
)
from airflow_provider_b1.webhooks.settings import SERVICETITAN_TOPICS, SourceSettings

MOMENT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc).timestamp()
ST = SourceSettings(
    secret="x",
    signature_header="X-ServiceTitan-Signature",
    timestamp_fields=("timestamp", "createdOn"),
    event_id_fields=("eventId", "id"),
    event_type_fields=("eventType",),
)
SAP = SourceSettings(secret="x", signature_header="X-B1-Webhook-Signature", timestamp_fields=("time",))


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00+00:00",
        "2026-03-01T14:00:00+02:00",
        "2026-03-01T14:00:00+0200",
        "2026-03-01T12:00:00",
        "2026-03-01 12:00:00.000Z",
        MOMENT,
        int(MOMENT * 1000),
        str(int(MOMENT)),
    ],
)
def test_times_are_read_in_every_usual_form(value):
    assert parse_timestamp(value) == pytest.approx(MOMENT)


@pytest.mark.parametrize(
    "value", [None, "", "soon", True, -5, float("nan"), {"t": 1}, "2026-13-45T99:00:00Z"]
)
def test_what_is_not_a_time_is_none(value):
    assert parse_timestamp(value) is None


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("invoices", "invoices"),
        ("invoice", "invoices"),
        ("Invoice.Created", "invoices"),
        ("payment_applied", "payments"),
        ("CUSTOMER-UPDATED", "customers"),
        ("technicians", None),
        ("", None),
        (None, None),
    ],
)
def test_a_topic_is_recognised_however_it_is_written(name, topic):
    assert servicetitan_topic(name, SERVICETITAN_TOPICS) == topic


def test_a_servicetitan_delivery_gives_its_id_type_time_and_entity():
    body = json.dumps(
        {
            "eventId": "e-1",
            "eventType": "Invoice.Created",
            "createdOn": "2026-03-01T12:00:00Z",
            "data": {"id": 42},
        }
    ).encode()
    event = read_servicetitan(body, {}, ST)
    assert (event.event_id, event.event_type, event.entity_id) == ("e-1", "Invoice.Created", "42")
    assert event.timestamp == MOMENT


def test_a_servicetitan_delivery_without_an_id_is_named_by_its_bytes():
    body = b'{"timestamp": "2026-03-01T12:00:00Z"}'
    assert read_servicetitan(body, {}, ST).event_id == body_digest(body)


@pytest.mark.parametrize("body", [b"[1, 2]", b"nope", b"\xff\xfe"])
def test_a_servicetitan_delivery_that_is_not_an_object_is_refused(body):
    with pytest.raises(DeliveryError):
        read_servicetitan(body, {}, ST)


def test_a_sap_delivery_gives_one_event_per_element():
    body = json.dumps(
        [
            {
                "id": "1",
                "type": "sap.b1.Orders.Created.v1",
                "time": "2026-03-01T12:00:00Z",
                "data": {"DocEntry": 22},
            },
            {"id": "2", "type": "sap.b1.BusinessPartners.Updated.v1", "data": {"CardCode": "C001"}},
            {"type": "something.else"},
        ]
    ).encode()
    orders, partner, other = read_sap(body, SAP)
    assert (orders.business_object, orders.transaction, orders.key, orders.timestamp) == (
        "Orders",
        "Created",
        22,
        MOMENT,
    )
    assert (partner.business_object, partner.key, partner.timestamp) == ("BusinessPartners", "C001", None)
    assert other.business_object is None
    assert other.event_id.startswith("sha256:")


def test_a_single_sap_event_object_is_read_as_a_delivery_of_one():
    body = b'{"id": "1", "type": "sap.b1.Invoices.Created.v1", "data": {"DocEntry": 3}}'
    assert [event.business_object for event in read_sap(body, SAP)] == ["Invoices"]


@pytest.mark.parametrize("body", [b'"text"', b"[1]", b"{bad"])
def test_a_sap_delivery_of_another_shape_is_refused(body):
    with pytest.raises(DeliveryError):
        read_sap(body, SAP)
