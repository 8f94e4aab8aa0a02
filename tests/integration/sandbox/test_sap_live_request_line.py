"""The web server in front of the Service Layer refuses request lines longer than Apache's 8,190 bytes."""

from __future__ import annotations

import requests

from airflow_provider_b1.sandbox.sap.app import LIMIT_REQUEST_LINE


def _url_with_request_line(base: str, length: int) -> str:
    """A ``GET Orders?$filter=NumAtCard eq 'xxx...'`` URL whose request line is exactly ``length`` bytes."""

    def prepared(padding: int) -> requests.PreparedRequest:
        value = "NumAtCard eq '" + "x" * padding + "'"
        return requests.Request("GET", f"{base}/b1s/v2/Orders", params={"$filter": value}).prepare()

    empty = len(f"GET {prepared(0).path_url} HTTP/1.1")
    request = prepared(length - empty)
    assert len(f"GET {request.path_url} HTTP/1.1") == length
    return request.url


def test_a_request_line_over_8190_bytes_is_refused_with_414_and_one_at_the_limit_is_served(sap_http, v2):
    base = sap_http.base_url
    served = v2.get(_url_with_request_line(base, LIMIT_REQUEST_LINE), timeout=30)
    assert served.status_code == 200
    assert served.json()["value"] == []
    refused = v2.get(_url_with_request_line(base, LIMIT_REQUEST_LINE + 1), timeout=30)
    assert refused.status_code == 414
    assert "Request-URI Too Long" in refused.text
