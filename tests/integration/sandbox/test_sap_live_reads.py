from __future__ import annotations

from urllib.parse import urljoin

import requests


def _follow(session, root, first, link_key):
    url, pages, values = urljoin(root, first), 0, []
    while url:
        body = session.get(url, timeout=30).json()
        values += body["value"]
        pages += 1
        link = body.get(link_key)
        url = urljoin(root, link) if link else None
    return values, pages


def test_v2_paging_follows_relative_links(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    r = v2.get(root + "Invoices?$select=DocEntry&$filter=DocTotal gt 1000", timeout=30)
    assert r.headers["OData-Version"] == "4.0"
    assert r.headers["Content-Type"] == "application/json;odata.metadata=minimal;charset=utf-8"
    body = r.json()
    assert len(body["value"]) == 20
    assert body["@odata.nextLink"].startswith("Invoices?")
    assert "$skip=20" in body["@odata.nextLink"]
    assert "$filter=" in body["@odata.nextLink"]
    count = int(v2.get(root + "Invoices/$count?$filter=DocTotal gt 1000", timeout=30).text)
    values, _ = _follow(v2, root, "Invoices?$select=DocEntry&$filter=DocTotal gt 1000", "@odata.nextLink")
    assert len(values) == count == len({v["DocEntry"] for v in values})


def test_page_size_headers(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    r = v2.get(root + "Invoices?$select=DocEntry", headers={"Prefer": "odata.maxpagesize=100"}, timeout=30)
    assert r.headers["Preference-Applied"] == "odata.maxpagesize=100"
    assert len(r.json()["value"]) == 100
    r = v2.get(root + "Invoices?$select=DocEntry", headers={"B1S-PageSize": "7"}, timeout=30)
    assert len(r.json()["value"]) == 7
    r = v2.get(root + "Invoices?$select=DocEntry", headers={"Prefer": "odata.maxpagesize=0"}, timeout=30)
    total = int(v2.get(root + "Invoices/$count", timeout=30).text)
    assert len(r.json()["value"]) == total >= 1200
    assert "@odata.nextLink" not in r.json()


def test_top_and_skip(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    body = v2.get(root + "Invoices?$select=DocEntry&$top=20&$skip=5", timeout=30).json()
    assert [v["DocEntry"] for v in body["value"]] == list(range(6, 26))
    assert "@odata.nextLink" not in body
    values, pages = _follow(v2, root, "Invoices?$select=DocEntry&$top=45&$skip=10", "@odata.nextLink")
    assert [v["DocEntry"] for v in values] == list(range(11, 56))
    assert pages == 3


def test_v1_shapes_and_inlinecount(sap_http, v1):
    root = f"{sap_http.base_url}/b1s/v1/"
    r = v1.get(
        root + "Orders?$select=DocEntry,DocDate&$inlinecount=allpages&$orderby=DocEntry desc", timeout=30
    )
    body = r.json()
    assert body["odata.count"] == "300"
    assert body["odata.nextLink"].startswith("Orders?")
    assert "odata.metadata" in body
    assert body["value"][0]["DocEntry"] == 300
    assert len(body["value"][0]["DocDate"]) == 10
    values, _ = _follow(v1, root, "Orders?$select=DocEntry", "odata.nextLink")
    assert len(values) == 300


def test_absolute_next_links(sap_http, v2):
    base = sap_http.base_url
    requests.post(f"{base}/_sandbox/config", json={"next_link_style": "url"}, timeout=10)
    link = v2.get(f"{base}/b1s/v2/Items?$select=ItemCode", timeout=10).json()["@odata.nextLink"]
    assert link.startswith(f"{base}/b1s/v2/Items?")
    requests.post(f"{base}/_sandbox/config", json={"next_link_style": "path"}, timeout=10)
    link = v2.get(f"{base}/b1s/v2/Items?$select=ItemCode", timeout=10).json()["@odata.nextLink"]
    assert link.startswith("/b1s/v2/Items?")
    assert v2.get(urljoin(base, link), timeout=10).json()["value"][0]["ItemCode"] == "A00021"


def test_select_and_width(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    narrow = v2.get(root + "Invoices?$select=DocEntry,DocDate,DocumentLines&$top=1", timeout=10).json()[
        "value"
    ][0]
    assert set(narrow) == {"@odata.etag", "DocEntry", "DocDate", "DocumentLines"}
    assert narrow["DocDate"].endswith("T00:00:00Z")
    wide = v2.get(root + "Invoices?$top=1", timeout=10).json()["value"][0]
    assert len(wide) > 150
    assert wide["@odata.etag"].startswith('W/"')
    r = v2.get(root + "Invoices?$select=Nope", timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-1000"


def test_filters_quotes_and_non_ascii(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    partners = v2.get(
        root + "BusinessPartners?$select=CardCode,CardName", headers={"B1S-PageSize": "0"}, timeout=30
    ).json()["value"]
    quoted = next(p for p in partners if "'" in p["CardName"])
    escaped = quoted["CardName"].replace("'", "''")
    got = v2.get(
        root + "BusinessPartners",
        params={"$filter": f"CardName eq '{escaped}'", "$select": "CardName"},
        timeout=10,
    )
    names = {p["CardName"] for p in got.json()["value"]}
    assert names == {quoted["CardName"]}
    accented = next(p for p in partners if not p["CardName"].isascii())
    word = next(w for w in accented["CardName"].split() if not w.isascii())
    got = v2.get(
        root + "BusinessPartners",
        params={"$filter": f"contains(CardName, '{word}')", "$select": "CardName"},
        timeout=10,
    )
    assert got.json()["value"]
    assert all(word in p["CardName"] for p in got.json()["value"])
    day = v2.get(root + "Invoices(600)?$select=UpdateDate", timeout=10).json()["UpdateDate"][:10]
    counts = {
        lit: int(
            v2.get(root + "Invoices/$count", params={"$filter": f"UpdateDate ge {lit}"}, timeout=10).text
        )
        for lit in (f"'{day}'", f"'{day.replace('-', '')}'", f"datetime'{day}T18:00:00'")
    }
    assert len(set(counts.values())) == 1
    r = v2.get(root + "Invoices", params={"$filter": "DocTotal gt"}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "-1000"


def test_get_by_key_and_not_found(sap_http, v1, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    r = v2.get(root + "Invoices(22)", timeout=10)
    assert r.json()["DocEntry"] == 22
    assert r.headers["ETag"] == r.json()["@odata.etag"]
    assert r.json()["@odata.context"].endswith("$metadata#Invoices/$entity")
    assert v2.get(root + "BusinessPartners('C00001')", timeout=10).json()["CardCode"] == "C00001"
    r = v2.get(root + "BusinessPartners('O''Nobody')", timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "-2028"
    assert r.json()["error"]["message"] == "Entity with value('O''Nobody') does not exist"
    r = v1.get(f"{sap_http.base_url}/b1s/v1/Invoices(999999)", timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == -2028


def test_orderby_multiple_keys(sap_http, v2):
    root = f"{sap_http.base_url}/b1s/v2/"
    vals = v2.get(
        root + "Invoices?$select=CardCode,DocEntry&$orderby=CardCode desc,DocEntry&$top=50", timeout=10
    ).json()["value"]
    pairs = [(v["CardCode"], v["DocEntry"]) for v in vals]
    assert pairs == sorted(pairs, key=lambda p: (tuple(-ord(c) for c in p[0]), p[1]))
