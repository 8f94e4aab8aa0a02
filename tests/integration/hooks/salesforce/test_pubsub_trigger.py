"""The CDC trigger and sensor against the sandbox's Pub/Sub service over gRPC.

The trigger runs under ``asyncio.run`` as Airflow's own trigger tests run triggers; the sensor
through its deferral (``TaskDeferred``, the trigger, ``execute_complete``) and once end to end in
``dag.test()``, where Airflow runs the trigger in line and keeps the replay id in XCom between
two runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_b1.sandbox.salesforce.pubsub import PubSubSandboxConfig, serve_pubsub
from airflow_provider_b1.sensors.salesforce import SalesforceChangeSensor
from airflow_provider_b1.triggers.salesforce import (
    CDC_NOT_ENABLED,
    REPLAY_ID_EXPIRED,
    STREAM_FAILED,
    SalesforceChangeEventTrigger,
)

ACCOUNTS = "/data/AccountChangeEvent"
OPPORTUNITIES = "/data/OpportunityChangeEvent"


@pytest.fixture(scope="module")
def pubsub_server(salesforce_sandbox) -> Iterator:
    cert = Path(salesforce_sandbox.ca_path)
    served = serve_pubsub(
        salesforce_sandbox.app, certificate=(str(cert), str(cert.with_name("sandbox-key.pem")))
    )
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def org(salesforce_sandbox, pubsub_server, monkeypatch, tmp_path) -> Iterator:
    salesforce_sandbox.restore()
    pubsub_server.sandbox.configure(**vars(PubSubSandboxConfig(keepalive_seconds=0.2)))
    connection = salesforce_sandbox.connection()
    connection["extra"]["pubsub_endpoint"] = pubsub_server.endpoint
    monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", json.dumps(connection))
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "tokens"))  # no token shared between tests
    yield salesforce_sandbox
    salesforce_sandbox.restore()


def _fire(trigger: SalesforceChangeEventTrigger) -> dict[str, Any]:
    """The trigger's one event, the trigger rebuilt from its serialized form first (as the triggerer does)."""
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_b1.triggers.salesforce.SalesforceChangeEventTrigger"
    json.dumps(kwargs)  # primitives only

    async def first() -> dict[str, Any]:
        async for event in SalesforceChangeEventTrigger(**kwargs).run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    payload = asyncio.run(first())
    json.dumps(payload)
    return payload


def _when_subscribed(pubsub_server, count: int, action) -> threading.Thread:
    """Run ``action`` in a thread once ``count`` more subscriptions have started (a LATEST
    subscription only sees what is committed after it started)."""
    stats = pubsub_server.sandbox.stats
    wanted = stats.get("Subscribe", 0) + count

    def wait_then_act() -> None:
        # A DAG run parses, runs and defers its sensor before the trigger subscribes: seconds on a
        # busy machine.
        deadline = time.monotonic() + 60
        while stats.get("Subscribe", 0) < wanted:
            assert time.monotonic() < deadline, "the trigger never subscribed"
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def _tip(topics: Any) -> Any:
    """Where the topics' streams stand now (an idle trigger's replay ids, from the keepalives)."""
    event = _fire(SalesforceChangeEventTrigger(topics=topics, wait_seconds=1.0))
    assert event["status"] == "idle"
    ids = event["replay_id"]
    assert all(ids.values() if isinstance(ids, dict) else [ids]), "no keepalive within a second"
    return ids


def test_trigger_wakes_within_seconds_of_an_edit_naming_records_and_fields(org, pubsub_server):
    account = org.truth("Account")[0]["Id"]
    edited: dict[str, float] = {}

    def edit() -> None:
        edited["at"] = time.monotonic()
        org.edit("Account", account, Phone="(512) 555-0123", Description="called")

    thread = _when_subscribed(pubsub_server, 2, edit)
    event = _fire(
        SalesforceChangeEventTrigger(topics=[ACCOUNTS, OPPORTUNITIES], linger_seconds=0.2, wait_seconds=10)
    )
    thread.join()
    assert time.monotonic() - edited["at"] < 2.0
    assert event["status"] == "changes"
    assert event["fallback"] is None
    assert event["events"] == 1
    assert list(event["changes"]) == ["Account"]
    found = event["changes"]["Account"]
    assert found["record_ids"] == [account]
    assert found["change_types"] == ["UPDATE"]
    assert {"Phone", "Description", "LastModifiedDate"} <= set(found["changed_fields"])
    assert set(event["replay_id"]) == {ACCOUNTS, OPPORTUNITIES}
    assert event["replay_id"][ACCOUNTS]  # after the event: the next wait starts there
    assert event["replay_id"][OPPORTUNITIES]  # from the keepalives: fresh although nothing changed


def test_trigger_from_a_replay_id_reports_exactly_what_came_after_it(org):
    accounts = [a["Id"] for a in org.truth("Account")[:3]]
    org.edit("Account", accounts[0], Description="seen")
    first = {"replay_id": _tip(ACCOUNTS)}  # LATEST: the earlier edit is the poll's to read
    org.edit("Account", accounts[1], Description="one")
    org.edit("Account", accounts[2], Description="two")
    second = _fire(
        SalesforceChangeEventTrigger(topics=ACCOUNTS, replay_id=first["replay_id"], wait_seconds=10)
    )
    assert second["status"] == "changes"
    assert second["changes"]["Account"]["record_ids"] == accounts[1:]
    assert second["events"] == 2
    third = _fire(
        SalesforceChangeEventTrigger(topics=ACCOUNTS, replay_id=second["replay_id"], wait_seconds=0.5)
    )
    assert third["status"] == "idle"
    assert third["events"] == 0


def test_trigger_gathers_a_burst_into_one_wake_up(org):
    accounts = [a["Id"] for a in org.truth("Account")[:5]]
    start = _tip(ACCOUNTS)
    for n, account in enumerate(accounts):
        org.edit("Account", account, Description=f"burst {n}")
    event = _fire(
        SalesforceChangeEventTrigger(topics=ACCOUNTS, replay_id=start, max_events=3, wait_seconds=10)
    )
    assert event["events"] == 3
    rest = _fire(SalesforceChangeEventTrigger(topics=ACCOUNTS, replay_id=event["replay_id"], wait_seconds=10))
    assert rest["changes"]["Account"]["record_ids"] == accounts[3:]  # nothing lost past max_events


def test_trigger_falls_back_when_the_replay_id_has_expired(org):
    org.control("POST", "config", {"change_retention_seconds": 1})
    accounts = [a["Id"] for a in org.truth("Account")[:2]]
    start = _tip([ACCOUNTS, OPPORTUNITIES])
    org.edit("Account", accounts[0], Description="gone soon")
    time.sleep(1.2)
    org.edit("Account", accounts[1], Description="recent")
    event = _fire(
        SalesforceChangeEventTrigger(topics=[ACCOUNTS, OPPORTUNITIES], replay_id=start, wait_seconds=10)
    )
    assert event["status"] == "fallback"
    assert event["fallback"] == REPLAY_ID_EXPIRED
    assert "The Replay ID validation failed." in event["message"]
    # Both ids are older than the retention now; whichever topic was refused first starts at
    # LATEST next time (the poll covers the gap), the other keeps its id until it is refused too.
    refused = ACCOUNTS if f"Subscribe {ACCOUNTS}" in event["message"] else OPPORTUNITIES
    other = OPPORTUNITIES if refused == ACCOUNTS else ACCOUNTS
    assert event["replay_id"][refused] is None
    assert event["replay_id"][other] == start[other]
    again = _fire(
        SalesforceChangeEventTrigger(
            topics=[ACCOUNTS, OPPORTUNITIES], replay_id=event["replay_id"], wait_seconds=10
        )
    )
    assert again["fallback"] == REPLAY_ID_EXPIRED
    assert again["replay_id"] == {ACCOUNTS: None, OPPORTUNITIES: None}


def test_trigger_falls_back_when_cdc_is_off_for_the_object(org):
    org.control("POST", "config", {"cdc_objects": ["Opportunity"]})
    event = _fire(SalesforceChangeEventTrigger(topics=[ACCOUNTS, OPPORTUNITIES], wait_seconds=10))
    assert event["status"] == "fallback"
    assert event["fallback"] == CDC_NOT_ENABLED
    assert ACCOUNTS in event["message"]


def test_trigger_falls_back_when_the_stream_keeps_failing(org, monkeypatch):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    connection = org.connection()
    connection["extra"]["pubsub_endpoint"] = f"127.0.0.1:{closed}"
    monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", json.dumps(connection))
    started = time.monotonic()
    event = _fire(
        SalesforceChangeEventTrigger(
            topics=ACCOUNTS, replay_id="00000000000000aa", max_attempts=2, backoff_seconds=0.05
        )
    )
    assert event["status"] == "fallback"
    assert event["fallback"] == STREAM_FAILED
    assert "UNAVAILABLE" in event["message"]
    assert event["replay_id"] == "00000000000000aa"  # kept: the next run tries from there again
    assert time.monotonic() - started < 10


def test_trigger_renews_an_expired_token_once_and_goes_on(org, pubsub_server):
    _fire(SalesforceChangeEventTrigger(topics=ACCOUNTS, wait_seconds=0.2))  # a token in the cache
    issued = org.stats()["tokens_issued"]
    org.control("POST", "expire-tokens")
    account = org.truth("Account")[0]["Id"]
    thread = _when_subscribed(
        pubsub_server, 1, lambda: org.edit("Account", account, Description="after expiry")
    )
    event = _fire(SalesforceChangeEventTrigger(topics=ACCOUNTS, wait_seconds=10))
    thread.join()
    assert event["status"] == "changes"
    assert org.stats()["tokens_issued"] == issued + 1


# -- the sensor ------------------------------------------------------------------------------------


class _TaskInstance(SimpleNamespace):
    """What the sensor asks of ``ti``: the previous successful run's return value."""

    def xcom_pull(self, **kwargs: Any) -> Any:
        self.pulled = kwargs
        return self.previous


def _context(previous: Any = None) -> dict[str, Any]:
    return {"ti": _TaskInstance(task_id="wait", map_index=-1, previous=previous)}


def _defer(sensor: SalesforceChangeSensor, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context)
    return deferred.value


def test_sensor_goes_on_from_the_previous_runs_replay_id_and_returns_what_changed(org):
    accounts = [a["Id"] for a in org.truth("Account")[:2]]
    start = _tip([ACCOUNTS, OPPORTUNITIES])
    org.edit("Account", accounts[0], Description="while nobody waited")
    sensor = SalesforceChangeSensor(task_id="wait", linger_seconds=0.2, wait_seconds=10)
    context = _context({"replay_id": start, "changes": {}, "fallback": None})
    deferred = _defer(sensor, context)
    assert context["ti"].pulled["include_prior_dates"] is True
    assert deferred.method_name == "execute_complete"
    assert deferred.trigger.replay_id == start
    event = _fire(deferred.trigger)
    result = sensor.execute_complete(context, event, **deferred.kwargs)
    assert set(result) == {"replay_id", "changes", "fallback"}
    assert result["fallback"] is None
    assert result["changes"]["Account"]["record_ids"] == [accounts[0]]
    assert result["replay_id"][ACCOUNTS] != start[ACCOUNTS]


def test_sensor_waits_on_when_idle_and_returns_a_fallback_instead_of_failing(org):
    sensor = SalesforceChangeSensor(task_id="wait", topics=ACCOUNTS, wait_seconds=0.3)
    deferred = _defer(sensor, _context())
    assert deferred.trigger.replay_id is None  # no previous run: LATEST
    idle = _fire(deferred.trigger)
    assert idle["status"] == "idle"
    with pytest.raises(TaskDeferred) as again:
        sensor.execute_complete(_context(), idle, **deferred.kwargs)
    assert again.value.trigger.replay_id == idle["replay_id"]
    assert again.value.kwargs == deferred.kwargs  # one timeout over all the waits
    assert again.value.timeout <= dt.timedelta(seconds=sensor.timeout)

    returning = SalesforceChangeSensor(
        task_id="wait", topics=ACCOUNTS, wait_seconds=0.3, return_when_idle=True
    )
    assert returning.execute_complete(_context(), idle)["changes"] == {}

    org.control("POST", "config", {"cdc_objects": []})
    fallback = _fire(again.value.trigger)
    result = sensor.execute_complete(_context(), fallback, **deferred.kwargs)
    assert result == {"replay_id": idle["replay_id"], "changes": {}, "fallback": CDC_NOT_ENABLED}


DAG_SOURCE = """
from __future__ import annotations

import pendulum
from airflow.sdk import dag

from airflow_provider_b1.sensors.salesforce import SalesforceChangeSensor


@dag(dag_id="b1_test_salesforce_cdc", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"))
def b1_test_salesforce_cdc():
    SalesforceChangeSensor(
        task_id="wait_for_salesforce",
        topics=["/data/AccountChangeEvent"],
        wait_seconds=10,
        return_when_idle=True,
        linger_seconds=0.2,
    )


b1_test_salesforce_cdc()
"""


def test_sensor_in_a_dag_run_keeps_its_replay_id_in_xcom_from_run_to_run(
    org, pubsub_server, airflow_db, tmp_path, monkeypatch
):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "b1_test_salesforce_cdc.py").write_text(DAG_SOURCE)
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": "b1-test-salesforce-cdc",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        },
    ]
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))

    def dag() -> Any:
        namespace: dict[str, Any] = {}
        exec(compile(DAG_SOURCE, str(folder / "b1_test_salesforce_cdc.py"), "exec"), namespace)
        return namespace["b1_test_salesforce_cdc"]()

    def returned(run: Any) -> Any:
        with create_session() as session:
            row = (
                session.query(XComModel)
                .filter(
                    XComModel.dag_id == run.dag_id,
                    XComModel.run_id == run.run_id,
                    XComModel.key == "return_value",
                )
                .one()
            )
            return XComModel.deserialize_value(row)

    accounts = [a["Id"] for a in org.truth("Account")[:2]]
    day = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    thread = _when_subscribed(pubsub_server, 1, lambda: org.edit("Account", accounts[0], Description="first"))
    first = dag().test(logical_date=day)
    thread.join()
    assert first.state == "success"
    first_value = returned(first)
    assert first_value["changes"]["Account"]["record_ids"] == [accounts[0]]

    org.edit("Account", accounts[1], Description="between the runs")  # no one waits: kept by the replay id
    second = dag().test(logical_date=day + dt.timedelta(days=1))
    assert second.state == "success"
    second_value = returned(second)
    assert second_value["changes"]["Account"]["record_ids"] == [accounts[1]]
    assert second_value["fallback"] is None
