"""``sap_b1_to_teams`` end to end with dag.test(): the SAP and Teams sandboxes over HTTPS and the audit
database in PostgreSQL. Runs again, a cleared task, a backfilled window and the replay of a refused
destination send every card exactly once."""

from __future__ import annotations

import datetime as dt
import gc
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from dag_helpers import AUDIT_SCHEMA, forget_runs, load_dag, rerun_task, task_states

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "teams"))
from teams_flow_helpers import assert_all_valid, posted_markers

DAG_ID = "sap_b1_to_teams"
STREAMS = ("PurchaseOrders", "PurchaseInvoices", "IncomingPayments", "VendorPayments")


@pytest.fixture
def teams_dag(
    airflow_db,
    sap_sandbox,
    teams_sandbox,
    pg_database,
    pg_airflow_connection,
    set_connection,
    monkeypatch,
    tmp_path,
):
    import psycopg

    sap_sandbox.restore(invoices=40)
    teams_sandbox.restore()
    with psycopg.connect(pg_database["dsn"], autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {AUDIT_SCHEMA} CASCADE")
    forget_runs(DAG_ID, "b1_replay_failed")
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "teams-tokens"))
    monkeypatch.setenv("B1_RATE_LIMIT_DIR", str(tmp_path / "limits"))
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        yaml.safe_dump(
            {
                "digest_over": 100,
                "rules": [
                    {"documents": ["PurchaseOrders", "PurchaseInvoices"], "to": [{"webhook": None}]},
                    {
                        "documents": ["IncomingPayments", "VendorPayments"],
                        "to": [{"user": "grace.hopper@contoso.example"}, {"user": "alan@contoso.example"}],
                    },
                ],
            }
        )
    )
    monkeypatch.setenv("B1_TEAMS_ROUTING", str(routing))
    set_connection("sap_b1_default", sap_sandbox.connection())
    set_connection("b1_audit_default", pg_airflow_connection)
    set_connection("b1_teams_webhook_default", teams_sandbox.webhook_connection(0))
    set_connection("b1_teams_bot_default", teams_sandbox.bot_connection())
    try:
        yield teams_sandbox
    finally:
        gc.collect()


def _sap_counts(sap):
    return {stream: sap.truth(stream)["count"] for stream in STREAMS}


def test_runs_clears_backfills_and_replay_send_each_card_once(teams_dag, sap_sandbox):
    teams = teams_dag
    counts = _sap_counts(sap_sandbox)
    payments = counts["IncomingPayments"] + counts["VendorPayments"]

    first = load_dag(DAG_ID, retries=0).test()
    states = task_states(first)
    assert states == dict.fromkeys(STREAMS, "success")
    posts = teams.posts()
    # every purchase document once to the channel, every payment once to Grace; Alan has no bot
    assert len(posts) == counts["PurchaseOrders"] + counts["PurchaseInvoices"] + payments
    assert Counter(p["via"] for p in posts) == {
        "webhook": counts["PurchaseOrders"] + counts["PurchaseInvoices"],
        "bot": payments,
    }
    # a payment's card names the invoices it pays by their numbers (looked up in SAP once a page)
    paid = [
        fact["title"]
        for post in posts
        if post["via"] == "bot"
        for block in post["attachments"][0]["content"]["body"]
        if block["type"] == "FactSet"
        for fact in block["facts"]
        if "invoice" in fact["title"].lower()
    ]
    assert paid
    assert not [title for title in paid if "(entry" in title]
    before = len(posts)

    # the next run, a cleared task and a backfilled window (the whole history) send nothing
    dag = load_dag(DAG_ID, retries=0)
    second = dag.test()
    assert set(task_states(second).values()) == {"success"}
    assert rerun_task(dag, second, "PurchaseOrders") == "success"
    now = dt.datetime.now(dt.timezone.utc)
    window = load_dag(DAG_ID, retries=0).test(
        run_conf={"since": (now - dt.timedelta(days=800)).isoformat(), "until": now.isoformat()}
    )
    assert set(task_states(window).values()) == {"success"}
    assert len(teams.posts()) == before

    # Alan installs the bot: the replay sends him each payment once (that a second replay sends
    # nothing is shown by the flow's own tests)
    for user in teams.app.state.sandbox.users:
        user["installed"] = True
    replay = load_dag("b1_replay_failed").test(run_conf={"flow": DAG_ID, "dry_run": False})
    assert replay.state == "success"
    posts = teams.posts()
    assert len(posts) == before + payments
    assert set(posted_markers(posts).values()) == {1}
    assert assert_all_valid(posts) == len(posts)
