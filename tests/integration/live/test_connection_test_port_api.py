"""The Test button's request for a connection saved without a port, sent to the live Airflow's
api-server over HTTP as its UI sends it (``airflow_provider_b1.plugins.connection_test_port``).

The browser suite presses the button itself; these cases check the route's answers one by one
without a browser: a portless connection is tested, and every other destination is still refused
as Airflow refuses it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from live_helpers import SAP_COMPANY, SAP_PASSWORD, SAP_USER

from airflow_provider_b1.plugins.connection_test_port import ConnectionTestPortPlugin

REFUSED = "The host or port to test differs from the stored connection"


def _ui_test_body(stored: dict[str, Any]) -> dict[str, Any]:
    """What Airflow 3.3.2's connection list sends when its Test button is pressed: the stored
    connection as the list shows it (the password masked), the port as ``Number(port)``."""
    return {
        "conn_type": stored["conn_type"],
        "connection_id": stored["connection_id"],
        "description": stored.get("description") or "",
        "extra": stored.get("extra") or "{}",
        "host": stored.get("host") or "",
        "login": stored.get("login") or "",
        "password": stored.get("password") or "",
        "port": stored.get("port") or 0,
        "schema": stored.get("schema") or "",
    }


@pytest.fixture(scope="module")
def saved(live_airflow, live_sap, tmp_path_factory) -> Iterator[dict[str, dict[str, Any]]]:
    """Connections saved in the live Airflow's metadata database, as the list returns them."""
    database = tmp_path_factory.mktemp("port-test") / "warehouse.db"
    database.touch()
    connections = {
        "sap_no_port": {
            "conn_type": "sap_b1",
            "host": f"{live_sap.base_url}/b1s/v2/",
            "schema": SAP_COMPANY,
            "login": SAP_USER,
            "password": SAP_PASSWORD,
            "extra": json.dumps({"ca_bundle": live_sap.ca_path}),
        },
        "sqlite_no_port": {"conn_type": "sqlite", "host": str(database)},
        "sqlite_port_0": {"conn_type": "sqlite", "host": str(database), "port": 0},
        "sqlite_port_5432": {"conn_type": "sqlite", "host": str(database), "port": 5432},
    }
    for conn_id, connection in connections.items():
        live_airflow.api("POST", "/connections", json={"connection_id": conn_id, **connection}, expect=(201,))
    try:
        yield {conn_id: live_airflow.api("GET", f"/connections/{conn_id}") for conn_id in connections}
    finally:
        for conn_id in connections:
            live_airflow.api("DELETE", f"/connections/{conn_id}", expect=(204, 404))


def _test(airflow: Any, body: dict[str, Any]) -> requests.Response:
    return requests.post(
        f"{airflow.base_url}/api/v2/connections/test",
        json=body,
        headers={"Authorization": f"Bearer {airflow.token()}"},
        timeout=60,
    )


def test_the_plugin_is_installed_in_the_api_server(live_airflow):
    plugins = live_airflow.api("GET", "/plugins", params={"limit": 100})["plugins"]
    (plugin,) = [p for p in plugins if p["name"] == ConnectionTestPortPlugin.name]
    assert [m["name"] for m in plugin["fastapi_root_middlewares"]] == [
        ConnectionTestPortPlugin.fastapi_root_middlewares[0]["name"]
    ]


def test_a_connection_saved_without_a_port_is_tested_with_its_stored_password(live_airflow, saved):
    body = _ui_test_body(saved["sap_no_port"])
    assert (body["port"], body["password"]) == (0, "***")
    reply = _test(live_airflow, body)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["status"] is True, answer
    assert f"company {SAP_COMPANY} as {SAP_USER}" in answer["message"]
    assert "Readable: " in answer["message"]

    reply = _test(live_airflow, _ui_test_body(saved["sqlite_no_port"]))
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] is True


def test_another_host_or_port_is_still_refused_without_its_own_password(live_airflow, saved):
    body = _ui_test_body(saved["sap_no_port"])
    for changed in (
        {"host": "https://elsewhere.invalid/b1s/v2/"},
        {"host": "https://elsewhere.invalid/b1s/v2/", "port": None},
        {"port": 50000},
    ):
        reply = _test(live_airflow, {**body, **changed})
        assert reply.status_code == 400, (changed, reply.text)
        assert REFUSED in reply.json()["detail"], changed
    # With its own password, another destination is tested (not refused), as Airflow does.
    body = _ui_test_body(saved["sqlite_no_port"])
    other = str(Path(body["host"]).with_name("other.db"))
    reply = _test(live_airflow, {**body, "host": other, "password": "its-own"})
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"status", "message"}


def test_port_0_for_a_connection_stored_with_a_port_is_passed_on_as_sent(live_airflow, saved):
    # Stored 0, sent 0: the same port, as before.
    reply = _test(live_airflow, _ui_test_body(saved["sqlite_port_0"]))
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] is True
    # Stored 5432: its own port is tested, 0 is another port and refused, as Airflow refuses it.
    body = _ui_test_body(saved["sqlite_port_5432"])
    assert _test(live_airflow, body).status_code == 200
    reply = _test(live_airflow, {**body, "port": 0})
    assert reply.status_code == 400, reply.text
    assert REFUSED in reply.json()["detail"]
