from __future__ import annotations

from collections.abc import Iterator

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
