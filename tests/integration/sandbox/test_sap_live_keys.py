"""Issue 8: keys with any characters round-trip through create, Location, GET, PATCH and DELETE.

Over HTTPS to the running sandbox, as a third-party client would call it.
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import pytest


def _path(entity: str, key: str | int) -> str:
    """``Entity('key')`` as a client puts it in a URL: quotes doubled, then percent-encoded."""
    literal = str(key) if isinstance(key, int) else "'" + key.replace("'", "''") + "'"
    return quote(f"{entity}({literal})", safe="'()")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_keys_with_any_characters_round_trip(sap_https_sessions, sap_control, version):
    base, v1, v2 = sap_https_sessions
    session = v1 if version == "v1" else v2
    root = f"{base}/b1s/{version}/"
    key = f"Zé\u00d1\n\t\x00\x7f'/?#%()+&=;: ☃{uuid.uuid4().hex[:4]}"
    r = session.post(root + "BusinessPartners", json={"CardCode": key, "CardName": "Keys"}, timeout=10)
    assert r.status_code == 201, r.text
    location = r.headers["Location"]
    assert location.isascii()
    assert location.isprintable()
    assert " " not in location
    assert location.startswith(root + "BusinessPartners(")
    got = session.get(location, timeout=10)
    assert got.status_code == 200, got.text
    assert got.json()["CardCode"] == key
    assert location == root + _path("BusinessPartners", key)
    path = root + _path("BusinessPartners", key)
    assert session.patch(path, json={"CardName": "Changed"}, timeout=10).status_code == 204
    assert session.get(path + "?$select=CardName", timeout=10).json()["CardName"] == "Changed"
    r = session.get(
        root + "BusinessPartners",
        params={"$filter": f"CardName eq 'Changed' and CardCode eq '{key.replace(chr(39), chr(39) * 2)}'"},
        timeout=10,
    )
    assert [p["CardCode"] for p in r.json()["value"]] == [key]
    assert session.delete(path, timeout=10).status_code == 204
    r = session.get(path, timeout=10)
    assert r.status_code == 404
    assert str(r.json()["error"]["code"]) == "-2028"


def test_a_percent_encoded_newline_in_a_key_is_a_value(sap_https_sessions, sap_control):
    base, _, v2 = sap_https_sessions
    root = f"{base}/b1s/v2/"
    r = v2.get(root + "BusinessPartners('no%0Apartner')", timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "-2028"
    assert r.json()["error"]["message"] == "Entity with value('no\npartner') does not exist"
    key = f"two\nlines {uuid.uuid4().hex[:4]}"
    assert v2.post(root + "BusinessPartners", json={"CardCode": key}, timeout=10).status_code == 201
    r = v2.get(root + _path("BusinessPartners", key), timeout=10)
    assert r.status_code == 200
    assert r.json()["CardCode"] == key
    # And inside a $batch, where the request line carries the same percent-encoded path.
    body = (
        "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"GET /b1s/v2/{_path('BusinessPartners', key)}?$select=CardCode HTTP/1.1\r\n\r\n\r\n--b--\r\n"
    )
    r = v2.post(
        root + "$batch",
        data=body.encode(),
        headers={"Content-Type": "multipart/mixed; boundary=b"},
        timeout=10,
    )
    assert "HTTP/1.1 200 OK" in r.text
    assert json.dumps(key)[1:-1] in r.text
