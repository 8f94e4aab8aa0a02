"""500 purchase orders in one run through the bot: every card posted, none throttled, the rate kept
under the Bot Connector's limit by the shared limiter; and a flood to one destination arrives as one
digest. The Teams sandbox's limit is raised (and the flow's limiter with it) to keep the test short:
what is shown is that the limiter keeps the bot under the server's limit, whatever it is."""

from __future__ import annotations

import os
import time

from teams_flow_helpers import AUDIT_SCHEMA, assert_all_valid, posted_markers, run_task

ORDERS = 500
# Bot Connector calls a second admitted by the sandbox, and the flow's limiter under it (room for
# the time a call spends in flight). B1_TEAMS_BOT_LIMITS=30,25 measures Teams' own limit and the
# flow's default (about 20 s for the posts alone).
SERVER_LIMIT, FLOW_LIMIT = (int(n) for n in os.environ.get("B1_TEAMS_BOT_LIMITS", "100,80").split(","))


def test_the_bot_posts_500_cards_in_one_run_without_one_429(teams_flow):
    teams_flow.sap.reset(invoices=ORDERS * 10)  # 500 purchase orders
    teams_flow.teams.control("POST", "config", {"bot_requests_per_second": SERVER_LIMIT})
    channel = teams_flow.channel(0)
    teams_flow.route(
        {
            "digest_over": ORDERS + 1,
            "rules": [{"documents": ["PurchaseOrders"], "to": [{"channel": channel["conversation_id"]}]}],
        }
    )
    options = {
        "routing": str(teams_flow.routing_path),
        "ledger_schema": AUDIT_SCHEMA,
        "bot_requests_per_second": FLOW_LIMIT,
        "page_size": 500,
    }
    started = time.monotonic()
    summary = run_task("PurchaseOrders", "manual__volume", options=options)
    elapsed = time.monotonic() - started
    assert summary["entities"]["PurchaseOrders"]["created"] == ORDERS
    stats = teams_flow.teams.stats()
    assert stats["rate_limited"] == 0
    assert stats["bot_calls_throttled"] == 0
    assert stats["peak_bot_calls_per_second"] <= FLOW_LIMIT
    posts = teams_flow.teams.posts()
    assert len(posts) == ORDERS
    assert set(posted_markers(posts).values()) == {1}
    assert assert_all_valid(posts) == ORDERS
    print(
        f"\n{ORDERS} bot cards in {elapsed:.1f} s, peak {stats['peak_bot_calls_per_second']} Bot Connector calls/s "
        f"(limiter {FLOW_LIMIT}/s, server {SERVER_LIMIT}/s), 429s: {stats['rate_limited']}"
    )
