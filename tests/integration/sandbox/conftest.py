from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests

from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
from airflow_provider_b1.sandbox.server import Served, serve_in_thread

USER, PASSWORD, COMPANY = "manager", "manager-secret-1", "SBODEMOUS"


@pytest.fixture(scope="session")
def sap_app():
    return create_app(SapSandboxConfig(seed=3, invoices=1200))


@pytest.fixture(scope="session")
def sap_http(sap_app) -> Iterator[Served]:
    served = serve_in_thread(sap_app, tls=False)
    yield served
    served.stop()


@pytest.fixture(scope="session")
def sap_https(sap_app) -> Iterator[Served]:
    served = serve_in_thread(sap_app, tls=True)
    yield served
    served.stop()


@pytest.fixture(autouse=True)
def _clean(sap_http: Served) -> Iterator[None]:
    yield
    base = sap_http.base_url
    requests.post(f"{base}/_sandbox/faults", json={}, timeout=10)
    requests.post(
        f"{base}/_sandbox/config",
        json={
            "session_timeout_seconds": None,
            "default_page_size": 20,
            "expired_session_code": 301,
            "next_link_style": "relative",
            "login_delay": 0.0,
        },
        timeout=10,
    )
    requests.post(f"{base}/_sandbox/unlock", timeout=10)


def login(base_url: str, version: str = "v2", **kwargs) -> requests.Session:
    session = requests.Session()
    verify = kwargs.pop("verify", True)
    session.verify = verify
    reply = session.post(
        f"{base_url}/b1s/{version}/Login",
        json={"CompanyDB": COMPANY, "UserName": USER, "Password": PASSWORD},
        timeout=30,
        # Per request: REQUESTS_CA_BUNDLE in the environment would override session.verify.
        verify=verify,
    )
    assert reply.status_code == 200, reply.text
    return session


@pytest.fixture
def sap_login():
    """The ``login(base_url, version="v2", verify=True)`` helper, for tests that need their own session."""
    return login


@pytest.fixture
def v2(sap_http: Served) -> requests.Session:
    return login(sap_http.base_url, "v2")


@pytest.fixture
def v1(sap_http: Served) -> requests.Session:
    return login(sap_http.base_url, "v1")


@pytest.fixture
def sap_https_sessions(sap_https) -> tuple[str, requests.Session, requests.Session]:
    """(base URL, v1 session, v2 session) logged in over HTTPS, trusting the sandbox's CA."""
    base = sap_https.base_url
    sessions = []
    for version in ("v1", "v2"):
        session = login(base, version, verify=sap_https.ca_path)
        session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise win over session.verify
        sessions.append(session)
    return base, sessions[0], sessions[1]


@pytest.fixture
def sap_control(sap_https) -> Iterator[Callable[..., requests.Response]]:
    """``sap_control(method, path, body)`` on the control plane over HTTPS; the company is
    reseeded afterwards, so a test may seed or change records freely."""

    def call(method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(
            method, f"{sap_https.base_url}/_sandbox/{path}", json=body, verify=sap_https.ca_path, timeout=60
        )

    yield call
    assert call("POST", "reset").status_code == 200


# -- ServiceTitan ---------------------------------------------------------------------------------


class ServiceTitanClient:
    """A third-party client of the ServiceTitan sandbox over HTTPS, with plain ``requests``.

    ``get("accounting", "invoices", pageSize=5)`` calls ``/accounting/v2/tenant/<t>/invoices``
    with a cached bearer token and the app key; ``control(method, path, body)`` calls
    ``/_sandbox/<path>``. A test that changes data, the clock or tokens through ``control`` gets
    the tenant reset after it.
    """

    def __init__(self, served: Served, config) -> None:
        self.base = served.base_url
        self.ca = served.ca_path
        self.config = config
        self.tenant = config.tenant_id
        self.http = requests.Session()
        self.http.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise win over verify
        self.http.verify = served.ca_path
        self._token: str | None = None
        self._token_until = 0.0
        self.dirty = False

    def request_token(self, **form) -> requests.Response:
        body = {
            "grant_type": "client_credentials",
            "client_id": self.config.client_id,
            "client_secret": self.config.client_secret,
            **form,
        }
        return self.http.post(f"{self.base}/connect/token", data=body, timeout=10)

    def token(self, fresh: bool = False) -> str:
        """A bearer token, cached until nine tenths of its lifetime have passed in real time (the client lives
        for the whole run, which lasts longer than a token)."""
        if fresh or self._token is None or time.monotonic() >= self._token_until:
            reply = self.request_token()
            assert reply.status_code == 200, reply.text
            self._token = reply.json()["access_token"]
            self._token_until = time.monotonic() + 0.9 * float(reply.json().get("expires_in", 900))
        return self._token

    def url(self, module: str, resource: str, tenant: str | None = None) -> str:
        return f"{self.base}/{module}/v2/tenant/{tenant or self.tenant}/{resource}"

    def get(self, module: str, resource: str, *, headers: dict | None = None, **params) -> requests.Response:
        sent = {"Authorization": f"Bearer {self.token()}", "ST-App-Key": self.config.app_key}
        sent.update(headers or {})
        return self.http.get(self.url(module, resource), params=params, headers=sent, timeout=30)

    def ok(self, module: str, resource: str, **params) -> dict:
        reply = self.get(module, resource, **params)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def control(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        if path.split("/")[0] in ("mutate", "seed", "clock", "expire-tokens", "reset", "webhooks"):
            self.dirty = True
        return self.http.request(method, f"{self.base}/_sandbox/{path}", json=body, timeout=60)


@pytest.fixture(scope="session")
def servicetitan_config():
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig

    return ServiceTitanSandboxConfig(seed=5, customers=120, invoices=600)


@pytest.fixture(scope="session")
def servicetitan_served(servicetitan_config) -> Iterator[Served]:
    """One ServiceTitan sandbox over HTTPS for the whole run (small data: 120 customers, 600 invoices)."""
    from airflow_provider_b1.sandbox.servicetitan import create_app

    served = serve_in_thread(create_app(servicetitan_config), tls=True)
    yield served
    served.stop()


@pytest.fixture(scope="session")
def _servicetitan_client(servicetitan_served, servicetitan_config) -> Iterator[ServiceTitanClient]:
    client = ServiceTitanClient(servicetitan_served, servicetitan_config)
    yield client
    client.http.close()  # an open keep-alive connection would hold the server's shutdown


@pytest.fixture
def servicetitan(_servicetitan_client) -> Iterator[ServiceTitanClient]:
    """The ServiceTitan client; faults and settings are restored after the test, and the tenant
    (data, clock, counters) is reset when the test changed it."""
    client = _servicetitan_client
    defaults = client.http.get(f"{client.base}/_sandbox/config", timeout=10).json()
    yield client
    client.control("POST", "faults", {})
    settable = {
        k: defaults[k]
        for k in (
            "rate_limit_per_second",
            "rate_limit_window",
            "token_requests_per_minute",
            "export_page_size",
            "export_lag_seconds",
            "token_lifetime_seconds",
            "default_page_size",
            "max_ids",
            "list_active_default",
            "webhook_time_scale",
            "webhook_retry_seconds",
        )
    }
    assert client.control("POST", "config", settable).status_code == 200
    client.control("POST", "stats/reset")  # token and call throttles start afresh too
    if client.dirty:
        client.control("DELETE", "webhooks")
        assert client.control("POST", "reset").status_code == 200
        client._token = None
        client.dirty = False
