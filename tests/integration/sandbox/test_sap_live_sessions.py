from __future__ import annotations

import hashlib
import ssl
import time

import requests

USER, PASSWORD, COMPANY = "manager", "manager-secret-1", "SBODEMOUS"


def test_login_sets_cookies_and_body(sap_http):
    r = requests.post(
        f"{sap_http.base_url}/b1s/v2/Login",
        json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD, "Language": 3},
        timeout=10,
    )
    assert r.status_code == 200
    body = r.json()
    assert body["@odata.context"].endswith("/b1s/v2/$metadata#B1Sessions/$entity")
    assert body["SessionTimeout"] == 30
    assert body["Version"]
    cookies = r.headers.get("set-cookie")
    assert f"B1SESSION={body['SessionId']}; HttpOnly" in cookies
    assert "ROUTEID=.node1; path=/b1s" in cookies
    r1 = requests.post(
        f"{sap_http.base_url}/b1s/v1/Login",
        json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD},
        timeout=10,
    )
    assert r1.json()["odata.metadata"].endswith("$metadata#B1Sessions/@Element")


def test_ping_needs_no_session(sap_http):
    assert requests.get(f"{sap_http.base_url}/b1s/v2/ping/", timeout=10).status_code == 200


def test_no_session_is_401_301(sap_http):
    r = requests.get(f"{sap_http.base_url}/b1s/v2/Invoices", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Basic realm=/b1s/v2/Invoices"
    assert r.headers["Content-Type"] == "application/json;charset=utf-8"
    assert r.json() == {
        "error": {
            "code": "301",
            "details": [{"code": "", "message": ""}],
            "message": "Invalid session or session already timeout.",
        }
    }
    r = requests.get(f"{sap_http.base_url}/b1s/v1/Invoices", timeout=10)
    assert r.json()["error"] == {
        "code": 301,
        "message": {"lang": "en-us", "value": "Invalid session or session already timeout."},
    }


def test_wrong_credentials_then_lock(sap_http, sap_login):
    base = sap_http.base_url
    for company, password in (("NOPE", PASSWORD), (COMPANY, "bad")):
        r = requests.post(
            f"{base}/b1s/v1/Login",
            json={"CompanyDB": company, "UserName": USER, "Password": password},
            timeout=10,
        )
        assert r.status_code == 401
        assert r.json()["error"]["code"] == 100000027
        assert r.json()["error"]["message"]["value"] == "Login failed"
    for _ in range(3):
        requests.post(
            f"{base}/b1s/v2/Login",
            json={"CompanyDB": COMPANY, "UserName": USER, "Password": "bad"},
            timeout=10,
        )
    r = requests.post(
        f"{base}/b1s/v2/Login",
        json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD},
        timeout=10,
    )
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "10000962"
    assert "locked" in r.json()["error"]["message"]
    assert USER in requests.get(f"{base}/_sandbox/stats", timeout=10).json()["locked_users"]
    requests.post(f"{base}/_sandbox/unlock", timeout=10)
    sap_login(base)


def test_idle_timeout_is_sliding(sap_http, v2):
    base = sap_http.base_url
    requests.post(f"{base}/_sandbox/config", json={"session_timeout_seconds": 1.0}, timeout=10)
    for _ in range(4):
        time.sleep(0.4)
        assert v2.get(f"{base}/b1s/v2/Items?$top=1", timeout=10).status_code == 200
    time.sleep(1.2)
    r = v2.get(f"{base}/b1s/v2/Items?$top=1", timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "301"


def test_expire_sessions_and_the_5002_variant(sap_http, v2):
    base = sap_http.base_url
    requests.post(f"{base}/_sandbox/config", json={"expired_session_code": -5002}, timeout=10)
    assert requests.post(f"{base}/_sandbox/expire-sessions", timeout=10).json()["expired"] >= 1
    r = v2.patch(f"{base}/b1s/v2/Items('A00001')", json={"U_Notes": "x"}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "-5002"


def test_logout(sap_http, v2):
    base = sap_http.base_url
    assert v2.post(f"{base}/b1s/v2/Logout", timeout=10).status_code == 204
    assert v2.get(f"{base}/b1s/v2/Items", timeout=10).status_code == 401


def test_https_with_ca_bundle_and_fingerprint(sap_https, sap_login):
    assert sap_https.base_url.startswith("https://127.0.0.1:")
    s = sap_login(sap_https.base_url, verify=sap_https.ca_path)
    assert s.get(f"{sap_https.base_url}/b1s/v2/Dimensions", verify=sap_https.ca_path, timeout=10).json()[
        "value"
    ]
    pem = ssl.get_server_certificate(("127.0.0.1", sap_https.port))
    assert hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest() == sap_https.cert_sha256
    r = requests.get(
        f"{sap_https.base_url.replace('127.0.0.1', 'localhost')}/b1s/v2/ping/",
        verify=sap_https.ca_path,
        timeout=10,
    )
    assert r.status_code == 200
