"""Helpers and fixtures for whole-DAG runs of the real DAG files against the SAP and Looker sandboxes and a real PostgreSQL.

``flow`` (function-scoped) puts everything in place for one test: both sandboxes back in their
seeded state without faults, an empty warehouse (schema ``sap_b1``) and audit trail (schema
``b1_audit``) in the session's PostgreSQL database, no earlier runs of the DAGs under test in the
Airflow metadata database (so no cursor leaks from one test into the next), and the four
connections the DAGs use set through ``AIRFLOW_CONN_*``. The sandboxes and the migrated metadata
database are shared by the whole session (``tests/conftest.py``).

Each DAG run uses a fresh DAG object loaded from its file (``load_dag``): ``dag.test()`` leaves
one run's conf in the object's params, and tests change retries per object.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_IDS = ("sap_b1_to_warehouse", "looker_refresh", "b1_replay_failed", "servicetitan_to_sap_b1")
WAREHOUSE_SCHEMA = "sap_b1"
AUDIT_SCHEMA = "b1_audit"
INVOICES = 1500


def load_dag(name: str, **task_overrides: Any) -> Any:
    """A fresh DAG object from ``dags/<name>.py``; ``task_overrides`` are set on every task (e.g. retries)."""
    spec = importlib.util.spec_from_file_location(
        f"{name}_under_test_{secrets.token_hex(3)}", DAGS / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = getattr(module, name)()
    for task in dag.tasks:
        for attribute, value in task_overrides.items():
            setattr(task, attribute, value)
    return dag


def forget_runs(*dag_ids: str) -> None:
    """Delete every run of these DAGs (and their task instances and XComs) from the metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for model in (XComModel, TaskInstanceHistory, TaskInstance, DagRun):
            session.query(model).filter(model.dag_id.in_(dag_ids)).delete(synchronize_session=False)


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id: state}`` of a finished run (mapped tasks: the state of each map index as ``id[i]``)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {
            (ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
            for ti in dag_run.get_task_instances(session=session)
        }


def xcoms(dag_id: str, run_id: str) -> dict[str, Any]:
    """``{task_id: deserialized return value}`` of one run, plus ``{task_id: size in bytes}`` as ``sizes``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    values: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    with create_session() as session:
        for row in session.query(XComModel).filter(XComModel.dag_id == dag_id, XComModel.run_id == run_id):
            key = row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
            raw = row.value
            sizes[f"{key}:{row.key}"] = len(raw if isinstance(raw, (bytes, str)) else repr(raw))
            values[f"{key}:{row.key}"] = XComModel.deserialize_value(row)
    return {"values": values, "sizes": sizes}


def rerun_task(dag: Any, dag_run: Any, task_id: str) -> str:
    """Clear one task of a finished run and run it again (its next try), as "Clear" in the UI would.

    Runs it in process the way ``dag.test()`` runs tasks; returns the task's new state.
    """
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session)
        ti.prepare_db_for_next_try(session)
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.merge(ti)
    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, session=session)
        session.expunge(ti)
    _run_task(ti=ti, task=dag.task_dict[task_id])
    with create_session() as session:
        return str(dag_run.get_task_instance(task_id, session=session).state)


@dataclass
class Flow:
    """Everything a DAG test needs: sandboxes, warehouse, audit trail, helpers."""

    sap: Any
    looker: Any
    pg: dict
    session_cache: Path
    _conns: list = field(default_factory=list)

    # -- warehouse -------------------------------------------------------------------------

    def query(self, sql: str, params: Any = None) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.pg["dsn"], autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def tables(self) -> list[str]:
        return [
            r[0]
            for r in self.query(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
                (WAREHOUSE_SCHEMA,),
            )
        ]

    def digest(self) -> dict[str, tuple[int, str]]:
        """``{table: (rows, sha256 of its sorted rows)}`` of every warehouse table, load timestamps left
        out, and the sync checkpoints too (they name the run that last read each entity)."""
        columns: dict[str, list[str]] = {}
        for table, column, data_type in self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (WAREHOUSE_SCHEMA,),
        ):
            if data_type.startswith("timestamp") or column.endswith("_at") or table == "sync_checkpoint":
                continue  # loaded_at, applied_at: when, not what; checkpoints: which run, not what
            columns.setdefault(table, []).append(f'"{column}"')
        out = {}
        for table, cols in columns.items():
            rows = self.query(f"SELECT {', '.join(cols)} FROM {WAREHOUSE_SCHEMA}.{table}")
            text = "\n".join(sorted(repr(r) for r in rows))
            out[table] = (len(rows), hashlib.sha256(text.encode()).hexdigest())
        return out

    def figures(self, entity: str) -> tuple[int, Decimal | None]:
        """Warehouse count and DocTotal sum of an entity (inferred partners excluded), as reconcile counts."""
        from airflow_provider_b1.warehouse.entities import entity_spec
        from airflow_provider_b1.warehouse.loader import PostgresLoader

        loader = PostgresLoader(_pg_connect(self.pg), WAREHOUSE_SCHEMA)
        try:
            return loader.stats(entity_spec(entity))
        finally:
            loader.close()

    def differences(self, entities: Any = None) -> dict[str, Any]:
        """Entities whose warehouse count or DocTotal sum differs from ``/_sandbox/truth``: ``{entity: (truth, warehouse)}``."""
        return sap_differences(self.sap, self.figures, entities)

    # -- audit trail -----------------------------------------------------------------------

    def audit(self) -> Any:
        from airflow_provider_b1.sync import AuditTrail

        trail = AuditTrail("b1_audit_default", schema=AUDIT_SCHEMA)
        self._conns.append(trail)
        return trail

    def audit_rows(self, where: str = "TRUE", params: Any = None) -> list[dict]:
        rows = self.query(
            "SELECT dag_id, run_id, task_id, try_number, source_entity, source_key, action, error, attempt "
            f"FROM {AUDIT_SCHEMA}.audit_record WHERE {where} ORDER BY id",
            params,
        )
        names = ("dag_id", "run_id", "task_id", "try_number", "entity", "key", "action", "error", "attempt")
        return [dict(zip(names, r)) for r in rows]

    def audit_counts(self, run_id: str, task_id: str | None = None) -> dict[str, int]:
        sql = f"SELECT action, count(*) FROM {AUDIT_SCHEMA}.audit_record WHERE run_id = %s"
        params: list[Any] = [run_id]
        if task_id:
            sql += " AND task_id = %s"
            params.append(task_id)
        counts = dict.fromkeys(("created", "updated", "unchanged", "skipped", "failed"), 0)
        counts.update({a: n for a, n in self.query(sql + " GROUP BY action", params)})
        return counts

    def close(self) -> None:
        for trail in self._conns:
            trail.close()


def sap_differences(
    sap: Any, figures: Callable[[str], tuple[int, Decimal | None]], entities: Any = None
) -> dict[str, Any]:
    """``{entity: (SAP's, the warehouse's)}`` where the count or the DocTotal sum differ; ``figures``
    gives the warehouse's ``(count, DocTotal sum)`` of an entity."""
    from airflow_provider_b1.warehouse.entities import ENTITIES

    diffs = {}
    for entity in entities or ENTITIES:
        truth = sap.truth(entity)
        count, total = figures(entity)
        mine = {"count": count, "doc_total_sum": None}
        if truth["doc_total_sum"] is not None:
            mine["doc_total_sum"] = str((total or Decimal(0)).quantize(Decimal("0.01")))
        theirs = {"count": truth["count"], "doc_total_sum": truth["doc_total_sum"]}
        if mine != theirs:
            diffs[entity] = (theirs, mine)
    return diffs


def _pg_connect(pg: dict) -> Any:
    import psycopg

    return psycopg.connect(pg["dsn"])


def _drop_schemas(pg: dict) -> None:
    import psycopg

    with psycopg.connect(pg["dsn"], autocommit=True) as conn:
        for schema in (WAREHOUSE_SCHEMA, AUDIT_SCHEMA):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture
def flow(
    airflow_db,
    pg_database,
    pg_airflow_connection,
    sap_sandbox,
    looker_sandbox,
    set_connection,
    monkeypatch,
    tmp_path,
) -> Iterator[Flow]:
    """A clean slate for one whole-DAG test (see the module documentation)."""
    import gc

    sap_sandbox.restore(invoices=INVOICES)
    looker_sandbox.restore()
    _drop_schemas(pg_database)
    forget_runs(*DAG_IDS)
    cache = tmp_path / "sessions"
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(cache))
    set_connection("sap_b1_default", sap_sandbox.connection())
    set_connection("looker_default", looker_sandbox.connection())
    set_connection("b1_warehouse_default", pg_airflow_connection)
    set_connection("b1_audit_default", pg_airflow_connection)
    state = Flow(sap_sandbox, looker_sandbox, pg_database, cache)
    try:
        yield state
    finally:
        state.close()
        sap_sandbox.faults()
        gc.collect()  # hooks' keep-alive connections to the sandboxes


#: The second SAP company of the multi-company DAG tests: its connection id and CompanyDB.
EU, EU_COMPANY_DB = "sap_b1_eu", "SBODEMOEU"


@pytest.fixture(scope="module")
def eu_sandbox(sap_sandbox) -> Iterator[Any]:
    """A second SAP company on a Service Layer of its own (same user as the shared one, other data,
    CompanyDB ``SBODEMOEU``, Berlin time); a test restores the invoice count it wants."""
    import gc

    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    login, password = sap_sandbox.connection()["login"], sap_sandbox.connection()["password"]
    app = create_app(
        SapSandboxConfig(
            seed=7, invoices=100, company_db=EU_COMPANY_DB, users={login: password}, timezone="Europe/Berlin"
        )
    )
    served = serve_in_thread(app, tls=True)
    try:
        yield type(sap_sandbox)(served.base_url, str(served.ca_path), served.cert_sha256, app)
    finally:
        gc.collect()
        served.stop()


def eu_connection(eu_sandbox: Any, **overrides: Any) -> dict[str, Any]:
    """The second company's SAP connection (``overrides`` replace its fields: another host...)."""
    connection = eu_sandbox.connection(schema=EU_COMPANY_DB)
    connection["extra"] = {**connection["extra"], "timezone": "Europe/Berlin"}
    return {**connection, **overrides}


@pytest.fixture
def dag_of() -> Callable[..., Any]:
    """``dag_of("sap_b1_to_warehouse", retries=0)``: a fresh DAG object from its file."""
    return load_dag


def backfill_test(dag: Any, logical_date: Any) -> Any:
    """Like ``dag.test(logical_date=...)``, but the run is a backfill run (``run_type`` ``backfill``).

    ``dag.test()`` always creates a manual run; here its run factory is swapped for one that
    creates the run a backfill of that date would create, so the tasks see a backfill run with
    the timetable's data interval, and the rest of ``dag.test()`` (dependencies, in-process
    tasks, XComs) is unchanged.
    """
    from unittest import mock

    import airflow.models.dagrun as dagrun_module
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    def create_backfill_run(*, dag, logical_date, data_interval, conf, triggered_by, **kwargs):
        return dag.create_dagrun(
            run_id=dagrun_module.DagRun.generate_run_id(
                run_type=DagRunType.BACKFILL_JOB, logical_date=logical_date, run_after=logical_date
            ),
            logical_date=logical_date,
            data_interval=data_interval,
            run_after=logical_date,
            conf=conf,
            run_type=DagRunType.BACKFILL_JOB,
            state=DagRunState.RUNNING,
            triggered_by=triggered_by,
            triggering_user_name=kwargs["triggering_user_name"],
            start_date=kwargs["start_date"],
            session=kwargs["session"],
        )

    with mock.patch.object(dagrun_module, "get_or_create_dagrun", create_backfill_run):
        return dag.test(logical_date=logical_date)


class _Recording(dict):
    """A dict that remembers every key ever set (session ids, tokens), even after they are dropped."""

    def __init__(self, seen: set) -> None:
        super().__init__()
        self.seen = seen

    def __setitem__(self, key: Any, value: Any) -> None:
        self.seen.add(key)
        super().__setitem__(key, value)


@dataclass
class RecordedSecrets:
    """SAP session ids and Looker tokens the sandboxes handed out during a test, and a log checker."""

    sap_session_ids: set = field(default_factory=set)
    looker_tokens: set = field(default_factory=set)

    @staticmethod
    def log_files() -> list[str]:
        """Every file Airflow wrote under ``$AIRFLOW_HOME/logs`` (task logs, if any), as text."""
        import os

        root = Path(os.environ["AIRFLOW_HOME"]) / "logs"
        return (
            [p.read_text(errors="replace") for p in root.rglob("*") if p.is_file()] if root.exists() else []
        )

    def assert_absent(self, *, secrets: Any, caplog: Any = None, capsys: Any = None, texts: Any = ()) -> int:
        """Assert none of ``secrets`` appears in captured logs, stdout/stderr, task log files or ``texts``.

        Returns how many characters were searched (so a test can check something was captured).
        """
        haystacks = list(texts) + self.log_files()
        if caplog is not None:
            haystacks += [caplog.text]
            haystacks += [str(r.args) for r in caplog.records if r.args]
        if capsys is not None:
            captured = capsys.readouterr()
            haystacks += [captured.out, captured.err]
        secrets = [s for s in secrets if s]
        for text in haystacks:
            for secret in secrets:
                assert secret not in text, f"a secret ({secret[:3]}...) appears in the output"
        return sum(len(t) for t in haystacks)


@pytest.fixture
def recorded_secrets(flow: Flow) -> RecordedSecrets:
    """Record every SAP session id and Looker token the sandboxes issue from now on."""
    recorded = RecordedSecrets()
    flow.sap.app.state.sandbox.sessions = _Recording(recorded.sap_session_ids)
    flow.looker.app.state.looker.tokens = _Recording(recorded.looker_tokens)
    return recorded


def use_dag_folder(monkeypatch: Any, folder: Path, name: str) -> None:
    """Add ``folder`` to Airflow's DAG bundles: ``dag.test()`` runs DAGs from a bundle's folder."""
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))


def salesforce_writes(sandbox: Any) -> tuple[int, int]:
    """(write calls, records written) the Salesforce sandbox counted."""
    stats = sandbox.stats()
    return stats["write_calls"], sum(stats["records_written"].values())


def kill_mid_load(
    script: Path, run_id: str, loaded: Callable[[], int], *, at_least: int = 1500, args: tuple[str, ...] = ()
) -> None:
    """Run ``script run_id 1 *args`` (a task's first try) in a child process, as a worker would, and
    kill it with SIGKILL once ``loaded()`` reports at least ``at_least`` rows committed (three pages
    of 500 by default)."""
    child = subprocess.Popen([sys.executable, str(script), run_id, "1", *args], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while loaded() < at_least:
            assert child.poll() is None, f"the load ended before it could be killed ({child.returncode})"
            assert time.monotonic() < deadline, "the child never committed a page"
            time.sleep(0.1)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
