from __future__ import annotations

import pytest

from airflow_provider_b1.sandbox.sap.batch import (
    BatchError,
    BatchReply,
    build_response,
    parse_batch,
    split_multipart,
)

BODY = (
    "--batch_1\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "GET /b1s/v2/Invoices(1)?$select=DocEntry HTTP/1.1\r\n"
    "\r\n"
    "\r\n"
    "--batch_1\r\n"
    "Content-Type: multipart/mixed; boundary=changeset_a\r\n"
    "\r\n"
    "--changeset_a\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 1\r\n"
    "\r\n"
    "POST /b1s/v2/BusinessPartners HTTP/1.1\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    '{"CardCode": "X1", "CardName": "Ñandú O\'Brien"}\r\n'
    "--changeset_a\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 2\r\n"
    "\r\n"
    "PATCH BusinessPartners('X1') HTTP/1.1\r\n"
    "Content-Type: application/json\r\n"
    "\r\n"
    '{"Phone1": "1"}\r\n'
    "--changeset_a--\r\n"
    "--batch_1--\r\n"
).encode()


def test_parse_batch_with_changeset():
    parts = parse_batch(BODY, "multipart/mixed; boundary=batch_1")
    assert len(parts) == 2
    first = parts[0].request
    assert first.method == "GET"
    assert first.target == "/b1s/v2/Invoices(1)?$select=DocEntry"
    assert first.body == b""
    assert parts[1].is_changeset
    post, patch = parts[1].changeset
    assert post.method == "POST"
    assert post.content_id == "1"
    assert post.body.decode() == '{"CardCode": "X1", "CardName": "Ñandú O\'Brien"}'
    assert post.headers["content-type"] == "application/json"
    assert patch.target == "BusinessPartners('X1')"
    assert patch.content_id == "2"


def test_bad_batches():
    with pytest.raises(BatchError):
        parse_batch(BODY, "application/json")
    with pytest.raises(BatchError):
        parse_batch(BODY.replace(b"--batch_1--", b""), "multipart/mixed; boundary=batch_1")
    with pytest.raises(BatchError):
        parse_batch(BODY.replace(b"application/http", b"text/plain", 1), "multipart/mixed; boundary=batch_1")


def test_response_round_trip():
    body, ctype = build_response(
        [
            BatchReply(200, "OK", [("Content-Type", "application/json")], b'{"a": 1}'),
            [BatchReply(201, "Created", [], b"{}", "1"), BatchReply(204, "No Content", [], b"", "2")],
        ]
    )
    boundary = ctype.split("boundary=")[1]
    parts = split_multipart(body, boundary)
    assert len(parts) == 2
    assert b"HTTP/1.1 200 OK" in parts[0]
    assert b"Content-ID: 1" in parts[1]
    assert b"HTTP/1.1 204 No Content" in parts[1]
