"""Recording Asset events in Airflow: token, asset id, retries, and what the sender is told when it fails."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import uuid

import pytest
import requests
from webhook_fakes import AIRFLOW_PASSWORD, SAP_SECRET, SERVICETITAN_KEY, airflow_uri

from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.webhooks.assets_client import (
    AirflowAssetsClient,
    AirflowAuthError,
    AirflowUnavailableError,
    AssetNotFoundError,
)
from airflow_provider_b1.webhooks.signatures import sign

INVOICES = "b1-webhook://servicetitan/invoices"
ST_HEADER = "X-ServiceTitan-Signature"
FAST = RetryPolicy(max_attempts=3, max_elapsed=5, initial_wait=0, max_wait=0)


def _servicetitan_delivery() -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "eventId": str(uuid.uuid4()),
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(),
            "data": {"id": 3},
        }
    ).encode()
    return body, {ST_HEADER: sign(body, SERVICETITAN_KEY)}


def _client(fake, **options) -> AirflowAssetsClient:
    defaults = {"username": fake.username, "password": fake.password, "retry_policy": FAST}
    return AirflowAssetsClient(fake.url, **{**defaults, **options})


def test_the_calls_the_receiver_makes_exist_in_the_installed_airflow_api(airflow_specs):
    core, auth = airflow_specs["core"], airflow_specs["auth"]
    assert "post" in core["paths"]["/api/v2/assets/events"]
    assert {"uri_prefix_pattern", "limit", "offset", "order_by"} <= {
        p["name"] for p in core["paths"]["/api/v2/assets"]["get"]["parameters"]
    }
    assert {"post", "get"} <= set(auth["paths"]["/auth/token"])
    body = core["components"]["schemas"]["CreateAssetEventsBody"]
    assert body["required"] == ["asset_id"]
    assert body["additionalProperties"] is False


def test_one_token_serves_many_events(fake_airflow):
    fake_airflow.declare(INVOICES)
    client = _client(fake_airflow)
    ids = [client.record_event(INVOICES, {"n": n}) for n in range(3)]
    assert ids == [1, 2, 3]
    assert fake_airflow.tokens_issued == 1
    assert fake_airflow.calls.count(("GET", "/api/v2/assets")) == 1


def test_an_asset_stored_with_a_trailing_slash_is_found(fake_airflow):
    fake_airflow.declare("servicetitan://invoices")
    assert airflow_uri("servicetitan://invoices") == "servicetitan://invoices/"
    assert _client(fake_airflow).record_event("servicetitan://invoices", {}) == 1


def test_a_token_near_its_expiry_is_renewed_before_use(fake_airflow):
    fake_airflow.declare(INVOICES)
    now = [time.time()]
    client = _client(fake_airflow, clock=lambda: now[0])
    client.record_event(INVOICES, {})
    now[0] += 3600 - 59  # a minute before the fake's one-hour token expires
    client.record_event(INVOICES, {})
    assert fake_airflow.tokens_issued == 2
    client.record_event(INVOICES, {})
    assert fake_airflow.tokens_issued == 2


def test_a_short_lived_token_serves_half_its_life(fake_airflow):
    fake_airflow.declare(INVOICES)
    fake_airflow.token_lifetime = 30
    now = [time.time()]
    client = _client(fake_airflow, clock=lambda: now[0])
    client.record_event(INVOICES, {})
    client.record_event(INVOICES, {})
    assert fake_airflow.tokens_issued == 1
    now[0] += 16
    client.record_event(INVOICES, {})
    assert fake_airflow.tokens_issued == 2


def test_a_refused_token_is_renewed_once_and_the_call_repeated(fake_airflow):
    fake_airflow.declare(INVOICES)
    client = _client(fake_airflow)
    client.record_event(INVOICES, {})
    fake_airflow.revoked.update({client._token})
    assert client.record_event(INVOICES, {}) == 2
    assert fake_airflow.tokens_issued == 2


def test_wrong_credentials_fail_at_once_with_the_setting_to_fix(fake_airflow):
    fake_airflow.declare(INVOICES)
    client = _client(fake_airflow, password="wrong-password")
    with pytest.raises(AirflowAuthError, match="B1_WEBHOOKS_AIRFLOW_PASSWORD") as raised:
        client.record_event(INVOICES, {})
    assert "wrong-password" not in str(raised.value)
    assert fake_airflow.calls == [("POST", "/auth/token")]


def test_without_credentials_the_all_admins_token_is_used(fake_airflow):
    fake_airflow.declare(INVOICES)
    fake_airflow.all_admins = True
    client = AirflowAssetsClient(fake_airflow.url, retry_policy=FAST)
    assert client.record_event(INVOICES, {}) == 1
    assert ("GET", "/auth/token") in fake_airflow.calls


def test_transient_failures_are_retried_a_bounded_number_of_times(fake_airflow):
    fake_airflow.declare(INVOICES)
    client = _client(fake_airflow)
    fake_airflow.fail_next.extend([503, 502])
    assert client.record_event(INVOICES, {}) == 1
    fake_airflow.fail_next.extend([503, 503, 503, 503])
    with pytest.raises(AirflowUnavailableError):
        client.record_event(INVOICES, {})
    assert fake_airflow.fail_next == [503]  # three attempts, no more


def test_an_unknown_asset_names_the_fix(fake_airflow):
    with pytest.raises(AssetNotFoundError, match="deploy a DAG"):
        _client(fake_airflow).record_event("b1-webhook://servicetitan/nothing", {})


def test_an_asset_declared_again_under_a_new_id_is_looked_up_again(fake_airflow):
    fake_airflow.declare(INVOICES)
    client = _client(fake_airflow)
    client.record_event(INVOICES, {})
    fake_airflow.assets.clear()
    fake_airflow.assets[7] = INVOICES
    client.record_event(INVOICES, {})
    assert [event["asset_id"] for event in fake_airflow.events] == [1, 7]


def test_an_unreachable_airflow_is_told_to_the_sender_as_503_and_the_retry_is_recorded(
    fake_airflow, start_receiver
):
    fake_airflow.declare(INVOICES)
    receiver = start_receiver()
    body, headers = _servicetitan_delivery()
    fake_airflow.fail_next.extend([503] * 10)
    refused = receiver.post("/webhooks/servicetitan/invoices", body, headers)
    assert refused.status_code == 503
    assert int(refused.headers["Retry-After"]) > 0
    assert fake_airflow.events == []
    fake_airflow.fail_next.clear()
    # The sender's retry of the same delivery is not taken for a replay: its claim was released.
    assert receiver.post("/webhooks/servicetitan/invoices", body, headers).status_code == 200
    assert len(fake_airflow.events) == 1


def test_an_asset_no_dag_declares_gets_503_until_one_does(fake_airflow, start_receiver):
    receiver = start_receiver()
    body, headers = _servicetitan_delivery()
    assert receiver.post("/webhooks/servicetitan/invoices", body, headers).status_code == 503
    fake_airflow.declare(INVOICES)
    assert receiver.post("/webhooks/servicetitan/invoices", body, headers).status_code == 200


def test_secrets_never_appear_in_logs_or_answers(fake_airflow, start_receiver, caplog):
    caplog.set_level(logging.DEBUG)
    fake_airflow.declare(INVOICES, "b1-webhook://sap_b1/Orders")
    receiver = start_receiver()
    answers: list[requests.Response] = []
    signatures: list[str] = []

    body, headers = _servicetitan_delivery()
    signatures.append(headers[ST_HEADER])
    answers.append(receiver.post("/webhooks/servicetitan/invoices", body, headers))  # recorded
    answers.append(receiver.post("/webhooks/servicetitan/invoices", body, headers))  # replay
    wrong = sign(body, SERVICETITAN_KEY[::-1])
    signatures.append(wrong)
    answers.append(receiver.post("/webhooks/servicetitan/invoices", body, {ST_HEADER: wrong}))  # forged
    sap_body = json.dumps(
        [
            {
                "id": "e1",
                "type": "sap.b1.Orders.Created.v1",
                "time": dt.datetime.now(dt.timezone.utc).isoformat(),
                "data": {"DocEntry": 1},
            }
        ]
    ).encode()
    signatures.append(sign(sap_body, SAP_SECRET, "base64"))
    answers.append(receiver.post("/webhooks/sap-b1", sap_body, {"X-B1-Webhook-Signature": signatures[-1]}))
    fake_airflow.fail_next.extend([500] * 10)
    body, headers = _servicetitan_delivery()
    answers.append(receiver.post("/webhooks/servicetitan/invoices", body, headers))  # Airflow down
    fake_airflow.fail_next.clear()

    assert [a.status_code for a in answers] == [200, 409, 401, 200, 503]
    assert fake_airflow.issued
    secrets = [SERVICETITAN_KEY, SAP_SECRET, AIRFLOW_PASSWORD, *signatures, *fake_airflow.issued]
    logged = "\n".join(record.getMessage() for record in caplog.records) + repr(receiver.settings)
    answered = "\n".join(a.text + repr(dict(a.headers)) for a in answers)
    for secret in secrets:
        assert secret not in logged
        assert secret not in answered
    assert "refused" in logged.lower()  # the refusals were logged, only without the secrets


def test_an_https_airflow_signed_by_a_private_ca_is_trusted_whatever_requests_ca_bundle_says(
    fake_airflow, monkeypatch
):
    """``verify`` names the CA of Airflow's certificate; a REQUESTS_CA_BUNDLE in the environment
    (the system's bundle, as many images set it) must not replace it."""
    import certifi
    from webhook_fakes import fake_airflow_app

    from airflow_provider_b1.sandbox.server import serve_in_thread

    served = serve_in_thread(fake_airflow_app(fake_airflow), tls=True)
    try:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
        fake_airflow.declare(INVOICES)
        client = AirflowAssetsClient(
            served.base_url,
            username=fake_airflow.username,
            password=fake_airflow.password,
            retry_policy=FAST,
            verify=str(served.ca_path),
        )
        try:
            assert client.record_event(INVOICES, {}) == 1
        finally:
            client.close()  # its keep-alive connection would hold up the server's stop
    finally:
        served.stop()
