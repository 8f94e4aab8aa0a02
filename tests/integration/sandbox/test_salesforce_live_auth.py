"""The Salesforce sandbox's token endpoint, sessions and API limits, over HTTPS with
simple-salesforce (unchanged) and plain ``requests``, as a third-party client would call them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceRefusedRequest


@pytest.fixture
def org(salesforce_sandbox) -> Iterator:
    yield salesforce_sandbox
    salesforce_sandbox.restore()


@pytest.fixture
def http(salesforce_sandbox) -> Iterator[requests.Session]:
    session = requests.Session()
    session.verify = salesforce_sandbox.ca_path
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise win over verify
    yield session
    session.close()


def connect(org, http: requests.Session) -> Salesforce:
    token = org.token()
    return Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], version="62.0", session=http
    )


def test_token_reply_has_the_client_credentials_shape_and_no_expiry(org, http):
    reply = http.post(
        f"{org.base_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": org.config.client_id,
            "client_secret": org.config.client_secret,
        },
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == org.base_url
    assert body["issued_at"].isdigit()
    assert len(body["issued_at"]) == 13
    assert body["id"].startswith(f"{org.base_url}/id/00D")
    assert body["access_token"].startswith("00D")
    assert "!" in body["access_token"]


def test_token_by_http_basic_as_simple_salesforce_sends_it(org, http):
    reply = http.post(
        f"{org.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(org.config.client_id, org.config.client_secret),
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


def test_wrong_client_gets_the_oauth_error_shape(org, http):
    reply = http.post(
        f"{org.base_url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": org.config.client_id, "client_secret": "nope"},
        timeout=10,
    )
    assert reply.status_code == 400
    assert reply.json() == {"error": "invalid_client", "error_description": "invalid client credentials"}
    other = http.post(f"{org.base_url}/services/oauth2/token", data={"grant_type": "password"}, timeout=10)
    assert other.status_code == 400
    assert other.json()["error"] == "unsupported_grant_type"
    assert org.stats()["token_refusals"] == 2


def test_every_api_reply_carries_the_usage_and_each_call_counts_one(org, http):
    sf = connect(org, http)
    sf.query("SELECT Id FROM Account LIMIT 1")
    first = sf.api_usage["api-usage"]
    sf.query("SELECT Id FROM Account LIMIT 1")
    second = sf.api_usage["api-usage"]
    assert second.used == first.used + 1
    assert second.total == 100_000
    limits = sf.limits()
    assert limits["DailyApiRequests"] == {"Max": 100_000, "Remaining": 100_000 - (second.used + 1)}
    # Token requests and the control plane do not count.
    org.token()
    org.stats()
    assert org.control("GET", "usage")["used"] == second.used + 1


def test_at_the_daily_limit_calls_are_refused_with_request_limit_exceeded(org, http):
    sf = connect(org, http)
    org.control("POST", "usage", {"used": 9, "limit": 10})
    sf.query("SELECT Id FROM Account LIMIT 1")
    assert sf.api_usage["api-usage"].used == 10
    with pytest.raises(SalesforceRefusedRequest) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.status == 403
    assert caught.value.content == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    raw = http.get(
        f"{org.base_url}/services/data/v62.0/limits",
        headers={"Authorization": f"Bearer {sf.session_id}"},
        timeout=10,
    )
    assert raw.status_code == 403
    assert raw.headers["Sforce-Limit-Info"] == "api-usage=10/10"
    assert org.stats()["limit_refusals"] == 2


def test_expired_sessions_answer_401_invalid_session_id(org, http):
    sf = connect(org, http)
    sf.query("SELECT Id FROM Account LIMIT 1")
    org.faults(expire_tokens=True)
    with pytest.raises(SalesforceExpiredSession) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.status == 401
    assert caught.value.content == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]
    fresh = connect(org, http)
    assert fresh.query("SELECT COUNT() FROM Account")["totalSize"] == 40


def test_sessions_end_after_the_idle_timeout(org, http):
    import time

    org.control("POST", "config", {"session_timeout_seconds": 0.3})
    sf = connect(org, http)
    sf.query("SELECT Id FROM Account LIMIT 1")
    time.sleep(0.4)
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account LIMIT 1")


def test_bulk_calls_also_need_a_live_session(org, http):
    sf = connect(org, http)
    org.faults(expire_tokens=True)
    with pytest.raises(SalesforceExpiredSession):
        list(sf.bulk2.Account.query("SELECT Id FROM Account", wait=0))


def test_versions_need_no_session_and_unknown_versions_are_not_found(org, http):
    versions = http.get(f"{org.base_url}/services/data/", timeout=10).json()
    assert {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"} in versions
    token = org.token()["access_token"]
    reply = http.get(
        f"{org.base_url}/services/data/v99.0/limits", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert reply.status_code == 404
    assert reply.json()[0]["errorCode"] == "NOT_FOUND"
