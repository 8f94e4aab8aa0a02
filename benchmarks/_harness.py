"""What every benchmark shares: a sandbox in its own process, timing, and the ratio table."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests


@dataclass
class Measurement:
    """One measured way of doing the job."""

    name: str
    records: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def best_of(repeats: int, fn: Callable[[], Measurement]) -> Measurement:
    """Run ``fn`` ``repeats`` times and keep the fastest run (the least disturbed by noise)."""
    runs = [fn() for _ in range(repeats)]
    return max(runs, key=lambda m: m.rate)


def print_table(title: str, rows: list[Measurement], reference: Measurement) -> None:
    """Print records per second and the ratio of each row to ``reference``."""
    print(f"\n{title}")
    extras = sorted({k for r in rows for k in r.extra})
    header = f"  {'method':<44} {'records':>9} {'seconds':>8} {'rec/s':>10} {'ratio':>7}"
    print(header + "".join(f" {k:>14}" for k in extras))
    for r in rows:
        line = (
            f"  {r.name:<44} {r.records:>9} {r.seconds:>8.2f} {r.rate:>10.0f} {r.rate / reference.rate:>7.2f}"
        )
        print(line + "".join(f" {r.extra.get(k, ''):>14}" for k in extras))
    print(f"  (ratio = rate / rate of '{reference.name}')")


#: CA bundle of each sandbox a benchmark started (their certificates are self-signed).
SANDBOX_CA: dict[str, str] = {}


def control(base_url: str, path: str, payload: dict | None = None) -> dict:
    """Call the sandbox's control plane (``/_sandbox/...``)."""
    url = f"{base_url}/_sandbox/{path}"
    verify = SANDBOX_CA.get(base_url, True)
    if payload is None:
        response = requests.get(url, timeout=120, verify=verify)
    else:
        response = requests.post(url, json=payload, timeout=120, verify=verify)
    response.raise_for_status()
    return response.json() if response.content else {}


def run_in_child(module: str, args: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module`` with JSON args; return its JSON answer plus its peak RSS in MiB.

    A child process gives every measurement its own interpreter, so peak memory is that of the
    loading process alone and one measurement cannot warm the next.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        child_env = {**os.environ, **(env or {})}
        subprocess.run(
            [sys.executable, "-m", module, json.dumps(args), str(out)],
            check=True,
            env=child_env,
        )
        return json.loads(out.read_text())


def child_main(work: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Entry point of a benchmark child: run ``work(args)``, add timing and peak RSS, write JSON."""
    args = json.loads(sys.argv[1])
    started = time.perf_counter()
    result = work(args)
    result.setdefault("seconds", time.perf_counter() - started)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    Path(sys.argv[2]).write_text(json.dumps(result))
