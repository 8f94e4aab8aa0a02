"""Posting ServiceTitan invoices into SAP Business One under a cost model: the flow on several SAP
sessions against one POST at a time on one session.

A real Service Layer takes its time per document, and a node works through one session's requests
one at a time (PROTOCOLS.md, "Throughput is set by the server"). The SAP sandbox's cost model
(``POST /_sandbox/cost``) imitates that: every document write sleeps ``write_seconds +
per_line_seconds x lines`` (no CPU), one request per session at once, at most ``nodes`` sessions
served side by side. Both sandboxes run in their own process over HTTPS.

Ways measured, each into a SAP sandbox reset to the same state (partners created first, with the
cost model off; the customers are not timed):

* **baseline**: one ``POST /Invoices`` at a time on one session (a ``requests`` loop, no look-ups:
  the least a client can do per document), over the first ``--baseline-invoices`` documents the
  flow's mapper builds from ServiceTitan's invoices.
* **flow, N sessions**: the ``invoices`` stream of ``servicetitan_to_sap_b1`` through the sync
  engine, exactly as its task runs it (export read, mapping, look-up by ``NumAtCard`` before every
  write, ``$batch`` of 20, audit trail), with ``writers=N``: N SAP sessions side by side.

For each, documents per second, its ratio to the baseline, and its share of what the modelled
server can take: ``min(N, nodes) x writes / modelled seconds`` (the sandbox's own counters of the
writes it charged). After every flow run SAP must hold each ServiceTitan invoice once (its
``NumAtCard``), and nothing else.

    python -m benchmarks.servicetitan_post [--invoices 2000] [--sessions 2,4,8] [--nodes 8]
        [--write-seconds 0.05] [--per-line-seconds 0.01] [--baseline-invoices 150]

Takes about three minutes at the defaults on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from benchmarks._harness import SANDBOX_CA, Measurement, control

SAP_CONN, ST_CONN, AUDIT_CONN = "sap_b1_default", "servicetitan_default", "b1_audit_default"
MAPPINGS = str(Path(__file__).resolve().parent.parent / "dags" / "servicetitan_mappings.yaml")
CUSTOMERS = 200


def _environment(ready: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The connections the sandbox process printed (``AIRFLOW_CONN_X='{...}'``), by conn id."""
    found = {}
    for line in ready["connections"]:
        name, _, value = line.partition("=")
        conn_id = name.removeprefix("AIRFLOW_CONN_").lower()
        found[conn_id] = json.loads(shlex.split(value)[0])
    return found


def _use_audit_file(path: Path) -> None:
    os.environ[f"AIRFLOW_CONN_{AUDIT_CONN.upper()}"] = json.dumps({"conn_type": "sqlite", "host": str(path)})


def _run_stream(name: str, writers: int, run_id: str) -> Any:
    """One stream of the flow, read from the beginning, as its task runs it."""
    from airflow_provider_b1.servicetitan.flow import SERVICETITAN_FLOW
    from airflow_provider_b1.sync import AuditTrail, SyncWindow, sync_stream

    flow = SERVICETITAN_FLOW
    with AuditTrail(AUDIT_CONN) as audit:
        audit.ensure_schema()
        with (
            flow.open({"mappings": MAPPINGS}) as (source, sink),
            audit.session(flow.name, "servicetitan_bench", run_id, name, 1) as session,
        ):
            window = SyncWindow(mode="incremental", reason="first run: everything")
            return sync_stream(flow, flow.stream(name), source, sink, session, window, writers=writers)


def _fresh_target(sap: str, work: Path, tag: str) -> None:
    """SAP as the sandbox started it, its partners created (cost model off), a new audit trail."""
    control(sap, "cost", {})
    control(sap, "reset", {"invoices": 0})
    _use_audit_file(work / f"audit-{tag}.db")
    summary = _run_stream("customers", 1, f"customers-{tag}")
    if not summary.created:
        raise RuntimeError(f"the customers did not load: {summary}")


def _posted(sap_hook: Any) -> list[str]:
    return [
        str(record.get("NumAtCard"))
        for page in sap_hook.iter_pages("Invoices", select="DocEntry,NumAtCard")
        for record in page
    ]


def _documents(limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` invoice documents the flow's own mapper builds, with their partners."""
    from airflow_provider_b1.servicetitan.flow import SERVICETITAN_FLOW
    from airflow_provider_b1.sync import Item

    stream = SERVICETITAN_FLOW.stream("invoices")
    documents: list[dict[str, Any]] = []
    with SERVICETITAN_FLOW.open({"mappings": MAPPINGS}) as (source, sink):
        for page in source.read(stream, None, until=None):
            items = [i for i in sink.prepare(stream, page.records) if isinstance(i, Item)]
            codes = sink.customers.get([i.data["customer_id"] for i in items])
            for item in items:
                code = codes.get(item.data["customer_id"])
                if code is not None:
                    documents.append({"CardCode": code[0], **item.data["document"]})
            if len(documents) >= limit:
                break
    return documents[:limit]


def baseline(sap_conn: dict[str, Any], documents: list[dict[str, Any]]) -> Measurement:
    """One POST at a time on one session: a login, then ``POST /Invoices`` per document."""
    session = requests.Session()
    session.verify = sap_conn["extra"]["ca_bundle"]
    session.trust_env = False
    root = sap_conn["host"].rstrip("/") + "/"
    session.post(
        root + "Login",
        json={
            "CompanyDB": sap_conn["schema"],
            "UserName": sap_conn["login"],
            "Password": sap_conn["password"],
        },
        timeout=60,
    ).raise_for_status()
    started = time.perf_counter()
    for document in documents:
        session.post(root + "Invoices", json=document, timeout=300).raise_for_status()
    seconds = time.perf_counter() - started
    session.close()
    return Measurement("baseline: one POST at a time, one session", len(documents), seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000, help="ServiceTitan invoices to post")
    parser.add_argument("--sessions", default="2,4,8", help="SAP sessions of each flow run, comma-separated")
    parser.add_argument("--nodes", type=int, default=8, help="sessions the modelled server serves at once")
    parser.add_argument("--write-seconds", type=float, default=0.05, help="modelled time of one document")
    parser.add_argument("--per-line-seconds", type=float, default=0.01, help="modelled time of each line")
    parser.add_argument("--baseline-invoices", type=int, default=150)
    args = parser.parse_args(argv)
    sessions = [int(s) for s in args.sessions.split(",") if s.strip()]

    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.sandbox.server import serve_in_subprocess

    work = Path(tempfile.mkdtemp(prefix="b1-bench-st-"))
    os.environ.setdefault("AIRFLOW_HOME", str(work / "home"))
    os.environ["B1_SESSION_CACHE_DIR"] = str(work / "sessions")
    os.environ["B1_SERVICETITAN_CACHE_DIR"] = str(work / "tokens")
    served = serve_in_subprocess(
        invoices=0,
        tls=True,
        timeout=600,
        extra_args=[
            "--only",
            "servicetitan",
            "--servicetitan-customers",
            str(CUSTOMERS),
            "--servicetitan-invoices",
            str(args.invoices),
        ],
    )
    try:
        sap = served.base_url
        SANDBOX_CA[sap] = served.ca_path
        connections = _environment(served.info)
        for conn_id in (SAP_CONN, ST_CONN):
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(connections[conn_id])
        servicetitan = served.info["sandboxes"]["servicetitan"]["base_url"]
        SANDBOX_CA[servicetitan] = served.info["sandboxes"]["servicetitan"]["ca_path"]
        model = {
            "write_seconds": args.write_seconds,
            "per_line_seconds": args.per_line_seconds,
            "nodes": args.nodes,
        }
        print(
            f"SAP sandbox cost model: {model}; ServiceTitan sandbox: {CUSTOMERS} customers, "
            f"{args.invoices} invoices; {os.cpu_count()} CPUs"
        )

        _fresh_target(sap, work, "baseline")
        documents = _documents(args.baseline_invoices)
        control(sap, "cost", model)
        base = baseline(connections[SAP_CONN], documents)
        base_stats = control(sap, "cost")["cost"]
        rows: list[tuple[Measurement, float, str]] = []
        for count in sessions:
            tag = f"flow-{count}"
            _fresh_target(sap, work, tag)
            control(sap, "cost", model)
            started = time.perf_counter()
            summary = _run_stream("invoices", count, tag)
            seconds = time.perf_counter() - started
            stats = control(sap, "cost")["cost"]
            control(sap, "cost", {})
            posted = _posted(SapB1Hook(SAP_CONN))
            duplicates = len(posted) - len(set(posted))
            check = (
                "OK"
                if summary.created == len(posted) and not duplicates and summary.read == args.invoices
                else "DIFFERS"
            )
            m = Measurement(f"flow, {count} SAP session{'s' if count > 1 else ''}", summary.created, seconds)
            m.extra = {
                "failed": summary.failed,
                "in SAP": len(posted),
                "duplicates": duplicates,
                "max at once": stats["max_concurrency"],
            }
            capacity = min(count, args.nodes) * stats["writes"] / stats["seconds"] if stats["seconds"] else 0
            rows.append((m, capacity, check))

        per_document = base_stats["seconds"] / base_stats["writes"]
        server = args.nodes / per_document
        print(
            f"\nServiceTitan invoices -> SAP A/R invoices under the cost model (modelled server: {server:.1f} doc/s)"
        )
        print(
            f"  {'method':<44} {'docs':>6} {'seconds':>8} {'doc/s':>7} {'x baseline':>10} "
            f"{'of server':>9} {'of sessions':>11} {'failed':>6} {'in SAP':>6} {'dupes':>5}  check"
        )
        print(
            f"  {base.name:<44} {base.records:>6} {base.seconds:>8.2f} {base.rate:>7.1f} {1:>10.2f} "
            f"{base.rate / server:>9.2f} {base.rate * per_document:>11.2f}"
        )
        for m, capacity, check in rows:
            print(
                f"  {m.name:<44} {m.records:>6} {m.seconds:>8.2f} {m.rate:>7.1f} {m.rate / base.rate:>10.2f} "
                f"{m.rate / server:>9.2f} {m.rate / capacity if capacity else 0:>11.2f} "
                f"{m.extra['failed']:>6} {m.extra['in SAP']:>6} {m.extra['duplicates']:>5}  {check}"
            )
        print(
            f"  (modelled cost per document {per_document * 1000:.0f} ms; 'of server' = rate / what {args.nodes} "
            "nodes take; 'of sessions' = rate / what the run's sessions can take on them; aims: "
            f"flow >= 5 x baseline and >= 0.8 of the server with {args.nodes} sessions)"
        )
        failed = [check for _, _, check in rows if check != "OK"]
        return 1 if failed else 0
    finally:
        served.stop()


if __name__ == "__main__":
    raise SystemExit(main())
