"""ServiceTitan's failed answers as typed errors: retryable or permanent, one sentence, no secret."""

from __future__ import annotations

import pytest
import requests
from st_unit_helpers import response

from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.hooks.servicetitan import (
    ServiceTitanAppKeyError,
    ServiceTitanAuthError,
    ServiceTitanBadRequestError,
    ServiceTitanNotFoundError,
    ServiceTitanPermissionError,
    ServiceTitanRateLimitedError,
    ServiceTitanServerError,
    ServiceTitanTenantError,
    ServiceTitanUnreachableError,
)
from airflow_provider_b1.hooks.servicetitan.errors import (
    error_from_response,
    retry_after_of,
    token_error_from_response,
    transport_error,
)

PROBLEM = "application/problem+json"


def _problem(status: int, title: str, **more) -> dict:
    return {
        "type": "https://tools.ietf.org/html/rfc9110",
        "title": title,
        "status": status,
        "traceId": "00-abc",
        **more,
    }


def test_429_waits_for_the_retry_after_header():
    error = error_from_response(
        response(429, _problem(429, "Too many requests."), headers={"Retry-After": "3"}),
        "reading x",
        tenant="1",
    )
    assert isinstance(error, ServiceTitanRateLimitedError)
    assert isinstance(error, RetryableError)
    assert error.retry_after == 3
    assert error.trace_id == "00-abc"
    assert "after the 3 s it asked for" in str(error)


def test_429_without_a_header_waits_for_the_seconds_its_title_names():
    body = _problem(429, "Rate limit is exceeded. Try again in 7 seconds.")
    error = error_from_response(response(429, body), "reading x", tenant="1")
    assert error.retry_after == 7


def test_429_takes_the_longer_of_header_and_body():
    body = _problem(429, "Rate limit is exceeded. Try again in 2 seconds.")
    assert retry_after_of(response(429, body, headers={"Retry-After": "1"})) == 2
    assert retry_after_of(response(429, body, headers={"Retry-After": "5"})) == 5
    assert retry_after_of(response(429, "not json")) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(status):
    error = error_from_response(response(status, _problem(status, "Oops")), "reading x", tenant="1")
    assert isinstance(error, ServiceTitanServerError)
    assert isinstance(error, RetryableError)


def test_401_without_a_bearer_challenge_blames_the_app_key():
    body = _problem(401, "Access denied: the ST-App-Key header is missing.")
    error = error_from_response(response(401, body), "reading customers", tenant="1")
    assert isinstance(error, ServiceTitanAppKeyError)
    assert isinstance(error, PermanentError)
    assert "app key" in str(error).lower()


def test_401_with_a_bearer_challenge_after_a_fresh_token_blames_the_environment():
    reply = response(
        401,
        _problem(401, "Unauthorized: the access token is not valid."),
        headers={"WWW-Authenticate": "Bearer"},
    )
    error = error_from_response(reply, "reading customers", tenant="1")
    assert isinstance(error, ServiceTitanAuthError)
    assert "environment" in str(error)


def test_403_naming_the_app_key_is_an_app_key_error():
    body = _problem(
        403, "Access denied: the ST-App-Key is not valid.", detail="The application key is unknown."
    )
    error = error_from_response(response(403, body), "reading customers", tenant="1")
    assert isinstance(error, ServiceTitanAppKeyError)
    assert "ST-App-Key is not valid (The application key is unknown)" in str(error)


def test_403_about_the_tenant_names_the_tenant():
    body = _problem(403, "Forbidden", detail="The application has no access to tenant 99.")
    error = error_from_response(response(403, body), "reading customers", tenant="99")
    assert isinstance(error, ServiceTitanTenantError)
    assert "tenant 99" in str(error)


def test_other_403_is_a_missing_permission():
    error = error_from_response(response(403, _problem(403, "Forbidden")), "reading customers", tenant="1")
    assert isinstance(error, ServiceTitanPermissionError)
    assert "API scope" in str(error)


def test_404_about_the_tenant_and_404_of_a_record_are_told_apart():
    tenant = error_from_response(
        response(404, _problem(404, "Not Found", detail="There is no tenant 'x'.")), "reading x", tenant="x"
    )
    record = error_from_response(response(404, _problem(404, "Not Found")), "reading x", tenant="5")
    assert isinstance(tenant, ServiceTitanTenantError)
    assert type(record) is ServiceTitanNotFoundError


def test_400_lists_the_fields_servicetitan_named():
    body = _problem(400, "One or more validation errors occurred.", errors={"pageSize": ["Must be 1..5000"]})
    error = error_from_response(response(400, body), "reading customers", tenant="1")
    assert isinstance(error, ServiceTitanBadRequestError)
    assert "pageSize: Must be 1..5000" in str(error)
    assert error.errors == {"pageSize": ["Must be 1..5000"]}


@pytest.mark.parametrize("status", [400, 401])
def test_a_refused_client_id_or_secret_is_permanent(status):
    error = token_error_from_response(
        response(status, {"error": "invalid_client"}), "https://auth.example/connect/token"
    )
    assert isinstance(error, ServiceTitanAuthError)
    assert isinstance(error, PermanentError)
    assert "client id and secret" in str(error)
    assert "invalid_client" in str(error)


def test_a_throttled_token_request_is_retryable_after_its_wait():
    error = token_error_from_response(
        response(429, _problem(429, "Too many token requests. Retry in 4 seconds.")),
        "https://a/connect/token",
    )
    assert isinstance(error, ServiceTitanRateLimitedError)
    assert error.retry_after == 4


def test_a_dropped_connection_is_retryable_and_names_the_server():
    error = transport_error(requests.ConnectionError("boom"), "https://api.example", "reading x")
    assert isinstance(error, ServiceTitanUnreachableError)
    assert "https://api.example" in str(error)


def test_messages_are_one_sentence():
    errors = [
        error_from_response(response(s, _problem(s, "t")), "reading customers", tenant="1")
        for s in (400, 401, 403, 404, 429, 500)
    ]
    errors.append(
        token_error_from_response(response(401, {"error": "invalid_client"}), "https://a/connect/token")
    )
    for error in errors:
        text = str(error)
        assert text.endswith(".")
        assert text.count(". ") == 0, text
