"""Error bodies of both Service Layer versions, typed errors, and transport failures classified."""

from __future__ import annotations

import email.utils
import json
import ssl
import time

import pytest
import requests
import urllib3.exceptions

from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.hooks.sap_b1.errors import (
    SapB1AmbiguousWriteError,
    SapB1BusinessError,
    SapB1CompanyError,
    SapB1ConflictError,
    SapB1Error,
    SapB1LoginBusyError,
    SapB1LoginError,
    SapB1NotFoundError,
    SapB1PermissionError,
    SapB1RequestTooLongError,
    SapB1ServerError,
    SapB1SessionExpiredError,
    SapB1TLSError,
    SapB1UnauthorizedError,
    SapB1UnreachableError,
    SapB1UserLockedError,
    error_from_response,
    is_session_expired,
    login_error_from_response,
    never_sent,
    normalise_code,
    parse_error_body,
    transport_error,
)
from airflow_provider_b1.utils.tls import is_certificate_rejection, normalise_fingerprint


def _response(status: int, body: object = None, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = (
        body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    )
    response.headers.update(headers or {})
    return response


V1_EXPIRED = {
    "error": {
        "code": 301,
        "message": {"lang": "en-us", "value": "Invalid session or session already timeout."},
    }
}
V2_EXPIRED = {
    "error": {
        "code": "301",
        "details": [{"code": "", "message": ""}],
        "message": "Invalid session or session already timeout.",
    }
}


def test_error_bodies_of_both_versions_are_read():
    assert parse_error_body(json.dumps(V1_EXPIRED)) == (301, "Invalid session or session already timeout.")
    assert parse_error_body(json.dumps(V2_EXPIRED).encode()) == (
        301,
        "Invalid session or session already timeout.",
    )
    assert parse_error_body(b"<html>bad gateway</html>") == (None, None)
    assert normalise_code("-5002") == -5002
    assert normalise_code("ABC") == "ABC"


@pytest.mark.parametrize("body", [V1_EXPIRED, V2_EXPIRED, {"error": {"code": "-5002", "message": "x"}}])
def test_session_expiry_is_recognised_in_v1_v2_and_5002(body):
    assert is_session_expired(_response(401, body))


def test_other_401s_are_not_session_expiry():
    assert not is_session_expired(_response(401, {"error": {"code": 100000027, "message": "Login failed"}}))
    assert not is_session_expired(_response(400, V1_EXPIRED))


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "-2028", SapB1NotFoundError),
        (412, "-2039", SapB1ConflictError),
        (403, 804, SapB1PermissionError),
        (400, -10, SapB1BusinessError),
        (503, None, SapB1ServerError),
        (429, None, SapB1ServerError),
    ],
)
def test_replies_map_to_typed_errors_with_code_and_message(status, code, cls):
    error = error_from_response(
        _response(status, {"error": {"code": code, "message": "msg text"}}, {"Retry-After": "3"}), "Orders"
    )
    assert isinstance(error, cls)
    assert error.status == status
    assert error.code == normalise_code(code)
    assert error.sap_message == "msg text"
    if cls is SapB1ServerError:
        assert isinstance(error, RetryableError)
        assert error.retry_after == 3.0


def test_5xx_after_a_write_is_ambiguous_not_retryable():
    error = error_from_response(_response(503, None), "Orders", method="POST")
    assert isinstance(error, SapB1AmbiguousWriteError)
    assert not isinstance(error, RetryableError)
    assert "look the record up" in str(error)
    # 429 means the server refused before doing anything: safe to repeat even a POST.
    assert isinstance(error_from_response(_response(429, None), "Orders", method="POST"), SapB1ServerError)


def test_login_errors_name_cause_and_fix():
    wrong = login_error_from_response(
        _response(401, {"error": {"code": 100000027, "message": {"value": "Login failed"}}}),
        "SBODEMOUS",
        "manager",
    )
    assert type(wrong) is SapB1LoginError
    assert "check the user name and password" in str(wrong)
    company = login_error_from_response(
        _response(401, {"error": {"code": "-1102", "message": "x"}}), "sbo", "u"
    )
    assert isinstance(company, SapB1CompanyError)
    assert "case-sensitive" in str(company)
    locked = login_error_from_response(_response(401, {"error": {"code": -4010, "message": "x"}}), "S", "u")
    assert isinstance(locked, SapB1UserLockedError)
    assert "administrator must unlock the user" in str(locked)


# -- transport classification --------------------------------------------------------------------


def _wrapped(reason: BaseException, cls=requests.exceptions.ConnectionError) -> requests.RequestException:
    inner = urllib3.exceptions.MaxRetryError(None, "/b1s/v2/Login", reason)
    return cls(inner)


def test_refused_connection_was_never_sent_and_is_unreachable():
    exc = _wrapped(urllib3.exceptions.NewConnectionError(None, "Connection refused"))
    assert never_sent(exc)
    error = transport_error(exc, "https://h:50000/b1s/v2/", method="POST", sent=False)
    assert isinstance(error, SapB1UnreachableError)
    assert "port 50000" in str(error)
    assert "MaxRetryError" not in str(error)


def test_reset_after_a_post_is_ambiguous_and_after_a_get_retryable():
    exc = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    assert not never_sent(exc)
    assert isinstance(transport_error(exc, "u", method="POST", sent=True), SapB1AmbiguousWriteError)
    assert isinstance(transport_error(exc, "u", method="GET", sent=True), SapB1UnreachableError)


def test_certificate_rejection_is_a_tls_error_with_the_fix():
    cert_error = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    exc = _wrapped(urllib3.exceptions.SSLError(cert_error), requests.exceptions.SSLError)
    assert is_certificate_rejection(exc)
    error = transport_error(exc, "https://h/b1s/v2/", method="GET", sent=False)
    assert isinstance(error, SapB1TLSError)
    assert "CA bundle" in str(error)
    assert "fingerprint" in str(error)
    pin = _wrapped(
        urllib3.exceptions.SSLError("Fingerprints did not match. Expected ..."), requests.exceptions.SSLError
    )
    assert is_certificate_rejection(pin)


def test_ssl_eof_mid_reply_is_a_drop_not_a_tls_error():
    exc = _wrapped(urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF")), requests.exceptions.SSLError)
    assert isinstance(transport_error(exc, "u", method="GET", sent=True), SapB1UnreachableError)


def test_fingerprints_must_be_sha256():
    digest = "AB:" * 31 + "CD"
    assert normalise_fingerprint(digest) == ("ab" * 31 + "cd")
    with pytest.raises(ValueError, match="SHA-256"):
        normalise_fingerprint("ab:cd")


def test_timeout_is_socket_level():
    # A read timeout happens after the request left: GETs retry, POSTs are ambiguous.
    exc = requests.exceptions.ReadTimeout(TimeoutError("read timed out"))
    assert not never_sent(exc)
    assert isinstance(transport_error(exc, "u", method="POST", sent=True), SapB1AmbiguousWriteError)


# -- what a retry can fix ------------------------------------------------------------------------


def test_refused_credentials_unknown_company_locked_user_and_permission_are_permanent():
    wrong = login_error_from_response(
        _response(401, {"error": {"code": 100000027, "message": "x"}}), "S", "u"
    )
    company = login_error_from_response(
        _response(401, {"error": {"code": "-1102", "message": "x"}}), "S", "u"
    )
    locked = login_error_from_response(_response(401, {"error": {"code": -4010, "message": "x"}}), "S", "u")
    denied = error_from_response(_response(403, {"error": {"code": 804, "message": "x"}}), "Orders")
    for error in (wrong, company, locked, denied):
        assert isinstance(error, PermanentError)
        assert not isinstance(error, RetryableError)
    # the classes and their bases stay what they were
    assert isinstance(company, SapB1LoginError)
    assert isinstance(locked, SapB1LoginError)


def test_untrusted_or_differently_pinned_certificates_are_permanent_but_a_drop_mid_tls_is_not():
    cert_error = ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
    untrusted = _wrapped(urllib3.exceptions.SSLError(cert_error), requests.exceptions.SSLError)
    pin = _wrapped(
        urllib3.exceptions.SSLError("Fingerprints did not match. Expected ..."), requests.exceptions.SSLError
    )
    for exc in (untrusted, pin):
        error = transport_error(exc, "https://h/b1s/v2/", method="GET", sent=False)
        assert isinstance(error, SapB1TLSError)
        assert isinstance(error, PermanentError)
    drop = _wrapped(urllib3.exceptions.SSLError(ssl.SSLEOFError(8, "EOF")), requests.exceptions.SSLError)
    error = transport_error(drop, "u", method="GET", sent=True)
    assert isinstance(error, RetryableError)
    assert not isinstance(error, PermanentError)


def test_transient_failures_never_become_permanent():
    busy = login_error_from_response(_response(503, None), "S", "u")
    assert isinstance(busy, SapB1ServerError)
    assert not isinstance(busy, PermanentError)
    assert issubclass(SapB1LoginBusyError, RetryableError)
    assert not issubclass(SapB1LoginBusyError, PermanentError)
    for cls in (SapB1ServerError, SapB1UnreachableError, SapB1SessionExpiredError, SapB1AmbiguousWriteError):
        assert not issubclass(cls, PermanentError)


def test_retry_after_in_seconds_or_as_a_date_reaches_the_error():
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    error = error_from_response(_response(503, None, {"Retry-After": soon}), "Orders")
    assert 25 <= error.retry_after <= 30
    error = login_error_from_response(_response(429, None, {"Retry-After": "2"}), "S", "u")
    assert error.retry_after == 2.0


# -- errors name the verb that failed (issue 8, defect 10) ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, -10, SapB1BusinessError),
        (404, "-2028", SapB1NotFoundError),
        (412, "-2039", SapB1ConflictError),
        (403, 804, SapB1PermissionError),
        (414, None, SapB1RequestTooLongError),
        (503, None, SapB1ServerError),
        (500, None, SapB1Error),
        (401, 301, SapB1SessionExpiredError),
    ],
)
def test_a_failed_repeatable_patch_is_reported_as_a_patch_not_a_get(status, code, cls):
    reply = _response(status, {"error": {"code": code, "message": "msg"}} if code else None)
    error = error_from_response(reply, "BusinessPartners('C1')", method="PATCH", repeatable=True)
    assert type(error) is cls
    assert "PATCH BusinessPartners('C1')" in str(error)
    assert "GET" not in str(error)


def test_a_5xx_after_a_patch_that_may_not_be_repeated_is_ambiguous_and_says_patch():
    error = error_from_response(_response(503, None), "Orders(5)", method="PATCH", repeatable=False)
    assert isinstance(error, SapB1AmbiguousWriteError)
    assert "PATCH Orders(5)" in str(error)


def test_transport_errors_name_the_verb_and_what_was_sent():
    reset = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    )
    retried = transport_error(reset, "u", method="PATCH", sent=True, repeatable=True, what="Orders(5)")
    assert isinstance(retried, SapB1UnreachableError)
    assert "PATCH Orders(5)" in str(retried)
    assert "GET" not in str(retried)
    ambiguous = transport_error(reset, "u", method="PATCH", sent=True, repeatable=False, what="Orders(5)")
    assert isinstance(ambiguous, SapB1AmbiguousWriteError)
    assert "PATCH Orders(5)" in str(ambiguous)
    refused = _wrapped(urllib3.exceptions.NewConnectionError(None, "Connection refused"))
    assert "DELETE Orders(5)" in str(
        transport_error(refused, "u", method="DELETE", sent=False, what="Orders(5)")
    )


# -- a session refused after a fresh login is retried, boundedly (issue 8, defect 11) -----------------


def test_a_session_refused_after_a_fresh_login_is_retryable_but_another_401_is_not():
    assert isinstance(error_from_response(_response(401, V2_EXPIRED), "Orders"), RetryableError)
    other = error_from_response(_response(401, {"error": {"code": "42", "message": "no"}}), "Orders")
    assert isinstance(other, SapB1UnauthorizedError)
    assert not isinstance(other, RetryableError)


# -- refused logins say why they are not retried (issue 8, defect 12) ----------------------------------


def test_refused_credentials_and_a_locked_user_say_a_retry_counts_towards_the_lock_out():
    wrong = login_error_from_response(
        _response(401, {"error": {"code": 100000027, "message": "x"}}), "S", "u"
    )
    locked = login_error_from_response(
        _response(401, {"error": {"code": 10000962, "message": "x"}}), "S", "u"
    )
    for error in (wrong, locked):
        assert isinstance(error, PermanentError)
        assert "Not retried" in str(error)
        assert "count towards SAP's lock-out" in str(error)
