"""TeamsNotifier in whole DAG runs (``dag.test()``) against the Teams sandbox: a failing task's
alert reaches the channel with its log link, and a human-in-the-loop request reaches a user's
chat with the link to its required-actions page and what happens when nobody answers.

Every card posted is checked against the Adaptive Card 1.4 schema."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
from pathlib import Path

import jsonschema
import pytest
from dag_helpers import forget_runs, task_states, xcoms
from hitl_helpers import Responder

from airflow_provider_b1.notifications.teams import ACTIVITY_XCOM_KEY, TeamsNotifier

FOLDER = Path(__file__).resolve().parent / "alerting"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "adaptive-card-1.4.json"
BASE_URL = "https://airflow.example.com"
DAG_IDS = ("teams_failing_alert", "teams_approval_asked")


def dags():
    spec = importlib.util.spec_from_file_location(
        f"teams_alerts_{secrets.token_hex(3)}", FOLDER / "teams_alerts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def teams(airflow_db, teams_sandbox, set_connection, monkeypatch, tmp_path):
    teams_sandbox.restore()
    # This folder first: dag.test() looks for a new DAG id bundle by bundle, parsing each.
    bundle = {
        "name": "b1-test-alerting",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(FOLDER), "refresh_interval": 0},
    }
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", BASE_URL)
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "teams-tokens"))
    set_connection("ops_alerts", teams_sandbox.webhook_connection(channel=2))
    set_connection("b1_teams_bot_default", teams_sandbox.bot_connection())
    forget_runs(*DAG_IDS)
    yield teams_sandbox
    forget_runs(*DAG_IDS)


@pytest.fixture(scope="module")
def valid():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(card: dict) -> dict:
        validator.validate(card)
        return card

    return check


def card_of(post: dict) -> dict:
    (attachment,) = post["attachments"]
    return attachment["content"]


def texts(card: dict) -> str:
    return json.dumps(card["body"], ensure_ascii=False)


def test_a_failing_task_alerts_the_channel_with_its_log_link(teams, valid):
    run = dags().failing_alert(TeamsNotifier(teams_conn_id="ops_alerts")).test()

    assert task_states(run) == {"load_orders": "failed"}
    (post,) = teams.posts()
    assert post["via"] == "webhook"
    card = valid(card_of(post))
    buttons = {a["title"]: a["url"] for a in card["actions"]}
    assert buttons["View log"] == (
        f"{BASE_URL}/dags/teams_failing_alert/runs/{run.run_id.replace(':', '%3A').replace('+', '%2B')}"
        "/tasks/load_orders?try_number=1"
    )
    body = texts(card)
    for shown in ("teams\\\\_failing\\\\_alert", "load\\\\_orders", "Try"):
        assert shown in body
    # The error is shown as text: SAP's words cannot format the card.
    assert "\\\\*CardCode\\\\*" in body
    assert "\\\\[C1\\\\]\\\\(x\\\\)" in body


def test_a_failed_post_is_logged_and_the_task_still_fails_for_its_own_reason(teams, caplog, capsys):
    teams.faults(error_rate=1.0)
    run = dags().failing_alert(TeamsNotifier(teams_conn_id="ops_alerts")).test()

    assert task_states(run) == {"load_orders": "failed"}
    assert teams.posts() == []
    logged = caplog.text + capsys.readouterr().out
    assert "The Teams notification for task load_orders" in logged
    assert "was not sent (TeamsServerError" in logged


def test_a_hitl_request_reaches_the_users_chat_with_its_required_actions_link(teams, valid):
    notifier = TeamsNotifier(teams_conn_id="b1_teams_bot_default", to="ada@contoso.example")
    dag = dags().approval_asked(notifier, timeout_seconds=1)

    with Responder("teams_approval_asked", lambda ti: None) as responder:
        run = dag.test()

    assert responder.handled == [("approve_payment_run", -1, None)]  # nobody answered in time
    assert task_states(run) == {"approve_payment_run": "success"}
    values = xcoms("teams_approval_asked", run.run_id)["values"]
    answer = values["approve_payment_run:return_value"]
    assert (answer["chosen_options"], answer["responded_by_user"]) == (["Reject"], None)
    (post,) = teams.posts()
    assert post["via"] == "bot"
    ada = next(u for u in teams.tenant()["users"] if u["userPrincipalName"] == "ada@contoso.example")
    assert values[f"approve_payment_run:{ACTIVITY_XCOM_KEY}"]["conversation_id"] == post["conversation_id"]
    assert ada["id"] in json.dumps(teams.app.state.sandbox.conversations[post["conversation_id"]]["members"])
    card = valid(card_of(post))
    buttons = {a["title"]: a["url"] for a in card["actions"]}
    assert buttons["Answer in Airflow"].startswith(f"{BASE_URL}/dags/teams_approval_asked/runs/")
    assert buttons["Answer in Airflow"].endswith("/tasks/approve_payment_run/required_actions?map_index=-1")
    body = texts(card)
    assert "Release the payment run?" in body
    assert "48,200.00 USD" in body
    assert "Approve, Reject" in body
    assert "Reject is chosen" in body


def test_async_notify_posts_from_the_event_loop_for_a_dag_run_callback(teams, valid):
    notifier = TeamsNotifier(teams_conn_id="ops_alerts", title="Nightly load: {{ dag.dag_id }}")
    dag = dags().failing_alert()
    context = {"dag": dag, "run_id": "scheduled__2024-01-01T00:00:00+00:00", "reason": "task_failure"}
    notifier.context = context

    async def main() -> None:
        await notifier

    asyncio.run(main())

    (post,) = teams.posts()
    card = valid(card_of(post))
    assert card["body"][0]["text"] == "Nightly load: teams\\_failing\\_alert"
    assert card["actions"][0]["url"] == (
        f"{BASE_URL}/dags/teams_failing_alert/runs/scheduled__2024-01-01T00:00:00+00:00"
    )
