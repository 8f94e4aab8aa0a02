"""The SAP sandbox at scale: start time, memory and page times with 100,000 and 1,000,000 invoices.

For each size the sandbox is started as its own process (``b1-sandbox --only sap --no-tls``,
no cost model: zero latency), and timed from the outside over plain HTTP:

* **ready**: seconds from start until it serves (the company is generated in that time), and
  its memory then (``VmRSS``) and at the end (``VmHWM``, the peak);
* **page**: one page of 500 invoices by ``DocEntry`` range (``ge``/``lt``, ``$orderby=DocEntry``)
  at the start, the middle and the end of the store, whole records and with the ``$select`` a
  warehouse load uses (first request, and best of three);
* **count**: ``$count`` of all invoices and of a range;
* **lookup**: ``NumAtCard eq '...'`` (the first builds the index), and several joined by ``or``;
* **UpdateDate**: the first page of ``UpdateDate ge '...'`` (a scan), and the next (cached);
* **paging**: 20 pages of 500 along the next links, ``$select``, invoices per second and the
  sandbox process's CPU per invoice (the wall time includes the client and whatever else the
  machine runs; the CPU time is the sandbox's own).

    python -m benchmarks.sap_sandbox_scale [--invoices 100000 1000000]

Takes about 3 minutes at the defaults on a 2-core machine, most of it generating the million.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

SELECT = (
    "DocEntry,DocNum,DocDate,DocDueDate,CardCode,CardName,DocTotal,VatSum,DocCurrency,DocRate,"
    "DocumentStatus,Cancelled,NumAtCard,UpdateDate,UpdateTime,DocumentLines"
)
COMPANY, USER, PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"
PAGE = 500


def memory_mib(pid: int) -> dict[str, float]:
    """Resident memory of a process now (``VmRSS``) and at its peak (``VmHWM``), in MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(invoices: int, state: Path) -> tuple[subprocess.Popen, str, float]:
    """The sandbox process, its base URL and the seconds it took to serve."""
    ready = state / "ready.json"
    started = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_b1.sandbox",
            "--only",
            "sap",
            "--no-tls",
            "--invoices",
            str(invoices),
            "--quiet",
            "--state-dir",
            str(state),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 1800
    while not ready.exists():
        if child.poll() is not None:
            raise RuntimeError(f"the sandbox stopped with {child.returncode}")
        if time.monotonic() > deadline:
            child.terminate()
            raise RuntimeError("the sandbox did not start in 30 minutes")
        time.sleep(0.2)
    base = json.loads(ready.read_text())["sandboxes"]["sap"]["base_url"]
    return child, base, time.perf_counter() - started


def timed(session: requests.Session, url: str, **kwargs) -> tuple[float, requests.Response]:
    began = time.perf_counter()
    response = session.get(url, timeout=600, **kwargs)
    response.raise_for_status()
    return time.perf_counter() - began, response


def first_and_best(session: requests.Session, url: str, **kwargs) -> tuple[float, float, requests.Response]:
    """Seconds of the first request, the best of three, and the reply."""
    first, reply = timed(session, url, **kwargs)
    best = min(timed(session, url, **kwargs)[0] for _ in range(2))
    return first, min(first, best), reply


def measure(invoices: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="sap-scale-") as tmp:
        child, base, ready_seconds = start(invoices, Path(tmp))
        try:
            result: dict = {"invoices": invoices, "ready_seconds": round(ready_seconds, 1)}
            result["memory_at_ready"] = memory_mib(child.pid)
            session = requests.Session()
            session.trust_env = False
            root = f"{base}/b1s/v2/"
            session.post(
                root + "Login",
                json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD},
                timeout=60,
            ).raise_for_status()
            prefer = {"Prefer": f"odata.maxpagesize={PAGE}"}
            pages = {}
            for where, low in (("start", 1), ("middle", invoices // 2), ("end", invoices - PAGE + 1)):
                flt = f"DocEntry ge {low} and DocEntry lt {low + PAGE}"
                for width, select in (("whole", ""), ("select", f"&$select={SELECT}")):
                    url = f"{root}Invoices?$filter={flt}&$orderby=DocEntry{select}"
                    first, best, reply = first_and_best(session, url, headers=prefer)
                    values = reply.json()["value"]
                    assert [v["DocEntry"] for v in values] == list(range(low, low + PAGE)), where
                    pages[f"{where}/{width}"] = {
                        "first_s": round(first, 3),
                        "best_s": round(best, 3),
                        "kib": round(len(reply.content) / 1024),
                    }
            result["page_500"] = pages
            refs = [v["NumAtCard"] for v in values if v.get("NumAtCard")]
            count_all = first_and_best(session, root + "Invoices/$count")
            count_range = first_and_best(
                session, root + f"Invoices/$count?$filter=DocEntry ge 1000 and DocEntry lt {invoices // 2}"
            )
            assert int(count_all[2].text) == invoices
            result["count"] = {
                "all_s": round(count_all[1], 4),
                "range_first_s": round(count_range[0], 4),
                "range_best_s": round(count_range[1], 4),
            }
            one = f"{root}Invoices?$select=DocEntry,NumAtCard&$filter=NumAtCard eq '{refs[0]}'"
            first_lookup, best_lookup, reply = first_and_best(session, one)
            assert reply.json()["value"], refs[0]
            several = " or ".join(f"NumAtCard eq '{r}'" for r in refs[:20])
            _, best_several, _ = first_and_best(
                session, f"{root}Invoices?$select=DocEntry,NumAtCard&$filter={several}"
            )
            result["lookup_num_at_card"] = {
                "first_s": round(first_lookup, 4),
                "best_s": round(best_lookup, 4),
                "twenty_or_best_s": round(best_several, 4),
            }
            since = session.get(
                f"{root}Invoices?$select=UpdateDate&$filter=DocEntry ge {invoices // 2} and DocEntry lt {invoices // 2 + 1}",
                timeout=60,
            ).json()["value"][0]["UpdateDate"][:10]
            url = f"{root}Invoices?$select={SELECT}&$filter=UpdateDate ge '{since}'&$orderby=DocEntry&$count=true"
            first_page, reply = timed(session, url, headers=prefer)
            body = reply.json()
            next_page, _ = timed(session, root + body["@odata.nextLink"], headers=prefer)
            result["update_date"] = {
                "matching": body["@odata.count"],
                "first_page_s": round(first_page, 3),
                "next_page_s": round(next_page, 3),
            }
            low = invoices // 4
            url = f"{root}Invoices?$select={SELECT}&$filter=DocEntry ge {low} and DocEntry lt {low + 20 * PAGE}&$orderby=DocEntry"
            began, read, cpu = time.perf_counter(), 0, cpu_seconds(child.pid)
            while url:
                reply = session.get(url, headers=prefer, timeout=600)
                reply.raise_for_status()
                body = reply.json()
                read += len(body["value"])
                url = root + body["@odata.nextLink"] if "@odata.nextLink" in body else ""
            assert read == 20 * PAGE
            result["paging_select_per_s"] = round(read / (time.perf_counter() - began))
            result["paging_server_cpu_us_per_invoice"] = round((cpu_seconds(child.pid) - cpu) / read * 1e6)
            result["memory_at_end"] = memory_mib(child.pid)
            return result
        finally:
            child.terminate()
            child.wait(timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args(argv)
    print(
        f"SAP sandbox at scale (no cost model), {os.cpu_count()} cores; pages of {PAGE} invoices", flush=True
    )
    for invoices in args.invoices:
        result = measure(invoices)
        print(f"\n{invoices:,} invoices", flush=True)
        print(
            f"  ready in {result['ready_seconds']} s; RSS at ready {result['memory_at_ready']['VmRSS']:.0f} MiB, "
            f"peak {result['memory_at_end']['VmHWM']:.0f} MiB, at the end {result['memory_at_end']['VmRSS']:.0f} MiB"
        )
        for name, page in result["page_500"].items():
            print(
                f"  page of {PAGE} by DocEntry range, {name:<14} first {page['first_s']:.3f} s, "
                f"best {page['best_s']:.3f} s, {page['kib']} KiB"
            )
        c = result["count"]
        print(
            f"  $count all {c['all_s']:.4f} s; of a range first {c['range_first_s']:.4f} s, best {c['range_best_s']:.4f} s"
        )
        lk = result["lookup_num_at_card"]
        print(
            f"  NumAtCard eq: first {lk['first_s']:.4f} s (builds the index), then {lk['best_s']:.4f} s; "
            f"20 joined by or {lk['twenty_or_best_s']:.4f} s"
        )
        ud = result["update_date"]
        print(
            f"  UpdateDate ge (matching {ud['matching']:,}): first page {ud['first_page_s']:.3f} s (a scan), "
            f"next {ud['next_page_s']:.3f} s"
        )
        print(
            f"  paging 20 x {PAGE} with $select: {result['paging_select_per_s']:,} invoices/s, "
            f"the sandbox's CPU {result['paging_server_cpu_us_per_invoice']} us per invoice"
        )
        print("  " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
