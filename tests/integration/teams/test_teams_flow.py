"""The ``sap_b1_to_teams`` flow against the SAP and Teams sandboxes and PostgreSQL: one card per
document and event and destination, whatever runs again."""

from __future__ import annotations

from teams_flow_helpers import (
    AUDIT_SCHEMA,
    assert_all_valid,
    audit_outcomes,
    open_documents,
    posted_markers,
    run_until_done,
    sap_action,
)

USER = "ada@contoso.example"


def _routing(flow, **extra):
    channel = flow.channel(1)
    return {
        "digest_over": 50,
        "rules": [
            {"name": "orders to the channel", "documents": ["PurchaseOrders"], "to": [{"webhook": None}]},
            {
                "name": "orders to the buyer and approvals",
                "documents": ["PurchaseOrders", "VendorPayments"],
                "to": [{"user": USER}, {"channel": channel["conversation_id"], "team": channel["team_id"]}],
            },
        ],
        **extra,
    }


def test_each_document_reaches_each_destination_once_and_runs_again_send_nothing(teams_flow):
    teams_flow.route(_routing(teams_flow))
    first = teams_flow.run("PurchaseOrders", "manual__1")
    orders = first["entities"]["PurchaseOrders"]
    assert orders["failed"] == 0
    assert orders["created"] == orders["read"] == 20
    posts = teams_flow.teams.posts()
    assert len(posts) == 60  # 20 orders x (webhook, user, channel)
    assert set(posted_markers(posts).values()) == {1}
    assert {p["via"] for p in posts} == {"webhook", "bot"}

    # again from the cursor, in full (a cleared run without its cursor), and over a window
    teams_flow.run("PurchaseOrders", "manual__2")
    teams_flow.run("PurchaseOrders", "manual__3", incremental=False)
    teams_flow.run(
        "PurchaseOrders", "manual__4", incremental=False, params={"since": "2000-01-01T00:00:00+00:00"}
    )
    assert len(teams_flow.teams.posts()) == 60
    assert {row[4] for row in teams_flow.ledger()} == {"sent"}
    assert assert_all_valid(teams_flow.teams.posts()) == 60


def test_a_document_that_changes_gets_its_bot_card_updated_and_a_webhook_follow_up_once(teams_flow):
    teams_flow.route(_routing(teams_flow))
    teams_flow.run("PurchaseOrders", "manual__1")
    closed, cancelled = open_documents("PurchaseOrders", 2)
    sap_action(teams_flow.sap, "PurchaseOrders", closed, "Close")
    sap_action(teams_flow.sap, "PurchaseOrders", cancelled, "Cancel")
    before = len(teams_flow.teams.posts())

    summary = teams_flow.run("PurchaseOrders", "manual__2")
    assert summary["entities"]["PurchaseOrders"]["updated"] == 2
    new = teams_flow.teams.posts()[before:]
    updates = [p for p in new if p.get("action") == "update"]
    followups = [p for p in new if p["via"] == "webhook"]
    assert len(updates) == 4  # the user's and the channel's card of each document, updated in place
    assert len(followups) == 2  # a webhook cannot update: a short follow-up each
    assert len(new) == 6
    shown = {p["attachments"][0]["content"]["body"][0]["text"].rsplit(" is now ", 1)[1] for p in followups}
    assert shown == {"closed", "cancelled"}
    statuses = {
        fact["value"]
        for p in updates
        for block in p["attachments"][0]["content"]["body"]
        if block["type"] == "FactSet"
        for fact in block["facts"]
        if fact["title"] == "Status"
    }
    assert statuses == {"Closed", "Cancelled"}

    teams_flow.run("PurchaseOrders", "manual__3")
    teams_flow.run("PurchaseOrders", "manual__4", incremental=False)
    assert len(teams_flow.teams.posts()) == before + 6
    assert assert_all_valid(teams_flow.teams.posts()) == before + 6


def test_faults_of_every_kind_end_with_one_card_per_document_and_destination(teams_flow):
    teams_flow.route(_routing(teams_flow))
    activities = "POST v3/conversations/{id}/activities"
    teams_flow.teams.faults(
        script=[
            {"kind": "rate_limit", "match": activities},  # Retry-After: 1 s, waited out
            {"kind": "expire_token", "match": activities},  # a new token, the post sent again
            {"kind": "reset", "match": activities},  # may have been posted: the try ends
            {"kind": "error", "match": "POST workflows"},  # a 503 on the webhook: the try ends
            {"kind": "error", "match": "GET v1.0/users"},  # a look-up is retried
            {"kind": "reset", "match": "POST v3/conversations"},  # opening a chat is retried
        ]
    )
    _summary, failed_tries = run_until_done(teams_flow, "PurchaseOrders", "manual__faults")
    stats = teams_flow.teams.stats()
    teams_flow.teams.faults()
    injected = stats["faults_injected"]
    assert injected.get("rate_limit")
    assert injected.get("error")
    assert injected.get("reset")
    assert injected.get("expire_token")
    assert failed_tries >= 1  # a post that may have reached Teams is not repeated blindly: the try ends
    posts = teams_flow.teams.posts()
    assert len(posts) == 60
    assert set(posted_markers(posts).values()) == {1}
    assert {row[4] for row in teams_flow.ledger()} == {"sent"}
    assert assert_all_valid(posts) == 60


def test_a_destination_that_refuses_fails_its_documents_alone_and_replay_sends_them_once(teams_flow):
    from airflow_provider_b1.sync import AuditTrail, replay_failed
    from airflow_provider_b1.teams.flow import TEAMS_FLOW

    teams_flow.route(
        {
            "rules": [
                {
                    "documents": ["PurchaseOrders"],
                    "to": [
                        {"webhook": None},
                        {"user": "alan@contoso.example"},
                        {"user": "nobody@contoso.example"},
                    ],
                }
            ]
        }
    )
    summary = teams_flow.run("PurchaseOrders", "manual__1")
    assert summary["entities"]["PurchaseOrders"]["failed"] == 20
    outcomes = audit_outcomes(teams_flow, "manual__1")
    reasons = {error for _, error in outcomes.values()}
    (reason,) = reasons
    assert "alan@contoso.example" in reason
    assert "not installed" in reason
    assert "nobody@contoso.example" in reason
    assert "(sent to the webhook b1_teams_webhook_default)" in reason
    assert len(teams_flow.teams.posts()) == 20  # the webhook's cards went out

    # Alan installs the bot; the unknown user is taken out of the rules; replay sends Alan's cards once
    for user in teams_flow.teams.app.state.sandbox.users:
        user["installed"] = True
    teams_flow.route(
        {
            "rules": [
                {"documents": ["PurchaseOrders"], "to": [{"webhook": None}, {"user": "alan@contoso.example"}]}
            ]
        }
    )
    options = {"routing": str(teams_flow.routing_path), "ledger_schema": AUDIT_SCHEMA}
    with AuditTrail("b1_audit_default", schema=AUDIT_SCHEMA) as audit:
        info = {
            "dag_id": "b1_replay_failed",
            "run_id": "manual__replay",
            "task_id": "replay",
            "try_number": 1,
        }
        first = replay_failed(audit, TEAMS_FLOW, options=options, session_info=info)
        again = replay_failed(audit, TEAMS_FLOW, options=options, session_info={**info, "try_number": 2})
    assert first.counts["created"] == 20
    assert sum(again.counts.values()) == 0
    posts = teams_flow.teams.posts()
    assert len(posts) == 40
    assert set(posted_markers(posts).values()) == {1}
    assert_all_valid(posts)


def test_a_flood_for_one_destination_arrives_as_one_digest(teams_flow):
    teams_flow.route(
        {
            "digest_over": 5,
            "rules": [{"documents": ["PurchaseOrders"], "to": [{"webhook": None}, {"user": USER}]}],
        }
    )
    teams_flow.run("PurchaseOrders", "manual__1")
    posts = teams_flow.teams.posts()
    assert len(posts) == 2  # one digest per destination instead of 20 cards each
    for post in posts:
        assert post["attachments"][0]["content"]["body"][0]["text"] == "20 new purchase orders"
    assert {row[5] for row in teams_flow.ledger()} == {"digest"}
    # a listed document that changes later gets a follow-up (a digest line cannot be updated)
    (closed,) = open_documents("PurchaseOrders", 1)
    sap_action(teams_flow.sap, "PurchaseOrders", closed, "Close")
    teams_flow.run("PurchaseOrders", "manual__2")
    posts = teams_flow.teams.posts()
    assert len(posts) == 4
    assert all(p.get("action") != "update" for p in posts)
    assert assert_all_valid(posts) == 4


def test_a_card_teams_refuses_fails_its_document_alone_and_is_sent_once_when_it_fits(teams_flow):
    from airflow_provider_b1.sync import AuditTrail, replay_failed
    from airflow_provider_b1.teams.flow import TEAMS_FLOW

    teams_flow.route({"rules": [{"documents": ["PurchaseOrders"], "to": [{"webhook": None}]}]})
    teams_flow.teams.control("POST", "config", {"max_message_bytes": 1200})  # long orders answer 400
    summary = teams_flow.run("PurchaseOrders", "manual__1")["entities"]["PurchaseOrders"]
    refused = {
        key for key, (action, _) in audit_outcomes(teams_flow, "manual__1").items() if action == "failed"
    }
    assert 0 < summary["failed"] == len(refused) < 20
    assert summary["created"] == 20 - len(refused)
    for _, error in (audit_outcomes(teams_flow, "manual__1")[key] for key in refused):
        assert "MessageTooLarge" in error
    assert not {row[2] for row in teams_flow.ledger()} & refused  # refused: certainly not shown, no row

    teams_flow.teams.control("POST", "config", {"max_message_bytes": 28_000})
    options = {"routing": str(teams_flow.routing_path), "ledger_schema": AUDIT_SCHEMA}
    with AuditTrail("b1_audit_default", schema=AUDIT_SCHEMA) as audit:
        info = {
            "dag_id": "b1_replay_failed",
            "run_id": "manual__replay",
            "task_id": "replay",
            "try_number": 1,
        }
        assert replay_failed(audit, TEAMS_FLOW, options=options, session_info=info).counts["created"] == len(
            refused
        )
    posts = teams_flow.teams.posts()
    assert len(posts) == 20
    assert set(posted_markers(posts).values()) == {1}
    assert assert_all_valid(posts) == 20
