"""ServiceTitan tokens without a server: cached encrypted, shared, renewed before expiry and after a refusal."""

from __future__ import annotations

import os
import stat

import pytest
import requests
from st_unit_helpers import APP_KEY, CLIENT_ID, CLIENT_SECRET, response

from airflow_provider_b1.hooks.servicetitan import (
    AccessToken,
    ServiceTitanAuthError,
    ServiceTitanTokenAuth,
    TokenCache,
)
from airflow_provider_b1.utils.retry import RetryPolicy

TOKEN_URL = "https://auth.example/connect/token"
FAST = RetryPolicy(max_attempts=3, max_elapsed=5, initial_wait=0.001, max_wait=0.01)


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TokenEndpoint:
    """Stands in for the session's ``post``: hands out token-1, token-2, ... and records each form."""

    def __init__(self, *replies: requests.Response) -> None:
        self.forms: list[dict] = []
        self.replies = list(replies)

    def post(self, url, data=None, **kwargs):
        assert url == TOKEN_URL
        self.forms.append(dict(data))
        if self.replies:
            return self.replies.pop(0)
        return response(
            200, {"access_token": f"token-{len(self.forms)}", "expires_in": 900, "token_type": "Bearer"}
        )


def _auth(endpoint: TokenEndpoint, cache_dir, clock: Clock | None = None) -> ServiceTitanTokenAuth:
    return ServiceTitanTokenAuth(
        endpoint,  # type: ignore[arg-type]
        TOKEN_URL,
        CLIENT_ID,
        CLIENT_SECRET,
        APP_KEY,
        retry_policy=FAST,
        cache_dir=cache_dir,
        clock=clock or Clock(),
    )


def _signed(auth: ServiceTitanTokenAuth) -> requests.PreparedRequest:
    return auth(requests.Request("GET", "https://api.example/crm/v2/tenant/1/customers").prepare())


def test_the_token_request_is_a_client_credentials_form(tmp_path):
    endpoint = TokenEndpoint()
    _auth(endpoint, tmp_path).token()
    assert endpoint.forms == [
        {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    ]


def test_every_request_carries_the_bearer_token_and_the_app_key(tmp_path):
    request = _signed(_auth(TokenEndpoint(), tmp_path))
    assert request.headers["Authorization"] == "Bearer token-1"
    assert request.headers["ST-App-Key"] == APP_KEY


def test_two_processes_share_one_token_through_the_cache(tmp_path):
    endpoint = TokenEndpoint()
    first, second = _auth(endpoint, tmp_path), _auth(endpoint, tmp_path)
    assert first.token() == second.token() == "token-1"
    assert len(endpoint.forms) == 1
    assert (first.token_requests, second.token_requests) == (1, 0)


def test_the_token_is_renewed_a_tenth_of_its_life_before_it_ends(tmp_path):
    clock = Clock()
    endpoint = TokenEndpoint()
    auth = _auth(endpoint, tmp_path, clock)
    assert auth.token() == "token-1"
    clock.now += 900 - 61  # the margin of a 900 s token is 60 s
    assert auth.token() == "token-1"
    clock.now += 2
    assert auth.token() == "token-2"
    assert len(endpoint.forms) == 2


def test_a_short_tokens_margin_is_a_tenth_of_its_life():
    token = AccessToken("t", obtained_at=0.0, expires_at=3.0)
    assert token.margin() == pytest.approx(0.3)
    assert token.is_fresh(2.6)
    assert not token.is_fresh(2.8)


def test_a_refused_token_is_replaced_and_never_taken_back_from_the_cache(tmp_path):
    endpoint = TokenEndpoint()
    first, second = _auth(endpoint, tmp_path), _auth(endpoint, tmp_path)
    refused = first.current()
    assert first.renew(refused).value == "token-2"
    # The other process, refused with the same token, takes the new one from the cache.
    assert second.renew(refused).value == "token-2"
    assert len(endpoint.forms) == 2


def test_a_refused_client_secret_is_not_retried(tmp_path):
    endpoint = TokenEndpoint(response(400, {"error": "invalid_client"}))
    with pytest.raises(ServiceTitanAuthError, match="refused the client id and secret"):
        _auth(endpoint, tmp_path).token()
    assert len(endpoint.forms) == 1


def test_a_throttled_token_request_is_retried_and_then_succeeds(tmp_path):
    endpoint = TokenEndpoint(
        response(429, {"title": "Slow down. Retry in 0 seconds."}, headers={"Retry-After": "0"})
    )
    assert _auth(endpoint, tmp_path).token() == "token-2"
    assert len(endpoint.forms) == 2


def test_the_cache_file_is_encrypted_and_readable_by_the_owner_only(tmp_path):
    _auth(TokenEndpoint(), tmp_path).token()
    cache = TokenCache(tmp_path, TOKEN_URL, CLIENT_ID, CLIENT_SECRET)
    data = cache.path.read_bytes()
    assert b"token-1" not in data
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
    assert cache.load().value == "token-1"


def test_a_cache_written_under_another_secret_is_ignored(tmp_path):
    _auth(TokenEndpoint(), tmp_path).token()
    other = TokenCache(tmp_path, TOKEN_URL, CLIENT_ID, "another-secret-entirely")
    assert other.load() is None


def test_repr_shows_no_secret(tmp_path):
    auth = _auth(TokenEndpoint(), tmp_path)
    auth.token()
    text = repr(auth) + repr(auth.held) + repr(auth.cache)
    for secret in (CLIENT_SECRET, APP_KEY, "token-1"):
        assert secret not in text
