"""Webhooks against a real Airflow: a valid delivery starts a DAG run, a refused one starts nothing.

The ServiceTitan and SAP Business One sandboxes deliver signed webhooks (with their retries) to
``b1-webhooks``, run as its own process over HTTPS; the receiver records an Asset event through
the live Airflow's REST API, and the scheduler starts an asset-triggered run of the DAG scheduled
on that Asset (``servicetitan_to_sap_b1``, ``sap_b1_to_warehouse``). Deliveries with a wrong
signature, a stale time or already taken are refused and leave no Asset event, no queued event
and no run; a valid delivery after them starts exactly one run, which consumes exactly its own
event. Runs are ended without waiting for their tasks. One DAG is unpaused at a time.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import pytest
from live_helpers import SAP_SECRET, SERVICETITAN_DAG, SERVICETITAN_KEY, WAREHOUSE_DAG, unpaused

from airflow_provider_b1.webhooks.assets import sap_b1_asset, servicetitan_asset
from airflow_provider_b1.webhooks.signatures import sign

RUN_TIMEOUT = 60.0
"""Seconds from a delivery to its DAG run: a scheduler loop takes about one."""
QUIET_SECONDS = 3.0
"""How long nothing may happen after refused deliveries: about three scheduler loops (one a second)."""
ASSET_TRIGGERED = "asset_triggered"
FAST_RETRIES = {"webhook_time_scale": 0.001}
"""The sandboxes' retry delays (10 s to 5 min) shrunk to milliseconds."""


def _asset_runs(airflow, dag_id: str) -> set[str]:
    return {run["dag_run_id"] for run in airflow.dag_runs(dag_id, run_type=ASSET_TRIGGERED)}


def _run_ids(airflow, dag_id: str) -> list[str]:
    return [run["dag_run_id"] for run in airflow.dag_runs(dag_id)]


def _new_run(airflow, dag_id: str, known: set[str]) -> dict[str, Any]:
    """The one asset-triggered run of ``dag_id`` not in ``known``, once the scheduler created it."""
    started = time.monotonic()
    runs = airflow.wait_for_runs(dag_id, len(known) + 1, run_type=ASSET_TRIGGERED, timeout=RUN_TIMEOUT)
    (run,) = [run for run in runs if run["dag_run_id"] not in known]
    assert run["run_type"] == ASSET_TRIGGERED
    assert time.monotonic() - started < RUN_TIMEOUT
    return run


def _settled(sandbox, before: int) -> dict[str, Any]:
    """The one delivery the sandbox queued after its first ``before``, once it is delivered or failed."""
    deadline = time.monotonic() + 30
    while True:
        deliveries = sandbox.control("GET", "webhooks")["deliveries"][before:]
        if deliveries and all(d["state"] != "pending" for d in deliveries):
            assert len(deliveries) == 1, deliveries
            return deliveries[0]
        assert time.monotonic() < deadline, f"the sandbox's delivery is still pending: {deliveries}"
        time.sleep(0.05)


def _assert_refusals_left_no_trace(airflow, dag_id: str, uri: str, runs: list[str], events: list) -> None:
    """Nothing was recorded, nothing is queued for the scheduler, and no run appears meanwhile."""
    assert airflow.asset_events(uri) == events
    assert airflow.queued_asset_events(dag_id) == []
    time.sleep(QUIET_SECONDS)
    assert _run_ids(airflow, dag_id) == runs
    assert airflow.queued_asset_events(dag_id) == []


# -- ServiceTitan -------------------------------------------------------------------------------

ST_INVOICES = servicetitan_asset("invoices").uri
ST_PATH = "/webhooks/servicetitan/invoices"
ST_HEADER = "X-ServiceTitan-Signature"


def _st_subscribe(sandbox, receiver, key: str = SERVICETITAN_KEY) -> None:
    registration = {
        "eventType": "invoice.updated",
        "url": f"{receiver.url}{ST_PATH}",
        "key": key,
        "verify": receiver.ca_path,
    }
    sandbox.control("POST", "webhooks", registration)


def _st_edit_an_invoice(sandbox) -> tuple[int, dict[str, Any]]:
    """Change one invoice; return its id and the sandbox's delivery (``state``, ``attempts``)."""
    before = len(sandbox.control("GET", "webhooks")["deliveries"])
    touched = sandbox.control("POST", "mutate", {"edit_invoices": 1})
    return touched["invoices"][0], _settled(sandbox, before)


def _st_delivery(*, age: float = 0.0) -> tuple[bytes, dict[str, str]]:
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
    return body, {ST_HEADER: sign(body, SERVICETITAN_KEY)}


@pytest.fixture(scope="class")
def servicetitan_flow(live_airflow, webhook_receiver, live_servicetitan):
    """``servicetitan_to_sap_b1`` alone unpaused; the sandbox retries within milliseconds."""
    live_servicetitan.control("POST", "config", FAST_RETRIES)
    with unpaused(live_airflow, SERVICETITAN_DAG):
        yield live_airflow
    live_servicetitan.control("DELETE", "webhooks")


class TestServiceTitan:
    @pytest.fixture
    def airflow(self, servicetitan_flow):
        return servicetitan_flow

    def test_a_signed_delivery_starts_an_asset_triggered_run(
        self, airflow, live_servicetitan, webhook_receiver
    ):
        known = _asset_runs(airflow, SERVICETITAN_DAG)
        _st_subscribe(live_servicetitan, webhook_receiver)
        invoice, delivery = _st_edit_an_invoice(live_servicetitan)
        assert delivery["attempts"] == [200], delivery
        run = _new_run(airflow, SERVICETITAN_DAG, known)
        (consumed,) = airflow.upstream_asset_events(SERVICETITAN_DAG, run["dag_run_id"])
        assert consumed["uri"] == ST_INVOICES
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
        assert f"recorded as Asset event {consumed['id']} of {ST_INVOICES}" in webhook_receiver.output()

    def test_refused_deliveries_start_no_run(self, airflow, live_servicetitan, webhook_receiver):
        # A valid delivery first: the loop is live, and its bytes are what the replay below repeats.
        known = _asset_runs(airflow, SERVICETITAN_DAG)
        accepted, accepted_headers = _st_delivery()
        reply = webhook_receiver.post(ST_PATH, accepted, accepted_headers)
        assert reply.status_code == 200, reply.text
        _new_run(airflow, SERVICETITAN_DAG, known)
        airflow.close_active_runs(SERVICETITAN_DAG)
        runs = _run_ids(airflow, SERVICETITAN_DAG)
        events = airflow.asset_events(ST_INVOICES)

        # 1. Signed with a key the receiver does not know: each of the sandbox's attempts is refused.
        _st_subscribe(live_servicetitan, webhook_receiver, key="not-the-key-" + "x" * 28)
        _, forged = _st_edit_an_invoice(live_servicetitan)
        assert forged["state"] == "failed"
        assert forged["attempts"] == [401] * 5

        # 2. Correctly signed, but ten minutes old.
        body, headers = _st_delivery(age=600)
        reply = webhook_receiver.post(ST_PATH, body, headers)
        assert reply.status_code == 401, reply.text
        assert "replay window" in reply.json()["detail"]

        # 3. The accepted delivery again, byte for byte, within the replay window.
        reply = webhook_receiver.post(ST_PATH, accepted, accepted_headers)
        assert reply.status_code == 409, reply.text

        _assert_refusals_left_no_trace(airflow, SERVICETITAN_DAG, ST_INVOICES, runs, events)

        # A valid delivery now starts exactly one run, which consumes its own event and no other.
        known = _asset_runs(airflow, SERVICETITAN_DAG)
        body, headers = _st_delivery()
        assert webhook_receiver.post(ST_PATH, body, headers).status_code == 200
        run = _new_run(airflow, SERVICETITAN_DAG, known)
        consumed = airflow.upstream_asset_events(SERVICETITAN_DAG, run["dag_run_id"])
        assert [event["extra"]["event_id"] for event in consumed] == [json.loads(body)["eventId"]]
        assert _run_ids(airflow, SERVICETITAN_DAG) == [*runs, run["dag_run_id"]]
        airflow.close_active_runs(SERVICETITAN_DAG)


# -- SAP Business One ---------------------------------------------------------------------------

SAP_INVOICES = sap_b1_asset("Invoices").uri
SAP_PATH = "/webhooks/sap-b1"
SAP_HEADER = "X-B1-Webhook-Signature"


def _sap_delivery(*, age: float = 0.0) -> tuple[bytes, dict[str, str]]:
    """A delivery as SAP Business One (and its sandbox) sends one, ``age`` seconds old, signed."""
    moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=age)
    body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "/b1s/v2/SBODEMOUS",
                "type": "sap.b1.Invoices.Created.v1",
                "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "subject": "Invoices(4711)",
                "datacontenttype": "application/json",
                "data": {"DocEntry": 4711},
            }
        ]
    ).encode()
    return body, {SAP_HEADER: sign(body, SAP_SECRET)}


@pytest.fixture(scope="class")
def sap_hook(live_connections, live_sap, webhook_receiver):
    """A ``SapB1Hook`` on the live Airflow's SAP sandbox; the sandbox trusts the receiver's CA."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    live_sap.control("POST", "config", {**FAST_RETRIES, "webhook_ca_bundle": webhook_receiver.ca_path})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_SAP_B1_DEFAULT", json.dumps(live_connections["sap_b1_default"]))
        hook = SapB1Hook()
        yield hook
        hook.close()  # its kept-alive connection would hold up the sandbox's stop
    live_sap.control("DELETE", "webhooks")


@pytest.fixture(scope="class")
def warehouse_flow(live_airflow, sap_hook):
    """``sap_b1_to_warehouse`` alone unpaused."""
    with unpaused(live_airflow, WAREHOUSE_DAG):
        yield live_airflow


class TestSapBusinessOne:
    @pytest.fixture
    def airflow(self, warehouse_flow):
        return warehouse_flow

    @pytest.fixture
    def hook(self, sap_hook):
        return sap_hook

    @staticmethod
    def subscribe(hook, receiver, secret: str = SAP_SECRET):
        """Subscribe the receiver to new A/R invoices with ``secret`` (SAP's handshake included)."""
        url = f"{receiver.url}{SAP_PATH}"
        hook.delete_webhook(url)  # an unchanged subscription would keep its old secret
        return hook.register_webhook(url, [("Invoices", "Created")], secret=secret)

    @staticmethod
    def create_invoice(hook, sandbox) -> tuple[int, dict[str, Any]]:
        """Add an A/R invoice through the Service Layer; return its DocEntry and the sandbox's delivery."""
        customer = hook.find_by("BusinessPartners", "CardType", "cCustomer", select="CardCode")
        item = next(hook.iter_records("Items", select="ItemCode", top=1))
        before = len(sandbox.control("GET", "webhooks")["deliveries"])
        invoice = hook.create(
            "Invoices",
            {
                "CardCode": customer["CardCode"],
                "DocDate": dt.date.today().isoformat(),
                "DocDueDate": (dt.date.today() + dt.timedelta(days=30)).isoformat(),
                "NumAtCard": f"LIVE-{uuid.uuid4().hex[:12]}",
                "DocumentLines": [{"ItemCode": item["ItemCode"], "Quantity": 1, "UnitPrice": 10.5}],
            },
        )
        return invoice["DocEntry"], _settled(sandbox, before)

    def test_a_new_document_starts_an_asset_triggered_run(self, airflow, hook, live_sap, webhook_receiver):
        subscription = self.subscribe(hook, webhook_receiver)
        assert subscription.events == (("Invoices", "Created"),)
        known = _asset_runs(airflow, WAREHOUSE_DAG)
        doc_entry, delivery = self.create_invoice(hook, live_sap)
        assert delivery["attempts"] == [200], delivery
        run = _new_run(airflow, WAREHOUSE_DAG, known)
        (consumed,) = airflow.upstream_asset_events(WAREHOUSE_DAG, run["dag_run_id"])
        assert consumed["uri"] == SAP_INVOICES
        extra = consumed["extra"]
        assert extra.pop("event_ids") == delivery["event_ids"]
        assert extra == {
            "source": "sap_b1",
            "business_object": "Invoices",
            "transactions": ["Created"],
            "keys": [doc_entry],
            "events": 1,
            "from_rest_api": True,
        }
        assert airflow.unpaused_dags() == [WAREHOUSE_DAG]
        airflow.close_active_runs(WAREHOUSE_DAG)

    def test_refused_deliveries_start_no_run(self, airflow, hook, live_sap, webhook_receiver):
        known = _asset_runs(airflow, WAREHOUSE_DAG)
        accepted, accepted_headers = _sap_delivery()
        reply = webhook_receiver.post(SAP_PATH, accepted, accepted_headers)
        assert reply.status_code == 200, reply.text
        _new_run(airflow, WAREHOUSE_DAG, known)
        airflow.close_active_runs(WAREHOUSE_DAG)
        runs = _run_ids(airflow, WAREHOUSE_DAG)
        events = airflow.asset_events(SAP_INVOICES)

        # 1. Subscribed with a secret the receiver does not know: every attempt is refused.
        self.subscribe(hook, webhook_receiver, secret="not-the-secret-0123456789")
        _, forged = self.create_invoice(hook, live_sap)
        assert forged["state"] == "failed"
        assert forged["attempts"] == [401] * 5

        # 2. Correctly signed, but ten minutes old.
        body, headers = _sap_delivery(age=600)
        reply = webhook_receiver.post(SAP_PATH, body, headers)
        assert reply.status_code == 401, reply.text

        # 3. The accepted delivery again.
        reply = webhook_receiver.post(SAP_PATH, accepted, accepted_headers)
        assert reply.status_code == 409, reply.text

        _assert_refusals_left_no_trace(airflow, WAREHOUSE_DAG, SAP_INVOICES, runs, events)

        # Subscribed properly again, a new document starts exactly one run, of its own event.
        self.subscribe(hook, webhook_receiver)
        known = _asset_runs(airflow, WAREHOUSE_DAG)
        doc_entry, delivery = self.create_invoice(hook, live_sap)
        assert delivery["attempts"] == [200], delivery
        run = _new_run(airflow, WAREHOUSE_DAG, known)
        (consumed,) = airflow.upstream_asset_events(WAREHOUSE_DAG, run["dag_run_id"])
        assert consumed["extra"]["keys"] == [doc_entry]
        assert _run_ids(airflow, WAREHOUSE_DAG) == [*runs, run["dag_run_id"]]
        airflow.close_active_runs(WAREHOUSE_DAG)
