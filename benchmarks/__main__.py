"""Every benchmark in turn, with modest defaults: ``python -m benchmarks`` (or ``./run bench``).

* :mod:`benchmarks.sap_read`: reading 10,000 invoices, hook against bare loops (about 1 minute).
* :mod:`benchmarks.warehouse_mapping`: CPU per invoice of the warehouse's mapper against decode +
  hash of the same bytes (seconds, no server).
* :mod:`benchmarks.warehouse_load`: 100,000 invoices with their lines into PostgreSQL, the
  warehouse flow against a plain baseline and the sandbox's bare serving rate (about 4 minutes).
* :mod:`benchmarks.servicetitan_post`: 2,000 ServiceTitan invoices posted into SAP under the
  sandbox's cost model, the flow on 2, 4 and 8 sessions against one POST at a time (about 3 minutes).
* :mod:`benchmarks.partitioned_load`: a first load of 200,000 invoices under the sandbox's cost model,
  split into 1, 2, 4 and 8 key ranges run as task processes side by side, against the
  single-session flow and a plain baseline (about 30 minutes).
* :mod:`benchmarks.warehouse_scale`: a first load of 100,000 and then 1,000,000 invoices without a cost
  model: peak memory of each task process and CPU per invoice (about 15 minutes).

Run a module alone to pass it options (``python -m benchmarks.warehouse_load --help``).
"""

from __future__ import annotations

import time

from benchmarks import (
    partitioned_load,
    sap_read,
    servicetitan_post,
    warehouse_load,
    warehouse_mapping,
    warehouse_scale,
)

BENCHMARKS = (
    ("sap_read", sap_read.main, ["--invoices", "10000", "--repeats", "2"]),
    ("warehouse_mapping", warehouse_mapping.main, []),
    ("warehouse_load", warehouse_load.main, ["--invoices", "100000", "--baseline-invoices", "5000"]),
    ("servicetitan_post", servicetitan_post.main, []),
    ("partitioned_load", partitioned_load.main, []),
    ("warehouse_scale", warehouse_scale.main, []),
)


def main() -> int:
    for name, run, argv in BENCHMARKS:
        started = time.perf_counter()
        print(f"\n=== benchmarks.{name} {' '.join(argv)}", flush=True)
        status = run(argv)
        print(f"=== benchmarks.{name}: {time.perf_counter() - started:.0f} s", flush=True)
        if status:
            return status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
