from __future__ import annotations

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
