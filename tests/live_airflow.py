"""A real Airflow 3 for tests: api-server, scheduler and dag-processor (and the triggerer) as processes.

:func:`start_airflow` copies the given DAG files into a temporary ``AIRFLOW_HOME``, migrates a
metadata database there (SQLite by default, or the ``database_url`` given), and starts each
component as its own process group on loopback with free ports, with LocalExecutor, the simple
auth manager (one admin user with a known password, or every visitor an admin) and the
connections given as ``AIRFLOW_CONN_*`` variables. It returns once the api-server answers, the
scheduler and the dag-processor report healthy heartbeats and the DAGs named are parsed.
Every component's output goes to ``<home>/logs/<component>.log``; a start that fails raises
:class:`LiveAirflowError` with the tail of each log.

The returned :class:`LiveAirflow` holds the base URL and the credentials, calls the REST API
with a token (:meth:`LiveAirflow.api`), lists DAG runs, pauses and unpauses DAGs, closes active
runs, and :meth:`LiveAirflow.stop` ends every process it started, task processes included,
within bounded waits.

Usage::

    airflow = start_airflow(
        ["dags/servicetitan_to_sap_b1.py", "dags/servicetitan_mappings.yaml"],
        connections={"servicetitan_default": {"conn_type": "servicetitan", ...}},
        dag_ids=["servicetitan_to_sap_b1"],
    )
    try:
        airflow.unpause("servicetitan_to_sap_b1")
        runs = airflow.dag_runs("servicetitan_to_sap_b1", run_type="asset_triggered")
    finally:
        airflow.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

COMPONENTS = ("api-server", "scheduler", "dag-processor")
"""What :func:`start_airflow` runs; ``triggerer=True`` adds the triggerer."""

ACTIVE_RUN_STATES = ("queued", "running")
FINISHED_TI_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
LOOPBACK = "127.0.0.1"
MARKER = "B1_LIVE_AIRFLOW_RUN"
"""Set in every component's environment (and so in its task processes): how stop() finds strays."""


class LiveAirflowError(RuntimeError):
    """Airflow could not be started (the message holds the tail of each component's log)."""


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any Airflow setting, plus ``extra``.

    A test session sets its own ``AIRFLOW_HOME``, database and connections; none of them may
    leak into the live Airflow.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "_AIRFLOW", "PYTEST_"))
    }
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    env.update(extra)
    return env


def _connection_value(connection: Mapping[str, Any] | str) -> str:
    """An ``AIRFLOW_CONN_*`` value: a URI as it is, a dict as JSON (``extra`` as an object)."""
    if isinstance(connection, str):
        return connection
    return json.dumps(dict(connection))


@dataclass
class LiveAirflow:
    """A running Airflow started by :func:`start_airflow`.

    :param base_url: the api-server, ``http://127.0.0.1:<port>`` (UI and REST API).
    :param username: the admin user (``None`` when every visitor is an admin).
    :param password: its password.
    :param home: the temporary ``AIRFLOW_HOME`` (logs in ``home / "logs"``).
    :param dags_folder: where the DAG files were copied.
    :param env: the environment every component runs with (connections included).
    """

    base_url: str
    username: str | None
    password: str | None
    home: Path
    dags_folder: Path
    env: dict[str, str] = field(repr=False)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, repr=False)
    remove_home: bool = True
    _token: str | None = field(default=None, repr=False)
    _http: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self._http.trust_env = False  # no proxy for loopback, no REQUESTS_CA_BUNDLE

    # -- REST ---------------------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def token(self, *, fresh: bool = False) -> str:
        """A JWT from ``/auth/token`` (kept until refused)."""
        if self._token is None or fresh:
            if self.username:
                reply = self._http.post(
                    f"{self.base_url}/auth/token",
                    json={"username": self.username, "password": self.password},
                    timeout=30,
                )
            else:
                reply = self._http.get(f"{self.base_url}/auth/token", timeout=30)
            reply.raise_for_status()
            self._token = reply.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, *, expect: Iterable[int] = (200,), **kwargs: Any) -> Any:
        """Call ``/api/v2<path>`` with a token; return the JSON answer (``None`` when empty or an
        expected error).

        :param expect: the status codes that are not an error.
        :raises AssertionError: on any other status, with the answer's text.
        """
        url = f"{self.base_url}/api/v2{path}"
        kwargs.setdefault("timeout", 30)
        for fresh in (False, True):
            reply = self._http.request(
                method, url, headers={"Authorization": f"Bearer {self.token(fresh=fresh)}"}, **kwargs
            )
            if reply.status_code != 401:
                break
        expected = tuple(expect)
        assert reply.status_code in expected, f"{method} {path}: {reply.status_code} {reply.text[:500]}"
        return reply.json() if reply.content and reply.status_code < 400 else None

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (metadatabase, scheduler, triggerer, dag_processor)."""
        reply = self._http.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        reply.raise_for_status()
        return reply.json()

    def dag(self, dag_id: str) -> dict[str, Any]:
        return self.api("GET", f"/dags/{dag_id}")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def unpaused_dags(self) -> list[str]:
        """The ids of every DAG that is not paused."""
        document = self.api("GET", "/dags", params={"paused": "false", "limit": 100})
        return sorted(dag["dag_id"] for dag in document["dags"])

    def dag_runs(
        self, dag_id: str, *, run_type: str | None = None, state: str | Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every run of ``dag_id`` (oldest first), optionally of one ``run_type``
        (``scheduled``, ``manual``, ``asset_triggered``, ``backfill``) and in some states."""
        params: dict[str, Any] = {"limit": 100, "order_by": "id"}
        if run_type:
            params["run_type"] = [run_type]
        if state:
            params["state"] = [state] if isinstance(state, str) else list(state)
        runs: list[dict[str, Any]] = []
        while True:
            document = self.api("GET", f"/dags/{dag_id}/dagRuns", params={**params, "offset": len(runs)})
            page = document["dag_runs"]
            runs.extend(page)
            if not page or len(runs) >= document["total_entries"]:
                return runs

    def wait_for_runs(
        self,
        dag_id: str,
        count: int,
        *,
        run_type: str | None = None,
        timeout: float = 60.0,
        interval: float = 0.5,
    ) -> list[dict[str, Any]]:
        """Wait until ``dag_id`` has at least ``count`` runs (of ``run_type``); return them all.

        :raises AssertionError: after ``timeout`` seconds, with the runs there are.
        """
        return self.wait(
            lambda: runs if len(runs := self.dag_runs(dag_id, run_type=run_type)) >= count else None,
            timeout=timeout,
            interval=interval,
            what=f"{count} {run_type or ''} run(s) of {dag_id}",
        )

    def upstream_asset_events(
        self, dag_id: str, run_id: str, *, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """The Asset events a run consumed (asset-triggered runs).

        Airflow 3.3.2 answers 500 here while a run created by one of the events has not started
        (``created_dagruns[].start_date`` is null, which its response model refuses), so the
        call is repeated until the run has started.
        """
        path = f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents"

        def answer() -> Any:
            return self.api("GET", path, expect=(200, 500))

        return self.wait(
            lambda: document if "asset_events" in (document := answer() or {}) else None,
            timeout=timeout,
            what=f"the upstream Asset events of {run_id}",
        )["asset_events"]

    def asset_events(self, uri: str) -> list[dict[str, Any]]:
        """Every event recorded of the Asset with this URI (oldest first)."""
        assets = self.api("GET", "/assets", params={"uri_pattern": uri, "limit": 100})["assets"]
        ids = [asset["id"] for asset in assets if asset["uri"] == uri]
        if not ids:
            return []
        events: list[dict[str, Any]] = []
        while True:
            document = self.api(
                "GET",
                "/assets/events",
                params={"asset_id": ids[0], "limit": 100, "offset": len(events), "order_by": "timestamp"},
            )
            page = document["asset_events"]
            events.extend(page)
            if not page or len(events) >= document["total_entries"]:
                return events

    def queued_asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """Asset events waiting to trigger a run of ``dag_id`` (none: ``[]``)."""
        document = self.api("GET", f"/dags/{dag_id}/assets/queuedEvents", expect=(200, 404))
        return (document or {}).get("queued_events") or []

    def close_active_runs(self, dag_id: str, *, timeout: float = 60.0) -> None:
        """End every queued or running run of ``dag_id`` without waiting for its tasks.

        Each unfinished task instance is set to ``skipped``, so that the scheduler itself ends
        the run. Setting the run's state directly (``PATCH .../dagRuns/<id>``) would leave the
        DAG counted at its ``max_active_runs`` (Airflow 3.3 recomputes that only when the
        scheduler ends a run or the file is parsed again), and no new run would start meanwhile;
        that is done only for a paused DAG, whose runs the scheduler does not look at.
        """

        def closed() -> bool:
            active = self.dag_runs(dag_id, state=ACTIVE_RUN_STATES)
            if active and self.dag(dag_id)["is_paused"]:
                # The scheduler leaves a paused DAG's runs alone: end them directly (the count
                # of active runs is recomputed when the DAG is next parsed or unpaused).
                for run in active:
                    self.api("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
                return False
            for run in active:
                path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances"
                for ti in self.api("GET", path, params={"limit": 100})["task_instances"]:
                    if ti["state"] in FINISHED_TI_STATES:
                        continue
                    target = f"{path}/{ti['task_id']}"
                    if ti.get("map_index", -1) >= 0:
                        target += f"/{ti['map_index']}"
                    # 404/409: gone or changed meanwhile; the next round sees its new state.
                    self.api("PATCH", target, json={"new_state": "skipped"}, expect=(200, 404, 409))
            return not active

        self.wait(closed, timeout=timeout, interval=1.0, what=f"the active runs of {dag_id} to end")

    def wait(
        self, probe: Callable[[], Any], *, timeout: float, interval: float = 0.5, what: str = "a condition"
    ) -> Any:
        """Call ``probe`` until it returns something truthy (returned) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"Waited {timeout:.0f} s for {what}.\n{self.log_tails(15)}")
            self._check_alive()
            time.sleep(interval)

    # -- processes ------------------------------------------------------------------------------

    def log_tails(self, lines: int = 40) -> str:
        """The last ``lines`` of every component's log, for failure messages."""
        return "\n".join(
            f"--- {name} ({self.logs / f'{name}.log'}) ---\n{_tail(self.logs / f'{name}.log', lines)}"
            for name in [*self.processes, "migrate"]
            if (self.logs / f"{name}.log").exists()
        )

    def _check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise LiveAirflowError(f"Airflow components exited: {dead}\n{self.log_tails()}")

    def running_processes(self) -> list[Any]:
        """This Airflow's processes still running (``psutil.Process``): the components, their
        descendants, and anything carrying its marker (task processes run in groups of their own).
        Empty after :meth:`stop`."""
        import psutil

        found: dict[int, Any] = {}
        for process in self.processes.values():
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(process.pid)
                for child in [root, *root.children(recursive=True)]:
                    found[child.pid] = child
        marker = self.env.get(MARKER)
        for candidate in psutil.process_iter():
            if candidate.pid in found or candidate.pid == os.getpid():
                continue
            with contextlib.suppress(psutil.Error):
                if candidate.uids().real == os.getuid() and candidate.environ().get(MARKER) == marker:
                    found[candidate.pid] = candidate
        alive = []
        for process in found.values():
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
        return alive

    def stop(self, *, grace: float = 5.0) -> None:
        """End every process this Airflow started; idempotent, bounded by about ``grace`` + 5 s.

        SIGTERM to each component first (the scheduler then waits for running tasks, which
        ``close_active_runs`` spares it), SIGKILL to whatever is left after ``grace`` seconds:
        the components' process groups, their descendants, and task processes (which run in
        groups of their own) found by the marker in their environment.
        """
        import psutil

        if not self.processes:
            return
        self._http.close()  # a kept-alive connection would hold up the api-server's shutdown
        strays = self.running_processes()
        for process in self.processes.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        strays.extend(self.running_processes())
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for stray in strays:
            with contextlib.suppress(psutil.Error):
                stray.kill()
        psutil.wait_procs(strays, timeout=5)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        self.processes.clear()
        if self.remove_home and not self._keep_logs():
            shutil.rmtree(self.home, ignore_errors=True)

    def _keep_logs(self) -> bool:
        return os.environ.get("B1_KEEP_LIVE_AIRFLOW", "").lower() in ("1", "true", "yes")


def _copy_dag_files(dag_files: Iterable[str | os.PathLike], folder: Path) -> None:
    folder.mkdir(parents=True)
    for item in dag_files:
        source = Path(item)
        if source.is_dir():
            shutil.copytree(source, folder / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.is_file():
            shutil.copy2(source, folder / source.name)
        else:
            raise LiveAirflowError(f"DAG file {source} does not exist.")


def start_airflow(
    dag_files: Iterable[str | os.PathLike],
    *,
    connections: Mapping[str, Mapping[str, Any] | str] | None = None,
    env: Mapping[str, str] | None = None,
    config: Mapping[str, str] | None = None,
    dag_ids: Iterable[str] = (),
    database_url: str | None = None,
    triggerer: bool = False,
    all_admins: bool = False,
    username: str = "admin",
    password: str | None = None,
    home: str | os.PathLike | None = None,
    timeout: float = 240.0,
    extra_components: Mapping[str, tuple[Sequence[str], Mapping[str, str]]] | None = None,
) -> LiveAirflow:
    """Start a real Airflow on loopback and return it once it is healthy.

    :param dag_files: files (or folders) copied into the DAGs folder: the DAGs and whatever
        they read beside them.
    :param connections: ``{conn_id: {conn_type, host, login, password, schema, port, extra}}``
        or ``{conn_id: "uri"}``, set as ``AIRFLOW_CONN_<CONN_ID>`` on every component.
    :param env: more environment variables for every component (and so for the tasks).
    :param config: Airflow settings as ``{"section__key": value}`` (``AIRFLOW__SECTION__KEY``),
        over the defaults chosen here.
    :param dag_ids: DAGs that must be parsed (and free of import errors) before this returns.
    :param database_url: the metadata database (an empty one; it is migrated here); default
        SQLite in the home folder.
    :param triggerer: also start the triggerer (deferrable operators, deadline alerts).
    :param all_admins: every visitor is an admin (no login page; ``/auth/token`` without
        credentials); otherwise ``username`` is the one admin, with ``password``.
    :param password: default: a random one (``LiveAirflow.password``).
    :param home: the ``AIRFLOW_HOME`` to use (default: a new temporary folder, removed by
        ``stop()`` unless ``B1_KEEP_LIVE_AIRFLOW=1``).
    :param timeout: seconds for the migration and the start together.
    :param extra_components: more processes started with the components once the database is
        migrated, ``{name: (airflow CLI arguments, environment overrides)}`` (Celery workers,
        say); their log is ``<name>.log``, :meth:`LiveAirflow.stop` ends them, and whether they
        are ready is the caller's to check.
    :raises LiveAirflowError: when something does not start in time; the message holds the
        tail of every component's log.
    """
    started = time.monotonic()
    home_path = Path(home) if home is not None else Path(tempfile.mkdtemp(prefix="b1-live-airflow-"))
    dags_folder = home_path / "dags"
    logs = home_path / "logs"
    _copy_dag_files(dag_files, dags_folder)
    logs.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}"
    password = None if all_admins else (password or f"pw-{secrets.token_urlsafe(12)}")
    passwords_file = home_path / "simple_auth_manager_passwords.json"
    if not all_admins:
        passwords_file.write_text(json.dumps({username: password}) + "\n", encoding="utf-8")
        passwords_file.chmod(0o600)
    from cryptography.fernet import Fernet

    settings = {
        "core__dags_folder": str(dags_folder),
        "core__load_examples": "False",
        "core__executor": "LocalExecutor",
        "core__parallelism": "4",
        "core__dags_are_paused_at_creation": "True",
        "core__fernet_key": Fernet.generate_key().decode(),
        "core__auth_manager": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "core__simple_auth_manager_users": f"{username}:admin",
        "core__simple_auth_manager_passwords_file": str(passwords_file),
        "core__simple_auth_manager_all_admins": str(all_admins),
        "core__execution_api_server_url": f"{base_url}/execution/",
        "database__sql_alchemy_conn": database_url or f"sqlite:///{(home_path / 'airflow.db').resolve()}",
        "api__host": LOOPBACK,
        "api__port": str(port),
        "api__base_url": base_url,
        "api__workers": "1",
        "api__secret_key": secrets.token_urlsafe(32),
        "api_auth__jwt_secret": secrets.token_urlsafe(64),
        "logging__base_log_folder": str(logs / "tasks"),
        "logging__worker_log_server_port": str(free_port()),
        "logging__trigger_log_server_port": str(free_port()),
    }
    settings.update(config or {})
    environment = {
        "AIRFLOW_HOME": str(home_path),
        MARKER: secrets.token_hex(8),
        **{f"AIRFLOW__{key.upper()}": value for key, value in settings.items()},
        **{
            f"AIRFLOW_CONN_{conn_id.upper()}": _connection_value(value)
            for conn_id, value in (connections or {}).items()
        },
        **(env or {}),
    }
    airflow = LiveAirflow(
        base_url=base_url,
        username=None if all_admins else username,
        password=password,
        home=home_path,
        dags_folder=dags_folder,
        env=_clean_environment(environment),
        remove_home=home is None,
    )
    atexit.register(airflow.stop)
    try:
        _migrate(airflow, timeout)
        components = [*COMPONENTS, "triggerer"] if triggerer else list(COMPONENTS)
        for name in components:
            airflow.processes[name] = _launch(airflow, name, port)
        for name, (args, overrides) in (extra_components or {}).items():
            airflow.processes[name] = _launch(airflow, name, port, list(args), overrides)
        _wait_until_ready(airflow, components, list(dag_ids), started + timeout)
    except BaseException as exc:
        tails = airflow.log_tails()
        airflow.remove_home = False
        airflow.stop(grace=3)
        if isinstance(exc, LiveAirflowError):
            raise LiveAirflowError(f"{exc}\n{tails}") from None
        if isinstance(exc, Exception):
            raise LiveAirflowError(f"Airflow did not start: {exc!r}\n{tails}") from exc
        raise
    return airflow


def _airflow_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "airflow", *args]


def _migrate(airflow: LiveAirflow, timeout: float) -> None:
    log = airflow.logs / "migrate.log"
    with log.open("wb") as out:
        try:
            result = subprocess.run(
                _airflow_command("db", "migrate"),
                env=airflow.env,
                cwd=airflow.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise LiveAirflowError(f"airflow db migrate took more than {timeout:.0f} s.") from None
    if result.returncode != 0:
        raise LiveAirflowError(f"airflow db migrate failed ({result.returncode}).")


def _launch(
    airflow: LiveAirflow,
    name: str,
    port: int,
    args: list[str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    if args is None:
        args = ["api-server", "--host", LOOPBACK, "--port", str(port)] if name == "api-server" else [name]
    with (airflow.logs / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            _airflow_command(*args),
            env={**airflow.env, **(overrides or {})},
            cwd=airflow.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends it with its children
        )


def _wait_until_ready(
    airflow: LiveAirflow, components: list[str], dag_ids: list[str], deadline: float
) -> None:
    """The api-server answers, each job's heartbeat is healthy, every DAG named is parsed."""
    keys = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}
    wanted = [keys[name] for name in components if name in keys]
    waiting_for = "the api-server"
    warmed = False
    while True:
        airflow._check_alive()
        try:
            waiting_for = _not_ready(airflow, wanted, dag_ids, warmed)
            warmed = True  # the execution API answered (see _not_ready)
            if waiting_for is None:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise LiveAirflowError(f"Airflow was not ready in time: waiting for {waiting_for}.")
        time.sleep(0.5)


def _not_ready(airflow: LiveAirflow, wanted: list[str], dag_ids: list[str], warmed: bool) -> str | None:
    """What Airflow is still waiting for (``None``: ready); a connection error while it starts."""
    if not warmed:
        # The execution API, mounted in the api-server, builds itself on its first request and
        # blocks every other request for seconds meanwhile: better now than when a task starts.
        airflow._http.get(f"{airflow.base_url}/execution/health", timeout=120).raise_for_status()
    health = airflow.health()
    unhealthy = [key for key in wanted if (health.get(key) or {}).get("status") != "healthy"]
    if unhealthy:
        return f"healthy heartbeats of {', '.join(unhealthy)}"
    missing = [dag_id for dag_id in dag_ids if not _parsed(airflow, dag_id)]
    if missing:
        return f"DAGs parsed: {', '.join(missing)}"
    return None


def _parsed(airflow: LiveAirflow, dag_id: str) -> bool:
    document = airflow.api("GET", f"/dags/{dag_id}", expect=(200, 404))
    if document and document.get("dag_id") == dag_id:
        return True
    errors = airflow.api("GET", "/importErrors", params={"limit": 100})["import_errors"]
    if errors:
        shown = "\n".join(f"{e['filename']}: {e['stack_trace'][-800:]}" for e in errors)
        raise LiveAirflowError(f"Import errors in the DAGs folder:\n{shown}")
    return False


@contextlib.contextmanager
def postgres_database(
    host: str = LOOPBACK, port: int = 5432, user: str = "postgres", password: str | None = None
) -> Iterator[str]:
    """A new, empty PostgreSQL database for one Airflow's metadata; yields its SQLAlchemy URL.

    The database is dropped afterwards (``WITH (FORCE)``: connections left open are ended).

    :raises LiveAirflowError: when PostgreSQL cannot be reached.
    """
    import psycopg2

    name = f"b1_live_airflow_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = psycopg2.connect(
            host=host, port=port, user=user, password=password, dbname="postgres", connect_timeout=3
        )
    except psycopg2.OperationalError as exc:
        raise LiveAirflowError(
            f"PostgreSQL is not reachable at {host}:{port} as {user} ({type(exc).__name__})."
        ) from None
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        secret = f":{quote(password, safe='')}" if password else ""
        yield f"postgresql+psycopg2://{quote(user, safe='')}{secret}@{host}:{port}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def ci_requires_it() -> bool:
    """Under CI (``CI=true``) a live Airflow that cannot start fails the tests instead of skipping them."""
    return os.environ.get("CI", "").lower() == "true"
