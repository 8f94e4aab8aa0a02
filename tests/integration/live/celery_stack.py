"""The CeleryExecutor deployment of ``docker-compose.yaml``, run natively on one machine.

What the compose file starts as containers, :func:`celery_topology` starts as processes on
loopback: PostgreSQL for Airflow's metadata and for the warehouse (two throwaway databases),
Redis as the broker, the api-server, scheduler, dag-processor and triggerer (through
:func:`live_airflow.start_airflow`) and two Celery workers, each with a session cache of its own
(``B1_SESSION_CACHE_DIR``), as two worker machines would have. The provider is installed (this
environment), the DAGs are deployed (copied into the DAGs folder), and the SAP Business One
sandbox serves every component over HTTPS.

:data:`SHARED_SETTINGS` and :data:`WORKER_SETTINGS` name what every component, and each worker,
is given; the compose file must give the same (``tests/unit/test_deployment.py`` compares them).

:func:`celery_topology` deploys the DAGs of the flows asked for (``warehouse``, ``teams``,
``servicetitan``, ``salesforce``, ``approvals``) with their sandboxes. ``tests/integration/live/test_celery_topology.py``
runs the warehouse DAG through it; ``./run celery`` (``python tests/integration/live/celery_stack.py``)
runs every flow's DAG one after the other, printing each step and its time, and checks what each
one wrote: the warehouse against SAP, the cards the Teams sandbox received against the SAP
documents the routing sends (and that a second run sends none), and an approval request asked
in Teams, answered through Airflow's REST API and decided in SAP.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parents[1]):  # live_helpers, live_airflow (also when run as a script)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import requests  # noqa: E402
from live_airflow import (  # noqa: E402
    LiveAirflow,
    LiveAirflowError,
    free_port,
    postgres_database,
    start_airflow,
)
from live_helpers import (  # noqa: E402
    DAGS,
    PG_HOST,
    PG_PORT,
    PG_USER,
    SAP_COMPANY,
    SAP_PASSWORD,
    SAP_USER,
    SERVICETITAN_DAG,
    WAREHOUSE_DAG,
)

SHARED_SETTINGS: dict[str, str | None] = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
    # Encrypts connection passwords in the metadata database: every component decrypts them.
    "AIRFLOW__CORE__FERNET_KEY": None,
    # Where task processes on the workers reach the api-server's execution API.
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": None,
    # Signs the task tokens the scheduler hands out and the api-server checks.
    "AIRFLOW__API_AUTH__JWT_SECRET": None,
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": None,
    "AIRFLOW__CELERY__BROKER_URL": None,
    "AIRFLOW__CELERY__RESULT_BACKEND": None,
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": None,
    "AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT": None,
    "AIRFLOW_CONN_B1_AUDIT_DEFAULT": None,
    "AIRFLOW_CONN_SAP_B1_DEFAULT": None,
}
"""What every component is given: ``{variable: the value it must have}`` (``None``: set per
deployment, but the same on every component)."""

WORKER_SETTINGS = ("B1_SESSION_CACHE_DIR",)
"""What each worker is given besides: its own SAP session cache (one login per worker machine)."""

COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
"""Compose service -> the ``airflow`` command it runs (natively: each component's process)."""

NATIVE_ONLY = {
    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": "a queue of its own, on a Redis other runs may share",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "each worker's log server on a port of its own",
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "only the runs it triggers, none on the DAG's schedule",
    "B1_TEAMS_CACHE_DIR": "each worker's Teams token cache of its own, as on a machine of its own "
    "(a compose worker keeps it in its container's $AIRFLOW_HOME/teams_tokens)",
}
"""Settings the native run needs because its components share one machine, and why."""

COMPOSE_ONLY = {
    "AIRFLOW_CONN_LOOKER_DEFAULT": "looker_refresh's connection; the native run deploys no Looker DAG",
}
"""Settings of the compose file the native run does without, and why."""

FLOW_CONNECTIONS = {
    "teams": ("AIRFLOW_CONN_B1_TEAMS_WEBHOOK_DEFAULT", "AIRFLOW_CONN_B1_TEAMS_BOT_DEFAULT"),
    "servicetitan": ("AIRFLOW_CONN_SERVICETITAN_DEFAULT",),
    "salesforce": ("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT",),
    "approvals": ("AIRFLOW_CONN_SAP_B1_APPROVER",),
}
"""The connections each flow besides the warehouse adds to every component (``approvals`` sends
its cards through the bot of ``teams`` too)."""

WORKERS = ("worker-1", "worker-2")
WORKER_CONCURRENCY = 2
"""Task slots per worker: the warehouse DAG's four parallel tasks then fill both workers."""
SAP_INVOICES = 60
RUN_TIMEOUT = 150.0
STOP_GRACE = 15.0
"""Seconds each component has to exit on SIGTERM before SIGKILL: on a loaded machine the workers'
warm shutdown takes up to about 8 s, the api-server's exit up to about 14 s after it logs that it
finished."""
REDIS_URL = os.environ.get("B1_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SALESFORCE_DAG = "sap_b1_salesforce"
TEAMS_DAG = "sap_b1_to_teams"
TEAMS_STREAMS = ("PurchaseOrders", "PurchaseInvoices", "IncomingPayments", "VendorPayments")
TEAMS_WEBHOOK_CHANNEL = 0
"""The Teams sandbox's channel behind ``b1_teams_webhook_default`` (Finance / General)."""
APPROVALS_DAG = "sap_b1_approvals"
APPROVER, APPROVER_PASSWORD = "approver", "approver-secret-1"  # the SAP sandbox's default approver
APPROVAL_THRESHOLD = 10_000
"""Purchase orders of this total or more wait for an approval in SAP."""
APPROVAL_VENDOR = "V00002"
"""A vendor of the SAP sandbox billing in the company's local currency (USD)."""
APPROVAL_USER = "ada@contoso.example"
"""Whose Teams chat the approval card goes to (``teams_to``)."""
FLOWS = {
    "warehouse": (WAREHOUSE_DAG, ["sap_b1_to_warehouse.py"]),
    "teams": (TEAMS_DAG, ["sap_b1_to_teams.py", "teams_routing.yaml"]),
    "servicetitan": (SERVICETITAN_DAG, ["servicetitan_to_sap_b1.py", "servicetitan_mappings.yaml"]),
    "salesforce": (SALESFORCE_DAG, ["sap_b1_salesforce.py", "salesforce_mapping.yaml"]),
    "approvals": (APPROVALS_DAG, ["sap_b1_approvals.py"]),
}
"""Flow -> its DAG and the files deployed for it, in the order they run (the later ones write to
SAP; those before only read it)."""
WAREHOUSE_SCHEMA = "sap_b1"


@dataclass
class Worker:
    """One Celery worker process: its name, session cache and log."""

    name: str
    cache_dir: Path
    log: Path
    process: subprocess.Popen

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def task_ids(self, run_id: str) -> list[str]:
        """The tasks of ``run_id`` this worker was handed (from its log), in order."""
        handed = re.findall(
            r"Executing workload in Celery: .*?task_id='([^']+)'.*?run_id='([^']+)'", self.output()
        )
        return [task for task, run in handed if run == run_id]

    def session_files(self) -> list[Path]:
        return sorted(p for p in self.cache_dir.glob("*") if p.is_file() and not p.name.endswith(".lock"))


@dataclass
class CeleryTopology:
    """The running topology: Airflow's components, the workers, the SAP sandbox, the warehouse."""

    airflow: LiveAirflow
    workers: list[Worker]
    sap_url: str
    sap_ca: str
    warehouse_dsn: str
    queue: str
    timings: dict[str, float] = field(default_factory=dict)
    sap_app: Any = None
    teams_url: str | None = None
    teams_ca: str | None = None

    def sap(self, path: str) -> Any:
        """``GET /_sandbox/<path>`` of the SAP sandbox."""
        reply = requests.get(f"{self.sap_url}/_sandbox/{path}", verify=self.sap_ca, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def settings(self) -> dict[str, str]:
        """The values of :data:`SHARED_SETTINGS` every component runs with."""
        return {key: self.airflow.env[key] for key in SHARED_SETTINGS}

    def run_dag(
        self,
        dag_id: str,
        *,
        conf: dict[str, Any] | None = None,
        during: Callable[[dict[str, Any]], None] | None = None,
        timeout: float = RUN_TIMEOUT,
    ) -> dict[str, Any]:
        """Trigger a manual run of ``dag_id`` (with ``conf``), unpaused until the run ends;
        return the run. ``during(run)`` is called every second while it runs (to answer it)."""
        airflow = self.airflow
        run = airflow.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        airflow.unpause(dag_id)
        path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}"

        def ended() -> dict[str, Any] | None:
            current = airflow.api("GET", path)
            if current["state"] in ("success", "failed"):
                return current
            if during is not None:
                during(current)
            return None

        try:
            return airflow.wait(
                ended, timeout=timeout, interval=1.0, what=f"run {run['dag_run_id']} of {dag_id} to end"
            )
        finally:
            airflow.pause(dag_id)
            airflow.close_active_runs(dag_id)

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        document = self.airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti for ti in document["task_instances"]}

    def warehouse_differences(self) -> dict[str, Any]:
        """Entities whose warehouse count or DocTotal sum differs from the sandbox's truth."""
        import psycopg

        from airflow_provider_b1.warehouse.entities import ENTITIES, entity_spec
        from airflow_provider_b1.warehouse.loader import PostgresLoader

        loader = PostgresLoader(psycopg.connect(self.warehouse_dsn), WAREHOUSE_SCHEMA)
        differences = {}
        try:
            for entity in ENTITIES:
                truth = self.sap(f"truth/{entity}")
                count, total = loader.stats(entity_spec(entity))
                mine = {"count": count, "doc_total_sum": None}
                if truth["doc_total_sum"] is not None:
                    mine["doc_total_sum"] = str((total or Decimal(0)).quantize(Decimal("0.01")))
                theirs = {"count": truth["count"], "doc_total_sum": truth["doc_total_sum"]}
                if mine != theirs:
                    differences[entity] = (theirs, mine)
        finally:
            loader.close()
        return differences

    def teams(self, path: str) -> Any:
        """``GET /_sandbox/<path>`` of the Teams sandbox."""
        reply = requests.get(f"{self.teams_url}/_sandbox/{path}", verify=self.teams_ca, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def teams_cards(self) -> dict[str, dict[str, Any]]:
        """The cards the deployed routing (``teams_routing.yaml``) sends for the SAP sandbox's
        documents, read from SAP's own store, then those the Teams sandbox received, per
        destination: ``{destination: {"expected": n, "received": n, "missing": [...],
        "duplicated": [...], "unexpected": [...]}}`` (documents as ``<type> <DocEntry>``).

        A document's first card carries the marker of its destination, type and ``DocEntry``
        (:func:`~airflow_provider_b1.teams.sink.marker_of`), so every card received is matched to
        one document and one destination. Where one run has more of one type for one destination
        than the routing's ``digest_over``, they come as one digest card, counted as one.
        """
        from collections import Counter

        from airflow_provider_b1.teams.routing import load_routing
        from airflow_provider_b1.teams.sink import marker_of

        routing = load_routing(DAGS / "teams_routing.yaml")
        if routing.needs_partner_groups:
            raise ValueError("The routing asks for partner groups; this check does not look them up.")
        store = self.sap_app.state.sandbox.store
        documents: dict[tuple[str, str], list[str]] = {}  # (destination, type) -> DocEntry
        for kind in TEAMS_STREAMS:
            entity = store.entity(kind)
            for row in entity.ordered():
                document = entity.serialize(row, True)
                for destination in routing.route(kind, document, None, ("sap_b1_default", SAP_COMPANY)):
                    documents.setdefault((destination.key, kind), []).append(str(document["DocEntry"]))
        expected: dict[str, tuple[str, str]] = {}  # marker -> (destination, document)
        digests: Counter = Counter()  # destination -> digest cards expected
        for (destination, kind), entries in documents.items():
            if len(entries) > routing.digest_over:
                digests[destination] += 1
                continue
            for entry in entries:
                expected[marker_of(destination, kind, entry, "created")] = (destination, f"{kind} {entry}")
        received: Counter = Counter()
        for post in self.teams("posts")["posts"]:
            if post.get("action") == "update":
                continue
            for attachment in post["attachments"]:
                received[(attachment["content"].get("body") or [{}])[0].get("id")] += 1
        report: dict[str, dict[str, Any]] = {}
        for destination in sorted({d for d, _ in expected.values()} | set(digests)):
            mine = {m: doc for m, (d, doc) in expected.items() if d == destination}
            report[destination] = {
                "expected": len(mine) + digests[destination],
                "received": sum(received[m] for m in mine),
                "missing": sorted(doc for m, doc in mine.items() if not received[m]),
                "duplicated": sorted(doc for m, doc in mine.items() if received[m] > 1),
            }
        others = sum(n for m, n in received.items() if m not in expected)
        if others or digests:
            report["(digests, cards of no document)"] = {
                "expected": sum(digests.values()),
                "received": others,
            }
        return report

    def running_processes(self) -> list[Any]:
        return self.airflow.running_processes()

    def stop(self) -> dict[str, int | None]:
        """End every component and worker (bounded: SIGTERM, then SIGKILL after a grace);
        return each one's exit status (``-9``: it had to be killed)."""
        processes = dict(self.airflow.processes)
        self.airflow.stop(grace=STOP_GRACE)
        return {name: process.returncode for name, process in processes.items()}


def _sap_connection(base_url: str, ca_path: str) -> dict[str, Any]:
    return {
        "conn_type": "sap_b1",
        "host": f"{base_url}/b1s/v2/",
        "schema": SAP_COMPANY,
        "login": SAP_USER,
        "password": SAP_PASSWORD,
        "extra": {"ca_bundle": ca_path, "timezone": "America/Chicago"},
    }


@contextlib.contextmanager
def _served(app: Any) -> Iterator[Any]:
    """A sandbox app over HTTPS, served from a thread of this process."""
    from airflow_provider_b1.sandbox.server import serve_in_thread

    served = serve_in_thread(app, tls=True)
    try:
        yield served
    finally:
        gc.collect()  # lets kept-alive connections close, so that the server stops at once
        served.stop()


def _sap_app(invoices: int) -> Any:
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app

    return create_app(
        SapSandboxConfig(
            invoices=invoices,
            company_db=SAP_COMPANY,
            users={SAP_USER: SAP_PASSWORD},
            timezone="America/Chicago",
        )
    )


def _teams(stack: contextlib.ExitStack) -> tuple[Any, list[dict[str, Any]]]:
    """The Teams sandbox (its seeded tenant) and the connections of :data:`FLOW_CONNECTIONS`
    ``["teams"]``: a Workflows webhook to one of its channels, and the bot, whose Bot Connector
    calls every worker counts in the broker's Redis (``redis_url``), so that together they stay
    under Teams' limit."""
    from airflow_provider_b1.sandbox.teams import TeamsSandboxConfig, create_app

    config = TeamsSandboxConfig()
    served = stack.enter_context(_served(create_app(config)))
    reply = requests.get(f"{served.base_url}/_sandbox/tenant", verify=str(served.ca_path), timeout=30)
    reply.raise_for_status()
    channel = reply.json()["channels"][TEAMS_WEBHOOK_CHANNEL]
    webhook = {
        "conn_type": "b1_teams_webhook",
        "host": f"{channel['team']} / {channel['name']}",
        "password": channel["webhook_url"],
        "extra": {"ca_bundle": str(served.ca_path)},
    }
    bot = {
        "conn_type": "b1_teams_bot",
        "login": config.bot_app_id,
        "password": config.bot_app_secret,
        "extra": {
            "tenant_id": config.tenant_id,
            "service_url": served.base_url,
            "graph_client_id": config.graph_client_id,
            "graph_client_secret": config.graph_client_secret,
            "login_url": served.base_url,
            "graph_url": served.base_url,
            "ca_bundle": str(served.ca_path),
            "redis_url": REDIS_URL,
        },
    }
    return served, [webhook, bot]


def _servicetitan(stack: contextlib.ExitStack) -> tuple[Any, list[dict[str, Any]]]:
    """A small ServiceTitan sandbox and the connection to it."""
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig, create_app

    config = ServiceTitanSandboxConfig(seed=5, customers=10, invoices=20)
    served = stack.enter_context(_served(create_app(config)))
    return served, [
        {
            "conn_type": "servicetitan",
            "login": config.client_id,
            "password": config.client_secret,
            "extra": {
                "environment": "integration",
                "tenant_id": config.tenant_id,
                "app_key": config.app_key,
                "api_url": served.base_url,
                "auth_url": served.base_url,
                "ca_bundle": str(served.ca_path),
            },
        }
    ]


def _salesforce(stack: contextlib.ExitStack) -> tuple[Any, list[dict[str, Any]]]:
    """A small Salesforce sandbox and the connection to it."""
    from airflow_provider_b1.sandbox.salesforce import SalesforceSandboxConfig, create_app

    config = SalesforceSandboxConfig(seed=7, accounts=15, opportunities=20, bulk_processing_delay=0.2)
    served = stack.enter_context(_served(create_app(config)))
    return served, [
        {
            "conn_type": "b1_salesforce",
            "host": served.base_url,
            "login": config.client_id,
            "password": config.client_secret,
            "extra": {"api_version": "62.0", "ca_bundle": str(served.ca_path)},
        }
    ]


def _check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise LiveAirflowError(f"Redis is not reachable at {url} ({type(exc).__name__}).") from None


def _airflow_uri(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg2://u@h:p/db`` as an Airflow connection URI (``postgres://u@h:p/db``)."""
    parts = urlsplit(sqlalchemy_url)
    return f"postgres://{parts.netloc}{parts.path}"


def _worker_component(name: str, folder: Path, run_tag: str) -> tuple[list[str], dict[str, str]]:
    """``airflow celery worker`` as one more component (its arguments and environment): a
    hostname, pid file and log-server port of its own beside the other worker on this machine,
    and its own SAP session cache and Teams token cache, as on a machine of its own. The hostname carries ``run_tag``: a
    worker refuses to start beside one of the same name on the broker (another run's)."""
    cache_dir = folder / name / "b1_sessions"
    cache_dir.mkdir(parents=True, mode=0o700)
    args = [
        *COMMANDS["airflow-worker"].split(),
        "--celery-hostname",
        f"{name}.{run_tag}@%h",
        "--pid",
        str(folder / name / "worker.pid"),
    ]
    env = {
        "B1_SESSION_CACHE_DIR": str(cache_dir),
        "B1_TEAMS_CACHE_DIR": str(folder / name / "teams_tokens"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
    }
    return args, env


def _wait_for_workers(airflow: LiveAirflow, workers: list[Worker], timeout: float) -> None:
    """Each worker has connected to the broker and says it is ready."""
    deadline = time.monotonic() + timeout
    while not all(re.search(rf"{w.name}\.\S+@\S+ ready\.", w.output()) for w in workers):
        airflow._check_alive()
        if time.monotonic() > deadline:
            raise LiveAirflowError(f"The Celery workers were not ready in {timeout:.0f} s.")
        time.sleep(0.5)


@contextlib.contextmanager
def celery_topology(
    flows: tuple[str, ...] = ("warehouse",),
    *,
    invoices: int = SAP_INVOICES,
    say: Callable[[str], None] = lambda _: None,
) -> Iterator[CeleryTopology]:
    """Start the topology with the DAGs (and sandboxes) of ``flows``; yield it; stop everything
    afterwards, also on failure.

    :raises LiveAirflowError: when PostgreSQL or Redis cannot be reached, or a component does
        not start (with the tail of each component's log).
    """
    unknown = set(flows) - set(FLOWS)
    if unknown:
        raise ValueError(f"Unknown flows {sorted(unknown)}; known: {', '.join(FLOWS)}")
    started = time.monotonic()
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        _check_redis(REDIS_URL)
        metadata_url = stack.enter_context(postgres_database(PG_HOST, PG_PORT, PG_USER))
        warehouse_url = stack.enter_context(postgres_database(PG_HOST, PG_PORT, PG_USER))
        sap_app = _sap_app(invoices)
        sap = stack.enter_context(_served(sap_app))
        warehouse = _airflow_uri(warehouse_url)
        connections: dict[str, Any] = {
            "b1_warehouse_default": warehouse,
            "b1_audit_default": warehouse,
            "sap_b1_default": _sap_connection(sap.base_url, str(sap.ca_path)),
        }
        sandboxes = {"sap": sap}
        if "approvals" in flows:
            approver = {"conn_type": "sap_b1", "login": APPROVER, "password": APPROVER_PASSWORD}
            connections[FLOW_CONNECTIONS["approvals"][0].removeprefix("AIRFLOW_CONN_").lower()] = approver
        for flow, start_sandbox in (
            ("teams", _teams),
            ("servicetitan", _servicetitan),
            ("salesforce", _salesforce),
        ):
            if flow in flows or (flow == "teams" and "approvals" in flows):
                sandboxes[flow], flow_connections = start_sandbox(stack)
                for variable, connection in zip(FLOW_CONNECTIONS[flow], flow_connections, strict=True):
                    connections[variable.removeprefix("AIRFLOW_CONN_").lower()] = connection
        say(
            f"sandboxes: {', '.join(f'{name} {served.base_url}' for name, served in sandboxes.items())} "
            f"({invoices} SAP invoices); PostgreSQL databases for the metadata and the warehouse created"
        )
        run_tag = secrets.token_hex(4)
        queue = f"b1-celery-{run_tag}"
        config = {
            "core__executor": SHARED_SETTINGS["AIRFLOW__CORE__EXECUTOR"],
            "core__test_connection": SHARED_SETTINGS["AIRFLOW__CORE__TEST_CONNECTION"],
            "celery__broker_url": REDIS_URL,
            "celery__result_backend": f"db+{metadata_url}",
            "celery__worker_concurrency": str(WORKER_CONCURRENCY),
            "operators__default_queue": queue,
            "scheduler__use_job_schedule": "False",
        }
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="b1-celery-workers-")))
        components = {name: _worker_component(name, folder, run_tag) for name in WORKERS}
        say(f"starting api-server, scheduler, dag-processor, triggerer and {len(WORKERS)} Celery workers")
        airflow = start_airflow(
            [DAGS / name for flow in flows for name in FLOWS[flow][1]],
            connections=connections,
            config=config,
            dag_ids=[FLOWS[flow][0] for flow in flows],
            database_url=metadata_url,
            triggerer=True,
            all_admins=True,
            timeout=300.0,
            extra_components=components,
        )
        stack.callback(airflow.stop, grace=STOP_GRACE)
        workers = [
            Worker(
                name, Path(env["B1_SESSION_CACHE_DIR"]), airflow.logs / f"{name}.log", airflow.processes[name]
            )
            for name, (_, env) in components.items()
        ]
        _wait_for_workers(airflow, workers, timeout=60)
        timings["start"] = time.monotonic() - started
        say(f"  ready in {timings['start']:.1f} s: {airflow.base_url}, workers on queue {queue}")
        topology = CeleryTopology(
            airflow=airflow,
            workers=workers,
            sap_url=sap.base_url,
            sap_ca=str(sap.ca_path),
            warehouse_dsn=f"postgresql://{urlsplit(warehouse_url).netloc}{urlsplit(warehouse_url).path}",
            queue=queue,
            timings=timings,
            sap_app=sap_app,
            teams_url=sandboxes["teams"].base_url if "teams" in sandboxes else None,
            teams_ca=str(sandboxes["teams"].ca_path) if "teams" in sandboxes else None,
        )
        missing = [key for key in SHARED_SETTINGS if key not in airflow.env]
        missing += [
            variable
            for f in flows
            for variable in FLOW_CONNECTIONS.get(f, ())
            + (FLOW_CONNECTIONS["teams"] if f == "approvals" else ())
            if variable not in airflow.env
        ]
        if missing:
            raise LiveAirflowError(f"The native topology does not set {', '.join(missing)}.")
        yield topology


# -- ./run celery -----------------------------------------------------------------------------


def _say(text: str) -> None:
    print(text, flush=True)


def _run_flow(topology: CeleryTopology, flow: str) -> bool:
    """Run the flow's DAG through the workers and print how it went; True when it succeeded
    (and, for the warehouse, the warehouse equals SAP; for Teams, the cards received are the
    documents the routing sends, each once, and a second run sends none)."""
    dag_id = FLOWS[flow][0]
    if flow == "approvals":
        return _approve_through_airflow(topology)
    ok = _run_once(topology, dag_id)
    if flow == "warehouse":
        differences = topology.warehouse_differences()
        _say(
            "  the warehouse equals SAP"
            if not differences
            else f"  the warehouse differs from SAP: {differences}"
        )
        ok = ok and not differences
    if flow == "teams":
        ok = _check_teams(topology) and ok
    return ok


def _check_teams(topology: CeleryTopology) -> bool:
    """The cards of the first run against the SAP documents the routing sends; the bot's calls
    counted in Redis; then a second run, which must send nothing."""
    import redis

    ok = True
    cards = topology.teams_cards()
    for destination, found in cards.items():
        wrong = {k: v for k, v in found.items() if k in ("missing", "duplicated") and v}
        good = found["expected"] == found["received"] and not wrong
        ok = ok and good
        _say(
            f"  {destination}: {found['received']} cards, {found['expected']} SAP documents routed there"
            + ("" if good else f"; {wrong}")
        )
    stats = topology.teams("stats")
    _say(
        f"  Teams sandbox: {stats['posts']} posts, tokens issued {stats['tokens_issued']}, "
        f"peak {stats['peak_bot_calls_per_second']} bot calls/s, {stats['rate_limited']} refused (429)"
    )
    limits = redis.Redis.from_url(REDIS_URL).keys("b1:ratelimit:teams-bot-*")
    bot_cards = sum(
        found["received"] for destination, found in cards.items() if destination.startswith("bot:")
    )
    _say(f"  the bot's calls counted in Redis: {', '.join(k.decode() for k in limits) or 'no'}")
    ok = ok and stats["rate_limited"] == 0 and (bool(limits) or not bot_cards)
    posts = stats["posts"]
    ok = _run_once(topology, TEAMS_DAG, "again") and ok
    sent = topology.teams("stats")["posts"] - posts
    _say(f"  the second run sent {sent} cards")
    return ok and sent == 0


def _approve_through_airflow(topology: CeleryTopology) -> bool:
    """A purchase order over SAP's approval threshold waits as a draft with a pending approval
    request; ``sap_b1_approvals`` asks it through the workers (a card in the approver's Teams
    chat, the task deferred to the triggerer), the request is answered Approve through Airflow's
    REST API (``PATCH .../hitlDetails``, as the webhook receiver answers a pressed button), and
    the decision must land in SAP: the request approved and its draft added as the purchase
    order (``arsGenerated``)."""
    import uuid

    store = topology.sap_app.state.sandbox.store
    reply = requests.post(
        f"{topology.sap_url}/_sandbox/approvals",
        json={"entity": "PurchaseOrders", "threshold": APPROVAL_THRESHOLD},
        verify=topology.sap_ca,
        timeout=30,
    )
    reply.raise_for_status()
    reference = f"PO-{uuid.uuid4().hex[:8]}"
    # Entered in SAP by a user (in the sandbox's store: no login is counted for it), from a
    # vendor billing in the local currency. SAP holds it as a draft and answers -2028.
    from airflow_provider_b1.sandbox.sap.store import SapError

    with store.lock, contextlib.suppress(SapError):
        store.create(
            "PurchaseOrders",
            {
                "CardCode": APPROVAL_VENDOR,
                "NumAtCard": reference,
                "DocDueDate": "2026-12-31",
                "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": 2 * APPROVAL_THRESHOLD}],
            },
            "manager",
        )
    (draft,) = _sap_rows(topology, "Drafts", NumAtCard=reference)
    (request,) = _sap_rows(topology, "ApprovalRequests", DraftEntry=draft["DocEntry"])
    _say(
        f"  purchase order {reference} over {APPROVAL_THRESHOLD}: draft {draft['DocEntry']}, "
        f"approval request {request['Code']} {request['Status']}"
    )
    posts = topology.teams("stats")["posts"]
    answered: list[str] = []

    def answer(run: dict[str, Any]) -> None:
        if answered:
            return
        path = f"/dags/{APPROVALS_DAG}/dagRuns/{run['dag_run_id']}/taskInstances/approve/0/hitlDetails"
        detail = topology.airflow.api("GET", path, expect=(200, 404))
        if detail is None or detail.get("response_received"):
            return
        topology.airflow.api(
            "PATCH", path, json={"chosen_options": ["Approve"], "params_input": {}}, expect=(200,)
        )
        answered.append(run["dag_run_id"])
        _say(f"  the request waited in Airflow ({', '.join(detail.get('options') or [])}); answered Approve")

    ok = _run_once(topology, APPROVALS_DAG, conf={"teams_to": APPROVAL_USER}, during=answer)
    (request,) = _sap_rows(topology, "ApprovalRequests", Code=request["Code"])
    added = _sap_rows(topology, "PurchaseOrders", NumAtCard=reference)
    received = [post for post in topology.teams("posts")["posts"][posts:] if post["via"] == "bot"]
    cards = [post for post in received if post.get("action") != "update"]
    updates = len(received) - len(cards)
    _say(
        f"  SAP: request {request['Code']} {request['Status']}, purchase orders {reference}: {len(added)}; "
        f"Teams: {len(cards)} approval card(s) in {', '.join(sorted({c['conversation'] for c in cards})) or 'no chat'}"
        f", updated {updates} time(s) with the outcome"
    )
    return (
        ok and bool(answered) and request["Status"] == "arsGenerated" and len(added) == 1 and len(cards) == 1
    )


def _sap_rows(topology: CeleryTopology, entity: str, **equal: Any) -> list[dict[str, Any]]:
    """The SAP sandbox's ``entity`` records whose fields equal ``equal``, read from its store."""
    found = topology.sap_app.state.sandbox.store.entity(entity)
    rows = [found.serialize(row, True) for row in found.ordered()]
    return [row for row in rows if all(row.get(key) == value for key, value in equal.items())]


def _run_once(topology: CeleryTopology, dag_id: str, again: str = "", **options: Any) -> bool:
    """One run of the DAG through the workers (``options`` as :meth:`CeleryTopology.run_dag`'s),
    printed; True when it succeeded."""
    _say(f"running {dag_id} {again + ' ' if again else ''}through the workers")
    started = time.monotonic()
    run = topology.run_dag(dag_id, **options)
    states = topology.task_instances(dag_id, run["dag_run_id"])
    failed = sorted(task for task, ti in states.items() if ti["state"] not in ("success", "skipped"))
    _say(
        f"  {run['state']} in {time.monotonic() - started:.1f} s, {len(states)} tasks"
        + (f"; not successful: {', '.join(failed)}" if failed else "")
    )
    for worker in topology.workers:
        _say(f"  {worker.name} ran {', '.join(worker.task_ids(run['dag_run_id'])) or 'nothing'}")
    cached = ", ".join(f"{worker.name} {len(worker.session_files())}" for worker in topology.workers)
    _say(f"  SAP logins so far: {topology.sap('stats')['logins']}; sessions cached per worker: {cached}")
    return run["state"] == "success"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="./run celery",
        description="Start the CeleryExecutor deployment of docker-compose.yaml natively (PostgreSQL "
        "and Redis on 127.0.0.1), run the flows' DAGs through two Celery workers against the sandboxes, "
        "check the warehouse against SAP, the Teams cards against the SAP documents routed, an approval "
        "answered through the REST API against SAP's decision, and the SAP logins per worker, and stop "
        "everything.",
    )
    parser.add_argument(
        "--flows",
        default=",".join(FLOWS),
        help=f"comma-separated, run in this order: {', '.join(FLOWS)} (default: all)",
    )
    parser.add_argument("--invoices", type=int, default=SAP_INVOICES, help="A/R invoices in the SAP sandbox")
    args = parser.parse_args(argv)
    flows = tuple(f.strip() for f in args.flows.split(",") if f.strip())
    if set(flows) - set(FLOWS):
        parser.error(f"unknown flows: {', '.join(sorted(set(flows) - set(FLOWS)))}")
    started = time.monotonic()
    try:
        with celery_topology(
            tuple(f for f in FLOWS if f in flows), invoices=args.invoices, say=_say
        ) as topology:
            ok = all([_run_flow(topology, flow) for flow in FLOWS if flow in flows])
            # One login per worker (and per session slot: servicetitan_to_sap_b1 posts through
            # B1_SAP_SESSIONS sessions side by side), each kept in that worker's cache.
            logins = topology.sap("stats")["logins"]
            cached = [len(worker.session_files()) for worker in topology.workers]
            _say(f"SAP logins: {logins}, one per cached session ({sum(cached)}) on {len(cached)} workers")
            ok = ok and logins == sum(cached) and all(cached)
            _say("stopping every component")
            stop_started = time.monotonic()
            statuses = topology.stop()
            left = topology.running_processes()
            _say(
                f"  stopped in {time.monotonic() - stop_started:.1f} s, {len(left)} processes left; exit "
                "statuses: " + ", ".join(f"{name} {status}" for name, status in statuses.items())
            )
            ok = ok and not left
    except LiveAirflowError as exc:
        _say(f"could not start the topology: {exc}")
        return 1
    _say(f"{'OK' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
