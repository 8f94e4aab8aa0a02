"""Salesforce tokens: one request, cached encrypted for the worker's other processes, never reused once refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sf_unit_helpers import CONSUMER_KEY, CONSUMER_SECRET, response

from airflow_provider_b1.hooks.salesforce import SalesforceAuthError, SalesforceToken, SalesforceTokenAuth

TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"


class TokenEndpoint:
    """Stands in for the hook's session: answers token requests with numbered tokens."""

    def __init__(self, status: int = 200, body: dict | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.body = body

    def post(self, url: str, *, data: dict, **kwargs: Any):
        self.requests.append(data)
        if self.status != 200:
            return response(self.status, self.body)
        return response(
            200,
            {
                "access_token": f"00Dxx!token-{len(self.requests)}-{uuid.uuid4().hex}",
                "instance_url": "https://acme.my.salesforce.com",
                "id": "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA",
                "token_type": "Bearer",
                "issued_at": "1764633600000",
                "signature": "sig",
                "scope": "api",
            },
        )


def _auth(endpoint: TokenEndpoint, cache_dir, secret: str = CONSUMER_SECRET) -> SalesforceTokenAuth:
    return SalesforceTokenAuth(endpoint, TOKEN_URL, CONSUMER_KEY, secret, cache_dir=cache_dir)  # type: ignore[arg-type]


def test_the_token_request_is_the_client_credentials_form(tmp_path):
    endpoint = TokenEndpoint()
    token = _auth(endpoint, tmp_path).token()
    assert endpoint.requests == [
        {"grant_type": "client_credentials", "client_id": CONSUMER_KEY, "client_secret": CONSUMER_SECRET}
    ]
    assert token.instance_url == "https://acme.my.salesforce.com"
    assert token.org_id == "00D000000000001AAA"
    assert token.user_id == "005000000000001AAA"
    assert token.issued_at == 1764633600000


def test_a_second_process_takes_the_cached_token(tmp_path):
    first, second = TokenEndpoint(), TokenEndpoint()
    token = _auth(first, tmp_path).token()
    other = _auth(second, tmp_path)
    assert other.token().value == token.value
    assert len(first.requests) == 1
    assert second.requests == []
    assert other.token_requests == 0


def test_a_refused_token_is_never_taken_back_from_the_cache(tmp_path):
    endpoint = TokenEndpoint()
    auth = _auth(endpoint, tmp_path)
    refused = auth.token()
    renewed = auth.renew(refused)
    assert renewed.value != refused.value
    assert len(endpoint.requests) == 2
    # Another process that held the refused token adopts the renewed one without a request.
    late = _auth(TokenEndpoint(), tmp_path)
    late._credential = refused
    assert late.renew(refused).value == renewed.value
    assert late.token_requests == 0


def test_the_cache_is_encrypted_and_unreadable_under_another_secret(tmp_path):
    auth = _auth(TokenEndpoint(), tmp_path)
    token = auth.token()
    raw = auth.cache.path.read_bytes()
    assert token.value.encode() not in raw
    assert CONSUMER_SECRET.encode() not in raw
    other = TokenEndpoint()
    assert _auth(other, tmp_path, secret="another-secret-value").token().value != token.value
    assert len(other.requests) == 1


def test_a_refused_secret_is_an_auth_error_without_the_secret(tmp_path):
    endpoint = TokenEndpoint(
        400, {"error": "invalid_client", "error_description": "invalid client credentials"}
    )
    with pytest.raises(SalesforceAuthError) as raised:
        _auth(endpoint, tmp_path).token()
    assert "consumer secret" in str(raised.value)
    assert CONSUMER_SECRET not in str(raised.value)
    assert len(endpoint.requests) == 1  # a refusal is not retried


def test_the_token_is_not_in_its_repr():
    token = SalesforceToken("00Dxx!secret-token-value", "https://i")
    assert "secret-token-value" not in repr(token)
