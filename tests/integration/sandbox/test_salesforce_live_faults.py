"""Injected failures of the Salesforce sandbox as simple-salesforce meets them: 5xx on every Nth
call or at random, connection resets, sessions expiring mid-run, a slow token endpoint,
targeting by call kind, and the bound on how many faults are injected."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError


@pytest.fixture
def org(salesforce_sandbox) -> Iterator:
    yield salesforce_sandbox
    salesforce_sandbox.restore()


@pytest.fixture
def sf(org) -> Iterator[Salesforce]:
    http = requests.Session()
    http.verify = org.ca_path
    http.trust_env = False
    token = org.token()
    yield Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], version="62.0", session=http
    )
    http.close()


def outcome(sf: Salesforce) -> str:
    try:
        sf.query("SELECT Id FROM Account LIMIT 1")
    except SalesforceGeneralError as exc:
        return str(exc.status)
    except requests.ConnectionError:
        return "reset"
    return "ok"


def test_every_third_call_answers_503(sf, org):
    org.faults(error_every=3)
    assert [outcome(sf) for _ in range(6)] == ["ok", "ok", "503", "ok", "ok", "503"]
    sf.query("SELECT Id FROM Account LIMIT 1")
    sf.query("SELECT Id FROM Account LIMIT 1")
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.content[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert org.stats()["faults_injected"] == {"error": 3}


def test_500_answers_unknown_exception_and_faults_do_not_count_against_the_limit(sf, org):
    org.faults(error_rate=1.0, error_status=500)
    with pytest.raises(SalesforceGeneralError) as caught:
        sf.query("SELECT Id FROM Account LIMIT 1")
    assert caught.value.status == 500
    assert caught.value.content[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert org.control("GET", "usage")["used"] == 0


def test_random_errors_are_repeatable_with_a_seed(sf, org):
    org.faults(error_rate=0.5, seed=11)
    first = [outcome(sf) for _ in range(12)]
    org.faults(error_rate=0.5, seed=11)
    assert [outcome(sf) for _ in range(12)] == first
    assert {"ok", "503"} == set(first)


def test_connection_resets_without_a_reply(sf, org):
    org.faults(reset_every=2)
    assert [outcome(sf) for _ in range(4)] == ["ok", "reset", "ok", "reset"]
    assert org.stats()["faults_injected"] == {"reset": 2}


def test_max_faults_bounds_the_injection(sf, org):
    org.faults(error_rate=1.0, max_faults=2)
    assert [outcome(sf) for _ in range(4)] == ["503", "503", "ok", "ok"]


def test_targeted_faults_hit_only_that_kind_of_call(sf, org):
    org.faults(error_rate=1.0, target="PATCH collections_upsert")
    assert outcome(sf) == "ok"
    with pytest.raises(SalesforceGeneralError):
        sf.restful(
            "composite/sobjects/Account/SAP_Card_Code__c",
            method="PATCH",
            json={
                "records": [{"attributes": {"type": "Account"}, "SAP_Card_Code__c": "C73000", "Name": "X"}]
            },
        )
    assert "C73000" not in {a["SAP_Card_Code__c"] for a in org.truth("Account")}


def test_scripted_session_expiry_then_a_new_token_works(sf, org):
    org.faults(script=[{"kind": "expire_token", "match": "GET query", "times": 1}])
    with pytest.raises(SalesforceExpiredSession):
        sf.query("SELECT Id FROM Account LIMIT 1")
    with pytest.raises(SalesforceExpiredSession):  # the session stays ended
        sf.describe()
    token = org.token()
    again = Salesforce(
        instance_url=token["instance_url"],
        session_id=token["access_token"],
        version="62.0",
        session=sf.session,
    )
    assert again.query("SELECT COUNT() FROM Account")["totalSize"] == 40
    assert org.stats()["sessions_refused"] == 2


def test_slow_token_endpoint_and_token_faults_only_when_targeted(org):
    org.faults(token_delay=0.3)
    started = time.monotonic()
    org.token()
    assert time.monotonic() - started >= 0.3
    org.faults(error_rate=1.0)  # untargeted faults spare the token endpoint
    org.token()
    org.faults(error_rate=1.0, target="POST token")
    with pytest.raises(requests.HTTPError) as caught:
        org.token()
    assert caught.value.response.status_code == 503
