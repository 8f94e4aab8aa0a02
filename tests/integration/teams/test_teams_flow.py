"""The ``sap_b1_to_teams`` flow against the SAP and Teams sandboxes and PostgreSQL: one card per
document and event and destination, whatever runs again."""

from __future__ import annotations

from teams_flow_helpers import assert_all_valid, posted_markers

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
