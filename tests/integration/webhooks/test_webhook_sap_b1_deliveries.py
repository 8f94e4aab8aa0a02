"""SAP Business One webhooks (10.0 FP 2602+): the handshake and signed deliveries of CloudEvents-like arrays."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from webhook_fakes import SAP_SECRET, sap_source

from airflow_provider_b1.webhooks.signatures import sign

HEADER = "X-B1-Webhook-Signature"
ORDERS = "b1-webhook://sap_b1/Orders"
INVOICES = "b1-webhook://sap_b1/Invoices"


def _event(
    business_object: str, key: int, *, transaction: str = "Created", at: float | None = None, **fields
):
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.timezone.utc)
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/b1s/v2/SBODEMOUS",
        "type": f"sap.b1.{business_object}.{transaction}.v1",
        "time": moment.isoformat(),
        "data": {"DocEntry": key},
        **fields,
    }


def _body(events: list[dict]) -> bytes:
    return json.dumps(events).encode()


def test_the_handshake_answers_the_challenge(start_receiver):
    receiver = start_receiver()
    response = receiver.get("/webhooks/sap-b1", {"X-B1-Webhook-Token": "f2c1-handshake-token"})
    assert response.status_code == 200
    assert response.json() == {"Challenge": "f2c1-handshake-token"}
    assert response.headers["content-type"].startswith("application/json")


def test_a_handshake_without_a_token_gets_400(start_receiver):
    assert start_receiver().get("/webhooks/sap-b1").status_code == 400


def test_a_delivery_records_one_asset_event_per_business_object(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS, INVOICES)
    receiver = start_receiver()
    body = _body(
        [
            _event("Orders", 11),
            _event("Orders", 12, transaction="Updated"),
            _event("Invoices", 7),
            _event("Orders", 13),
        ]
    )
    response = receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "recorded", "recorded": 2, "repeated": 0, "ignored": 0}
    (orders,) = fake_airflow.events_of(ORDERS)
    (invoices,) = fake_airflow.events_of(INVOICES)
    assert orders["extra"]["business_object"] == "Orders"
    assert orders["extra"]["keys"] == [11, 12, 13]
    assert orders["extra"]["transactions"] == ["Created", "Updated"]
    assert orders["extra"]["events"] == 3
    assert invoices["extra"]["keys"] == [7]
    assert len(fake_airflow.events) == 2


def test_events_of_an_object_no_dag_declares_are_acknowledged_and_dropped(fake_airflow, start_receiver):
    """SAP resends what is not answered 2xx: an object no DAG is scheduled on would come back for
    ever, so its events are acknowledged, logged and dropped; the others are recorded."""
    fake_airflow.declare(INVOICES)  # Orders: no DAG
    receiver = start_receiver()
    body = _body([_event("Orders", 11), _event("Invoices", 7)])
    response = receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "recorded", "recorded": 1, "repeated": 0, "ignored": 1}
    assert len(fake_airflow.events_of(INVOICES)) == 1
    assert len(fake_airflow.events) == 1


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_a_delivery_signed_either_way_is_accepted(fake_airflow, start_receiver, encoding):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver()
    body = _body([_event("Orders", 1)])
    assert (
        receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET, encoding)}).status_code == 200
    )
    assert len(fake_airflow.events) == 1


def test_a_badly_signed_delivery_gets_401_and_records_nothing(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver()
    body = _body([_event("Orders", 1)])
    assert receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, "not-the-secret")}).status_code == 401
    assert receiver.post("/webhooks/sap-b1", body, {}).status_code == 401
    assert fake_airflow.events == []


def test_a_stale_delivery_gets_401_and_records_nothing(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver()
    body = _body([_event("Orders", 1, at=time.time() - 900), _event("Orders", 2, at=time.time() - 600)])
    response = receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)})
    assert response.status_code == 401
    assert fake_airflow.events == []


def test_the_newest_time_in_a_delivery_decides(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver()
    body = _body([_event("Orders", 1, at=time.time() - 900), _event("Orders", 2)])
    assert receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)}).status_code == 200


def test_a_replayed_delivery_gets_409_and_records_nothing_more(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver()
    body = _body([_event("Orders", 1), _event("Orders", 2)])
    headers = {HEADER: sign(body, SAP_SECRET)}
    assert receiver.post("/webhooks/sap-b1", body, headers).status_code == 200
    assert receiver.post("/webhooks/sap-b1", body, headers).status_code == 409
    assert len(fake_airflow.events) == 1


def test_a_delivery_repeating_some_events_records_only_the_new_ones(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS, INVOICES)
    receiver = start_receiver()
    seen = _event("Orders", 1)
    first = _body([seen])
    assert receiver.post("/webhooks/sap-b1", first, {HEADER: sign(first, SAP_SECRET)}).status_code == 200
    second = _body([seen, _event("Invoices", 5)])
    response = receiver.post("/webhooks/sap-b1", second, {HEADER: sign(second, SAP_SECRET)})
    assert response.json() == {"status": "recorded", "recorded": 1, "repeated": 1, "ignored": 0}
    assert len(fake_airflow.events_of(ORDERS)) == 1
    assert len(fake_airflow.events_of(INVOICES)) == 1


def test_events_of_an_unknown_shape_are_ignored_not_refused(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver()
    body = _body(
        [_event("Orders", 1), {"id": "x", "type": "com.example.other", "time": _event("Orders", 1)["time"]}]
    )
    response = receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)})
    assert response.json()["ignored"] == 1
    assert len(fake_airflow.events) == 1


def test_an_object_mapped_elsewhere_goes_there(fake_airflow, start_receiver):
    fake_airflow.declare("b1-webhook://sap_b1/sales")
    receiver = start_receiver(asset_uris={"sap_b1:Orders": "b1-webhook://sap_b1/sales"})
    body = _body([_event("Orders", 1)])
    assert receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)}).status_code == 200
    assert len(fake_airflow.events_of("b1-webhook://sap_b1/sales")) == 1


def test_a_delivery_that_is_not_an_array_of_events_gets_400(fake_airflow, start_receiver):
    receiver = start_receiver()
    body = b'["not an event"]'
    assert receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET)}).status_code == 400


def test_a_receiver_without_a_sap_secret_refuses_the_handshake_too(start_receiver):
    receiver = start_receiver(sap=None)
    assert receiver.get("/webhooks/sap-b1", {"X-B1-Webhook-Token": "t"}).status_code == 404


def test_the_sap_signature_encoding_is_a_setting(fake_airflow, start_receiver):
    fake_airflow.declare(ORDERS)
    receiver = start_receiver(sap=sap_source(encoding="base64"))
    body = _body([_event("Orders", 1)])
    assert receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET, "hex")}).status_code == 401
    assert (
        receiver.post("/webhooks/sap-b1", body, {HEADER: sign(body, SAP_SECRET, "base64")}).status_code == 200
    )
