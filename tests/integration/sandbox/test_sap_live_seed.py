"""Issue 8: hostile records seeded past every write rule, served back faithfully; the truth
endpoint reports non-numeric DocTotals instead of skipping them.

Over HTTPS to the running sandbox, as a third-party client would call it.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import quote

import requests


def _path(entity: str, key: str | int) -> str:
    """``Entity('key')`` as a client puts it in a URL: quotes doubled, then percent-encoded."""
    literal = str(key) if isinstance(key, int) else "'" + key.replace("'", "''") + "'"
    return quote(f"{entity}({literal})", safe="'()")


def test_truth_reports_string_doc_totals(sap_https_sessions, sap_control):
    base, _, v2 = sap_https_sessions
    before = sap_control("GET", "truth/Invoices").json()
    assert before["doc_total_non_numeric"] == []
    originals = {
        d["DocEntry"]: d["DocTotal"]
        for d in v2.get(
            f"{base}/b1s/v2/Invoices?$select=DocEntry,DocTotal&$filter=DocEntry ge 11 and DocEntry le 17",
            timeout=10,
        ).json()["value"]
    }
    hostile = {11: "abc", 12: "12,50", 13: "Infinity", 14: "1e309", 15: "12.50", 16: True}
    records = [{"DocEntry": k, "DocTotal": v} for k, v in hostile.items()] + [
        {"DocEntry": 17, "DocTotal": None}
    ]
    r = sap_control("POST", "seed", {"entity": "Invoices", "records": records})
    assert r.status_code == 200, r.text
    assert r.json()["keys"] == [*hostile, 17]
    truth = sap_control("GET", "truth/Invoices").json()
    assert truth["count"] == before["count"]
    assert truth["keys_sha256"] == before["keys_sha256"]
    assert truth["doc_total_non_numeric"] == [{"key": k, "value": v} for k, v in hostile.items()]
    assert truth["doc_total_counts"] == {
        "number": before["count"] - len(hostile) - 1,
        "null": 1,
        "non_numeric": len(hostile),
    }
    dropped = sum(Decimal(repr(v)) for v in originals.values())
    assert Decimal(truth["doc_total_sum"]) == Decimal(before["doc_total_sum"]) - dropped
    served = v2.get(
        f"{base}/b1s/v2/Invoices?$select=DocEntry,DocTotal&$filter=DocEntry ge 11 and DocEntry le 17",
        timeout=10,
    ).json()["value"]
    assert {d["DocEntry"]: d["DocTotal"] for d in served} == {**hostile, 17: None}
    assert sap_control("GET", "truth/ChartOfAccounts").json()["doc_total_non_numeric"] is None


def test_seeded_hostile_values_are_served_faithfully(sap_https_sessions, sap_control, sap_https):
    base, v1, v2 = sap_https_sessions
    nul_key = "NUL\x00inside"
    long_key = "L" * 600
    text = "\\u0000 is six characters, \x00 is one; \n\t\u2028 é 😀"
    records = [
        {"CardCode": nul_key, "CardName": text, "CardType": "cCustomer", "UpdateDate": "2024-02-30"},
        {"CardCode": long_key, "CardName": "long", "CardType": "not-an-enum", "GroupCode": "abc"},
    ]
    r = sap_control("POST", "seed", {"entity": "BusinessPartners", "records": records})
    assert r.status_code == 200, r.text
    assert r.json()["keys"] == [nul_key, long_key]
    r = sap_control(
        "POST",
        "seed",
        {
            "entity": "Invoices",
            "records": [
                {
                    "DocEntry": 900001,
                    "CardCode": nul_key,
                    "DocDate": "2024-02-30",
                    "DocTotal": "12,50",
                    "UpdateTime": "25:61:00",
                    "Comments": text,
                    "DocumentLines": [{"LineNum": 0, "ItemCode": "A00001", "LineTotal": "abc"}],
                },
            ],
        },
    )
    assert r.status_code == 200, r.text
    for session, version in ((v1, "v1"), (v2, "v2")):
        root = f"{base}/b1s/{version}/"
        got = session.get(root + _path("BusinessPartners", nul_key), timeout=10)
        assert got.status_code == 200, got.text
        assert '"NUL\\u0000inside"' in got.text  # NUL travels as the JSON escape
        body = got.json()
        assert (body["CardCode"], body["CardName"]) == (nul_key, text)
        assert body["UpdateDate"].startswith("2024-02-30")
        got = session.get(root + _path("BusinessPartners", long_key), timeout=10)
        assert got.status_code == 200
        assert (got.json()["CardCode"], got.json()["CardType"], got.json()["GroupCode"]) == (
            long_key,
            "not-an-enum",
            "abc",
        )
        doc = session.get(root + "Invoices(900001)", timeout=10).json()
        assert (doc["DocTotal"], doc["Comments"], doc["UpdateTime"]) == ("12,50", text, "25:61:00")
        assert doc["DocDate"].startswith("2024-02-30")
        assert doc["DocumentLines"][0]["LineTotal"] == "abc"
        keys = [
            p["CardCode"]
            for p in session.get(
                root + "BusinessPartners",
                params={"$select": "CardCode", "$filter": "CardCode eq '" + nul_key + "'"},
                timeout=10,
            ).json()["value"]
        ]
        assert keys == [nul_key]
    # Seeding refuses only what JSON cannot carry back faithfully, or keys of the wrong type.
    for bad in (
        {"entity": "Invoices", "records": [{"DocEntry": "x"}]},
        {"entity": "Invoices", "records": [{"DocEntry": True}]},
        {"entity": "BusinessPartners", "records": [{"CardCode": 7}]},
        {"entity": "Invoices", "records": ["not an object"]},
    ):
        assert sap_control("POST", "seed", bad).status_code == 400, bad
    assert sap_control("POST", "seed", {"entity": "Nope", "records": []}).status_code == 404
    for raw in (
        b'{"entity": "Invoices", "records": [{"DocEntry": 900002, "DocTotal": 1e309}]}',
        b'{"entity": "Invoices", "records": [{"DocEntry": 900002, "DocTotal": NaN}]}',
        b'{"entity": "BusinessPartners", "records": [{"CardCode": "\\ud800"}]}',
    ):
        r = requests.post(
            f"{base}/_sandbox/seed",
            data=raw,
            headers={"Content-Type": "application/json"},
            verify=sap_https.ca_path,
            timeout=10,
        )
        assert r.status_code == 400, raw
    assert v2.get(f"{base}/b1s/v2/Invoices(900002)", timeout=10).status_code == 404
