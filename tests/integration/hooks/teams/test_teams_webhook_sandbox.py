"""Cards through a Workflows webhook, against the sandbox: delivered, refused, tested, never logged."""

from __future__ import annotations

import logging

import pytest
from teams_helpers import CARD

from airflow_provider_b1.hooks.teams import TeamsBadRequestError, TeamsWebhookHook
from airflow_provider_b1.sync.audit import scrub_error


def test_a_card_posted_to_the_webhook_is_delivered_and_recorded(teams, connect):
    connect.webhook()
    TeamsWebhookHook().post_card(CARD)
    (post,) = teams.posts()
    assert post["via"] == "webhook"
    assert post["channel"] == "Finance / General"
    assert post["attachments"] == [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": CARD}
    ]
    assert teams.stats()["responses"] == {"202": 1}


def test_a_message_without_a_card_is_refused_400_with_a_clear_error(teams, connect):
    connect.webhook()
    hook = TeamsWebhookHook()
    with pytest.raises(TeamsBadRequestError) as refused:
        hook.post_card({"type": "message", "attachments": [{"contentType": "text/plain", "content": "hi"}]})
    assert refused.value.status == 400
    assert "Attachment 0 is not an Adaptive Card" in str(refused.value)
    assert "Finance / General" in str(refused.value)
    with pytest.raises(TeamsBadRequestError, match="Adaptive Cards only"):
        hook.post_card("plain text")  # refused before sending
    assert teams.posts() == []
    assert teams.stats()["requests"] == {"POST workflows": 1}  # a refusal is not retried


def test_a_429_from_the_webhook_is_waited_out_then_the_card_is_delivered(teams, connect):
    connect.webhook()
    teams.faults(script=[{"kind": "rate_limit", "match": "POST workflows", "times": 1}], retry_after=1)
    TeamsWebhookHook().post_card(CARD)
    assert len(teams.posts()) == 1
    assert teams.stats()["responses"] == {"429": 1, "202": 1}


def test_a_5xx_on_a_post_is_not_repeated_since_the_flow_may_have_run(teams, connect):
    from airflow_provider_b1.hooks.teams import TeamsServerError

    connect.webhook()
    teams.faults(script=[{"kind": "error", "match": "POST workflows", "times": 1}])
    with pytest.raises(TeamsServerError):
        TeamsWebhookHook().post_card(CARD)
    assert teams.stats()["requests"] == {"POST workflows": 1}


def test_connection_test_checks_the_url_and_the_host_without_posting(teams, connect):
    connect.webhook()
    ok, message = TeamsWebhookHook().test_connection()
    assert ok, message
    assert "Finance / General" in message
    assert "no card was posted" in message
    assert teams.posts() == []
    assert "POST workflows" not in teams.stats()["requests"]


def test_connection_test_names_a_malformed_url_without_quoting_it(teams, connect):
    good = teams.webhook_connection()["password"]
    unsigned = good.split("&sig=")[0]
    connect.webhook(password=unsigned)
    ok, message = TeamsWebhookHook().test_connection()
    assert not ok
    assert "lacks the sig= signature" in message
    assert unsigned not in message
    connect.webhook(password="http://example.invalid/hooks/abc")
    ok, message = TeamsWebhookHook().test_connection()
    assert not ok
    assert "https URL" in message
    assert "/workflows/<id>/triggers/manual/paths/invoke" in message


def test_a_wrong_signature_or_workflow_is_named_and_the_url_is_never_logged(teams, connect, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_b1"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    url = connect.webhook()["password"]
    sig = url.split("sig=")[1]
    hook = TeamsWebhookHook()
    hook.post_card(CARD)
    errors = []
    for bad in (url.replace(sig, "0" * len(sig)), url.replace("/workflows/", "/workflows/f00")):
        connect.webhook(password=bad)
        with pytest.raises(Exception) as failed:
            TeamsWebhookHook().post_card(CARD)
        errors += [str(failed.value), repr(failed.value)]
    assert any("signature" in e and "HTTP 401" in e for e in errors)
    assert any("HTTP 404" in e for e in errors)
    everything = "\n".join([caplog.text, *errors])
    assert "Posted a card to Finance / General" in caplog.text
    assert caplog.records
    assert sig not in everything
    assert "/workflows/" not in caplog.text.replace("sig=***", "") or sig not in caplog.text
    # Registered with Airflow's masker, so a task log would show *** for it.
    assert url not in scrub_error(f"posting to {url}")
    assert sig not in scrub_error(f"sig was {sig}")
