"""Invoices with their lines from the SAP sandbox into PostgreSQL: the warehouse flow against its baselines.

The sandbox runs in its own process over HTTPS; PostgreSQL is the one at ``--pg-dsn`` (default
``127.0.0.1:5432``, user ``postgres``), where a throwaway database is created and dropped at the
end. Every measured way runs in a child process of its own, so its peak RSS is that of the
loading process alone. Rows of the table:

* **bare loop, bytes only**: one ``requests.Session``, a login, then ``GET`` of the very pages
  the flow reads (same ``$select``, ``$orderby`` and page size), keeping only the bytes: the
  sandbox's serving limit. **bare loop + msgspec decode**: the same, decoding each page.
* **flow**: what ``SapB1ToWarehouseOperator`` runs for an entity
  (the sync engine's :func:`~airflow_provider_b1.sync.engine.sync_stream` over the warehouse flow):
  ``SapB1Hook.read_incremental`` with prefetch, mapping, COPY + merge into the warehouse schema by a
  ``PostgresLoader`` (two writer connections, the default) from an Airflow connection, one audit row
  per record in a PostgreSQL audit trail in the same database, written in each page's transaction. Run at the full size
  and at 10,000 invoices (the sandbox reset to 10,000 invoices with the same seed) to show that
  peak memory does not grow with the data. Each run starts from an empty warehouse and audit
  schema (every record is created); schema creation is outside the timing, the audit flush inside.
* **plain baseline**: what a DAG written without this provider does: ``requests`` with the
  Service Layer's default page size of 20 (no ``Prefer`` header), full records (no ``$select``),
  ``PostgresHook.insert_rows`` of header rows and line rows (1,000 invoices per call, no COPY,
  no audit trail). At 20 per page it is slow, so it reads ``--baseline-invoices`` (``$top``):
  the comparison is of *rates*.

Requests and logins are the sandbox's own counters (deltas around each run). CPU seconds of the
loading process, the sandbox process and the PostgreSQL server are shown to tell which one
limits a run. After each flow run the warehouse must equal the sandbox's truth (count and
``DocTotal`` sum).

    python -m benchmarks.warehouse_load [--invoices 100000] [--baseline-invoices 5000] [--repeats 2]
                                        [--latency SECONDS]

``--latency`` delays every reply of the sandbox by that long (its ``slow`` fault on every request,
an ``asyncio.sleep``: no CPU), for every way alike: a Service Layer across a network, or one that
takes its time per request. At 0 (the default) the sandbox answers on loopback in microseconds,
and the run measures how sandbox, loader and PostgreSQL share one machine's cores.

Takes about 4 minutes at the defaults on a 2-core machine (sandbox start ~10 s, each 100,000-invoice
flow run ~40-60 s, the baseline ~30 s); ``--invoices 20000`` takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import tempfile
import time
from typing import Any

import requests

from benchmarks._harness import SANDBOX_CA, Measurement, child_main, control, run_in_child

COMPANY, USER, PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"
ENTITY = "Invoices"
SAP_CONN, WAREHOUSE_CONN, AUDIT_CONN = "sap_b1_wh_bench", "b1_wh_bench", "b1_audit_wh_bench"
MEMORY_SIZE = 10_000
PLAIN_BATCH = 1000
#: The children log warnings only: a progress line per 50 pages would drown the table.
QUIET = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """``(command name, fields after it)`` of ``/proc/<pid>/stat``; ``None`` once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            head, tail = stat.read().rsplit(")", 1)
    except OSError:
        return None
    return head.split("(", 1)[1], tail.split()


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        found = _stat(pid)
        if found is not None:
            total += int(found[1][11]) + int(found[1][12])
    return total / os.sysconf("SC_CLK_TCK")


def _postgres_cpu_seconds() -> float | None:
    """CPU seconds of the local PostgreSQL server so far: every live postgres process, plus what
    the postmaster has collected from backends that have exited (a load's extra writer
    connections close before the end). ``None`` when no local server's processes are readable."""
    processes = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(entry)
            if found is not None and found[0] in ("postgres", "postmaster"):
                processes[int(entry)] = found[1]
    if not processes:
        return None
    total = 0
    for fields in processes.values():
        total += int(fields[11]) + int(fields[12])
        if int(fields[1]) not in processes:  # the postmaster: its parent is not a postgres process
            total += int(fields[13]) + int(fields[14])
    return total / os.sysconf("SC_CLK_TCK")


# --- measured in a child process -------------------------------------------------------------


def _session(ca: str) -> requests.Session:
    session = requests.Session()
    session.verify = ca
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override the sandbox CA
    return session


def _login(session: requests.Session, root: str) -> None:
    session.post(
        root + "Login", json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD}, timeout=60
    ).raise_for_status()


def _next_url(root: str, link: str | None) -> str | None:
    if not link:
        return None
    return link if link.startswith("http") else root + link.lstrip("/").removeprefix("b1s/v2/")


def bare(args: dict[str, Any]) -> dict[str, Any]:
    """The pages the flow reads, with a bare loop: bytes only, or decoded with msgspec."""
    import msgspec

    decode = msgspec.json.Decoder().decode
    root = f"{args['base']}/b1s/v2/"
    session = _session(args["ca"])
    headers = {"Prefer": f"odata.maxpagesize={args['page_size']}"}
    started = time.perf_counter()
    _login(session, root)
    url: str | None = f"{root}{ENTITY}?{args['query']}"
    records = nbytes = 0
    while url:
        body = session.get(url, headers=headers, timeout=300).content
        nbytes += len(body)
        if args["decode"]:
            document = decode(body)
            records += len(document["value"])
            url = _next_url(root, document.get("@odata.nextLink"))
        else:
            # The next link is the reply's last property: found without decoding the page.
            tail = body[-2048:]
            marker = tail.rfind(b'"@odata.nextLink"')
            url = _next_url(root, tail[marker:].split(b'"')[3].decode() if marker >= 0 else None)
    seconds = time.perf_counter() - started
    return {
        "records": records if args["decode"] else args["expected"],
        "seconds": seconds,
        "MB": nbytes / 1e6,
    }


def flow(args: dict[str, Any]) -> dict[str, Any]:
    """The operator's path for one entity: the sync engine running the warehouse flow's stream, from
    SapB1Source through the PostgresLoader (two writers) with the audit trail in each page's transaction."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.sources.sap_b1 import SapB1Source
    from airflow_provider_b1.sync import AuditTrail, SyncWindow, sync_stream
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import DEFAULT_WRITERS
    from airflow_provider_b1.warehouse.entities import entity_spec
    from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW
    from airflow_provider_b1.warehouse.loader import open_loader

    schema = args["schema"]
    hook = SapB1Hook(SAP_CONN)
    audit = AuditTrail(AUDIT_CONN, schema=args["audit_schema"])
    audit.ensure_schema()
    with open_loader(WAREHOUSE_CONN, schema=schema) as loader:
        loader.ensure_schema()
        window = SyncWindow(mode="incremental", reason="first run: everything")
        started = time.perf_counter()
        cpu = os.times()
        source = SapB1Source(hook, select={ENTITY: entity_spec(ENTITY).select()})
        stream = WAREHOUSE_FLOW.stream(ENTITY)
        with audit.session(
            WAREHOUSE_FLOW.name, "warehouse_bench", args["run_id"], "load_invoices", 1
        ) as session:
            summary = sync_stream(
                WAREHOUSE_FLOW, stream, source, loader, session, window, writers=DEFAULT_WRITERS
            )
        seconds = time.perf_counter() - started
        after = os.times()
    audit.close()
    return {
        "records": summary.read,
        "seconds": seconds,
        "cpu": after.user + after.system - cpu.user - cpu.system,
        "created": summary.created,
        "failed": summary.failed,
        "audit_rows": session.written,
    }


_PLAIN_TYPES = {
    "text": "text",
    "int": "bigint",
    "num": "numeric",
    "date": "date",
    "time": "time",
    "bool": "boolean",
    "active": "boolean",
}


def _plain_value(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "bool":
        return value == "tYES"
    if kind == "date":
        return value[:10]
    return value


def plain_ddl(schema: str) -> list[str]:
    """Tables of the plain baseline: the warehouse's mapped columns, no raw record, no hash."""
    from airflow_provider_b1.warehouse.entities import entity_spec

    spec = entity_spec(ENTITY)
    child = spec.children[0]
    header = ", ".join(f"{c.name} {_PLAIN_TYPES[c.kind]}" for c in spec.columns)
    lines = ", ".join(f"{c.name} {_PLAIN_TYPES[c.kind]}" for c in child.columns)
    return [
        f"CREATE SCHEMA {schema}",
        f"CREATE TABLE {schema}.invoice ({header}, PRIMARY KEY (doc_entry))",
        f"CREATE TABLE {schema}.invoice_line (doc_entry bigint, {lines}, PRIMARY KEY (doc_entry, line_num))",
    ]


def plain(args: dict[str, Any]) -> dict[str, Any]:
    """A DAG without this provider: default page size, whole records, PostgresHook.insert_rows."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    from airflow_provider_b1.warehouse.entities import entity_spec

    spec = entity_spec(ENTITY)
    child = spec.children[0]
    header_cols = [(c.name, c.source, c.kind) for c in spec.columns]
    line_cols = [(c.name, c.source, c.kind) for c in child.columns]
    pg = PostgresHook(postgres_conn_id=WAREHOUSE_CONN)
    schema = args["schema"]
    root = f"{args['base']}/b1s/v2/"
    session = _session(args["ca"])
    started = time.perf_counter()
    cpu = os.times()
    _login(session, root)
    url: str | None = f"{root}{ENTITY}?$top={args['top']}"
    headers: list[tuple] = []
    lines: list[tuple] = []
    records = 0

    def flush() -> None:
        pg.insert_rows(f"{schema}.invoice", headers, target_fields=[c[0] for c in header_cols])
        pg.insert_rows(
            f"{schema}.invoice_line", lines, target_fields=["doc_entry", *(c[0] for c in line_cols)]
        )
        headers.clear()
        lines.clear()

    while url:
        response = session.get(url, timeout=300)  # no Prefer header: the server's default page
        response.raise_for_status()
        document = response.json()
        for record in document["value"]:
            headers.append(tuple(_plain_value(record.get(src), kind) for _, src, kind in header_cols))
            for line in record.get("DocumentLines") or ():
                lines.append(
                    (
                        record["DocEntry"],
                        *(
                            _plain_value(record.get(src[1:]) if src[0] == "^" else line.get(src), kind)
                            for _, src, kind in line_cols
                        ),
                    )
                )
            records += 1
        if len(headers) >= PLAIN_BATCH:
            flush()
        url = _next_url(root, document.get("@odata.nextLink"))
    if headers:
        flush()
    after = os.times()
    return {
        "records": records,
        "seconds": time.perf_counter() - started,
        "cpu": after.user + after.system - cpu.user - cpu.system,
    }


_WORK = {"bare": bare, "flow": flow, "plain": plain}


def _child(args: dict[str, Any]) -> dict[str, Any]:
    return _WORK[args["kind"]](args)


# --- the parent: sandbox, database, table ----------------------------------------------------


class Bench:
    def __init__(self, base: str, sandbox_pid: int) -> None:
        self.base = base
        self.sandbox_pid = sandbox_pid

    def run(self, name: str, args: dict[str, Any]) -> Measurement:
        """One child run, with the sandbox's request counters and each process's CPU around it."""
        before = control(self.base, "stats")
        cpu_sandbox = _cpu_seconds([self.sandbox_pid])
        cpu_pg = _postgres_cpu_seconds()
        result = run_in_child("benchmarks.warehouse_load", args, env=QUIET)
        after = control(self.base, "stats")
        m = Measurement(name, result["records"], result["seconds"])
        m.extra = {
            "requests": after["requests_total"] - before["requests_total"],
            "logins": after["logins"] - before["logins"],
            "peak MiB": result["peak_rss_mib"],
            "cpu s (own)": round(result.get("cpu", 0.0), 1) if "cpu" in result else "",
            "cpu s sandbox": round(_cpu_seconds([self.sandbox_pid]) - cpu_sandbox, 1),
            "cpu s postgres": round(_postgres_cpu_seconds() - cpu_pg, 1) if cpu_pg is not None else "",
        }
        m.result = result  # type: ignore[attr-defined]
        return m


def _spread(runs: list[Measurement]) -> str:
    rates = sorted(r.rate for r in runs)
    return f"{rates[0]:,.0f}-{rates[-1]:,.0f}/s over {len(rates)}" if len(rates) > 1 else "1 run"


def _best(runs: list[Measurement]) -> Measurement:
    best = max(runs, key=lambda m: m.rate)
    best.extra["spread"] = _spread(runs)
    # A later run reuses the SAP session cached by the first (one login serves them all): show
    # every run's logins, not only the best run's.
    best.extra["logins"] = "+".join(str(r.extra["logins"]) for r in runs)
    return best


def _check_truth(dsn: str, schema: str, truth: dict[str, Any], result: dict[str, Any]) -> str:
    import psycopg

    with psycopg.connect(dsn) as conn:
        count, total, lines = conn.execute(
            f"SELECT count(*), sum(doc_total), (SELECT count(*) FROM {schema}.fact_sales_invoice_line) "
            f"FROM {schema}.fact_sales_invoice"
        ).fetchone()
    ok = count == truth["count"] and f"{total:.2f}" == truth["doc_total_sum"]
    ok = ok and result["created"] == truth["count"] and result["failed"] == 0
    ok = ok and result["audit_rows"] == truth["count"]
    verdict = "OK" if ok else "MISMATCH"
    return (
        f"{verdict}: warehouse {count} invoices ({lines} lines), DocTotal sum {total:.2f}; "
        f"sandbox {truth['count']}, {truth['doc_total_sum']}; {result['audit_rows']} audit rows"
    )


def _print_cpu_budget(flow: Measurement, bare: Measurement) -> None:
    """Where the flow's CPU goes per record, and the rate those costs allow on this machine's cores.

    A derived bound, not a measurement: it says which share would have to shrink for the flow to
    come closer to the bare loop, whose only real cost is the sandbox's serving.
    """
    parts = {k: flow.extra.get(f"cpu s {k}") for k in ("(own)", "sandbox", "postgres")}
    if any(not isinstance(v, float) for v in parts.values()):
        return
    per_record = {k: v / flow.records * 1e6 for k, v in parts.items()}
    total = sum(per_record.values())
    cores = os.cpu_count() or 1
    print(
        f"  CPU per invoice in the flow: loading process {per_record['(own)']:.0f} us, sandbox "
        f"{per_record['sandbox']:.0f} us, PostgreSQL {per_record['postgres']:.0f} us; {total:.0f} us in all, "
        f"so {cores} cores fit at most {cores / total * 1e6:,.0f} invoices/s of it "
        f"(the bare loop ran at {bare.rate:,.0f}/s)"
    )


def _print_table(title: str, rows: list[Measurement]) -> None:
    print(f"\n{title}")
    keys = ["requests", "logins", "peak MiB", "cpu s (own)", "cpu s sandbox", "cpu s postgres"]
    print(
        f"  {'method':<46} {'records':>8} {'seconds':>8} {'rec/s':>8}"
        + "".join(f" {k:>14}" for k in keys)
        + "  spread of rec/s"
    )
    for r in rows:
        print(
            f"  {r.name:<46} {r.records:>8} {r.seconds:>8.2f} {r.rate:>8.0f}"
            + "".join(f" {r.extra.get(k, ''):>14}" for k in keys)
            + f"  {r.extra.get('spread', '')}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=100_000)
    parser.add_argument("--baseline-invoices", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each fast way; the best is kept")
    parser.add_argument("--page-size", type=int, default=None, help="the flow's page size (hook default)")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds every sandbox reply is delayed (default 0)"
    )
    args = parser.parse_args(argv)

    import psycopg

    from airflow_provider_b1.hooks.sap_b1 import DEFAULT_PAGE_SIZE
    from airflow_provider_b1.sandbox.server import serve_in_subprocess
    from airflow_provider_b1.warehouse.entities import entity_spec

    page_size = args.page_size or DEFAULT_PAGE_SIZE
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="b1-bench-home-"))
    os.environ["B1_SESSION_CACHE_DIR"] = tempfile.mkdtemp(prefix="b1-bench-sessions-")
    database = f"b1_bench_{secrets.token_hex(4)}"
    admin = psycopg.connect(args.pg_dsn, autocommit=True)
    admin.execute(f"CREATE DATABASE {database}")
    dsn = psycopg.conninfo.make_conninfo(args.pg_dsn, dbname=database)
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    pg_conn = json.dumps(
        {
            "conn_type": "postgres",
            "host": info.get("host", "127.0.0.1"),
            "port": int(info.get("port", 5432)),
            "login": info.get("user", "postgres"),
            "password": info.get("password"),
            "schema": database,
        }
    )
    os.environ[f"AIRFLOW_CONN_{WAREHOUSE_CONN.upper()}"] = pg_conn
    os.environ[f"AIRFLOW_CONN_{AUDIT_CONN.upper()}"] = pg_conn
    served = serve_in_subprocess(invoices=MEMORY_SIZE, tls=True, timeout=600)
    try:
        base, ca = served.base_url, served.ca_path
        SANDBOX_CA[base] = ca
        os.environ[f"AIRFLOW_CONN_{SAP_CONN.upper()}"] = json.dumps(
            {
                "conn_type": "sap_b1",
                "host": f"{base}/b1s/v2",
                "schema": COMPANY,
                "login": USER,
                "password": PASSWORD,
                "extra": {"ca_bundle": ca, "page_size": page_size},
            }
        )
        bench = Bench(base, served.info["pid"])

        def apply_latency() -> None:
            if args.latency > 0:
                control(base, "faults", {"slow_rate": 1.0, "slow_seconds": args.latency})

        apply_latency()
        spec = entity_spec(ENTITY)
        # Exactly what read_incremental asks for on a first run (its $select already holds the
        # key and the update stamp); the bare loop reads the same pages.
        query = f"$select={','.join(spec.select())}&$orderby={spec.key_field}"
        load = os.getloadavg()
        print(
            f"SAP sandbox over HTTPS (every reply delayed {args.latency * 1000:.0f} ms) -> "
            f"PostgreSQL database {database}; flow page size {page_size}; "
            f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )

        def flow_run(tag: str) -> Measurement:
            schema = f"wh_{tag}_{secrets.token_hex(3)}"
            m = bench.run(
                f"flow, {tag}",
                {
                    "kind": "flow",
                    "schema": schema,
                    "audit_schema": f"audit_{schema}",
                    "run_id": schema,
                },
            )
            m.schema = schema  # type: ignore[attr-defined]
            return m

        # 1. At 10,000 invoices: the flow (for memory) and the plain baseline.
        truth_small = control(base, "truth/Invoices")
        small = _best([flow_run(f"{MEMORY_SIZE // 1000}k") for _ in range(args.repeats)])
        check_small = _check_truth(dsn, small.schema, truth_small, small.result)
        plain_schema = f"plain_{secrets.token_hex(3)}"
        with psycopg.connect(dsn) as conn:
            for statement in plain_ddl(plain_schema):
                conn.execute(statement)
        baseline_n = min(args.baseline_invoices, truth_small["count"])
        baseline = bench.run(
            "plain: page 20, full records, insert_rows",
            {"kind": "plain", "schema": plain_schema, "base": base, "ca": ca, "top": baseline_n},
        )
        assert baseline.records == baseline_n, (baseline.records, baseline_n)

        # 2. At the full size: the bare serving rate and the flow.
        control(base, "reset", {"invoices": args.invoices})
        apply_latency()  # a reset sandbox starts without faults
        truth = control(base, "truth/Invoices")
        expected = truth["count"]
        bare_args = {"kind": "bare", "base": base, "ca": ca, "page_size": page_size, "query": query}
        bare_bytes = _best(
            [
                bench.run(
                    "bare loop, bytes only (serving limit)",
                    {**bare_args, "decode": False, "expected": expected},
                )
                for _ in range(args.repeats)
            ]
        )
        bare_decode = _best(
            [
                bench.run("bare loop + msgspec decode", {**bare_args, "decode": True, "expected": expected})
                for _ in range(args.repeats)
            ]
        )
        assert bare_decode.records == expected, (bare_decode.records, expected)
        big = _best([flow_run(f"{expected // 1000}k") for _ in range(args.repeats)])
        check_big = _check_truth(dsn, big.schema, truth, big.result)

        _print_table(
            f"{ENTITY} with their lines, SAP sandbox (HTTPS) -> PostgreSQL, best of {args.repeats} "
            f"(baseline: 1 run of {baseline_n} invoices)",
            [bare_bytes, bare_decode, big, small, baseline],
        )
        print("\n  ratios (of rates, records per second):")
        print(f"    flow / plain baseline          {big.rate / baseline.rate:7.2f}   (aim >= 10)")
        print(f"    flow / bare loop, bytes only   {big.rate / bare_bytes.rate:7.2f}   (aim >= 0.7)")
        print(f"    flow / bare loop + decode      {big.rate / bare_decode.rate:7.2f}")
        print(
            f"  logins: flow {big.extra['logins']} at {big.records}, {small.extra['logins']} at {small.records} "
            f"(aim 1); requests: flow {big.extra['requests']}, baseline {baseline.extra['requests']} "
            f"for {baseline.records}"
        )
        print(
            f"  peak RSS of the loading process: {small.extra['peak MiB']} MiB at {small.records} invoices, "
            f"{big.extra['peak MiB']} MiB at {big.records} (aim: no growth)"
        )
        print(f"  check at {small.records}: {check_small}")
        print(f"  check at {big.records}: {check_big}")
        _print_cpu_budget(big, bare_bytes)
        print(
            "  The baseline reads a subset (20 per page is slow); rates are compared, not times. "
            "CPU seconds: user + system of the loading process (all threads), of the sandbox process, "
            "and of every PostgreSQL process (the backends of all connections, exited ones included, "
            "and the server's own writers)."
        )
        load = os.getloadavg()
        print(f"  load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        served.stop()
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].startswith("{"):
        child_main(_child)
    else:
        raise SystemExit(main())
