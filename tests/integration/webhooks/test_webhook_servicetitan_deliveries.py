"""ServiceTitan deliveries over HTTPS to the receiver, recorded in a fake Airflow over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
from webhook_fakes import SERVICETITAN_KEY, servicetitan_source

from airflow_provider_b1.webhooks.settings import DEFAULT_SERVICETITAN_URIS
from airflow_provider_b1.webhooks.signatures import sign

INVOICES = DEFAULT_SERVICETITAN_URIS["invoices"]
PAYMENTS = DEFAULT_SERVICETITAN_URIS["payments"]
HEADER = "X-ServiceTitan-Signature"


def _delivery(*, event_id: str | None = None, at: float | None = None, **fields) -> bytes:
    moment = dt.datetime.fromtimestamp(time.time() if at is None else at, dt.timezone.utc)
    document = {
        "eventId": event_id or str(uuid.uuid4()),
        "eventType": "Invoice.Created",
        "timestamp": moment.isoformat().replace("+00:00", "Z"),
        "data": {"id": 4711, "total": "120.00"},
        **fields,
    }
    # Spacing as a sender might write it: the signature covers these exact bytes.
    return json.dumps(document, indent=1).encode()


@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_a_signed_delivery_records_exactly_one_asset_event(fake_airflow, start_receiver, encoding):
    fake_airflow.declare(INVOICES, PAYMENTS)
    receiver = start_receiver()
    body = _delivery(event_id="evt-1")
    started = time.monotonic()
    response = receiver.post(
        "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY, encoding)}
    )
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 2
    assert response.json() == {"status": "recorded", "recorded": 1}
    (event,) = fake_airflow.events
    assert fake_airflow.events_of(INVOICES) == [event]
    assert event["extra"] == {
        "source": "servicetitan",
        "topic": "invoices",
        "event_id": "evt-1",
        "event_type": "Invoice.Created",
        "entity_id": "4711",
        "from_rest_api": True,
    }


def test_the_event_type_in_the_body_names_the_asset_when_the_url_does_not(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES, PAYMENTS)
    receiver = start_receiver()
    body = _delivery(eventType="payment.applied")
    response = receiver.post("/webhooks/servicetitan", body, {HEADER: sign(body, SERVICETITAN_KEY)})
    assert response.status_code == 200, response.text
    assert len(fake_airflow.events_of(PAYMENTS)) == 1
    assert fake_airflow.events_of(INVOICES) == []


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "not-a-signature",
        sign(b"another body", SERVICETITAN_KEY),
        sign(b"{}", "a-different-key-of-the-right-length-0123"),
    ],
    ids=["missing", "empty", "garbage", "other-body", "other-key"],
)
def test_a_bad_signature_gets_401_and_records_nothing(fake_airflow, start_receiver, signature):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    body = _delivery()
    headers = {} if signature is None else {HEADER: signature}
    response = receiver.post("/webhooks/servicetitan/invoices", body, headers)
    assert response.status_code == 401
    assert fake_airflow.events == []
    assert fake_airflow.calls == []


def test_a_changed_byte_breaks_the_signature(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    body = _delivery()
    signature = sign(body, SERVICETITAN_KEY)
    tampered = body.replace(b"120.00", b"920.00")
    assert receiver.post("/webhooks/servicetitan/invoices", tampered, {HEADER: signature}).status_code == 401
    assert fake_airflow.events == []


def test_an_encoding_that_is_set_refuses_the_other(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver(servicetitan=servicetitan_source(encoding="hex"))
    body = _delivery()
    refused = receiver.post(
        "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY, "base64")}
    )
    assert refused.status_code == 401
    accepted = receiver.post(
        "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY, "hex")}
    )
    assert accepted.status_code == 200
    assert len(fake_airflow.events) == 1


def test_the_signature_header_name_is_a_setting(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver(servicetitan=servicetitan_source(signature_header="X-ST-Hmac"))
    body = _delivery()
    assert (
        receiver.post(
            "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY)}
        ).status_code
        == 401
    )
    assert (
        receiver.post(
            "/webhooks/servicetitan/invoices", body, {"X-ST-Hmac": sign(body, SERVICETITAN_KEY)}
        ).status_code
        == 200
    )


@pytest.mark.parametrize("age", [301, -301, 3600], ids=["just-stale", "from-the-future", "an-hour-old"])
def test_a_delivery_outside_the_replay_window_gets_401_and_records_nothing(fake_airflow, start_receiver, age):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    body = _delivery(at=time.time() - age)
    response = receiver.post("/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY)})
    assert response.status_code == 401
    assert "replay window" in response.json()["detail"]
    assert fake_airflow.events == []


def test_the_time_may_come_from_a_header_in_unix_seconds(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver(servicetitan=servicetitan_source(timestamp_header="X-ST-Timestamp"))
    body = _delivery(at=time.time() - 3600)  # the body's own time is old; the header decides
    fresh = {HEADER: sign(body, SERVICETITAN_KEY), "X-ST-Timestamp": str(int(time.time()))}
    assert receiver.post("/webhooks/servicetitan/invoices", body, fresh).status_code == 200
    stale = {HEADER: sign(body, SERVICETITAN_KEY), "X-ST-Timestamp": str(int(time.time()) - 600)}
    body2 = body.replace(b'"eventId": "', b'"eventId": "2-')
    stale[HEADER] = sign(body2, SERVICETITAN_KEY)
    assert receiver.post("/webhooks/servicetitan/invoices", body2, stale).status_code == 401


def test_a_delivery_without_a_time_is_refused_unless_told_otherwise(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    body = json.dumps({"eventId": "e-9", "data": {"id": 1}}).encode()
    headers = {HEADER: sign(body, SERVICETITAN_KEY)}
    strict = start_receiver()
    assert strict.post("/webhooks/servicetitan/invoices", body, headers).status_code == 401
    relaxed = start_receiver(servicetitan=servicetitan_source(require_timestamp=False))
    assert relaxed.post("/webhooks/servicetitan/invoices", body, headers).status_code == 200
    assert len(fake_airflow.events) == 1


def test_a_replayed_delivery_gets_409_and_records_nothing_more(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    body = _delivery(event_id="evt-replayed")
    headers = {HEADER: sign(body, SERVICETITAN_KEY)}
    assert receiver.post("/webhooks/servicetitan/invoices", body, headers).status_code == 200
    again = receiver.post("/webhooks/servicetitan/invoices", body, headers)
    assert again.status_code == 409
    assert len(fake_airflow.events) == 1


def test_a_delivery_without_an_event_id_is_known_again_by_its_bytes(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    stamp = dt.datetime.now(dt.timezone.utc).isoformat()
    body = json.dumps({"timestamp": stamp, "data": {"id": 5}}).encode()
    headers = {HEADER: sign(body, SERVICETITAN_KEY)}
    assert receiver.post("/webhooks/servicetitan/invoices", body, headers).status_code == 200
    assert receiver.post("/webhooks/servicetitan/invoices", body, headers).status_code == 409
    assert len(fake_airflow.events) == 1


def test_replicas_sharing_redis_refuse_a_replay_sent_to_the_other(fake_airflow, start_receiver, redis_url):
    fake_airflow.declare(INVOICES)
    first = start_receiver(redis_url=redis_url)
    second = start_receiver(redis_url=redis_url)
    body = _delivery()
    headers = {HEADER: sign(body, SERVICETITAN_KEY)}
    assert first.post("/webhooks/servicetitan/invoices", body, headers).status_code == 200
    assert second.post("/webhooks/servicetitan/invoices", body, headers).status_code == 409
    assert len(fake_airflow.events) == 1


def test_an_unreachable_replay_store_refuses_rather_than_lets_through(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver(redis_url="redis://127.0.0.1:1/0")
    body = _delivery()
    response = receiver.post("/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY)})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert fake_airflow.events == []


def test_a_topic_without_an_asset_is_acknowledged_and_ignored(fake_airflow, start_receiver):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    body = _delivery()
    response = receiver.post(
        "/webhooks/servicetitan/technicians", body, {HEADER: sign(body, SERVICETITAN_KEY)}
    )
    assert response.status_code == 200
    assert response.json()["recorded"] == 0
    assert fake_airflow.events == []


def test_a_mapped_topic_goes_to_the_uri_it_is_mapped_to(fake_airflow, start_receiver):
    fake_airflow.declare("b1-webhook://servicetitan/receivables")
    receiver = start_receiver(
        asset_uris={
            "servicetitan:invoices": "b1-webhook://servicetitan/receivables",
            "servicetitan:payments": "b1-webhook://servicetitan/receivables",
        }
    )
    for topic in ("invoices", "payments"):
        body = _delivery()
        assert (
            receiver.post(
                f"/webhooks/servicetitan/{topic}", body, {HEADER: sign(body, SERVICETITAN_KEY)}
            ).status_code
            == 200
        )
    assert len(fake_airflow.events_of("b1-webhook://servicetitan/receivables")) == 2


def test_a_signed_body_that_is_not_json_gets_400(fake_airflow, start_receiver):
    receiver = start_receiver()
    body = b"not json at all"
    assert (
        receiver.post(
            "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY)}
        ).status_code
        == 400
    )
    assert fake_airflow.events == []


def test_an_oversized_body_gets_413_before_any_work(fake_airflow, start_receiver):
    receiver = start_receiver(max_body_bytes=1000)
    body = _delivery(padding="x" * 2000)
    assert (
        receiver.post(
            "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY)}
        ).status_code
        == 413
    )
    assert fake_airflow.events == []


def test_a_receiver_without_a_servicetitan_key_answers_404(fake_airflow, start_receiver):
    receiver = start_receiver(servicetitan=None)
    body = _delivery()
    assert (
        receiver.post(
            "/webhooks/servicetitan/invoices", body, {HEADER: sign(body, SERVICETITAN_KEY)}
        ).status_code
        == 404
    )
