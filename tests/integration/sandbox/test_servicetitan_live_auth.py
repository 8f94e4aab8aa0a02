"""Issue 9: the ServiceTitan sandbox's token endpoint, app key, tokens and tenant checks, over
HTTPS with plain ``requests`` as a third-party client would call them."""

from __future__ import annotations

import base64

PROBLEM = "application/problem+json"


def test_token_endpoint_issues_bearer_tokens_that_live_900_seconds(servicetitan):
    reply = servicetitan.request_token()
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"]
    assert body["access_token"].count(".") == 2  # a JWT, as ServiceTitan's are
    assert "no-store" in reply.headers["Cache-Control"]


def test_token_endpoint_accepts_client_authentication_by_http_basic(servicetitan):
    cfg = servicetitan.config
    basic = base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()
    reply = servicetitan.http.post(
        f"{servicetitan.base}/connect/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text


def test_wrong_client_secret_is_refused_as_invalid_client(servicetitan):
    reply = servicetitan.request_token(client_secret="not-the-secret")
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_client"
    assert "access_token" not in reply.text


def test_other_grant_types_are_refused(servicetitan):
    reply = servicetitan.request_token(grant_type="password")
    assert reply.status_code == 400
    assert reply.json()["error"] == "unsupported_grant_type"


def test_token_requests_over_the_per_minute_limit_get_429_with_retry_after(servicetitan):
    servicetitan.control("POST", "config", {"token_requests_per_minute": 3})
    statuses = [servicetitan.request_token().status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = servicetitan.request_token()
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert servicetitan.control("GET", "stats").json()["token_requests_throttled"] == 2


def test_bearer_and_bare_tokens_are_both_accepted(servicetitan):
    token = servicetitan.token()
    for header in (f"Bearer {token}", f"bearer {token}", token):
        reply = servicetitan.get("settings", "business-units", headers={"Authorization": header})
        assert reply.status_code == 200, (header[:8], reply.text)
    schemes = servicetitan.control("GET", "stats").json()["auth_schemes"]
    assert schemes["Bearer"] >= 2
    assert schemes["bare"] >= 1


def test_a_call_without_app_key_is_refused_with_401_naming_the_header(servicetitan):
    reply = servicetitan.http.get(
        servicetitan.url("crm", "customers"),
        headers={"Authorization": f"Bearer {servicetitan.token()}"},
        timeout=10,
    )
    assert reply.status_code == 401
    assert reply.headers["Content-Type"].startswith(PROBLEM)
    assert "ST-App-Key" in reply.json()["title"]
    assert "WWW-Authenticate" not in reply.headers


def test_a_wrong_app_key_is_refused_with_403_naming_the_key(servicetitan):
    reply = servicetitan.get("crm", "customers", headers={"ST-App-Key": "ak1.someone-else"})
    assert reply.status_code == 403
    assert "ST-App-Key" in reply.json()["title"]


def test_missing_and_unknown_tokens_are_refused_with_a_bearer_challenge(servicetitan):
    missing = servicetitan.http.get(
        servicetitan.url("crm", "customers"), headers={"ST-App-Key": servicetitan.config.app_key}, timeout=10
    )
    assert missing.status_code == 401
    assert "Authorization" in missing.json()["title"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = servicetitan.get("crm", "customers", headers={"Authorization": "Bearer eyJnot.a.token"})
    assert unknown.status_code == 401
    assert "invalid_token" in unknown.headers["WWW-Authenticate"]


def test_a_token_expires_after_its_lifetime_and_a_new_one_works(servicetitan):
    old = servicetitan.token(fresh=True)
    assert servicetitan.get("settings", "business-units").status_code == 200
    servicetitan.control("POST", "clock", {"advance_seconds": 901})
    expired = servicetitan.get("settings", "business-units")
    assert expired.status_code == 401
    assert "expired" in expired.json()["title"]
    assert "expired" in expired.headers["WWW-Authenticate"]
    assert servicetitan.token(fresh=True) != old
    assert servicetitan.get("settings", "business-units").status_code == 200


def test_token_lifetime_is_a_setting(servicetitan):
    servicetitan.control("POST", "config", {"token_lifetime_seconds": 60})
    assert servicetitan.request_token().json()["expires_in"] == 60
    servicetitan.token(fresh=True)
    servicetitan.control("POST", "clock", {"advance_seconds": 61})
    assert servicetitan.get("settings", "business-units").status_code == 401


def test_expire_tokens_expires_every_live_token(servicetitan):
    servicetitan.token(fresh=True)
    assert servicetitan.control("POST", "expire-tokens").json()["expired"] >= 1
    assert servicetitan.get("settings", "business-units").status_code == 401
    servicetitan.token(fresh=True)
    assert servicetitan.get("settings", "business-units").status_code == 200


def test_token_expiry_fault_expires_the_token_of_the_faulted_call(servicetitan):
    servicetitan.token(fresh=True)
    servicetitan.dirty = True
    servicetitan.control(
        "POST", "faults", {"script": [{"kind": "expire_token", "match": "GET crm/customers"}]}
    )
    assert servicetitan.get("settings", "business-units").status_code == 200
    assert servicetitan.get("crm", "customers").status_code == 401
    assert servicetitan.get("settings", "business-units").status_code == 401  # the token stays expired
    servicetitan.token(fresh=True)
    assert servicetitan.get("crm", "customers").status_code == 200


def test_another_tenant_is_forbidden_and_a_non_numeric_one_not_found(servicetitan):
    headers = {"Authorization": f"Bearer {servicetitan.token()}", "ST-App-Key": servicetitan.config.app_key}
    other = servicetitan.http.get(servicetitan.url("crm", "customers", "999"), headers=headers, timeout=10)
    assert other.status_code == 403
    assert "tenant 999" in other.json()["detail"]
    word = servicetitan.http.get(servicetitan.url("crm", "customers", "acme"), headers=headers, timeout=10)
    assert word.status_code == 404
    assert "tenant" in word.json()["detail"]


def test_unknown_resources_are_404_and_writes_405(servicetitan):
    assert servicetitan.get("crm", "no-such-thing").status_code == 404
    assert servicetitan.get("crm", "customers/1").status_code == 404
    reply = servicetitan.http.post(
        servicetitan.url("crm", "customers"),
        headers={
            "Authorization": f"Bearer {servicetitan.token()}",
            "ST-App-Key": servicetitan.config.app_key,
        },
        json={},
        timeout=10,
    )
    assert reply.status_code == 405
