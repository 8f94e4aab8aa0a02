"""The middleware that lets Airflow 3.3.2's Test button test a connection saved without a port
(``airflow_provider_b1.plugins.connection_test_port``), in process in front of an application that
answers with the request it received. The live api-server's answers are in
``tests/integration/live/test_connection_test_port_api.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from airflow_provider_b1.plugins.connection_test_port import (
    TEST_ROUTE,
    ConnectionTestPortMiddleware,
    ConnectionTestPortPlugin,
    upstream_fixed,
)

PORTLESS = {"sap_no_port"}
"""The connections stored without a port, for these tests."""


async def _received(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer with the body and the Content-Length this application was given."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    length = dict(scope["headers"]).get(b"content-length", b"").decode()
    payload = json.dumps({"body": body.decode(), "content_length": length}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": payload})


def _client(*, active: bool = True, lookup: Any = PORTLESS.__contains__, root_path: str = "") -> TestClient:
    app = ConnectionTestPortMiddleware(_received, active=active, stored_port_is_null=lookup)
    return TestClient(app, root_path=root_path)


def _sent(client: TestClient, body: Any, *, path: str = TEST_ROUTE, method: str = "POST") -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = client.request(method, path, content=content, headers={"Content-Type": "application/json"})
    assert reply.status_code == 200, reply.text
    received = reply.json()
    assert received["content_length"] in ("", str(len(received["body"].encode())))
    try:
        return json.loads(received["body"])
    except ValueError:
        return received["body"]


UI_BODY = {
    "conn_type": "sap_b1",
    "connection_id": "sap_no_port",
    "host": "https://sap/b1s/v2/",
    "password": "***",
}


def test_the_installed_airflow_refuses_port_0_for_no_port_so_the_middleware_is_active():
    from airflow.api_fastapi.core_api.routes.public.connections import _same_endpoint

    assert _same_endpoint(0, None) is False, "this Airflow has apache/airflow PR #73298: the plugin can go"
    assert upstream_fixed() is False
    assert ConnectionTestPortMiddleware(_received).active is True
    (middleware,) = ConnectionTestPortPlugin.fastapi_root_middlewares
    assert middleware["middleware"] is ConnectionTestPortMiddleware


def test_port_0_of_a_connection_stored_without_a_port_reaches_airflow_as_null():
    client = _client()
    assert _sent(client, {**UI_BODY, "port": 0}) == {**UI_BODY, "port": None}
    # Under a base URL's path as well.
    under = _client(root_path="/airflow")
    assert _sent(under, {**UI_BODY, "port": 0}, path=f"/airflow{TEST_ROUTE}") == {**UI_BODY, "port": None}


@pytest.mark.parametrize(
    ("body", "path", "method"),
    [
        pytest.param(
            {**UI_BODY, "connection_id": "sap_with_port", "port": 0}, TEST_ROUTE, "POST", id="stored-port"
        ),
        pytest.param(
            {**UI_BODY, "connection_id": "not_saved", "port": 0}, TEST_ROUTE, "POST", id="not-saved"
        ),
        pytest.param({**UI_BODY, "port": 50000}, TEST_ROUTE, "POST", id="another-port"),
        pytest.param({**UI_BODY, "port": False}, TEST_ROUTE, "POST", id="not-a-number"),
        pytest.param({**UI_BODY, "port": None}, TEST_ROUTE, "POST", id="null"),
        pytest.param({k: v for k, v in UI_BODY.items() if k != "port"}, TEST_ROUTE, "POST", id="no-port"),
        pytest.param({**UI_BODY, "port": 0}, "/api/v2/connections", "POST", id="another-route"),
        pytest.param({**UI_BODY, "port": 0}, f"{TEST_ROUTE}/more", "POST", id="a-longer-route"),
        pytest.param({**UI_BODY, "port": 0}, TEST_ROUTE, "PUT", id="another-method"),
        pytest.param([UI_BODY], TEST_ROUTE, "POST", id="not-an-object"),
        pytest.param(b'{"port": 0, "connection_id": "sap_no_port"', TEST_ROUTE, "POST", id="not-json"),
    ],
)
def test_every_other_request_passes_untouched(body, path, method):
    expected = body.decode() if isinstance(body, bytes) else body
    assert _sent(_client(), body, path=path, method=method) == expected


def test_inactive_or_unsure_it_passes_the_request_as_sent():
    body = {**UI_BODY, "port": 0}
    assert _sent(_client(active=False), body) == body

    def unreachable(conn_id: str) -> bool:
        raise ConnectionError("the metadata database is down")

    assert _sent(_client(lookup=unreachable), body) == body
