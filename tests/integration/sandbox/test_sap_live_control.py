from __future__ import annotations

import requests

from airflow_provider_b1.sandbox.server import serve_in_subprocess


def test_mutate_moves_update_stamps(sap_http, v2):
    base = sap_http.base_url
    keys = requests.post(
        f"{base}/_sandbox/mutate", json={"entity": "PurchaseOrders", "count": 3}, timeout=10
    ).json()["keys"]
    assert len(keys) == 3
    today = v2.get(f"{base}/b1s/v2/PurchaseOrders({keys[0]})?$select=UpdateDate", timeout=10).json()[
        "UpdateDate"
    ][:10]
    n = int(
        v2.get(
            f"{base}/b1s/v2/PurchaseOrders/$count", params={"$filter": f"UpdateDate ge '{today}'"}, timeout=10
        ).text
    )
    assert n >= 3


def test_corrupt_and_repair(sap_http, v1):
    base = sap_http.base_url
    root = f"{base}/b1s/v1/"
    for kind, key in (("missing_partner", 40), ("null_amount", 41), ("bad_date", 42)):
        r = requests.post(
            f"{base}/_sandbox/corrupt",
            json={"entity": "DeliveryNotes", "keys": [key], "kind": kind},
            timeout=10,
        )
        assert r.json()["keys"] == [key]
    docs = {
        d["DocEntry"]: d
        for d in v1.get(root + "DeliveryNotes?$filter=DocEntry ge 40 and DocEntry le 42", timeout=10).json()[
            "value"
        ]
    }
    assert docs[40]["CardCode"].startswith("ZZ-")
    assert v1.get(root + f"BusinessPartners('{docs[40]['CardCode']}')", timeout=10).status_code == 404
    assert docs[41]["DocTotal"] is None
    assert docs[42]["DocDate"] == "2024-13-45"
    assert sorted(
        requests.post(f"{base}/_sandbox/repair", json={"entity": "DeliveryNotes"}, timeout=10).json()["keys"]
    ) == [40, 41, 42]
    doc = v1.get(root + "DeliveryNotes(41)", timeout=10).json()
    assert doc["DocTotal"] is not None


def test_truth_and_reset_counters(sap_http):
    truth = requests.get(f"{sap_http.base_url}/_sandbox/truth/PurchaseInvoices", timeout=10).json()
    assert truth["count"] == 120
    assert truth["doc_total_sum"]
    assert len(truth["keys_sha256"]) == 64
    assert (
        requests.get(f"{sap_http.base_url}/_sandbox/truth/ChartOfAccounts", timeout=10).json()[
            "doc_total_sum"
        ]
        is None
    )


def test_subprocess_server():
    served = serve_in_subprocess(invoices=100, seed=5, tls=True, session_timeout_seconds=5)
    try:
        assert served.base_url.startswith("https://127.0.0.1:")
        r = requests.get(f"{served.base_url}/b1s/v2/ping/", verify=served.ca_path, timeout=10)
        assert r.status_code == 200
        http = served.info["sandboxes"]["sap"]["http_url"]
        s = requests.Session()
        s.post(
            f"{http}/b1s/v2/Login",
            json={"CompanyDB": "SBODEMOUS", "UserName": "manager", "Password": "manager-secret-1"},
            timeout=10,
        )
        assert s.get(f"{http}/b1s/v2/Invoices/$count", timeout=10).text == "100"
        assert any(line.startswith("AIRFLOW_CONN_SAP_B1_DEFAULT=") for line in served.info["connections"])
        requests.post(f"{http}/_sandbox/reset", json={"invoices": 50}, timeout=60)
        assert requests.get(f"{http}/_sandbox/truth/Invoices", timeout=10).json()["count"] == 50
    finally:
        served.stop()
