from __future__ import annotations

import time
import uuid

import pytest
import requests


def _faults(base, **settings):
    r = requests.post(f"{base}/_sandbox/faults", json=settings, timeout=10)
    assert r.status_code == 200, r.text


def test_503_and_control_plane_untouched(sap_http, v2):
    base = sap_http.base_url
    _faults(base, error_rate=1.0)
    r = v2.get(f"{base}/b1s/v2/Items", timeout=10)
    assert r.status_code == 503
    assert "Service Unavailable" in r.text
    assert requests.get(f"{base}/_sandbox/stats", timeout=10).status_code == 200


def test_429_with_retry_after(sap_http, v2):
    _faults(sap_http.base_url, rate_limit_rate=1.0, retry_after=3)
    r = v2.get(f"{sap_http.base_url}/b1s/v2/Items", timeout=10)
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"


@pytest.mark.parametrize("tls", [False, True])
def test_connection_reset(sap_http, sap_https, tls):
    served = sap_https if tls else sap_http
    _faults(sap_http.base_url, reset_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{served.base_url}/b1s/v2/Items", verify=served.ca_path or True, timeout=10)
    _faults(sap_http.base_url)
    assert (
        requests.get(f"{served.base_url}/b1s/v2/ping/", verify=served.ca_path or True, timeout=10).status_code
        == 200
    )


def test_slow_replies(sap_http, v2):
    _faults(sap_http.base_url, slow_rate=1.0, slow_seconds=0.5)
    t = time.monotonic()
    assert v2.get(f"{sap_http.base_url}/b1s/v2/Dimensions", timeout=10).status_code == 200
    assert time.monotonic() - t >= 0.5


def test_reset_after_write_keeps_the_write(sap_http, v2):
    base = sap_http.base_url
    ext = uuid.uuid4().hex
    _faults(base, script=[{"kind": "reset_after_write", "match": "POST Invoices"}])
    with pytest.raises(requests.exceptions.ConnectionError):
        v2.post(
            f"{base}/b1s/v2/Invoices",
            json={"CardCode": "C00005", "NumAtCard": ext, "DocumentLines": [{"ItemCode": "A00001"}]},
            timeout=10,
        )
    found = v2.get(
        f"{base}/b1s/v2/Invoices",
        params={"$filter": f"NumAtCard eq '{ext}'", "$select": "DocEntry"},
        timeout=10,
    )
    assert len(found.json()["value"]) == 1


def test_reset_before_write_does_not_write(sap_http, v2):
    base = sap_http.base_url
    ext = uuid.uuid4().hex
    _faults(base, script=[{"kind": "reset", "match": "POST Invoices"}])
    with pytest.raises(requests.exceptions.ConnectionError):
        v2.post(
            f"{base}/b1s/v2/Invoices",
            json={"CardCode": "C00005", "NumAtCard": ext, "DocumentLines": [{"ItemCode": "A00001"}]},
            timeout=10,
        )
    assert (
        v2.get(f"{base}/b1s/v2/Invoices/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text
        == "0"
    )


def test_rates_are_deterministic(sap_http, v2):
    base = sap_http.base_url

    def run():
        _faults(base, error_rate=0.5, seed=11)
        return [v2.get(f"{base}/b1s/v2/Dimensions", timeout=10).status_code for _ in range(12)]

    first = run()
    assert first == run()
    assert 503 in first
    assert 200 in first


def test_login_delay_and_forced_expiry(sap_http, v2):
    base = sap_http.base_url
    _faults(base, login_delay=0.4, script=[{"kind": "expire_session", "match": "GET Items"}])
    r = v2.get(f"{base}/b1s/v2/Items", timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "301"
    t = time.monotonic()
    r = v2.post(
        f"{base}/b1s/v2/Login",
        json={"CompanyDB": "SBODEMOUS", "UserName": "manager", "Password": "manager-secret-1"},
        timeout=10,
    )
    assert r.status_code == 200
    assert time.monotonic() - t >= 0.4


def test_stats(sap_http, v2):
    base = sap_http.base_url
    before = requests.get(f"{base}/_sandbox/stats", timeout=10).json()
    v2.get(f"{base}/b1s/v2/Invoices(3)", timeout=10)
    v2.get(f"{base}/b1s/v2/Invoices", timeout=10)
    after = requests.get(f"{base}/_sandbox/stats", timeout=10).json()
    assert after["requests"]["GET Invoices"] == before["requests"].get("GET Invoices", 0) + 2
    assert after["requests_total"] == before["requests_total"] + 2
    assert after["logins"] >= 1
    assert after["live_sessions"] >= 1
    r = requests.post(f"{base}/_sandbox/faults", json={"nonsense": 1}, timeout=10)
    assert r.status_code == 400
