"""Salesforce's failed answers as typed errors: told apart by status and errorCode, one sentence, no secret."""

from __future__ import annotations

import ssl

import pytest
import requests
from sf_unit_helpers import CONSUMER_SECRET, errors, response
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceMalformedRequest

from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.hooks.salesforce import (
    RecordError,
    SalesforceAmbiguousWriteError,
    SalesforceAuthError,
    SalesforceBadRequestError,
    SalesforceNotFoundError,
    SalesforcePermissionError,
    SalesforceQueryError,
    SalesforceRequestLimitExceeded,
    SalesforceServerError,
    SalesforceSessionError,
    SalesforceTLSError,
    SalesforceUnreachableError,
)
from airflow_provider_b1.hooks.salesforce.errors import (
    error_from_reply,
    error_from_response,
    error_from_simple_salesforce,
    error_items,
    token_error_from_response,
    transport_error,
)

TOKEN_URL = "https://acme.my.salesforce.com/services/oauth2/token"


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "MALFORMED_QUERY", SalesforceQueryError),
        (400, "INVALID_FIELD", SalesforceQueryError),
        (400, "INVALID_TYPE", SalesforceQueryError),
        (404, "NOT_FOUND", SalesforceNotFoundError),
        (403, "INSUFFICIENT_ACCESS", SalesforcePermissionError),
        (403, "REQUEST_LIMIT_EXCEEDED", SalesforceRequestLimitExceeded),
        (401, "INVALID_SESSION_ID", SalesforceSessionError),
        (400, "JSON_PARSER_ERROR", SalesforceBadRequestError),
        (503, "SERVER_UNAVAILABLE", SalesforceServerError),
        (500, "UNKNOWN_EXCEPTION", SalesforceServerError),
    ],
)
def test_an_error_array_becomes_the_error_of_its_code(status, code, kind):
    error = error_from_reply(status, errors(code, "Something about it", ["Name"]), "reading Account")
    assert type(error) is kind
    assert error.status == status
    assert error.error_code == code
    assert error.fields == ("Name",)
    assert error.errors == (RecordError(code, "Something about it", ("Name",)),)
    assert code in str(error)
    assert "reading Account" in str(error)


def test_transient_errors_are_retryable_and_the_rest_permanent():
    assert isinstance(error_from_reply(503, errors("SERVER_UNAVAILABLE"), "x"), RetryableError)
    assert isinstance(error_from_reply(400, errors("UNABLE_TO_LOCK_ROW"), "x"), RetryableError)
    for code, status in (("MALFORMED_QUERY", 400), ("NOT_FOUND", 404), ("REQUEST_LIMIT_EXCEEDED", 403)):
        error = error_from_reply(status, errors(code), "x")
        assert isinstance(error, PermanentError)
        assert not isinstance(error, RetryableError)


def test_a_5xx_on_a_write_that_is_not_safe_to_repeat_is_ambiguous_and_not_retried():
    error = error_from_reply(503, errors("SERVER_UNAVAILABLE"), "creating Account", repeatable=False)
    assert isinstance(error, SalesforceAmbiguousWriteError)
    assert not isinstance(error, RetryableError)
    assert "may or may not have been applied" in str(error)


def test_a_429_is_retried_even_for_a_write_and_honours_retry_after():
    error = error_from_response(
        response(429, errors("REQUEST_LIMIT"), headers={"Retry-After": "2"}), "creating", repeatable=False
    )
    assert isinstance(error, SalesforceServerError)
    assert error.retry_after == 2


def test_a_multi_line_salesforce_message_becomes_one_line():
    body = errors("MALFORMED_QUERY", "SELECT Id FORM Account\n             ^\nERROR at Row:1:Column:11")
    text = str(error_from_reply(400, body, "the query on Account"))
    assert "\n" not in text
    assert "ERROR at Row:1:Column:11" in text


def test_bodies_that_are_no_error_array_still_give_an_error():
    assert error_items(b"<html>gateway</html>") == []
    assert error_items({"message": "one", "errorCode": "X"}) == [RecordError("X", "one")]
    error = error_from_reply(502, b"<html>bad gateway</html>", "reading")
    assert isinstance(error, SalesforceServerError)
    assert error.error_code is None


def test_collection_items_use_status_code():
    item = {
        "statusCode": "DUPLICATE_VALUE",
        "message": "duplicate value found",
        "fields": ["SAP_Card_Code__c"],
    }
    error = RecordError.from_item(item)
    assert error == RecordError("DUPLICATE_VALUE", "duplicate value found", ("SAP_Card_Code__c",))
    assert str(error) == "DUPLICATE_VALUE: duplicate value found (SAP_Card_Code__c)"


def test_simple_salesforce_exceptions_are_read_by_status_and_body_not_their_text():
    malformed = SalesforceMalformedRequest(
        "https://x/services/data/v62.0/query?q=SELECT",
        400,
        "query",
        b'[{"message": "bad", "errorCode": "MALFORMED_QUERY"}]',
    )
    error = error_from_simple_salesforce(malformed, "the query on Account")
    assert isinstance(error, SalesforceQueryError)
    expired = SalesforceExpiredSession(
        "u", 401, "query", b'[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]'
    )
    assert isinstance(error_from_simple_salesforce(expired, "x"), SalesforceSessionError)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"error": "invalid_client_id", "error_description": "client identifier invalid"}, "consumer key"),
        ({"error": "invalid_client", "error_description": "invalid client credentials"}, "consumer secret"),
        (
            {"error": "invalid_grant", "error_description": "no client credentials user enabled"},
            "run-as user",
        ),
    ],
)
def test_a_refused_token_request_names_the_field_to_fix(body, words):
    error = token_error_from_response(response(400, body), TOKEN_URL)
    assert isinstance(error, SalesforceAuthError)
    assert isinstance(error, PermanentError)
    assert words in str(error)
    assert error.error_code == body["error"]
    assert CONSUMER_SECRET not in str(error)


def test_a_failing_token_endpoint_is_retried():
    error = token_error_from_response(response(503, "down"), TOKEN_URL)
    assert isinstance(error, SalesforceServerError)


def _ssl_error(inner: BaseException) -> requests.exceptions.SSLError:
    error = requests.exceptions.SSLError("handshake")
    error.__context__ = inner
    return error


def test_an_untrusted_certificate_is_a_tls_error_naming_the_ca_bundle():
    error = transport_error(
        _ssl_error(ssl.SSLCertVerificationError("self-signed certificate")), "https://h", "the token request"
    )
    assert isinstance(error, SalesforceTLSError)
    assert "CA bundle" in str(error)


def test_a_reset_is_retried_for_a_read_and_ambiguous_for_a_create():
    reset = requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    assert isinstance(transport_error(reset, "https://h", "reading"), SalesforceUnreachableError)
    assert isinstance(
        transport_error(reset, "https://h", "creating", repeatable=False), SalesforceAmbiguousWriteError
    )


def test_a_create_that_never_reached_salesforce_may_be_sent_again():
    from urllib3.exceptions import NewConnectionError

    refused = requests.exceptions.ConnectionError(NewConnectionError(None, "Connection refused"))
    assert isinstance(
        transport_error(refused, "https://h", "creating", repeatable=False), SalesforceUnreachableError
    )
