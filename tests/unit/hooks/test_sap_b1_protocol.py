"""Pure protocol logic of the SAP hook: literals, URLs, error bodies, $batch framing, transport classification."""

from __future__ import annotations

import datetime as dt
import json
import ssl

import pytest
import requests
import urllib3.exceptions

from airflow_provider_b1.exceptions import RetryableError
from airflow_provider_b1.hooks.sap_b1 import (
    BatchRequest,
    SapB1Hook,
    entity_path,
    odata_any_of,
    odata_eq,
    odata_literal,
)
from airflow_provider_b1.hooks.sap_b1_batch import (
    NOT_EXECUTED,
    build_batch,
    parse_batch_reply,
    plan_units,
    split_multipart,
)
from airflow_provider_b1.hooks.sap_b1_errors import (
    SapB1AmbiguousWriteError,
    SapB1BusinessError,
    SapB1CompanyError,
    SapB1ConflictError,
    SapB1LoginError,
    SapB1NotFoundError,
    SapB1PermissionError,
    SapB1ServerError,
    SapB1TLSError,
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


# -- literals and keys ---------------------------------------------------------------------------


def test_string_literals_double_single_quotes():
    assert odata_literal("O'Hara") == "'O''Hara'"
    assert odata_literal("x' or 1 eq 1 or 'a") == "'x'' or 1 eq 1 or ''a'"


def test_non_string_literals():
    assert odata_literal(5) == "5"
    assert odata_literal(True) == "true"
    assert odata_literal(None) == "null"
    assert odata_literal(dt.date(2024, 5, 1)) == "'2024-05-01'"
    with pytest.raises(TypeError):
        odata_literal(object())


def test_entity_path_renders_integer_keys_bare_and_strings_quoted():
    assert entity_path("Orders", 22) == "Orders(22)"
    assert entity_path("Orders", "22") == "Orders(22)"
    assert entity_path("BusinessPartners", "C'1") == "BusinessPartners('C''1')"
    assert entity_path("Dimensions", 3) == "Dimensions(3)"
    assert entity_path("Unknown", "a") == "Unknown('a')"
    with pytest.raises(ValueError, match="integers"):
        entity_path("Invoices", "abc")


def test_filters_escape_every_value():
    assert odata_eq("NumAtCard", "a'b") == "NumAtCard eq 'a''b'"
    assert odata_any_of("NumAtCard", ["a", "b'"]) == "NumAtCard eq 'a' or NumAtCard eq 'b'''"


@pytest.mark.parametrize(
    ("host", "port", "version", "expected"),
    [
        ("https://h:50000/b1s/v2/", None, None, ("https://h:50000/b1s/v2/", "v2")),
        ("https://h:50000/b1s/v1", None, None, ("https://h:50000/b1s/v1/", "v1")),
        ("https://h:50000", None, "v1", ("https://h:50000/b1s/v1/", "v1")),
        ("h", 50000, None, ("https://h:50000/b1s/v2/", "v2")),
        ("https://h:50000/b1s", None, None, ("https://h:50000/b1s/v2/", "v2")),
    ],
)
def test_service_root_accepts_what_users_type(host, port, version, expected):
    assert SapB1Hook._service_root(host, port, version) == expected


def test_service_root_refuses_conflicting_versions():
    with pytest.raises(ValueError, match="make them agree"):
        SapB1Hook._service_root("https://h/b1s/v1/", None, "v2")


# -- error bodies --------------------------------------------------------------------------------

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


# -- $batch ----------------------------------------------------------------------------------------


def test_atomic_batch_groups_consecutive_writes_into_one_changeset():
    reqs = [
        BatchRequest("GET", "Items('A')"),
        BatchRequest("POST", "Orders", {"CardCode": "C1"}),
        BatchRequest("PATCH", "Orders(2)", {"Comments": "x"}),
        BatchRequest("GET", "Orders(2)"),
    ]
    assert plan_units(reqs, atomic=True) == [(False, [0]), (True, [1, 2]), (False, [3])]
    assert plan_units(reqs, atomic=False) == [(False, [0]), (True, [1]), (True, [2]), (False, [3])]


def test_batch_body_has_http_parts_content_ids_and_crlf():
    reqs = [BatchRequest("GET", "Items('A')"), BatchRequest("POST", "Orders", {"CardCode": "C1"})]
    body, content_type, _ = build_batch(reqs, service_path="/b1s/v2/", boundary="batch_T")
    text = body.decode()
    assert content_type == "multipart/mixed; boundary=batch_T"
    assert text.startswith(
        "--batch_T\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    )
    assert "GET /b1s/v2/Items('A') HTTP/1.1\r\n" in text
    assert "Content-Type: multipart/mixed; boundary=changeset_batch_T_1\r\n" in text
    assert (
        "Content-ID: 2\r\n\r\nPOST /b1s/v2/Orders HTTP/1.1\r\nContent-Type: application/json\r\n\r\n" in text
    )
    assert '{"CardCode":"C1"}' in text
    assert text.endswith("--changeset_batch_T_1--\r\n--batch_T--\r\n")
    assert len(split_multipart(body, "batch_T")) == 2


REPLY = (
    b"--batchresponse_1\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json;odata.metadata=minimal\r\n\r\n"
    b'{"ItemCode": "A"}\r\n'
    b"--batchresponse_1\r\n"
    b"Content-Type: multipart/mixed;boundary=changesetresponse_2\r\n\r\n"
    b"--changesetresponse_2\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"Content-ID: 2\r\n\r\n"
    b"HTTP/1.1 201 Created\r\n"
    b"Content-Type: application/json\r\n"
    b'ETag: W/"abc"\r\n\r\n'
    b'{"DocEntry": 7, "NumAtCard": "a"}\r\n'
    b"--changesetresponse_2--\r\n"
    b"--batchresponse_1\r\n"
    b"Content-Type: application/http\r\n"
    b"Content-Transfer-Encoding: binary\r\n\r\n"
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: application/json\r\n\r\n"
    b'{"error": {"code": "-10", "message": "Business partner code \'C9\' is invalid"}}\r\n'
    b"--batchresponse_1--\r\n"
)


def test_batch_reply_maps_results_and_marks_unexecuted_after_first_failure():
    reqs = [
        BatchRequest("GET", "Items('A')"),
        BatchRequest("POST", "Orders", {"NumAtCard": "a"}),
        BatchRequest("POST", "Orders", {"NumAtCard": "b"}),
        BatchRequest("POST", "Orders", {"NumAtCard": "c"}),
    ]
    _, _, units = build_batch(reqs, service_path="/b1s/v2/", atomic=False)
    results = parse_batch_reply(REPLY, "multipart/mixed;boundary=batchresponse_1", reqs, units)
    assert [r.status for r in results] == [200, 201, 400, None]
    assert results[0].body == {"ItemCode": "A"}
    assert results[1].record == {"DocEntry": 7, "NumAtCard": "a"}
    assert results[1].headers["etag"] == 'W/"abc"'
    assert results[2].rolled_back
    assert not results[2].ok
    assert results[2].code == -10
    assert "C9" in results[2].message
    assert not results[3].executed
    assert results[3].message == NOT_EXECUTED


def test_failed_changeset_answers_once_for_all_its_requests():
    reqs = [BatchRequest("POST", "Orders", {"a": 1}), BatchRequest("POST", "Orders", {"a": 2})]
    _, _, units = build_batch(reqs, service_path="/b1s/v1/", atomic=True)
    reply = (
        b"--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        b'HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{"error": {"code": -10, '
        b'"message": {"lang": "en-us", "value": "bad"}}}\r\n--b--\r\n'
    )
    results = parse_batch_reply(reply, 'multipart/mixed; boundary="b"', reqs, units)
    assert all(r.rolled_back and r.code == -10 and r.message == "bad" for r in results)
