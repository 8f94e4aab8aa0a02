"""Test set-up shared by the whole suite.

Airflow reads its configuration when first imported, so the isolated ``AIRFLOW_HOME`` (a
temporary folder with a SQLite metadata database) is put in place here, before any test module
imports airflow. Each pytest process (and each xdist worker) gets its own.
"""

from __future__ import annotations

import gc
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="b1-test-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "")
os.environ["B1_SESSION_CACHE_DIR"] = str(_HOME / "b1-sessions")

# Under pytest-xdist (``./run tests`` runs two workers) each worker has its own Redis database, so
# the cross-worker rate limiters and the Celery broker of one worker's tests never meet the other's.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw") and "B1_TEST_REDIS_URL" not in os.environ:
    os.environ["B1_TEST_REDIS_URL"] = (
        f"redis://127.0.0.1:6379/{1 + int(os.environ['PYTEST_XDIST_WORKER'][2:])}"
    )

PG_HOST = os.environ.get("B1_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("B1_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("B1_TEST_PG_USER", "postgres")


def _postgres_or_skip() -> None:
    """Fail under CI, skip elsewhere, when no PostgreSQL answers."""
    import psycopg2

    try:
        psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        ).close()
    except psycopg2.OperationalError as exc:
        message = (
            f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} as {PG_USER} ({exc.__class__.__name__})"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI needs it (.ci/run starts it).")
        pytest.skip(f"{message}; start PostgreSQL to run this test.")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[dict]:
    """A throwaway PostgreSQL database for this test session: ``{host, port, user, dbname, dsn, uri}``."""
    _postgres_or_skip()
    import psycopg2

    name = f"b1_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    info = {
        "host": PG_HOST,
        "port": PG_PORT,
        "user": PG_USER,
        "dbname": name,
        "dsn": f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={name}",
        "uri": f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}",
    }
    try:
        yield info
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) shared by the session's DAG tests."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
    )
    return _HOME / "airflow.db"


# ---------------------------------------------------------------------------------------------
# Sandboxes shared by the integration and DAG tests: one HTTPS SAP Service Layer and one HTTPS
# Looker API per test session, on loopback, each served from a thread of this process.

SAP_COMPANY = "SBODEMOUS"
SAP_USER = "manager"
SAP_PASSWORD = "manager-secret-1"
LOOKER_CLIENT_ID = "looker-client-id"
LOOKER_CLIENT_SECRET = "looker-client-secret-1"

SAP_DEFAULT_CONFIG = {
    "session_timeout_minutes": 30,
    "login_delay": 0.0,
    "failed_login_delay": 0.0,
    "lock_after_failures": 5,
    "expired_session_code": 301,
    "next_link_style": "relative",
}
"""SAP sandbox settings every test starts from (the sandbox keeps settings across resets)."""


@dataclass
class SapSandbox:
    """The running SAP sandbox and its control plane (``/_sandbox/...``).

    ``app`` is the ASGI app itself: ``app.state.sandbox`` is the live state (sessions, store).
    Plain ``requests`` calls pass ``verify=ca_path`` explicitly, because ``REQUESTS_CA_BUNDLE``
    in the environment would otherwise win over a session's ``verify``.
    """

    base_url: str
    ca_path: str
    cert_sha256: str
    app: Any = None

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        import requests

        response = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=120
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def faults(self, **faults: Any) -> None:
        self.control("POST", "faults", faults)

    def reset(self, **options: Any) -> None:
        self.control("POST", "reset", options or None)

    def expire_sessions(self) -> None:
        self.control("POST", "expire-sessions")

    def config(self, **options: Any) -> None:
        self.control("POST", "config", options)

    def truth(self, entity: str) -> dict:
        return self.control("GET", f"truth/{entity}")

    def restore(self, invoices: int = 2000) -> None:
        """Back to a freshly seeded company with ``invoices`` invoices, no faults, default settings."""
        self.faults()
        self.config(**SAP_DEFAULT_CONFIG)
        self.reset(invoices=invoices, session_timeout_seconds=None)

    def connection(self, version: str = "v2", **overrides: Any) -> dict[str, Any]:
        """An Airflow connection (dict for ``AIRFLOW_CONN_*``) to this sandbox, trusting its CA."""
        connection: dict[str, Any] = {
            "conn_type": "sap_b1",
            "host": f"{self.base_url}/b1s/{version}/",
            "schema": SAP_COMPANY,
            "login": SAP_USER,
            "password": SAP_PASSWORD,
            "extra": {"ca_bundle": self.ca_path, "page_size": 500, "timezone": "America/Chicago"},
        }
        connection.update(overrides)
        return connection


@dataclass
class LookerSandbox:
    """The running Looker sandbox; ``app.state.looker`` is its live state."""

    base_url: str
    ca_path: str | None
    app: Any = None

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict:
        import requests

        url = f"{self.base_url}/_sandbox/{path}"
        if body is None and path == "stats":
            return requests.get(url, timeout=5, verify=self.ca_path).json()
        return requests.post(url, json=body or {}, timeout=5, verify=self.ca_path).json()

    def stats(self) -> dict:
        return self.control("stats")

    def restore(self) -> None:
        """Back to the seeded state, no faults."""
        self.control("reset")
        self.control("faults", {})

    def connection(self) -> dict[str, Any]:
        """``looker_default`` (dict for ``AIRFLOW_CONN_*``) pointing at this sandbox."""
        return {
            "conn_type": "looker_api",
            "host": self.base_url,
            "login": LOOKER_CLIENT_ID,
            "password": LOOKER_CLIENT_SECRET,
            "extra": {"ca_bundle": self.ca_path} if self.ca_path else {},
        }


@pytest.fixture(scope="session")
def sap_sandbox() -> Iterator[SapSandbox]:
    """The session's SAP Service Layer sandbox over HTTPS (self-signed; trust ``ca_path``)."""
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    app = create_app(
        SapSandboxConfig(
            invoices=2000, company_db=SAP_COMPANY, users={SAP_USER: SAP_PASSWORD}, timezone="America/Chicago"
        )
    )
    served = serve_in_thread(app, tls=True)
    try:
        yield SapSandbox(served.base_url, str(served.ca_path), served.cert_sha256, app)
    finally:
        # Hooks' keep-alive connections would hold up the server's graceful stop.
        gc.collect()
        served.stop()


@pytest.fixture(scope="session")
def looker_sandbox() -> Iterator[LookerSandbox]:
    """The session's Looker API sandbox over HTTPS."""
    from airflow_provider_b1.sandbox.looker import LookerSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    app = create_app(LookerSandboxConfig())
    served = serve_in_thread(app, tls=True)
    try:
        yield LookerSandbox(base_url=served.base_url, ca_path=served.ca_path, app=app)
    finally:
        gc.collect()
        served.stop()


@pytest.fixture
def set_connection(monkeypatch: pytest.MonkeyPatch):
    """``set_connection(conn_id, {conn_type, host, ...})`` sets ``AIRFLOW_CONN_<ID>`` for this test; returns the JSON."""

    def _set(conn_id: str, connection: dict[str, Any]) -> str:
        value = json.dumps(connection)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        return value

    return _set


@pytest.fixture(scope="session")
def pg_airflow_connection(pg_database: dict) -> dict[str, Any]:
    """An Airflow ``postgres`` connection (dict for ``AIRFLOW_CONN_*``) to the session's ``pg_database``."""
    return {
        "conn_type": "postgres",
        "host": pg_database["host"],
        "port": pg_database["port"],
        "login": pg_database["user"],
        "schema": pg_database["dbname"],
    }


@dataclass
class ServiceTitanSandbox:
    """The running ServiceTitan sandbox and its control plane (``/_sandbox/...``)."""

    base_url: str
    ca_path: str
    config: Any

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        import requests

        response = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=120
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def truth(self) -> dict:
        return self.control("GET", "truth")

    def restore(self) -> None:
        """Back to the seeded tenant, no faults."""
        self.control("POST", "faults", {})
        self.control("POST", "reset", {})

    def connection(self) -> dict[str, Any]:
        """``servicetitan_default`` (dict for ``AIRFLOW_CONN_*``) pointing at this sandbox."""
        return {
            "conn_type": "servicetitan",
            "login": self.config.client_id,
            "password": self.config.client_secret,
            "extra": {
                "environment": "integration",
                "tenant_id": self.config.tenant_id,
                "app_key": self.config.app_key,
                "api_url": self.base_url,
                "auth_url": self.base_url,
                "ca_bundle": self.ca_path,
            },
        }


@pytest.fixture(scope="session")
def servicetitan_sandbox() -> Iterator[ServiceTitanSandbox]:
    """The session's ServiceTitan sandbox over HTTPS, small: 60 customers, 300 invoices."""
    from airflow_provider_b1.sandbox.server import serve_in_thread
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig, create_app

    config = ServiceTitanSandboxConfig(seed=3, customers=60, invoices=300)
    served = serve_in_thread(create_app(config), tls=True)
    try:
        yield ServiceTitanSandbox(served.base_url, str(served.ca_path), config)
    finally:
        gc.collect()
        served.stop()


@dataclass
class SalesforceSandbox:
    """The running Salesforce sandbox (an org on one HTTPS server) and its control plane.

    ``config`` is its ``SalesforceSandboxConfig`` (client id and secret, sizes...); ``app`` the
    ASGI app (``app.state.sandbox.store`` is the live store, with the change log).
    """

    base_url: str
    ca_path: str
    config: Any
    app: Any = None

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        import requests

        response = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=120
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def faults(self, **faults: Any) -> dict:
        """Replace the fault settings (no arguments: none); see ``sandbox.salesforce.faults``."""
        return self.control("POST", "faults", faults)

    def truth(self, obj: str) -> list[dict]:
        """Every live record of ``obj``, every field, as the REST API prints them."""
        return self.control("GET", f"truth/{obj}")["records"]

    def edit(self, obj: str, id: str | None, **fields: Any) -> dict:
        """Change a record as a user in the UI would (``id=None`` creates one); returns
        ``{"id", "record", "changes"}``."""
        body: dict[str, Any] = {"object": obj, "fields": fields}
        if id is None:
            body["action"] = "create"
        else:
            body["id"] = id
        return self.control("POST", "edit", body)

    def token(self) -> dict:
        """A fresh token reply (``access_token``, ``instance_url``...), as a client gets it."""
        import requests

        reply = requests.post(
            f"{self.base_url}/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.config.client_id,
                "client_secret": self.config.client_secret,
            },
            verify=self.ca_path,
            timeout=30,
        )
        reply.raise_for_status()
        return reply.json()

    def restore(self) -> None:
        """Back to the seeded org with the fixture's settings, no faults, API usage 0."""
        self.control("POST", "faults", {})
        self.control("POST", "reset", {})

    def connection(self) -> dict[str, Any]:
        """``b1_salesforce_default`` (dict for ``AIRFLOW_CONN_*``): host is the org's My Domain
        URL (here the sandbox's base URL), login/password the connected app's key and secret."""
        return {
            "conn_type": "b1_salesforce",
            "host": self.base_url,
            "login": self.config.client_id,
            "password": self.config.client_secret,
            "extra": {"api_version": "62.0", "ca_bundle": self.ca_path},
        }


@pytest.fixture(scope="session")
def salesforce_sandbox() -> Iterator[SalesforceSandbox]:
    """The session's Salesforce sandbox over HTTPS, small: 40 accounts, 80 opportunities, query
    batches of 25 records (so ``nextRecordsUrl`` paging shows), Bulk jobs done in 0.2 s."""
    from airflow_provider_b1.sandbox.salesforce import SalesforceSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    config = SalesforceSandboxConfig(
        seed=7, accounts=40, opportunities=80, query_batch_size=25, bulk_processing_delay=0.2
    )
    app = create_app(config)
    served = serve_in_thread(app, tls=True)
    try:
        yield SalesforceSandbox(served.base_url, str(served.ca_path), config, app)
    finally:
        gc.collect()
        served.stop()


@dataclass
class TeamsSandbox:
    """The running Microsoft Teams sandbox (webhook, tokens, Bot Connector and Graph on one HTTPS
    server) and its control plane; ``config`` is its ``TeamsSandboxConfig``, ``app.state.sandbox``
    the live state (tokens, conversations, posts)."""

    base_url: str
    ca_path: str
    config: Any
    app: Any = None

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        import requests

        response = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=60
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def stats(self) -> dict:
        return self.control("GET", "stats")

    def faults(self, **faults: Any) -> dict:
        """Replace the fault settings (no arguments: none); see ``sandbox.faults``."""
        return self.control("POST", "faults", faults)

    def posts(self) -> list[dict]:
        """Every webhook post, bot post and update received, oldest first."""
        return self.control("GET", "posts")["posts"]

    def tenant(self) -> dict:
        """The seeded users and channels, with each channel's webhook URL."""
        return self.control("GET", "tenant")

    def issued_tokens(self) -> list[str]:
        return list(self.app.state.sandbox.tokens)

    def restore(self) -> None:
        """Back to the seeded tenant with default settings: no tokens, posts, faults or counts."""
        from dataclasses import fields

        defaults = type(self.config)()
        self.control(
            "POST",
            "config",
            {
                f.name: getattr(defaults, f.name)
                for f in fields(defaults)
                if f.name
                in (
                    "bot_app_secret",
                    "graph_client_secret",
                    "token_lifetime_seconds",
                    "bot_requests_per_second",
                    "max_message_bytes",
                )
            },
        )
        self.control("POST", "reset")

    def webhook_connection(self, channel: int = 0, **overrides: Any) -> dict[str, Any]:
        """A ``b1_teams_webhook`` connection (dict for ``AIRFLOW_CONN_*``) posting to a seeded channel."""
        found = self.tenant()["channels"][channel]
        connection = {
            "conn_type": "b1_teams_webhook",
            "host": f"{found['team']} / {found['name']}",
            "password": found["webhook_url"],
            "extra": {"ca_bundle": self.ca_path},
        }
        connection.update(overrides)
        return connection

    def bot_connection(self, **extra: Any) -> dict[str, Any]:
        """A ``b1_teams_bot`` connection whose token, Bot Connector and Graph endpoints are the sandbox."""
        login = extra.pop("login", self.config.bot_app_id)
        password = extra.pop("password", self.config.bot_app_secret)
        base = {
            "tenant_id": self.config.tenant_id,
            "service_url": self.base_url,
            "graph_client_id": self.config.graph_client_id,
            "graph_client_secret": self.config.graph_client_secret,
            "login_url": self.base_url,
            "graph_url": self.base_url,
            "ca_bundle": self.ca_path,
        }
        base.update(extra)
        return {
            "conn_type": "b1_teams_bot",
            "login": login,
            "password": password,
            "extra": {k: v for k, v in base.items() if v is not None},
        }


@pytest.fixture(scope="session")
def teams_sandbox() -> Iterator[TeamsSandbox]:
    """The session's Microsoft Teams sandbox over HTTPS (seeded tenant: four users, three channels)."""
    from airflow_provider_b1.sandbox.server import serve_in_thread
    from airflow_provider_b1.sandbox.teams import TeamsSandboxConfig, create_app

    config = TeamsSandboxConfig()
    app = create_app(config)
    served = serve_in_thread(app, tls=True)
    try:
        yield TeamsSandbox(served.base_url, str(served.ca_path), config, app)
    finally:
        gc.collect()
        served.stop()


# ---------------------------------------------------------------------------------------------
# Two workers (``./run tests`` passes ``-n 2 --dist loadscope --no-loadscope-reorder``): a test
# module runs whole on one worker, so its module fixtures (sandboxes, DAG runs its tests share) are
# made once; the tests against a live Airflow run together on one worker (one Airflow, stopped
# after the last of them). The longest scopes go first, so that the other worker's modules fill the
# time beside them instead of one long scope running alone at the end. (The scheduler is our own
# because xdist's ``loadgroup`` marks no longer reach it: it renames node ids, which pytest 9 no
# longer reads.)

_TESTS = Path(__file__).resolve().parent
#: Scopes known to take minutes, started first (in this order).
_LONG_SCOPES = ("live", "tests/integration/test_demo.py", "tests/dags/test_salesforce_dag.py")


def _scope(nodeid: str) -> str:
    """The scope a test runs in: its module, or ``live`` for every test against the live Airflow."""
    module = nodeid.split("::", 1)[0]
    return "live" if module.startswith("tests/integration/live/") else module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return ModuleScheduling(config, log)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {scope: i for i, scope in enumerate(_LONG_SCOPES)}
    root = _TESTS.parent
    items.sort(  # stable: otherwise as collected
        key=lambda item: rank.get(
            _scope(Path(str(item.path)).resolve().relative_to(root).as_posix()), len(rank)
        )
    )
