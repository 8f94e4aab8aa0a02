"""Issue 9: the ServiceTitan sandbox's control plane (truth, mutate, seed, reset, faults, stats)
and the ``b1-sandbox`` command, checked against what the API serves over HTTPS."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

ZERO = Decimal(0)


def _everything(servicetitan, module, resource, **params):
    body = servicetitan.ok(module, resource, pageSize=5000, **params)
    assert not body["hasMore"]
    return body["data"]


def _served_truth(servicetitan) -> dict[str, dict[str, Decimal | int]]:
    """Per customer, what the served invoices and payments add up to."""
    per: dict[str, dict] = {}
    owner = {}
    for invoice in _everything(servicetitan, "accounting", "invoices"):
        cid = str(invoice["customer"]["id"])
        owner[invoice["id"]] = cid
        entry = per.setdefault(
            cid, {"invoice_count": 0, "invoice_total": ZERO, "payments_applied": ZERO, "open_balance": ZERO}
        )
        entry["invoice_count"] += 1
        entry["invoice_total"] += Decimal(invoice["total"])
        entry["open_balance"] += Decimal(invoice["balance"])
    for payment in _everything(servicetitan, "accounting", "payments"):
        for applied in payment["appliedTo"]:
            per[owner[applied["appliedTo"]]]["payments_applied"] += Decimal(applied["appliedAmount"])
    return per


def _truth_with_invoices(truth: dict) -> dict[str, dict]:
    return {
        cid: {k: (v if k == "invoice_count" else Decimal(v)) for k, v in entry.items()}
        for cid, entry in truth["customers"].items()
        if entry["invoice_count"]
    }


def test_truth_agrees_with_the_served_invoices_and_payments(servicetitan):
    truth = servicetitan.control("GET", "truth").json()
    assert _truth_with_invoices(truth) == _served_truth(servicetitan)
    totals = truth["totals"]
    assert (totals["customers"], totals["invoices"]) == (120, 600)
    assert Decimal(totals["invoice_total"]) - Decimal(totals["payments_applied"]) == Decimal(
        totals["open_balance"]
    )
    assert Decimal(totals["payments_total"]) - Decimal(totals["payments_applied"]) == Decimal(
        totals["unapplied"]
    )
    assert Decimal(totals["sub_total"]) + Decimal(totals["sales_tax"]) == Decimal(totals["invoice_total"])
    assert sum(Decimal(v) for v in truth["items_by_gl_account"].values()) == Decimal(totals["sub_total"])
    assert set(truth["items_by_gl_account"]) <= {"4000", "4010", "4100", "4200", "4900"}
    assert truth["unparseable"] == {"invoices": [], "payments": []}


def test_mutations_move_modified_on_and_keep_the_books_balanced(servicetitan):
    every = {c["id"]: c for c in _everything(servicetitan, "crm", "customers")}
    invoices = _everything(servicetitan, "accounting", "invoices")
    with_invoices = sorted({i["customer"]["id"] for i in invoices} & set(every))
    source, target = with_invoices[0], with_invoices[1]
    open_invoice = next(
        i for i in invoices if Decimal(i["balance"]) > 5 and i["customer"]["id"] not in (source, target)
    )
    before = {i["id"]: i for i in invoices}
    reply = servicetitan.control(
        "POST",
        "mutate",
        {
            "edit_invoices": 3,
            "merge_customers": [[source, target]],
            "add_payments": [{"invoices": [open_invoice["id"]], "amount": "5.00"}],
            "deactivate_customers": 1,
        },
    )
    assert reply.status_code == 200, reply.text
    touched = reply.json()
    assert len(touched["payments"]) >= 1
    after = {i["id"]: i for i in _everything(servicetitan, "accounting", "invoices")}
    for key in touched["invoices"]:
        assert after[key]["modifiedOn"] > before[key]["modifiedOn"]
    # The merge: the source is inactive and points at the target, which now holds its invoices.
    merged = servicetitan.ok("crm", f"customers/{source}")
    assert (merged["active"], merged["mergedToId"]) == (False, target)
    assert not [i for i in after.values() if i["customer"]["id"] == source]
    # The partial payment: 5.00 off the balance, nothing unapplied.
    paid = after[open_invoice["id"]]
    assert Decimal(paid["balance"]) == Decimal(open_invoice["balance"]) - 5
    payment = servicetitan.ok("accounting", "payments", ids=str(touched["payments"][-1]))["data"][0]
    assert payment["appliedTo"][0]["appliedTo"] == open_invoice["id"]
    assert (payment["total"], payment["unappliedAmount"]) == ("5.00", "0.00")
    # The books still add up, and the truth agrees with what is served.
    for invoice in after.values():
        assert sum(Decimal(i["total"]) for i in invoice["items"]) == Decimal(invoice["subTotal"])
        assert Decimal(invoice["subTotal"]) + Decimal(invoice["salesTax"]) == Decimal(invoice["total"])
    truth = servicetitan.control("GET", "truth").json()
    assert _truth_with_invoices(truth) == _served_truth(servicetitan)
    assert truth["totals"]["merged_customers"] >= 1


def test_a_payment_larger_than_the_balance_leaves_the_rest_unapplied(servicetitan):
    invoice = next(
        i for i in _everything(servicetitan, "accounting", "invoices") if Decimal(i["balance"]) > 0
    )
    amount = Decimal(invoice["balance"]) + Decimal("12.34")
    touched = servicetitan.control(
        "POST", "mutate", {"add_payments": [{"invoices": [invoice["id"]], "amount": str(amount)}]}
    ).json()
    payment = servicetitan.ok("accounting", "payments", ids=str(touched["payments"][0]))["data"][0]
    assert payment["unappliedAmount"] == "12.34"
    assert servicetitan.ok("accounting", "invoices", ids=str(invoice["id"]))["data"][0]["balance"] == "0.00"


def test_mutate_refuses_unknown_changes_and_records(servicetitan):
    assert servicetitan.control("POST", "mutate", {"delete_everything": 1}).status_code == 400
    assert servicetitan.control("POST", "mutate", {"edit_invoices": [1]}).status_code == 404


def test_seed_holds_hostile_records_exactly_and_truth_reports_what_it_cannot_add(servicetitan):
    hostile = [
        {
            "id": 1,
            "total": "12,50",
            "subTotal": "12,50",
            "salesTax": "0.00",
            "balance": None,
            "customer": {"id": 77, "name": 'Zoë "Z" O\'Brien\u200b'},
            "items": [],
            "modifiedOn": "not a date",
        },
        {
            "id": 2,
            "total": 1e300,
            "subTotal": "1",
            "salesTax": "0",
            "balance": "0",
            "customer": None,
            "items": "?",
        },
    ]
    reply = servicetitan.control("POST", "seed", {"entity": "invoices", "records": hostile})
    assert reply.status_code == 200, reply.text
    assert reply.json()["ids"] == [1, 2]
    served = servicetitan.ok("accounting", "invoices", ids="1,2")["data"]
    assert served == hostile
    truth = servicetitan.control("GET", "truth").json()
    assert truth["unparseable"]["invoices"] == [1]
    assert truth["totals"]["invoices"] == 602
    # A modifiedOn that does not parse falls in no modified window.
    assert (
        servicetitan.get("accounting", "invoices", modifiedOnOrAfter="2000-01-01", ids="1").json()["data"]
        == []
    )
    for bad in ({"entity": "invoices", "records": [{"total": "1"}]}, {"entity": "jobs", "records": []}):
        assert servicetitan.control("POST", "seed", bad).status_code == 400
    raw = servicetitan.http.post(
        f"{servicetitan.base}/_sandbox/seed",
        data=b'{"entity": "invoices", "records": [{"id": 3, "total": NaN}]}',
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert raw.status_code == 400


def test_reset_with_the_same_seed_gives_the_same_tenant_and_another_seed_another(servicetitan):
    before = servicetitan.control("GET", "truth").json()
    first_page = servicetitan.ok("accounting", "invoices", pageSize=20)
    again = servicetitan.control("POST", "reset", {"seed": 5, "customers": 120, "invoices": 600})
    assert again.json()["invoices"] == 600
    assert servicetitan.control("GET", "truth").json() == before
    assert servicetitan.ok("accounting", "invoices", pageSize=20) == first_page
    other = servicetitan.control("POST", "reset", {"seed": 6, "customers": 40, "invoices": 150}).json()
    assert (other["customers"], other["invoices"]) == (40, 150)
    assert (
        servicetitan.control("GET", "truth").json()["totals"]["invoice_total"]
        != before["totals"]["invoice_total"]
    )
    servicetitan.control("POST", "reset", {"seed": 5, "customers": 120, "invoices": 600})


def test_error_and_reset_faults_hit_the_api_but_never_the_control_plane(servicetitan):
    servicetitan.token()
    servicetitan.control("POST", "faults", {"error_rate": 1.0})
    reply = servicetitan.get("crm", "customers")
    assert reply.status_code == 503
    assert servicetitan.request_token().status_code == 503
    assert servicetitan.control("GET", "stats").status_code == 200
    servicetitan.control(
        "POST", "faults", {"script": [{"kind": "reset", "match": "GET accounting/invoices"}]}
    )
    with pytest.raises(requests.ConnectionError):
        servicetitan.get("accounting", "invoices")
    assert servicetitan.get("accounting", "invoices").status_code == 200
    assert servicetitan.control("GET", "stats").json()["faults_injected"] == {"error": 2, "reset": 1}


def test_slow_fault_delays_the_answer(servicetitan):
    servicetitan.token()
    servicetitan.control("POST", "faults", {"slow_rate": 1.0, "slow_seconds": 0.3})
    began = time.monotonic()
    assert servicetitan.get("settings", "business-units").status_code == 200
    assert time.monotonic() - began >= 0.3


def test_unknown_fault_settings_are_refused(servicetitan):
    assert servicetitan.control("POST", "faults", {"error_rate": 2}).status_code == 400
    assert servicetitan.control("POST", "faults", {"explode": 1}).status_code == 400


def test_stats_count_tokens_requests_and_answers(servicetitan):
    servicetitan.control("POST", "stats/reset")
    servicetitan.token(fresh=True)
    servicetitan.get("crm", "customers")
    servicetitan.get("crm", "customers", headers={"ST-App-Key": "wrong"})
    stats = servicetitan.control("GET", "stats").json()
    assert stats["tokens_issued"] == 1
    assert stats["requests"]["GET crm/customers"] == 2
    assert stats["responses"] == {"200": 2, "403": 1}
    assert stats["peak_calls_per_second"] == 1
    assert servicetitan.config.app_key not in json.dumps(stats)


def test_b1_sandbox_prints_the_servicetitan_connection(tmp_path: Path):
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_b1.sandbox",
            "--only",
            "servicetitan",
            "--servicetitan-customers",
            "20",
            "--servicetitan-invoices",
            "50",
            "--state-dir",
            str(tmp_path),
            "--ready-file",
            str(ready),
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        (line,) = [c for c in info["connections"] if c.startswith("AIRFLOW_CONN_SERVICETITAN_DEFAULT=")]
        conn = json.loads(line.split("=", 1)[1].strip("'"))
        extra = conn["extra"]
        assert conn["conn_type"] == "servicetitan"
        assert extra["environment"] == "integration"
        assert extra["api_url"] == extra["auth_url"] == info["sandboxes"]["servicetitan"]["base_url"]
        token = requests.post(
            f"{extra['auth_url']}/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": conn["login"],
                "client_secret": conn["password"],
            },
            verify=extra["ca_bundle"],
            timeout=10,
        ).json()["access_token"]
        body = requests.get(
            f"{extra['api_url']}/accounting/v2/tenant/{extra['tenant_id']}/invoices",
            params={"includeTotal": "true"},
            headers={"Authorization": f"Bearer {token}", "ST-App-Key": extra["app_key"]},
            verify=extra["ca_bundle"],
            timeout=10,
        ).json()
        assert body["totalCount"] == 50
    finally:
        proc.terminate()
        proc.wait(timeout=10)
