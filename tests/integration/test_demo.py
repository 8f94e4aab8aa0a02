"""``b1-demo`` as a user runs it: in a process of its own, from a folder of its own (so its
Airflow home is ``.b1-demo/`` there, as in a checkout), with small sandboxes (``--invoices 200``).

What the console may show is bounded: apart from the demo's two tables (the per-entity counts of
step 1 and the SAP-versus-warehouse comparisons of step 2: each row starts with an SAP entity
name, each comparison with an ``entity`` header line), at most 60 non-blank lines. Airflow's and
the tasks' logs belong in ``.b1-demo/demo.log``.

The first test migrates the demo's metadata database; the others start from the migrated copy
it leaves, so the module takes about two minutes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_b1.demo import ENTITIES

FINAL = (
    "All flows finished: the warehouse equals SAP, SAP holds ServiceTitan's receivables, "
    "Salesforce and SAP agree both ways, Teams got each document's card once, and SAP "
    "approvals were decided from Teams."
)
CONSOLE_LINES = 60
AIRFLOW_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* \[")  # structlog's console format


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


def _env() -> dict[str, str]:
    """The user's environment: none of the test session's Airflow home, connections or caches."""
    return {
        name: value for name, value in os.environ.items() if not name.startswith(("AIRFLOW", "B1_", "PYTEST"))
    }


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow_provider_b1.demo", "--invoices", "200", *args]


def _table_row(line: str) -> bool:
    words = line.split()
    return bool(words) and (words[0] in ENTITIES or words[0] == "entity")


def test_demo_shows_its_steps_and_logs_airflow_to_a_file(demo_dir: Path) -> None:
    started = time.perf_counter()
    done = subprocess.run(_command(), cwd=demo_dir, env=_env(), capture_output=True, text=True, timeout=240)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == FINAL
    said = [line for line in lines if line.strip() and not _table_row(line)]
    assert len(said) <= CONSOLE_LINES, "\n".join(said)
    assert not [line for line in lines if AIRFLOW_LOG_LINE.match(line) or "[DAG TEST]" in line]
    assert done.stderr == ""
    log = demo_dir / ".b1-demo" / "demo.log"
    assert f"logs go to {log}" in done.stdout
    text = log.read_text()
    assert "[DAG TEST] end task task_id=load_master" in text  # dag.test()'s own lines
    assert "Task instance state updated" in text  # the in-process execution API's
    assert "BusinessPartners: done, 60 read" in text  # a task's
    assert (demo_dir / ".b1-demo" / "airflow.db").exists()
    print(f"demo in {elapsed:.1f} s, {len(said)} lines besides the tables")


def test_a_failed_task_ends_the_demo_at_once_with_its_error(demo_dir: Path) -> None:
    """A warehouse that cannot be opened fails the first task of sap_b1_to_warehouse, whose DAG
    retries twice, minutes apart: the demo must not wait for them."""
    warehouse = json.dumps({"conn_type": "sqlite", "host": str(demo_dir / "missing" / "warehouse.db")})
    started = time.perf_counter()
    done = subprocess.run(
        _command("--warehouse", warehouse),
        cwd=demo_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert elapsed < 45, f"{elapsed:.0f} s"
    out = done.stdout
    assert "The demo stopped: sap_b1_to_warehouse failed." in out
    assert "task load_master: OperationalError: unable to open database file" in out
    log = demo_dir / ".b1-demo" / "demo.log"
    assert f"The full log (Airflow's and the tasks'): {log}" in out
    assert "unable to open database file" in log.read_text()
    assert FINAL not in out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_demo_and_its_sandboxes(demo_dir: Path, signum: signal.Signals) -> None:
    demo = subprocess.Popen(
        _command(), cwd=demo_dir, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert demo.stdout is not None
        port = None
        for line in demo.stdout:  # until the first DAG run is under way
            if found := re.search(r"SAP Business One sandbox at https://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
            if line.startswith("2. "):
                break
        assert port, "the demo never started its sandboxes"
        time.sleep(1)
        sent = time.perf_counter()
        demo.send_signal(signum)
        rest, _ = demo.communicate(timeout=20)
        elapsed = time.perf_counter() - sent
    finally:
        demo.kill()
        demo.wait()
    assert demo.returncode == 128 + signum
    assert elapsed < 5, f"{elapsed:.1f} s"
    assert f"Interrupted ({signum.name})" in rest
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
