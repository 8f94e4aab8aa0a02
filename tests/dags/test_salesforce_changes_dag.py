"""``sap_b1_salesforce_changes`` end to end with dag.test(): the Salesforce sandbox over HTTPS and
its Pub/Sub API over gRPC, the SAP sandbox, the audit trail in PostgreSQL.

``dag.test()`` (Airflow 3.3) runs a deferred task's trigger in line, in the test's process (its
``_run_task`` rebuilds the trigger from its serialized form and runs it to its first event, then
resumes the task with ``execute_complete``): the same trigger code a triggerer runs, so these runs
wait on the real subscription.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dag_helpers import forget_runs, task_states, xcoms

from airflow_provider_b1.sandbox.salesforce.pubsub import connection_extra, serve_next_to

DAG_ID = "sap_b1_salesforce_changes"
ACCOUNTS = "/data/AccountChangeEvent"
OPPORTUNITIES = "/data/OpportunityChangeEvent"
SYNCS = ("wait_for_changes", "accounts", "opportunities")


@pytest.fixture(scope="module")
def pubsub(salesforce_sandbox) -> Iterator[Any]:
    """The org's Pub/Sub API beside the session's REST sandbox, with its certificate."""
    served = serve_next_to(salesforce_sandbox.app, salesforce_sandbox.ca_path)
    assert served is not None, "the cdc extra (grpcio, fastavro) is installed in the test environment"
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def sf(flow, salesforce_sandbox, pubsub, set_connection, tmp_path, monkeypatch) -> Iterator[Any]:
    """The Salesforce sandbox freshly seeded, its connection with the Pub/Sub extras, no earlier runs."""
    salesforce_sandbox.restore()
    pubsub.sandbox.configure(keepalive_seconds=0.5, cdc_enabled=True)
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "sf-tokens"))
    connection = salesforce_sandbox.connection()
    connection["extra"].update(connection_extra(pubsub))
    set_connection("b1_salesforce_default", connection)
    forget_runs(DAG_ID)
    yield salesforce_sandbox
    salesforce_sandbox.restore()


def when_subscribed(pubsub, action, count: int = 2) -> threading.Thread:
    """Run ``action`` in a thread once the sensor's trigger has subscribed to both topics (a
    subscription from LATEST only sees what is committed after it started)."""
    stats = pubsub.sandbox.stats
    wanted = stats.get("Subscribe", 0) + count

    def wait_then_act() -> None:
        deadline = time.monotonic() + 60
        while stats.get("Subscribe", 0) < wanted:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        action()

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def card_name(flow, sf, account_id: str) -> str:
    """The CardName of the business partner linked to a Salesforce account."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    (account,) = [a for a in sf.truth("Account") if a["Id"] == account_id]
    assert account["AccountNumber"], "the account is linked to a partner"
    hook = SapB1Hook()
    try:
        return hook.get("BusinessPartners", account["AccountNumber"], select=["CardName"])["CardName"]
    finally:
        hook.close()


def task_log(capsys) -> list[str]:
    """The lines the tasks logged: dag.test() runs them in this process, logging to its output."""
    captured = capsys.readouterr()
    return (captured.out + captured.err).splitlines()


def sensor_value(run) -> dict[str, Any]:
    return xcoms(DAG_ID, run.run_id)["values"]["wait_for_changes:return_value"]


def first_run(sf, pubsub, dag_of) -> Any:
    """The DAG's first run: with no replay id to go on from the sensor waits at the newest event;
    an edit wakes it, and the syncs link every account and order every won deal (their cursors
    start here). Their write-backs to Salesforce (partner codes, order numbers) are changes too."""
    account = sf.truth("Account")[0]["Id"]
    thread = when_subscribed(pubsub, lambda: sf.edit("Account", account, Name="Woken Once Ltd"))
    run = dag_of(DAG_ID, retries=0).test()
    thread.join()
    assert run.state == "success"
    assert task_states(run) == {
        "wait_for_changes": "success",
        "accounts": "success",
        "opportunities": "success",
        "cdc_unavailable": "success",
        "cool_down": "skipped",
    }
    assert sensor_value(run)["changes"]["Account"]["record_ids"] == [account]
    return run


def test_an_account_edit_reaches_its_sap_partner_within_seconds(flow, sf, pubsub, dag_of):
    first_run(sf, pubsub, dag_of)
    assert card_name(flow, sf, sf.truth("Account")[0]["Id"]) == "Woken Once Ltd"

    # The first run's write-backs (partner codes, order numbers) are changes committed by the
    # connection's own user: they move the replay id on and wake nothing. Only a real edit
    # wakes the next run, and its changes name that edit alone.
    account = sf.truth("Account")[1]["Id"]
    edited: dict[str, float] = {}

    def edit() -> None:
        edited["at"] = time.monotonic()
        sf.edit("Account", account, Name="Edited In Salesforce Ltd")

    thread = when_subscribed(pubsub, edit)
    run = dag_of(DAG_ID, retries=0).test()
    ended = time.monotonic()
    thread.join()
    latency = ended - edited["at"]
    print(f"\nedit in Salesforce -> SAP partner's CardName, run ended: {latency:.2f} s")
    assert run.state == "success"
    woken = sensor_value(run)
    assert woken["fallback"] is None
    assert woken["changes"] == {
        "Account": {
            "record_ids": [account],
            "changed_fields": woken["changes"]["Account"]["changed_fields"],
            "change_types": ["UPDATE"],
        }
    }
    assert "Name" in woken["changes"]["Account"]["changed_fields"]
    assert flow.audit_counts(run.run_id, "accounts")["updated"] == 1
    assert card_name(flow, sf, account) == "Edited In Salesforce Ltd"
    assert latency < 10.0, f"{latency:.2f} s from the edit to the end of the run"


def test_an_expired_replay_id_falls_back_to_polling_and_the_edit_still_arrives(
    flow, sf, pubsub, dag_of, capsys
):
    first = first_run(sf, pubsub, dag_of)
    stored = sensor_value(first)["replay_id"]
    assert stored[ACCOUNTS]
    assert stored[OPPORTUNITIES]

    # The DAG was paused longer than the event bus keeps events: here the retention is one
    # second, so the edit and the first run's write-backs are gone from the stream.
    sf.control("POST", "config", {"change_retention_seconds": 1})
    account = sf.truth("Account")[1]["Id"]
    sf.edit("Account", account, Name="Edited While Paused Ltd")
    time.sleep(1.2)

    capsys.readouterr()
    run = dag_of(DAG_ID, retries=0).test()
    log = task_log(capsys)
    assert run.state == "success"
    woken = sensor_value(run)
    assert woken["fallback"] == "replay_id_expired"
    assert woken["changes"] == {}
    # The refused topic starts at the newest event next time; the poll covers the gap.
    assert None in woken["replay_id"].values()
    warnings = [line for line in log if "Salesforce CDC could not deliver changes" in line]
    assert len(warnings) == 1
    assert "(replay_id_expired)" in warnings[0]
    assert "The Replay ID validation failed." in warnings[0]
    assert "The tasks downstream poll as usual." in warnings[0]
    print("\n" + warnings[0])
    assert task_states(run) == {
        "wait_for_changes": "success",
        "accounts": "success",
        "opportunities": "success",
        "cdc_unavailable": "success",
        "cool_down": "skipped",  # the next run starts at the newest event: no need to wait
    }
    assert flow.audit_counts(run.run_id, "accounts")["updated"] == 1
    assert card_name(flow, sf, account) == "Edited While Paused Ltd"


def test_with_cdc_off_for_accounts_the_run_polls_then_cools_down(flow, sf, pubsub, dag_of, capsys):
    sf.control("POST", "config", {"cdc_objects": ["Opportunity"]})
    account = sf.truth("Account")[2]["Id"]
    sf.edit("Account", account, Name="No Change Events Ltd")
    capsys.readouterr()
    # cool_down would wait ten minutes in the triggerer: here it is marked done instead of run,
    # which Airflow does only to a task the short circuit let through.
    run = dag_of(DAG_ID, retries=0).test(mark_success_pattern="cool_down")
    log = task_log(capsys)
    assert run.state == "success"
    assert sensor_value(run)["fallback"] == "cdc_not_enabled"
    (warning,) = [line for line in log if "Salesforce CDC could not deliver changes" in line]
    assert "(cdc_not_enabled)" in warning
    assert f"no topic {ACCOUNTS}" in warning
    assert "select the object for Change Data Capture" in warning
    assert task_states(run)["cool_down"] == "success"
    assert task_states(run)["cdc_unavailable"] == "success"
    assert card_name(flow, sf, account) == "No Change Events Ltd"


def test_the_dag_trigger_and_sensor_are_registered_and_the_form_has_the_pubsub_fields(dag_of):
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.definitions.timetables.simple import ContinuousTimetable

    from airflow_provider_b1.get_provider_info import get_provider_info

    dag = dag_of(DAG_ID)
    assert isinstance(dag.timetable, ContinuousTimetable)
    assert dag.max_active_runs == 1
    assert set(dag.tags) == {"salesforce", "sap_b1", "cdc"}
    assert dag.doc_md.startswith("Salesforce -> SAP Business One within seconds")
    sensor = dag.task_dict["wait_for_changes"]
    assert list(sensor.topics) == [ACCOUNTS, OPPORTUNITIES]
    assert sorted(t.task_id for t in sensor.downstream_list) == ["accounts", "cdc_unavailable"]
    assert [t.task_id for t in dag.task_dict["accounts"].downstream_list] == ["opportunities"]
    assert dag.task_dict["accounts"].streams == ["Account"]
    assert dag.task_dict["opportunities"].streams == ["Opportunity"]

    info = get_provider_info()
    assert ["airflow_provider_b1.triggers.salesforce"] in [t["python-modules"] for t in info["triggers"]]
    assert ["airflow_provider_b1.sensors.salesforce"] in [s["python-modules"] for s in info["sensors"]]
    manager = ProvidersManager()
    assert "airflow_provider_b1.triggers.salesforce" in {t.trigger_class_name for t in manager.trigger}
    for name in ("pubsub_endpoint", "pubsub_ca_bundle", "pubsub_tls"):
        assert f"extra__b1_salesforce__{name}" in manager.connection_form_widgets


def test_b1_sandbox_prints_a_connection_the_change_trigger_works_with(tmp_path, monkeypatch):
    """What ``b1-sandbox`` prints is all a user needs for the CDC DAG's sensor."""
    import asyncio

    import requests

    from airflow_provider_b1.triggers.salesforce import SalesforceChangeEventTrigger

    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "airflow_provider_b1.sandbox", "--only", "salesforce"),
            *("--salesforce-accounts", "5", "--salesforce-opportunities", "5"),
            *("--state-dir", str(tmp_path), "--ready-file", str(ready), "--quiet"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        entry = info["sandboxes"]["salesforce"]
        (line,) = [c for c in info["connections"] if c.startswith("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT=")]
        value = line.split("=", 1)[1].strip("'")
        extra = json.loads(value)["extra"]
        assert extra == {
            "api_version": "62.0",
            "ca_bundle": entry["ca_path"],
            "pubsub_endpoint": entry["pubsub_endpoint"],
            "pubsub_ca_bundle": entry["ca_path"],
        }
        monkeypatch.setenv("AIRFLOW_CONN_B1_SALESFORCE_DEFAULT", value)
        monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "tokens"))

        def control(path: str, body: dict[str, Any] | None = None) -> Any:
            reply = requests.request(
                "POST" if body is not None else "GET",
                f"{entry['base_url']}/_sandbox/{path}",
                json=body,
                verify=entry["ca_path"],
                timeout=10,
            )
            reply.raise_for_status()
            return reply.json()

        account = control("truth/Account")["records"][0]["Id"]
        before = control("stats")

        async def wake() -> dict[str, Any]:
            trigger = SalesforceChangeEventTrigger(topics=[ACCOUNTS], wait_seconds=20)
            events = trigger.run()
            waiting = asyncio.ensure_future(anext(events))
            n = 0
            while not waiting.done():  # edits until one comes after the subscription started (LATEST)
                n += 1
                body = {"object": "Account", "id": account, "fields": {"Phone": f"555-010{n}"}}
                await asyncio.to_thread(control, "edit", body)
                await asyncio.wait({waiting}, timeout=0.5)
            return (await waiting).payload

        event = asyncio.run(wake())
        assert event["status"] == "changes", event
        assert event["changes"]["Account"]["record_ids"] == [account]
        assert control("stats")["tokens_issued"] > before["tokens_issued"]
    finally:
        gc.collect()  # the hook's keep-alive connections would hold up the sandbox's graceful stop
        proc.terminate()
        proc.wait(timeout=20)
