"""Reading invoices from the SAP sandbox: SapB1Hook against a bare HTTP loop and page size 20.

The sandbox runs in its own process over HTTPS. Three ways read the same invoices:

* **bare loop**: one ``requests.Session``, a login, then ``GET`` following the next links with
  ``Prefer: odata.maxpagesize``; it keeps the bytes (the serving limit) or also decodes the JSON
  with the same decoder as the hook (the least work that yields records).
* **hook**: ``SapB1Hook.iter_pages`` with the same page size (the hook decodes JSON, handles
  sessions, retries and errors, and prefetches the next page while the caller works).
* **hook, page size 20**: the Service Layer's default page size, for scale.

Each is measured full width and with a ``$select`` of the fields a warehouse load needs, best of
``--repeats`` runs. Requests and logins come from the sandbox's own counters.

    python -m benchmarks.sap_read [--invoices 10000] [--repeats 3]

Takes about a minute at the defaults on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import msgspec
import requests

from benchmarks._harness import SANDBOX_CA, Measurement, best_of, control, print_table

SELECT = (
    "DocEntry,DocNum,DocDate,DocDueDate,CardCode,CardName,DocTotal,VatSum,DocCurrency,DocRate,"
    "DocumentStatus,Cancelled,NumAtCard,UpdateDate,UpdateTime,DocumentLines"
)
COMPANY, USER, PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"


def bare_read(base: str, ca: str, page_size: int, select: str | None, *, decode: bool) -> Measurement:
    """A login, then ``GET`` after ``GET`` along the next links: nothing but HTTP.

    With ``decode`` every page is turned into records with the hook's own decoder (msgspec), so
    the difference to the hook is the hook's overhead alone; without it only the bytes are kept
    (the serving limit) and the next link is found by scanning the reply's tail.
    """
    session = requests.Session()
    session.verify = ca
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override the sandbox CA
    root = f"{base}/b1s/v2/"
    started = time.perf_counter()
    session.post(
        root + "Login", json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD}, timeout=60
    ).raise_for_status()
    url = root + "Invoices" + (f"?$select={select}" if select else "")
    headers = {"Prefer": f"odata.maxpagesize={page_size}"}
    records = nbytes = 0
    while url:
        response = session.get(url, headers=headers, timeout=300)
        response.raise_for_status()
        body = response.content
        nbytes += len(body)
        if decode:
            document = msgspec.json.decode(body)
            records += len(document["value"])
            link = document.get("@odata.nextLink")
        else:
            # The next link is the reply's last property.
            tail = body[-2048:]
            marker = tail.rfind(b'"@odata.nextLink"')
            link = tail[marker:].split(b'"')[3].decode() if marker >= 0 else None
        url = (
            (link if link.startswith("http") else root + link.lstrip("/").removeprefix("b1s/v2/"))
            if link
            else None
        )
    seconds = time.perf_counter() - started
    session.close()
    return Measurement("bare", records, seconds, {"MB": round(nbytes / 1e6, 1)})


def hook_read(conn_id: str, page_size: int, select: str | None) -> Measurement:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    started = time.perf_counter()
    records = 0
    for page in hook.iter_pages("Invoices", select=select, page_size=page_size, prefetch=True):
        records += len(page)
    seconds = time.perf_counter() - started
    hook.logout()
    return Measurement("hook", records, seconds)


def measured(base: str, name: str, fn) -> Measurement:
    before = control(base, "stats")
    m = fn()
    after = control(base, "stats")
    m.name = name
    m.extra["requests"] = after["requests_total"] - before["requests_total"]
    m.extra["logins"] = after["logins"] - before["logins"]
    return m


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=500)
    args = parser.parse_args(argv)

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="b1-bench-home-"))
    os.environ["B1_SESSION_CACHE_DIR"] = tempfile.mkdtemp(prefix="b1-bench-sessions-")
    from airflow_provider_b1.sandbox.server import serve_in_subprocess

    served = serve_in_subprocess(invoices=args.invoices, tls=True)
    try:
        base, ca = served.base_url, served.ca_path
        SANDBOX_CA[base] = ca
        os.environ["AIRFLOW_CONN_SAP_B1_BENCH"] = json.dumps(
            {
                "conn_type": "sap_b1",
                "host": f"{base}/b1s/v2",
                "schema": COMPANY,
                "login": USER,
                "password": PASSWORD,
                "extra": {"ca_bundle": ca, "page_size": args.page_size},
            }
        )
        expected = control(base, "truth/Invoices")["count"]
        print(
            f"SAP sandbox: {expected} invoices over HTTPS, page size {args.page_size}, best of {args.repeats}"
        )
        for label, select in (("$select of 16 fields + DocumentLines", SELECT), ("full width", None)):
            ps = args.page_size
            rows = [
                best_of(
                    args.repeats,
                    lambda s=select, p=ps: measured(
                        base,
                        "bare loop, bytes only (serving limit)",
                        lambda: bare_read(base, ca, p, s, decode=False),
                    ),
                ),
                best_of(
                    args.repeats,
                    lambda s=select, p=ps: measured(
                        base, "bare loop + decode (msgspec)", lambda: bare_read(base, ca, p, s, decode=True)
                    ),
                ),
                best_of(
                    args.repeats,
                    lambda s=select, p=ps: measured(
                        base, f"SapB1Hook.iter_pages, page {p}", lambda: hook_read("sap_b1_bench", p, s)
                    ),
                ),
                best_of(
                    1,
                    lambda s=select: measured(
                        base,
                        "SapB1Hook.iter_pages, page 20 (default)",
                        lambda: hook_read("sap_b1_bench", 20, s),
                    ),
                ),
            ]
            rows[0].records = expected  # the bytes-only loop does not count records
            for row in rows:
                assert row.records == expected, (row.name, row.records, expected)
            print_table(f"Invoices, {label}", rows, rows[0])
            hook = rows[2]
            print(
                f"  hook / bare bytes = {hook.rate / rows[0].rate:.2f}; hook / bare+decode = {hook.rate / rows[1].rate:.2f}"
            )
    finally:
        served.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
