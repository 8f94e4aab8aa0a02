"""A task killed with SIGKILL between posting a card and recording it in the sent-ledger, then tried
again: the bot posts nothing twice (it finds the card in the conversation); the webhook, which gives
nothing to look up, posts that one card again, and says so.

The task's first try runs in a child process (forked, so it starts at once) that kills itself
with SIGKILL right after Teams answered its seventh post, before the ledger hears of it: the worst
moment, exactly. The next try runs in this process, as Airflow would start it after the worker died.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from teams_flow_helpers import assert_all_valid, posted_markers

KILL_AFTER = 7


def _killed_after_posts(flow, stream, run_id, patch):
    """Run the task's first try in a forked child that SIGKILLs itself after its ``KILL_AFTER``-th post."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            patch()
            flow.run(stream, run_id)
        finally:
            os._exit(3)  # not killed: the parent sees it
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the child never finished"
        time.sleep(0.05)
    assert os.WIFSIGNALED(status)
    assert os.WTERMSIG(status) == signal.SIGKILL


def _killed_at_some_post(flow, stream, run_id, posts):
    """Run the task's first try in a forked child and SIGKILL it from here once Teams holds ``posts``
    posts (every post is served slowly: the kill lands wherever the child happens to be)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            flow.run(stream, run_id)
        finally:
            os._exit(3)
    try:
        deadline = time.monotonic() + 120
        while len(flow.teams.posts()) < posts:
            assert os.waitpid(pid, os.WNOHANG)[0] == 0, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the child never posted"
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.WTERMSIG(status) == signal.SIGKILL


def _kill_after(cls, method):
    original = getattr(cls, method)
    sent = []

    def patched(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        sent.append(result)
        if len(sent) == KILL_AFTER:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return lambda: setattr(cls, method, patched)


def test_the_bot_posts_nothing_twice_after_a_sigkill_between_post_and_ledger(teams_flow, caplog, capsys):
    from airflow_provider_b1.hooks.teams import TeamsBotHook

    channel = teams_flow.channel(1)
    teams_flow.route(
        {
            "rules": [
                {
                    "documents": ["PurchaseOrders"],
                    "to": [
                        {"user": "ada@contoso.example"},
                        {"channel": channel["conversation_id"], "team": channel["team_id"]},
                    ],
                }
            ]
        }
    )
    _killed_after_posts(teams_flow, "PurchaseOrders", "manual__killed", _kill_after(TeamsBotHook, "send"))
    assert len(teams_flow.teams.posts()) == KILL_AFTER
    pending = {row[:3] for row in teams_flow.ledger() if row[4] == "pending"}
    assert len(pending) == 1  # the card Teams has, the ledger does not know it got

    caplog.set_level(logging.INFO, logger="airflow_provider_b1.teams.sink")
    summary = teams_flow.run("PurchaseOrders", "manual__killed", try_number=2)
    assert summary["entities"]["PurchaseOrders"]["failed"] == 0
    posts = teams_flow.teams.posts()
    assert len(posts) == 40
    assert set(posted_markers(posts).values()) == {1}  # no card twice
    assert "found posted" in caplog.text + capsys.readouterr().out  # Airflow may route logs to stdout
    assert {row[4] for row in teams_flow.ledger()} == {"sent"}
    assert assert_all_valid(posts) == 40


def test_the_webhook_repeats_at_most_the_one_card_a_sigkill_left_unrecorded(teams_flow, caplog, capsys):
    from airflow_provider_b1.hooks.teams import TeamsWebhookHook

    teams_flow.route({"rules": [{"documents": ["PurchaseOrders"], "to": [{"webhook": None}]}]})
    _killed_after_posts(
        teams_flow, "PurchaseOrders", "manual__killed", _kill_after(TeamsWebhookHook, "post_card")
    )
    assert len(teams_flow.teams.posts()) == KILL_AFTER

    caplog.set_level(logging.WARNING, logger="airflow_provider_b1.teams.sink")
    teams_flow.run("PurchaseOrders", "manual__killed", try_number=2)
    posts = teams_flow.teams.posts()
    shown = posted_markers(posts)
    assert len(shown) == 20
    repeated = {marker: n for marker, n in shown.items() if n > 1}
    assert list(repeated.values()) == [2]  # measured: exactly one card shows twice
    assert len(posts) == 21
    assert "it may show twice" in caplog.text + capsys.readouterr().out
    assert assert_all_valid(posts) == 21


def test_a_bot_run_sigkilled_at_any_moment_and_tried_again_posts_each_card_once(teams_flow):
    teams_flow.route(
        {"rules": [{"documents": ["PurchaseOrders"], "to": [{"user": "grace@contoso.example"}]}]}
    )
    teams_flow.teams.faults(slow_rate=1.0, slow_seconds=0.05)  # a wide window to land in
    _killed_at_some_post(teams_flow, "PurchaseOrders", "manual__killed", posts=9)
    teams_flow.teams.faults()
    killed = len(teams_flow.teams.posts())
    assert 9 <= killed < 20

    summary = teams_flow.run("PurchaseOrders", "manual__killed", try_number=2)
    assert summary["entities"]["PurchaseOrders"]["failed"] == 0
    posts = teams_flow.teams.posts()
    assert len(posts) == 20
    assert set(posted_markers(posts).values()) == {1}
    assert {row[4] for row in teams_flow.ledger()} == {"sent"}
    assert assert_all_valid(posts) == 20
