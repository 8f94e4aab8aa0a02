"""The Teams bot endpoint admits only calls the Bot Framework signed for this bot.

Tokens are signed by the Teams sandbox's own key and checked against its OpenID metadata and key
set (served over HTTPS as ``https://login.botframework.com`` serves them); each way a token can be
wrong is answered 401 before anything reaches Airflow.
"""

from __future__ import annotations

import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from airflow_provider_b1.webhooks.receiver import create_app
from airflow_provider_b1.webhooks.settings import WebhookSettings
from airflow_provider_b1.webhooks.teams_bot import BotAuthError, BotTokenVerifier

PRESS = {"dag_id": "sap_b1_approvals", "run_id": "manual__1", "task_id": "approve", "map_index": 0}


class Airflow:
    """Stands in for Airflow's HITL endpoints: none of these calls may reach it."""

    def __init__(self) -> None:
        self.answers: list[tuple] = []

    def hitl_request(self, *args):
        return {"options": ["Approve", "Reject"], "params": {}, "response_received": False}

    def answer_hitl(self, *args, **kwargs):
        self.answers.append((args, kwargs))
        return True

    def record_event(self, uri, extra):  # pragma: no cover - not a delivery
        raise AssertionError("no Asset event expected")


@pytest.fixture
def bot(teams_sandbox):
    """(sandbox state, verifier, Teams client app, stand-in Airflow)."""
    sandbox = teams_sandbox.app.state.sandbox
    verifier = BotTokenVerifier(
        teams_sandbox.config.bot_app_id,
        openid_url=teams_sandbox.base_url + "/v1/.well-known/openidconfiguration",
        verify=teams_sandbox.ca_path,
    )
    airflow = Airflow()
    settings = WebhookSettings(
        airflow_url="http://airflow.invalid", teams_bot_app_id=teams_sandbox.config.bot_app_id
    )
    app = create_app(settings, recorder=airflow, bot_verifier=verifier)
    with TestClient(app) as client:
        yield sandbox, verifier, client, airflow, teams_sandbox.base_url


def activity(service_url: str, **value) -> dict:
    return {
        "type": "message",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": "29:1abc", "name": "Ada Lovelace", "aadObjectId": "0f0e"},
        "value": {**PRESS, "option": "Approve", **value},
    }


def other_key_token(claims: dict, kid: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


def test_a_token_the_bot_framework_signed_for_this_bot_is_answered(bot):
    sandbox, verifier, client, airflow, base = bot
    token = sandbox.bot_token(base)
    claims = verifier.verify_request(f"Bearer {token}", activity(base))
    assert claims["aud"] == sandbox.config.bot_app_id

    reply = client.post(
        "/webhooks/teams/bot", json=activity(base), headers={"Authorization": f"Bearer {token}"}
    )
    assert reply.status_code == 200
    assert reply.json() == {"status": 200, "text": "Approve: recorded. The card shows the outcome shortly."}
    ((args, kwargs),) = airflow.answers
    assert args == ("sap_b1_approvals", "manual__1", "approve", 0)
    assert kwargs["chosen_options"] == ["Approve"]
    assert kwargs["params_input"] == {
        "teams_responder": {"id": "0f0e", "name": "Ada Lovelace", "via": "teams"}
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong issuer",
        "wrong audience",
        "expired",
        "not yet valid",
        "bad signature",
        "unknown kid",
        "serviceUrl mismatch",
        "no token",
        "HS256",
        "not a jwt",
        "no exp",
    ],
)
def test_every_other_token_is_refused_with_401_and_not_logged(bot, case, caplog):
    sandbox, verifier, client, airflow, base = bot
    now = int(time.time())
    body = activity(base)
    claims = {"serviceurl": base, "nbf": now - 5, "exp": now + 3600, "iss": "https://api.botframework.com"}
    claims["aud"] = sandbox.config.bot_app_id
    token = {
        "wrong issuer": lambda: sandbox.bot_token(base, {"iss": "https://sts.windows.net/x/"}),
        "wrong audience": lambda: sandbox.bot_token(base, {"aud": "another-bot"}),
        "expired": lambda: sandbox.bot_token(base, {"exp": now - 3600, "nbf": now - 7200}),
        "not yet valid": lambda: sandbox.bot_token(base, {"nbf": now + 3600}),
        "bad signature": lambda: other_key_token(claims, sandbox.key_id),
        "unknown kid": lambda: sandbox.bot_token(base, kid="not-a-published-key"),
        "serviceUrl mismatch": lambda: sandbox.bot_token("https://smba.trafficmanager.net/evil/"),
        "no token": lambda: None,
        "HS256": lambda: jwt.encode(claims, "a-shared-secret-of-32-characters!", algorithm="HS256"),
        "not a jwt": lambda: "abc.def",
        "no exp": lambda: sandbox.bot_token(base, {"exp": None}),
    }[case]()
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    with pytest.raises(BotAuthError):
        verifier.verify_request(headers.get("Authorization"), body)
    with caplog.at_level(logging.INFO):
        reply = client.post("/webhooks/teams/bot", json=body, headers=headers)

    assert reply.status_code == 401
    assert reply.json() == {"detail": "Unauthorized."}
    assert airflow.answers == []
    assert "Refused a Teams bot call" in caplog.text
    if token:
        assert token not in caplog.text
        assert token.split(".")[-1] not in caplog.text


def test_the_keys_are_cached_for_a_bounded_time_and_a_new_kid_reads_them_again(teams_sandbox):
    sandbox = teams_sandbox.app.state.sandbox
    base = teams_sandbox.base_url
    now = [time.time()]
    verifier = BotTokenVerifier(
        teams_sandbox.config.bot_app_id,
        openid_url=base + "/v1/.well-known/openidconfiguration",
        verify=teams_sandbox.ca_path,
        keys_ttl=600,
        refetch_after=60,
        clock=lambda: now[0],
    )
    fetched = []
    original = verifier._fetch_keys
    verifier._fetch_keys = lambda: (fetched.append(now[0]), original())[1]  # type: ignore[method-assign]
    token = f"Bearer {sandbox.bot_token(base)}"

    for _ in range(3):
        verifier.verify_request(token, activity(base))
    assert len(fetched) == 1
    unknown = f"Bearer {sandbox.bot_token(base, kid='rotated')}"
    with pytest.raises(BotAuthError):
        verifier.verify_request(unknown, activity(base))  # read again at most once a minute
    assert len(fetched) == 1
    now[0] += 61
    with pytest.raises(BotAuthError):
        verifier.verify_request(unknown, activity(base))
    assert len(fetched) == 2
    now[0] += 601
    verifier.verify_request(token, activity(base))
    assert len(fetched) == 3


def test_a_button_for_another_dag_or_an_option_not_offered_answers_nothing(bot):
    sandbox, _verifier, client, airflow, base = bot
    headers = {"Authorization": f"Bearer {sandbox.bot_token(base)}"}

    other = client.post("/webhooks/teams/bot", json=activity(base, dag_id="payroll"), headers=headers)
    offered = client.post("/webhooks/teams/bot", json=activity(base, option="Delete"), headers=headers)
    invoke = {**activity(base), "type": "invoke", "name": "adaptiveCard/action"}
    invoke["value"] = {"action": {"type": "Action.Execute", "data": {**PRESS, "option": "Reject"}}}
    invoked = client.post("/webhooks/teams/bot", json=invoke, headers=headers)

    assert (other.status_code, other.json()["status"]) == (200, 403)
    assert (offered.status_code, offered.json()["status"]) == (200, 400)
    assert invoked.json() == {
        "statusCode": 200,
        "type": "application/vnd.microsoft.activity.message",
        "value": "Reject: recorded. The card shows the outcome shortly.",
    }
    assert [kwargs["chosen_options"] for _, kwargs in airflow.answers] == [["Reject"]]


def test_presses_from_another_tenant_or_user_than_configured_answer_nothing(teams_sandbox):
    sandbox = teams_sandbox.app.state.sandbox
    base = teams_sandbox.base_url
    verifier = BotTokenVerifier(
        teams_sandbox.config.bot_app_id,
        openid_url=base + "/v1/.well-known/openidconfiguration",
        verify=teams_sandbox.ca_path,
    )
    settings = WebhookSettings.from_env(
        {
            "B1_WEBHOOKS_AIRFLOW_URL": "http://airflow.invalid",
            "B1_WEBHOOKS_TEAMS_BOT_APP_ID": teams_sandbox.config.bot_app_id,
            "B1_WEBHOOKS_TEAMS_BOT_TENANT_ID": teams_sandbox.config.tenant_id,
            "B1_WEBHOOKS_TEAMS_BOT_USERS": " 0F0E , 1a1b",
        }
    )
    assert settings.teams_bot_users == ("0f0e", "1a1b")
    airflow = Airflow()
    headers = {"Authorization": f"Bearer {sandbox.bot_token(base)}"}

    def press(tenant: str, user: str) -> dict:
        body = activity(base)
        body["from"]["aadObjectId"] = user
        body["channelData"] = {"tenant": {"id": tenant}}
        with TestClient(create_app(settings, recorder=airflow, bot_verifier=verifier)) as client:
            return client.post("/webhooks/teams/bot", json=body, headers=headers).json()

    assert press("another-tenant", "0f0e")["status"] == 403
    assert press(teams_sandbox.config.tenant_id, "9999")["status"] == 403
    assert airflow.answers == []
    assert press(teams_sandbox.config.tenant_id, "1A1B")["status"] == 200
    assert len(airflow.answers) == 1
