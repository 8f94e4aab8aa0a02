"""Webhooks against a real Airflow: a valid delivery starts a DAG run, a refused one starts nothing.

The ServiceTitan sandbox delivers signed webhooks (with its retries) to ``b1-webhooks``, run as
its own process over HTTPS; the receiver records an Asset event through the live Airflow's REST
API, and the scheduler starts an asset-triggered run of ``servicetitan_to_sap_b1``. Deliveries
with a wrong signature, a stale time or already taken are refused and leave no Asset event, no
queued event and no run; a valid delivery after them starts exactly one run, which consumes
exactly its own event. Runs are ended without waiting for their tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
from live_helpers import SERVICETITAN_DAG, SERVICETITAN_KEY, unpaused

from airflow_provider_b1.webhooks.settings import DEFAULT_SERVICETITAN_URIS
from airflow_provider_b1.webhooks.signatures import sign

RUN_TIMEOUT = 60.0
"""Seconds from a delivery to its DAG run: a scheduler loop takes about one."""
QUIET_SECONDS = 5.0
"""How long nothing must happen after a refused delivery: several scheduler loops."""
INVOICES = DEFAULT_SERVICETITAN_URIS["invoices"]
HEADER = "X-ServiceTitan-Signature"
ASSET_TRIGGERED = "asset_triggered"


@pytest.fixture(scope="module")
def servicetitan_flow(live_airflow, webhook_receiver, live_servicetitan):
    """``servicetitan_to_sap_b1`` alone unpaused, the sandbox's invoice webhooks going to the receiver."""
    live_servicetitan.control("POST", "config", {"webhook_time_scale": 0.001})  # retries within 0.4 s
    with unpaused(live_airflow, SERVICETITAN_DAG):
        yield live_airflow
    live_servicetitan.control("DELETE", "webhooks")


def _subscribe(sandbox, receiver, key: str = SERVICETITAN_KEY) -> None:
    sandbox.control(
        "POST",
        "webhooks",
        {
            "eventType": "invoice.updated",
            "url": f"{receiver.url}/webhooks/servicetitan/invoices",
            "key": key,
            "verify": receiver.ca_path,
        },
    )


def _edit_an_invoice(sandbox) -> tuple[int, dict[str, Any]]:
    """Change one invoice in the sandbox and wait until its webhook delivery is settled.

    :return: the invoice's id and the delivery as the control plane shows it (``state``,
        ``attempts``).
    """
    before = len(sandbox.control("GET", "webhooks")["deliveries"])
    touched = sandbox.control("POST", "mutate", {"edit_invoices": 1})
    deadline = time.monotonic() + 30
    while True:
        deliveries = sandbox.control("GET", "webhooks")["deliveries"][before:]
        if deliveries and all(d["state"] != "pending" for d in deliveries):
            assert len(deliveries) == 1, deliveries
            return touched["invoices"][0], deliveries[0]
        assert time.monotonic() < deadline, f"the sandbox's delivery is still pending: {deliveries}"
        time.sleep(0.05)


def _new_run(airflow, known: set[str]) -> dict[str, Any]:
    """The one asset-triggered run not in ``known``, once the scheduler has created it."""
    started = time.monotonic()
    runs = airflow.wait_for_runs(
        SERVICETITAN_DAG, len(known) + 1, run_type=ASSET_TRIGGERED, timeout=RUN_TIMEOUT
    )
    (run,) = [run for run in runs if run["dag_run_id"] not in known]
    assert time.monotonic() - started < RUN_TIMEOUT
    return run


def _asset_runs(airflow) -> set[str]:
    return {run["dag_run_id"] for run in airflow.dag_runs(SERVICETITAN_DAG, run_type=ASSET_TRIGGERED)}


def _run_ids(airflow) -> list[str]:
    return [run["dag_run_id"] for run in airflow.dag_runs(SERVICETITAN_DAG)]


def _delivery(*, age: float = 0.0) -> tuple[bytes, dict[str, str]]:
    """A delivery as ServiceTitan (and its sandbox) sends one, ``age`` seconds old, signed."""
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age)
    body = json.dumps(
        {
            "eventId": str(uuid.uuid4()),
            "eventType": "invoice.updated",
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            "data": {"id": 4711, "total": "120.00"},
        }
    ).encode()
    return body, {HEADER: sign(body, SERVICETITAN_KEY)}


def test_a_signed_servicetitan_delivery_starts_an_asset_triggered_run(
    servicetitan_flow, live_servicetitan, webhook_receiver
):
    airflow = servicetitan_flow
    known = _asset_runs(airflow)
    _subscribe(live_servicetitan, webhook_receiver)
    invoice, delivery = _edit_an_invoice(live_servicetitan)
    assert delivery["attempts"] == [200], delivery
    run = _new_run(airflow, known)
    assert run["run_type"] == ASSET_TRIGGERED
    assert run["dag_id"] == SERVICETITAN_DAG
    (consumed,) = airflow.upstream_asset_events(SERVICETITAN_DAG, run["dag_run_id"])
    assert consumed["uri"] == INVOICES
    extra = consumed["extra"]
    assert extra.pop("event_id")
    assert extra == {
        "source": "servicetitan",
        "topic": "invoices",
        "event_type": "invoice.updated",
        "entity_id": str(invoice),
        "from_rest_api": True,
    }
    assert airflow.unpaused_dags() == [SERVICETITAN_DAG]
    airflow.close_active_runs(SERVICETITAN_DAG)
    assert f"recorded as Asset event {consumed['id']} of {INVOICES}" in webhook_receiver.output()


def test_refused_deliveries_start_no_run(servicetitan_flow, live_servicetitan, webhook_receiver):
    airflow = servicetitan_flow
    path = "/webhooks/servicetitan/invoices"
    # A valid delivery first: the loop is live, and its bytes are what the replay below repeats.
    known = _asset_runs(airflow)
    accepted, accepted_headers = _delivery()
    reply = webhook_receiver.post(path, accepted, accepted_headers)
    assert reply.status_code == 200, reply.text
    _new_run(airflow, known)
    airflow.close_active_runs(SERVICETITAN_DAG)
    runs_before = _run_ids(airflow)
    events_before = airflow.asset_events(INVOICES)

    # 1. Signed with a key the receiver does not know: each of the sandbox's attempts is refused.
    _subscribe(live_servicetitan, webhook_receiver, key="not-the-key-" + "x" * 28)
    _, forged = _edit_an_invoice(live_servicetitan)
    assert forged["state"] == "failed"
    assert forged["attempts"] == [401] * 5

    # 2. Correctly signed, but ten minutes old.
    body, headers = _delivery(age=600)
    reply = webhook_receiver.post(path, body, headers)
    assert reply.status_code == 401, reply.text
    assert "replay window" in reply.json()["detail"]

    # 3. The accepted delivery again, byte for byte, within the replay window.
    reply = webhook_receiver.post(path, accepted, accepted_headers)
    assert reply.status_code == 409, reply.text

    # Nothing was recorded, nothing is queued for the scheduler, and no run appears.
    assert airflow.asset_events(INVOICES) == events_before
    assert airflow.queued_asset_events(SERVICETITAN_DAG) == []
    time.sleep(QUIET_SECONDS)
    assert _run_ids(airflow) == runs_before

    # A valid delivery now starts exactly one run, which consumes its own event and no other.
    known = _asset_runs(airflow)
    body, headers = _delivery()
    assert webhook_receiver.post(path, body, headers).status_code == 200
    run = _new_run(airflow, known)
    consumed = airflow.upstream_asset_events(SERVICETITAN_DAG, run["dag_run_id"])
    assert [event["extra"]["event_id"] for event in consumed] == [json.loads(body)["eventId"]]
    assert _run_ids(airflow) == [*runs_before, run["dag_run_id"]]
    airflow.close_active_runs(SERVICETITAN_DAG)
