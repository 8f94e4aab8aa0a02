"""A first load of invoices (with their lines) into PostgreSQL split into key ranges, under the SAP sandbox's cost model.

The sandbox runs in its own process over HTTPS with its cost model on (``CostModel.service_layer``
times ``--scale``: logins, reads by records x width and lines, one request at a time per session,
at most ``nodes`` served at once); PostgreSQL is the one at ``--pg-dsn``, where a throwaway
database is created and dropped at the end. Rows of the table, each an initial load of every
invoice into an empty warehouse schema:

* **plain baseline**: what a DAG written without this provider does (``benchmarks.warehouse_load``'s
  plain loop): ``requests`` with the server's default page of 20 whole records, ``insert_rows``.
  Under the cost model whole records are dear, so it reads ``--baseline-invoices`` (``$top``):
  rates are compared, not times.
* **single-session flow**: the unsplit load task's path (``sync_stream`` over the warehouse flow,
  one SAP session, two writer connections, the audit trail in each page's transaction).
* **N partitions**: the partitioned load as the DAG runs it on N Celery workers: the plan
  (``$count``, lowest and highest ``DocEntry``) in this process, then one process per range, all
  at once, range ``i`` on SAP session ``1 + i % sessions`` (``--sessions``, the SAP
  connection's ``max_sessions``, default 4: more ranges than sessions share them), then the group's load
  reading what changed since the plan. The time runs from the plan to the end of that last step,
  without the task processes' interpreter start (they start together once all are ready).

After each run the warehouse must equal the sandbox's truth (count, ``DocTotal`` sum, keys) with
every invoice created once; each run's peak RSS is the largest of its task processes.

    python -m benchmarks.partitioned_load [--invoices 200000] [--partitions 1,2,4,8] [--scale 0.25]
                                          [--nodes 4] [--sessions 4] [--baseline-invoices 1000]

At ``--scale 0.25`` a page of 500 invoices (about 2,000 lines) costs the modelled server about
1.1 s, so one session loads about 440 invoices/s. Takes about 30 minutes at the defaults on a
2-core machine (the single-session flow and 1 partition about 8 minutes each); ``--invoices 20000``
about 4. The smaller the scale, the sooner this machine's cores, not the modelled server, set the
pace of 4 partitions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import SANDBOX_CA, Measurement, child_main, control

COMPANY, USER, PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"
ENTITY = "Invoices"
SAP_CONN, WAREHOUSE_CONN, AUDIT_CONN = "sap_b1_wh_bench", "b1_wh_bench", "b1_audit_wh_bench"
QUIET = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"}


# --- measured in child processes (a task each) ------------------------------------------------


def _audit_session(args: dict[str, Any], task_id: str) -> Any:
    from airflow_provider_b1.sync import AuditTrail
    from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW

    audit = AuditTrail(AUDIT_CONN, schema=args["audit_schema"])
    return audit, audit.session(WAREHOUSE_FLOW.name, "partitioned_bench", args["run_id"], task_id, 1)


def _load(args: dict[str, Any]) -> dict[str, Any]:
    """One task: a range of the partitioned load (``key_range``), or the whole entity unsplit."""
    from airflow_provider_b1.sync import SyncWindow, sync_stream
    from airflow_provider_b1.sync.partitions import KeyRange, sync_range
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import DEFAULT_WRITERS
    from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW

    key_range = KeyRange.from_xcom(args["key_range"]) if args.get("key_range") else None
    options = {
        "sap_b1_conn_id": SAP_CONN,
        "warehouse_conn_id": WAREHOUSE_CONN,
        "warehouse_schema": args["schema"],
        "session_slot": key_range.slot if key_range else 0,
    }
    task_id = f"load_ranges[{key_range.index}]" if key_range else "load"
    stream = WAREHOUSE_FLOW.stream(ENTITY)
    audit, session_cm = _audit_session(args, task_id)
    _ready_and_wait(args)
    started = time.perf_counter()
    began = time.time()
    cpu = os.times()
    with WAREHOUSE_FLOW.open(options) as (source, sink), session_cm as session:
        if key_range is not None:
            summary = sync_range(
                WAREHOUSE_FLOW, stream, source, sink, session, key_range, writers=DEFAULT_WRITERS
            )
        else:
            window = SyncWindow("incremental", reason="first run: everything")
            summary = sync_stream(
                WAREHOUSE_FLOW, stream, source, sink, session, window, writers=DEFAULT_WRITERS
            )
    after = os.times()
    audit.close()
    return {
        "records": summary.read,
        "seconds": time.perf_counter() - started,
        "began": began,
        "ended": time.time(),
        "cpu": after.user + after.system - cpu.user - cpu.system,
        "created": summary.created,
        "failed": summary.failed,
    }


def _ready_and_wait(args: dict[str, Any]) -> None:
    """Say this task process is ready (imports done), then wait for the word to start: every task of
    a run starts at once, as on warm workers, whatever each interpreter took to start."""
    if not args.get("ready"):
        return
    Path(args["ready"]).write_text("ready")
    go = Path(args["go"])
    deadline = time.monotonic() + 600
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark never said go")
        time.sleep(0.01)


def _child(args: dict[str, Any]) -> dict[str, Any]:
    if args["kind"] == "plain":
        from benchmarks.warehouse_load import plain

        return plain(args)
    return _load(args)


def start_child(args: dict[str, Any], out: Path) -> subprocess.Popen:
    """``python -m benchmarks.partitioned_load <args> <out>`` in the background (a task process)."""
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.partitioned_load", json.dumps(args), str(out)],
        env={**os.environ, **QUIET},
    )


def run_children(jobs: list[dict[str, Any]], *, together: bool = True) -> list[dict[str, Any]]:
    """Run these task processes side by side; their JSON answers (with each one's peak RSS).

    ``together``: each process starts its load only once all of them are ready (interpreter
    started, modules imported, connections configured), so the time measured is the load's.
    """
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.json" for i in range(len(jobs))]
        readies = [Path(tmp) / f"{i}.ready" for i in range(len(jobs))]
        go = Path(tmp) / "go"
        if together:
            jobs = [{**job, "ready": str(r), "go": str(go)} for job, r in zip(jobs, readies)]
        children = [start_child(job, out) for job, out in zip(jobs, outs)]
        try:
            deadline = time.monotonic() + 600
            while together and not all(r.exists() for r in readies):
                if any(child.poll() not in (None, 0) for child in children) or time.monotonic() > deadline:
                    raise RuntimeError("a task process failed before it was ready")
                time.sleep(0.02)
            go.write_text("go")
            codes = [child.wait() for child in children]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        if any(codes):
            raise RuntimeError(f"a task process failed: exit codes {codes}")
        return [json.loads(out.read_text()) for out in outs]


# --- the parent ----------------------------------------------------------------------------------


class Warehouse:
    """The throwaway PostgreSQL database, a fresh schema per run, and the checks against SAP."""

    def __init__(self, pg_dsn: str) -> None:
        import psycopg

        self.name = f"b1_bench_{secrets.token_hex(4)}"
        self.admin = psycopg.connect(pg_dsn, autocommit=True)
        self.admin.execute(f"CREATE DATABASE {self.name}")
        self.dsn = psycopg.conninfo.make_conninfo(pg_dsn, dbname=self.name)
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        connection = json.dumps(
            {
                "conn_type": "postgres",
                "host": info.get("host", "127.0.0.1"),
                "port": int(info.get("port", 5432)),
                "login": info.get("user", "postgres"),
                "password": info.get("password"),
                "schema": self.name,
            }
        )
        os.environ[f"AIRFLOW_CONN_{WAREHOUSE_CONN.upper()}"] = connection
        os.environ[f"AIRFLOW_CONN_{AUDIT_CONN.upper()}"] = connection

    def fresh(self, tag: str) -> dict[str, str]:
        """An empty warehouse schema and audit trail, created outside any timing."""
        from airflow_provider_b1.sync import AuditTrail
        from airflow_provider_b1.warehouse.loader import open_loader

        schema = f"wh_{tag}_{secrets.token_hex(3)}"
        with open_loader(WAREHOUSE_CONN, schema=schema) as loader:
            loader.ensure_schema()
        with AuditTrail(AUDIT_CONN, schema=f"audit_{schema}") as audit:
            audit.ensure_schema()
        return {"schema": schema, "audit_schema": f"audit_{schema}", "run_id": schema}

    def check(self, schema: str, truth: dict[str, Any], created: int, failed: int) -> str:
        """``OK`` when the warehouse equals SAP (count, DocTotal sum, the very keys, once each) and
        every invoice was created once; else ``MISMATCH`` and the figures."""
        with self._connect() as conn:
            keys = [
                k for (k,) in conn.execute(f"SELECT doc_entry FROM {schema}.fact_sales_invoice ORDER BY 1")
            ]
            total, lines = conn.execute(
                f"SELECT sum(doc_total), (SELECT count(*) FROM {schema}.fact_sales_invoice_line) "
                f"FROM {schema}.fact_sales_invoice"
            ).fetchone()
        digest = hashlib.sha256("\n".join(str(k) for k in keys).encode()).hexdigest()
        ok = (
            len(keys) == len(set(keys)) == truth["count"] == created
            and f"{total:.2f}" == truth["doc_total_sum"]
            and digest == truth["keys_sha256"]
            and failed == 0
        )
        return (
            f"{'OK' if ok else 'MISMATCH'}: {len(keys):,} invoices ({lines:,} lines), DocTotal {total:.2f}, "
            f"{created:,} created, {failed} failed; SAP {truth['count']:,}, {truth['doc_total_sum']}"
        )

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.dsn)

    def drop(self) -> None:
        self.admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
        self.admin.close()


def configure_sap(base: str, ca: str, page_size: int | None = None) -> None:
    os.environ[f"AIRFLOW_CONN_{SAP_CONN.upper()}"] = json.dumps(
        {
            "conn_type": "sap_b1",
            "host": f"{base}/b1s/v2",
            "schema": COMPANY,
            "login": USER,
            "password": PASSWORD,
            "extra": {"ca_bundle": ca, **({"page_size": page_size} if page_size else {})},
        }
    )


def partitioned(
    warehouse: Warehouse, base: str, parts: int, truth: dict[str, Any], sessions: int | None = None
) -> Measurement:
    """One partitioned load: plan here, ranges in task processes side by side, then the finishing read."""
    from airflow_provider_b1.sync import SyncWindow, sync_stream
    from airflow_provider_b1.sync.partitions import PruningSink, plan_ranges
    from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW

    run = warehouse.fresh(f"p{parts}")
    before = control(base, "stats")
    options = {
        "sap_b1_conn_id": SAP_CONN,
        "warehouse_conn_id": WAREHOUSE_CONN,
        "warehouse_schema": run["schema"],
    }
    stream = WAREHOUSE_FLOW.stream(ENTITY)
    started = time.perf_counter()
    source = WAREHOUSE_FLOW.open_source(WAREHOUSE_FLOW.merged_options(options))
    try:
        if parts == 1:  # one range covering every key, on a session of its own
            ranges = [_whole(source, stream)]
        else:
            ranges = plan_ranges(source, stream, parts=parts, sessions=min(parts, sessions or parts))
    finally:
        source.close()
    planning = time.perf_counter() - started
    results = run_children([{**run, "kind": "range", "key_range": r.to_xcom()} for r in ranges])
    ranges_seconds = max(r["ended"] for r in results) - min(r["began"] for r in results)
    # the group's load ends it: what changed since the plan, from the plan's cursor, deleting the
    # ranges' checkpoints as it moves the entity's
    started = time.perf_counter()
    audit, session_cm = _audit_session(run, "load")
    with WAREHOUSE_FLOW.open(options) as (source, sink), session_cm as session:
        window = SyncWindow("incremental", cursor=ranges[0].cursor, reason="after the ranges")
        ending = PruningSink(sink, [r.name for r in ranges])
        finish = sync_stream(WAREHOUSE_FLOW, stream, source, ending, session, window)
    audit.close()
    # plan + ranges (from the first range's start to the last one's end) + the finishing read;
    # not the task processes' interpreter start (a warm Celery worker has it behind it)
    seconds = planning + ranges_seconds + time.perf_counter() - started
    after = control(base, "stats")
    created = sum(r["created"] for r in results) + finish.created
    failed = sum(r["failed"] for r in results) + finish.failed
    m = Measurement(f"{parts} partition{'s' if parts > 1 else ''}", created, seconds)
    m.extra = {
        "tasks": len(ranges),
        "sessions": len({r.slot for r in ranges}),
        "logins": after["logins"] - before["logins"],
        "peak MiB/task": max(r["peak_rss_mib"] for r in results),
        "peaks": [r["peak_rss_mib"] for r in results],
        "cpu s": round(sum(r["cpu"] for r in results), 1),
        "check": warehouse.check(run["schema"], truth, created, failed),
    }
    return m


def _whole(source: Any, stream: Any) -> Any:
    """The one range of a load "split" in one: every key, the cursor observed now."""
    from airflow_provider_b1.sync.partitions import KeyRange

    bounds = source.key_bounds(stream)
    start = source.cursor_at(stream, bounds.observed_at)
    return KeyRange(
        stream.name, 0, 1, slot=1, cursor=start.to_xcom() if start else None, planned=bounds.count
    )


def single(warehouse: Warehouse, base: str, truth: dict[str, Any]) -> Measurement:
    run = warehouse.fresh("single")
    before = control(base, "stats")
    (result,) = run_children([{**run, "kind": "flow"}])
    seconds = result["seconds"]
    after = control(base, "stats")
    m = Measurement("single-session flow (unsplit task)", result["created"], seconds)
    m.extra = {
        "tasks": 1,
        "logins": after["logins"] - before["logins"],
        "peak MiB/task": result["peak_rss_mib"],
        "cpu s": round(result["cpu"], 1),
        "check": warehouse.check(run["schema"], truth, result["created"], result["failed"]),
    }
    return m


def baseline(warehouse: Warehouse, base: str, ca: str, top: int) -> Measurement:
    import psycopg

    from benchmarks.warehouse_load import plain_ddl

    schema = f"plain_{secrets.token_hex(3)}"
    with psycopg.connect(warehouse.dsn) as conn:
        for statement in plain_ddl(schema):
            conn.execute(statement)
    job = {"kind": "plain", "schema": schema, "base": base, "ca": ca, "top": top}
    (result,) = run_children([job], together=False)
    m = Measurement("plain: page 20, full records, insert_rows", result["records"], result["seconds"])
    m.extra = {
        "tasks": 1,
        "logins": 1,
        "peak MiB/task": result["peak_rss_mib"],
        "cpu s": round(result["cpu"], 1),
    }
    m.extra["check"] = f"{result['records']:,} of the invoices ($top), rates compared"
    return m


def print_rows(title: str, rows: list[Measurement], reference: Measurement) -> None:
    print(f"\n{title}")
    keys = ["tasks", "sessions", "logins", "peak MiB/task", "cpu s"]
    print(
        f"  {'method':<42} {'invoices':>9} {'seconds':>8} {'inv/s':>8} {'speed-up':>8}"
        + "".join(f" {k:>13}" for k in keys)
    )
    for r in rows:
        print(
            f"  {r.name:<42} {r.records:>9} {r.seconds:>8.1f} {r.rate:>8.1f} {r.rate / reference.rate:>8.2f}"
            + "".join(f" {r.extra.get(k, ''):>13}" for k in keys)
        )
    print(f"  (speed-up = rate / rate of '{reference.name}')")
    for r in rows:
        print(f"  {r.name}: {r.extra['check']}")


def start_sandbox(invoices: int) -> Any:
    from airflow_provider_b1.sandbox.server import serve_in_subprocess

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="b1-bench-home-"))
    os.environ["B1_SESSION_CACHE_DIR"] = tempfile.mkdtemp(prefix="b1-bench-sessions-")
    served = serve_in_subprocess(invoices=invoices, tls=True, timeout=1800)
    SANDBOX_CA[served.base_url] = served.ca_path
    return served


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=200_000)
    parser.add_argument("--partitions", default="1,2,4,8", help="comma-separated partition counts")
    parser.add_argument("--scale", type=float, default=0.25, help="multiplies every time of the cost model")
    parser.add_argument("--nodes", type=int, default=4, help="requests the modelled server serves at once")
    parser.add_argument(
        "--sessions",
        type=int,
        default=4,
        help="SAP sessions the ranges share, as the SAP connection's max_sessions (range i on session 1 + i %% sessions)",
    )
    parser.add_argument("--baseline-invoices", type=int, default=1000)
    parser.add_argument("--no-single", action="store_true", help="leave out the single-session flow")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = parser.parse_args(argv)
    counts = [int(p) for p in args.partitions.split(",") if p.strip()]
    os.environ.update(QUIET)  # the plan and the finishing read run here: no progress lines either

    warehouse = Warehouse(args.pg_dsn)
    served = start_sandbox(args.invoices)
    try:
        base, ca = served.base_url, served.ca_path
        configure_sap(base, ca)
        cost = control(base, "cost", {"defaults": True, "scale": args.scale, "nodes": args.nodes})["cost"]
        settings = {
            k: cost[k]
            for k in (
                "scale",
                "nodes",
                "login_seconds",
                "read_seconds",
                "per_record_seconds",
                "per_line_read_seconds",
                "count_seconds",
            )
            if k in cost
        }
        truth = control(base, "truth/Invoices")
        load = os.getloadavg()
        print(
            f"SAP sandbox over HTTPS with its cost model {json.dumps(settings)} -> PostgreSQL database "
            f"{warehouse.name}; {truth['count']:,} invoices; {os.cpu_count()} CPUs, load average "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            flush=True,
        )
        rows = [baseline(warehouse, base, ca, min(args.baseline_invoices, truth["count"]))]
        print(f"  {rows[-1].name}: {rows[-1].rate:.1f} invoices/s", flush=True)
        if not args.no_single:
            rows.append(single(warehouse, base, truth))
            print(f"  {rows[-1].name}: {rows[-1].rate:.1f} invoices/s", flush=True)
        by_parts = {}
        for parts in counts:
            by_parts[parts] = partitioned(warehouse, base, parts, truth, sessions=args.sessions)
            rows.append(by_parts[parts])
            print(f"  {rows[-1].name}: {rows[-1].rate:.1f} invoices/s, {rows[-1].extra['check']}", flush=True)
        reference = by_parts.get(1) or rows[-1]
        print_rows(
            f"{ENTITY} with their lines, first load, SAP sandbox under its cost model -> PostgreSQL",
            rows,
            reference,
        )
        plain = rows[0]
        print(
            "\n  partitioned / plain baseline: "
            + ", ".join(f"{p}: {m.rate / plain.rate:.0f}x" for p, m in by_parts.items())
        )
        if 1 in by_parts:
            print(
                f"  speed-up against 1 partition (aim >= 0.8 x partitions up to {args.nodes} nodes, then flat):"
            )
            for parts, m in by_parts.items():
                aim = 0.8 * min(parts, args.nodes)
                ratio = m.rate / by_parts[1].rate
                print(
                    f"    {parts} partitions: {ratio:.2f} (aim >= {aim:.1f}) {'ok' if ratio >= aim else 'BELOW'}"
                )
        stats = control(base, "cost")["cost"]
        print(
            f"  the modelled server: {json.dumps({k: stats.get(k) for k in ('requests', 'max_concurrency', 'max_waiting', 'queued', 'queue_seconds') if k in stats})}"
        )
        load = os.getloadavg()
        print(f"  load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    finally:
        served.stop()
        warehouse.drop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1].startswith("{"):
        child_main(_child)
    else:
        raise SystemExit(main())
