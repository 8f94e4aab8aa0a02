"""``$batch`` framing: multipart requests built and replies read against hand-written samples."""

from __future__ import annotations

import pytest

from airflow_provider_b1.hooks.sap_b1 import BatchRequest, entity_path
from airflow_provider_b1.hooks.sap_b1.batch import (
    NOT_EXECUTED,
    build_batch,
    parse_batch_reply,
    plan_units,
    split_multipart,
)


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


def test_batch_sub_request_paths_are_percent_encoded_so_a_key_cannot_break_the_request_line():
    reqs = [
        BatchRequest("PATCH", "BusinessPartners('a b\r\nDELETE /b1s/v2/Invoices(5)')", {"Notes": "x"}),
        BatchRequest("GET", entity_path("BusinessPartners", "/../Invoices(5)/x")),
        BatchRequest("GET", "Orders?$select=DocEntry&$filter=NumAtCard eq 'a b'"),
    ]
    body, _, _ = build_batch(reqs, service_path="/b1s/v2/", boundary="batch_T")
    lines = body.decode().split("\r\n")
    assert "PATCH /b1s/v2/BusinessPartners('a%20b%0D%0ADELETE%20/b1s/v2/Invoices(5)') HTTP/1.1" in lines
    assert "GET /b1s/v2/BusinessPartners('%2F..%2FInvoices%285%29%2Fx') HTTP/1.1" in lines
    assert "GET /b1s/v2/Orders?$select=DocEntry&$filter=NumAtCard%20eq%20'a%20b' HTTP/1.1" in lines
    assert not any(line.startswith("DELETE") for line in lines)


def test_a_line_break_in_a_batch_header_is_refused():
    with pytest.raises(ValueError, match="line break"):
        build_batch(
            [BatchRequest("PATCH", "Orders(1)", {}, headers={"If-Match": 'W/"a"\r\nX: y'})], service_path="/"
        )
