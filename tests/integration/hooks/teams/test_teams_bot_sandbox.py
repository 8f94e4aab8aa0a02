"""A Teams bot against the sandbox: tokens shared and renewed, chats, posts and updates, Graph
lookups, throttling, and the connection test."""

from __future__ import annotations

import os
import time

import pytest
from teams_helpers import CARD, FAST_RETRIES

from airflow_provider_b1.hooks.teams import TeamsBotHook, TeamsForbiddenError, TeamsNotFoundError
from airflow_provider_b1.sync.audit import scrub_error


def _channel(teams, index: int = 1) -> str:
    return teams.tenant()["channels"][index]["conversation_id"]


def test_the_bot_token_is_shared_by_hooks_and_renewed_once_when_it_expires(teams, connect):
    connect.bot()
    channel = _channel(teams)
    TeamsBotHook().send(channel, CARD)
    TeamsBotHook().send(channel, CARD)  # another task of the worker: the cached token
    assert teams.stats()["tokens_issued"] == {"bot": 1}
    teams.control("POST", "expire-tokens")
    hook = TeamsBotHook()
    hook.send(channel, CARD)
    hook.send(channel, CARD)
    stats = teams.stats()
    assert stats["tokens_issued"] == {"bot": 2}  # renewed once, then reused
    assert stats["responses"]["401"] == 1
    assert len(teams.posts()) == 4


def test_a_chat_is_opened_with_a_user_and_a_card_posted_then_updated_in_place(teams, connect):
    connect.bot()
    hook = TeamsBotHook()
    chat = hook.open_conversation("ada@contoso.example")
    assert chat.startswith("a:")
    assert hook.open_conversation("ada@contoso.example") == chat  # the same 1:1 chat
    activity = hook.send(chat, CARD)
    done = {**CARD, "body": [{"type": "TextBlock", "text": "Approved by Ada"}]}
    assert hook.update(chat, activity, done) == activity
    posted, updated = teams.posts()
    assert (posted["action"], updated["action"]) == ("post", "update")
    assert posted["activity_id"] == updated["activity_id"] == activity
    assert posted["conversation"] == updated["conversation"] == "Ada Lovelace"
    assert updated["attachments"][0]["content"] == done
    assert hook.post_card("hello", to="grace@contoso.example")  # by mail: chat opened on the way


def test_a_user_without_the_bot_or_unknown_is_named(teams, connect):
    connect.bot()
    hook = TeamsBotHook()
    with pytest.raises(TeamsForbiddenError, match="install the bot"):
        hook.open_conversation("alan@contoso.example")
    with pytest.raises(TeamsNotFoundError, match=r"nobody@contoso\.example"):
        hook.resolve_user("nobody@contoso.example")


def test_graph_user_lookups_are_cached(teams, connect):
    connect.bot()
    hook = TeamsBotHook()
    users = {u["userPrincipalName"]: u for u in teams.tenant()["users"]}
    assert hook.resolve_user("ada@contoso.example") == users["ada@contoso.example"]["id"]
    # Grace's mail is not her UPN: the UPN lookup misses, the mail filter finds her.
    assert hook.resolve_user("grace@contoso.example") == users["grace.hopper@contoso.example"]["id"]
    for _ in range(3):
        hook.resolve_user("ADA@contoso.example")
        hook.resolve_user("grace@contoso.example")
    stats = teams.stats()
    assert stats["requests"]["GET v1.0/users"] == 3
    assert stats["tokens_issued"] == {"graph": 1}


def test_a_429_with_retry_after_is_waited_then_the_post_succeeds(teams, connect):
    connect.bot()
    channel = _channel(teams)
    teams.faults(
        script=[{"kind": "rate_limit", "match": "POST v3/conversations/{id}/activities", "times": 1}],
        retry_after=1,
    )
    hook = TeamsBotHook(retry_policy=FAST_RETRIES)
    hook.auth.token()
    started = time.monotonic()
    assert hook.send(channel, CARD)
    assert time.monotonic() - started >= 0.9  # the second asked for, not the policy's 0.02 s
    assert teams.stats()["responses"] == {"200": 1, "429": 1, "201": 1}
    assert len(teams.posts()) == 1


def test_the_bots_call_rate_limit_is_kept_by_waiting(teams, connect):
    teams.control("POST", "config", {"bot_requests_per_second": 3})
    connect.bot()
    hook = TeamsBotHook(retry_policy=FAST_RETRIES)
    channel = _channel(teams)
    ids = [hook.send(channel, CARD) for _ in range(5)]
    assert len(set(ids)) == 5
    stats = teams.stats()
    assert stats["bot_calls_throttled"] >= 1
    assert stats["peak_bot_calls_per_second"] <= 3


def test_the_connections_redis_url_shares_the_rate_limit_across_workers(teams, connect):
    """With ``redis_url`` in the connection the bot's calls are counted in Redis (every worker's
    calls in one count), not in the worker's own file, and are kept under the limit there."""
    redis = pytest.importorskip("redis")
    url = os.environ.get("B1_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is not reachable at {url} ({type(exc).__name__}); CI needs it.")
        pytest.skip(f"Redis is not reachable at {url} ({type(exc).__name__}).")
    teams.control("POST", "config", {"bot_requests_per_second": 3})
    connect.bot(redis_url=url)
    hook = TeamsBotHook(retry_policy=FAST_RETRIES, requests_per_second=3)
    channel = _channel(teams)
    limiter = hook.client.get_adapter(f"{hook.settings.service_url}/v3/").limiter
    try:
        assert limiter.backend == "redis"
        assert len({hook.send(channel, CARD) for _ in range(5)}) == 5
        assert redis.Redis.from_url(url).exists(f"b1:ratelimit:{limiter.name}")
    finally:
        redis.Redis.from_url(url).delete(f"b1:ratelimit:{limiter.name}")
        hook.close()
    stats = teams.stats()
    assert stats["rate_limited"] == 0
    assert stats["peak_bot_calls_per_second"] <= 3


def test_connection_test_gets_both_tokens_and_reads_the_test_conversation(teams, connect):
    connect.bot(test_conversation_id=_channel(teams, 0))
    ok, message = TeamsBotHook().test_connection()
    assert ok, message
    assert "Bot Framework token" in message
    assert "Graph token" in message
    assert "reaches the test conversation (3 members)" in message
    assert teams.posts() == []
    connect.bot()
    ok, message = TeamsBotHook().test_connection()
    assert ok, message
    assert "set test_conversation_id" in message


def test_connection_test_names_a_wrong_secret_tenant_or_conversation(teams, connect):
    connect.bot(password="not-the-bot-secret-x")
    ok, message = TeamsBotHook().test_connection()
    assert not ok
    assert "refused the bot's app id and secret" in message
    assert "AADSTS7000215" in message
    assert "not-the-bot-secret-x" not in message
    connect.bot(tenant_id="00000000-0000-0000-0000-000000000000")
    ok, message = TeamsBotHook().test_connection()
    assert not ok
    assert "the tenant does not exist" in message
    connect.bot(test_conversation_id="19:nothere@thread.tacv2")
    ok, message = TeamsBotHook().test_connection()
    assert not ok
    assert "HTTP 404" in message
    connect.bot(login="")
    ok, message = TeamsBotHook().test_connection()
    assert not ok
    assert "needs the bot's app id (login)" in message


def test_secrets_and_tokens_are_registered_with_the_masker(teams, connect):
    connect.bot()
    hook = TeamsBotHook()
    hook.resolve_user("ada@contoso.example")
    hook.send(_channel(teams), "hello")
    tokens = teams.issued_tokens()
    assert len(tokens) == 2
    for secret in (teams.config.bot_app_secret, teams.config.graph_client_secret, *tokens):
        assert secret not in scrub_error(f"upstream said {secret}")
    assert "secret" not in repr(hook.auth).lower()
