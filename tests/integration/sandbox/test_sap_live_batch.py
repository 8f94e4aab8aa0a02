from __future__ import annotations

import uuid

import requests


def _part(method, target, body=None, content_id=None):
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    req = f"{method} {target} HTTP/1.1\r\n"
    if body is not None:
        req += f"Content-Type: application/json\r\n\r\n{body}\r\n"
    else:
        req += "\r\n"
    return head + "\r\n" + req


def _batch(parts, changesets):
    out = ""
    for p in parts:
        out += "--b\r\n" + p
    for cs in changesets:
        out += "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
        for p in cs:
            out += "--cs\r\n" + p
        out += "--cs--\r\n"
    return (out + "--b--\r\n").encode()


HDR = {"Content-Type": "multipart/mixed; boundary=b"}


def test_changeset_commits(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    code = f"B{uuid.uuid4().hex[:8]}"
    body = _batch(
        [_part("GET", "/b1s/v2/Items('A00001')?$select=ItemCode")],
        [
            [
                _part("POST", "/b1s/v2/BusinessPartners", f'{{"CardCode": "{code}"}}', "1"),
                _part("PATCH", f"BusinessPartners('{code}')", '{"CardName": "Zoë"}', "2"),
            ]
        ],
    )
    r = v2.post(root + "$batch", data=body, headers=HDR, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    text = r.text
    assert "HTTP/1.1 200 OK" in text
    assert "HTTP/1.1 201 Created" in text
    assert "HTTP/1.1 204 No Content" in text
    assert "Content-ID: 2" in text
    assert v2.get(root + f"BusinessPartners('{code}')", timeout=10).json()["CardName"] == "Zoë"


def test_failed_changeset_rolls_back_and_stops(sap_http, v1):
    root = f"{sap_http.base_url}/b1s/v1/"
    code = f"B{uuid.uuid4().hex[:8]}"
    before = requests.get(f"{sap_http.base_url}/_sandbox/truth/BusinessPartners", timeout=10).json()
    body = _batch(
        [],
        [
            [
                _part("POST", "BusinessPartners", f'{{"CardCode": "{code}"}}'),
                _part("POST", "BusinessPartners", f'{{"CardCode": "{code}"}}'),
            ]
        ],
    )
    body = body.replace(b"--b--\r\n", b"--b\r\n" + _part("GET", "Items('A00001')").encode() + b"--b--\r\n")
    r = v1.post(root + "$batch", data=body, headers=HDR, timeout=10)
    assert r.status_code == 202
    assert r.text.count("HTTP/1.1") == 1
    assert "already assigned" in r.text
    assert requests.get(f"{sap_http.base_url}/_sandbox/truth/BusinessPartners", timeout=10).json() == before
    assert v1.get(root + f"BusinessPartners('{code}')", timeout=10).status_code == 404


def test_changeset_rules(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    r = v2.post(
        root + "$batch", data=_batch([], [[_part("GET", "Items", None, "1")]]), headers=HDR, timeout=10
    )
    assert "GET requests are not allowed" in r.text
    r = v2.post(
        root + "$batch",
        data=_batch([], [[_part("POST", "BusinessPartners", '{"CardCode": "Q1"}')]]),
        headers=HDR,
        timeout=10,
    )
    assert "Content-ID is required" in r.text
    r = v2.post(root + "$batch", data=b"garbage", headers=HDR, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-1000"
