"""A first load of a million invoices (with their lines) into PostgreSQL, split into ranges, without any cost model.

What the code itself costs at scale: the SAP sandbox answers at once (no cost model, no latency),
so the run measures how the task processes, the sandbox and PostgreSQL share this machine's
cores. For each size (default 100,000 then 1,000,000 invoices) a sandbox holding exactly that
many is started in its own process, and the partitioned load runs as in
:mod:`benchmarks.partitioned_load` (the plan, one task process per range side by side, then the
finishing read). Printed per size: the time and rate, the **peak RSS of each task process**
(``getrusage`` in the process that ran the range: it must stay flat from 100k to 1M, since nothing
is kept from one page to the next), and **CPU per invoice** of the task processes, the sandbox and
PostgreSQL. The warehouse must equal the sandbox's truth after each run.

    python -m benchmarks.warehouse_scale [--sizes 100000,1000000] [--partitions 4]

Takes about 15 minutes at the defaults on a 2-core machine (most of it the 1M run and seeding
its sandbox); ``--sizes 10000,100000`` about 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from benchmarks import partitioned_load as bench
from benchmarks._harness import control
from benchmarks.warehouse_load import _cpu_seconds, _postgres_cpu_seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated invoice counts")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres dbname=postgres")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    os.environ.update(bench.QUIET)

    warehouse = bench.Warehouse(args.pg_dsn)
    rows = []
    try:
        for size in sizes:
            served = bench.start_sandbox(size)
            try:
                base = served.base_url
                bench.configure_sap(base, served.ca_path)
                truth = control(base, "truth/Invoices")
                load = os.getloadavg()
                print(
                    f"{truth['count']:,} invoices, no cost model, {args.partitions} partitions; "
                    f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
                    flush=True,
                )
                sandbox_cpu = _cpu_seconds([served.info["pid"]])
                pg_cpu = _postgres_cpu_seconds()
                m = bench.partitioned(warehouse, base, args.partitions, truth)
                m.extra["cpu s sandbox"] = round(_cpu_seconds([served.info["pid"]]) - sandbox_cpu, 1)
                m.extra["cpu s postgres"] = (
                    round(_postgres_cpu_seconds() - pg_cpu, 1) if pg_cpu is not None else None
                )
                rows.append(m)
                print(f"  {m.records:,} invoices in {m.seconds:.0f} s: {m.extra['check']}", flush=True)
            finally:
                served.stop()
    finally:
        warehouse.drop()

    print(f"\nFirst load into PostgreSQL, {args.partitions} partitions, no cost model (the code's own cost)")
    print(
        f"  {'invoices':>10} {'seconds':>8} {'inv/s':>8} {'peak MiB/task':>14} {'tasks MiB':>24} "
        f"{'us/inv tasks':>13} {'us/inv sandbox':>15} {'us/inv postgres':>16}"
    )
    for m in rows:
        per = {k: m.extra.get(k) for k in ("cpu s", "cpu s sandbox", "cpu s postgres")}
        us = {
            k: (f"{v / m.records * 1e6:.0f}" if isinstance(v, (int, float)) else "") for k, v in per.items()
        }
        print(
            f"  {m.records:>10,} {m.seconds:>8.0f} {m.rate:>8.0f} {m.extra['peak MiB/task']:>14} "
            f"{' '.join(str(x) for x in m.extra['peaks']):>24} {us['cpu s']:>13} {us['cpu s sandbox']:>15} "
            f"{us['cpu s postgres']:>16}"
        )
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        growth = last.extra["peak MiB/task"] / first.extra["peak MiB/task"]
        print(
            f"  peak RSS per task at {last.records:,} / at {first.records:,}: {growth:.2f} "
            f"(aim: flat, about 1.0, for {last.records / first.records:.0f}x the invoices)"
        )
    for m in rows:
        print(f"  {m.records:,}: {m.extra['check']}")
    print(
        "  CPU: user + system seconds of the task processes while they loaded, of the sandbox process, "
        "and of every PostgreSQL process, per invoice loaded."
    )
    load = os.getloadavg()
    print(f"  load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
