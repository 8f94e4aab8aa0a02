from __future__ import annotations

import uuid

import requests


def _count(session, root, entity, flt=None):
    return int(
        session.get(f"{root}{entity}/$count", params={"$filter": flt} if flt else None, timeout=10).text
    )


def test_create_partner_and_duplicate(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    code = f"T{uuid.uuid4().hex[:8]}"
    r = v2.post(
        root + "BusinessPartners",
        json={"CardCode": code, "CardName": "Ñandú O'Brien", "CardType": "cSupplier"},
        timeout=10,
    )
    assert r.status_code == 201
    assert r.headers["Location"] == f"{root}BusinessPartners('{code}')"
    assert r.headers["ETag"] == r.json()["@odata.etag"]
    body = r.json()
    assert body["CreateDate"] == body["UpdateDate"]
    assert len(body["UpdateTime"]) == 8
    r = v2.post(root + "BusinessPartners", json={"CardCode": code}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-10"
    assert r.json()["error"]["message"] == f"Business partner code '{code}' already assigned"
    got = v2.get(
        root + "BusinessPartners", params={"$filter": "CardName eq 'Ñandú O''Brien'"}, timeout=10
    ).json()
    assert code in {p["CardCode"] for p in got["value"]}


def test_create_invoice_is_visible_and_consistent(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    before = _count(v2, root, "Invoices")
    truth_before = requests.get(f"{sap_http.base_url}/_sandbox/truth/Invoices", timeout=10).json()
    ext = uuid.uuid4().hex
    payload = {
        "CardCode": "C00002",
        "NumAtCard": ext,
        "U_ExternalId": ext,
        "DocDate": "2024-05-01",
        "DocumentLines": [
            {
                "ItemCode": "A00001",
                "Quantity": 2,
                "UnitPrice": 10.5,
                "TaxCode": "TX8",
                "CostingCode": "SALES",
            },
            {"ItemCode": "A00002", "Quantity": 1, "Price": 3},
        ],
    }
    r = v2.post(root + "Invoices", json=payload, timeout=10)
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["DocDate"] == "2024-05-01T00:00:00Z"
    assert doc["DocEntry"] == truth_before["count"] + 1
    lines = doc["DocumentLines"]
    assert round(sum(x["LineTotal"] for x in lines) + doc["VatSum"], 2) == doc["DocTotal"]
    assert _count(v2, root, "Invoices") == before + 1
    assert _count(v2, root, "Invoices", f"NumAtCard eq '{ext}'") == 1
    assert (
        requests.get(f"{sap_http.base_url}/_sandbox/truth/Invoices", timeout=10).json()["count"] == before + 1
    )
    r = v2.post(
        root + "Invoices",
        json={**payload, "DocumentLines": []},
        headers={"Prefer": "return-no-content"},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-10"


def test_return_no_content(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    r = v2.post(
        root + "Orders",
        json={"CardCode": "C00003", "DocumentLines": [{"ItemCode": "A00003"}]},
        headers={"Prefer": "return-no-content"},
        timeout=10,
    )
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["Location"].startswith(root + "Orders(")


def test_business_errors(sap_http, v1):
    root = f"{sap_http.base_url}/b1s/v1/"
    r = v1.post(
        root + "Invoices", json={"CardCode": "NOPE", "DocumentLines": [{"ItemCode": "A00001"}]}, timeout=10
    )
    assert r.status_code == 400
    assert r.json()["error"] == {"code": -10, "message": {"lang": "en-us", "value": "Invalid BP code 'NOPE'"}}
    r = v1.post(
        root + "PurchaseInvoices",
        json={"CardCode": "C00001", "DocumentLines": [{"ItemCode": "A00001"}]},
        timeout=10,
    )
    assert r.json()["error"]["code"] == -10  # a customer on a purchase document
    r = v1.post(
        root + "Invoices", json={"CardCode": "C00001", "DocumentLines": [{"ItemCode": "ZZZ"}]}, timeout=10
    )
    assert r.json()["error"]["message"]["value"] == "Invalid item code 'ZZZ'"
    r = v1.post(
        root + "Invoices",
        json={"CardCode": "C00001", "Bogus": 1, "DocumentLines": [{"ItemCode": "A00001"}]},
        timeout=10,
    )
    assert r.json()["error"]["code"] == -1000
    r = v1.post(
        root + "JournalEntries",
        json={
            "JournalEntryLines": [
                {"AccountCode": "111001", "Debit": 5},
                {"AccountCode": "111002", "Credit": 4},
            ]
        },
        timeout=10,
    )
    assert r.json()["error"]["message"]["value"] == "Unbalanced transaction"


def test_patch_merge_etag_and_lines(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    before = v2.get(root + "Orders(5)", timeout=10)
    etag = before.headers["ETag"]
    old = before.json()
    r = v2.patch(root + "Orders(5)", json={"Comments": "changed"}, headers={"If-Match": etag}, timeout=10)
    assert r.status_code == 204
    after = v2.get(root + "Orders(5)", timeout=10)
    assert after.headers["ETag"] != etag
    body = after.json()
    assert body["Comments"] == "changed"
    assert body["DataVersion"] == old["DataVersion"] + 1
    assert body["CreateDate"] == old["CreateDate"]
    assert (body["UpdateDate"], body["UpdateTime"]) > (old["UpdateDate"], old["UpdateTime"])
    r = v2.patch(root + "Orders(5)", json={"Comments": "stale"}, headers={"If-Match": etag}, timeout=10)
    assert r.status_code == 412
    assert r.json()["error"]["code"] == "-2039"
    n = len(body["DocumentLines"])
    r = v2.patch(
        root + "Orders(5)",
        json={
            "DocumentLines": [
                {"LineNum": 0, "ItemCode": "A00004", "Quantity": 3, "UnitPrice": 1},
                {"ItemCode": "A00005"},
            ]
        },
        timeout=10,
    )
    assert r.status_code == 204, r.text
    lines = v2.get(root + "Orders(5)", timeout=10).json()["DocumentLines"]
    assert len(lines) == n + 1
    assert lines[0]["ItemCode"] == "A00004"
    assert lines[0]["Quantity"] == 3
    r = v2.patch(
        root + "Orders(5)",
        json={"DocumentLines": [{"ItemCode": "A00006"}]},
        headers={"B1S-ReplaceCollectionsOnPatch": "true"},
        timeout=10,
    )
    doc = v2.get(root + "Orders(5)", timeout=10).json()
    assert [x["ItemCode"] for x in doc["DocumentLines"]] == ["A00006"]
    assert round(doc["DocumentLines"][0]["LineTotal"] + doc["VatSum"], 2) == doc["DocTotal"]


def test_duplicate_child_row_closes_connection(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    addr = v2.get(root + "BusinessPartners('C00004')?$select=BPAddresses", timeout=10).json()["BPAddresses"][
        0
    ]
    r = v2.patch(
        root + "BusinessPartners('C00004')",
        json={
            "BPAddresses": [
                {"AddressName": addr["AddressName"], "AddressType": addr["AddressType"], "City": "X"}
            ]
        },
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-2035"
    assert r.headers["Connection"] == "close"


def test_close_and_cancel(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    open_orders = v2.get(
        root + "Orders?$select=DocEntry&$filter=DocumentStatus eq 'bost_Open'&$top=2", timeout=10
    ).json()["value"]
    first, second = (o["DocEntry"] for o in open_orders)
    assert v2.post(root + f"Orders({first})/Close", timeout=10).status_code == 204
    assert (
        v2.get(root + f"Orders({first})?$select=DocumentStatus", timeout=10).json()["DocumentStatus"]
        == "bost_Close"
    )
    assert v2.post(root + f"Orders({first})/Close", timeout=10).json()["error"]["code"] == "-10"
    assert v2.post(root + f"Orders({second})/Cancel", timeout=10).status_code == 204
    assert v2.get(root + f"Orders({second})?$select=Cancelled", timeout=10).json()["Cancelled"] == "tYES"
    assert v2.delete(root + f"Orders({second})", timeout=10).json()["error"]["code"] == "-5006"
