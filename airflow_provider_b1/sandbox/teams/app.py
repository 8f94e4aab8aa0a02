"""The Microsoft Teams imitation as a FastAPI app: every Teams surface the provider uses, on one
HTTPS server, plus ``/_sandbox``.

Workflows webhook (the "post to a channel when a webhook request is received" flow):
``POST /workflows/{id}/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=<sig>``.
An unknown workflow answers 404 ``WorkflowNotFound``; a missing or wrong ``sig`` 401
``DirectApiInvalidAuthorizationSignature``; another method 405. The body must be JSON
(``Content-Type: application/json``, else 400) holding ``{"type": "message", "attachments":
[{"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type": "AdaptiveCard",
...}}]}``: anything else answers 400 with a message naming what is wrong, as does a body over
``max_message_bytes``. Accepted posts answer 202 with an empty body and are recorded.

Tokens (the Microsoft identity platform, v2 endpoint): ``POST /{tenant}/oauth2/v2.0/token``,
a form with ``grant_type=client_credentials``, ``client_id``, ``client_secret``, ``scope``.
``/botframework.com/...`` issues Bot Framework tokens (scope
``https://api.botframework.com/.default``) to the bot; the tenant's own path issues Graph tokens
(``https://graph.microsoft.com/.default``) to the Graph client and, for a single-tenant bot, Bot
Framework tokens to the bot. Replies ``{token_type, expires_in, ext_expires_in, access_token}``;
refusals are AAD's ``{error, error_description, error_codes}``: a wrong secret 401
``invalid_client`` (AADSTS7000215), an unknown client 400 ``unauthorized_client``
(AADSTS700016), an unknown tenant 400 ``invalid_request`` (AADSTS90002), another scope 400
``invalid_scope`` (AADSTS70011).

Bot Connector (a Bot Framework token; otherwise 401 ``{"message": "Authorization has been
denied for this request."}``; about ``bot_requests_per_second`` calls a second per bot, beyond
which 429 with ``Retry-After``):

- ``POST /v3/conversations`` ``{"bot": {...}, "members": [{"id": "<29:... or AAD object id>"}],
  "channelData": {"tenant": {"id": ...}}}`` opens (or finds) the 1:1 chat: 201 ``{"id"}`` when
  new, 200 when it existed; 403 when the user has not installed the bot, 404 for an unknown
  user, 400 for another tenant or not exactly one member.
- ``POST /v3/conversations/{id}/activities`` posts a message (text and/or attachments): 201
  ``{"id": "<activity id>"}``; 404 for an unknown conversation.
- ``PUT /v3/conversations/{id}/activities/{activityId}`` replaces it: 200 ``{"id"}``; 404 for an
  unknown activity.
- ``GET /v3/conversations/{id}/members``: the conversation's members (what a connection test may
  read without posting).

Graph (a Graph token): ``GET /v1.0/users/{id or userPrincipalName}`` answers ``{id,
displayName, userPrincipalName, mail}`` (``$select`` honoured) or 404 ``Request_ResourceNotFound``;
``GET /v1.0/users?$filter=mail eq '...'`` (or ``userPrincipalName eq``) answers ``{"value":
[...]}``; an invalid token 401 ``InvalidAuthenticationToken``.
``GET /v1.0/chats/{chatId}/messages`` (the bot's 1:1 chat with a user is
``19:{user object id}_{bot app id}@unq.gbl.spaces``) and ``GET
/v1.0/teams/{teamId}/channels/{channelId}/messages`` list the messages the bot posted there,
newest first, as Graph's ``chatMessage`` (``attachments[].content`` the card as a JSON string),
``$top`` up to 50 a page and ``@odata.nextLink`` to the next; 404 ``NotFound`` for an unknown chat,
team or channel.

Bot Framework to the bot (what calls a bot's messaging endpoint when a card's button is
pressed): the channel signs a JWT (RS256) with a key published at ``GET
/v1/.well-known/openidconfiguration`` (``{"issuer", "jwks_uri", ...}``) and ``GET
/v1/.well-known/keys`` (``{"keys": [{"kty": "RSA", "kid", "n", "e", "endorsements"}]}``), the
paths of ``https://login.botframework.com``. Claims: ``iss`` ``https://api.botframework.com``,
``aud`` the bot's app id, ``serviceurl`` the sandbox's own URL, ``nbf``/``exp`` (an hour).

Control plane (no auth, never throttled, never faulted): ``GET /_sandbox/stats``, ``POST
/_sandbox/stats/reset``, ``GET|POST /_sandbox/faults``, ``POST /_sandbox/expire-tokens``,
``GET|POST /_sandbox/config``, ``POST /_sandbox/reset``, ``GET /_sandbox/posts`` (every post and
update received, in order), ``GET /_sandbox/tenant`` (users, channels, webhook URLs), ``POST
/_sandbox/press`` (a user presses an ``Action.Submit`` button of a posted card: ``{"activity_id",
"button": <title>, "user": <UPN or id>, "kind": "message" | "invoke", "endpoint": <bot URL,
default config bot_endpoint>, "claims": {<token claims to override>}, "service_url"}``; the
activity is POSTed, signed, to the bot's endpoint and the answer returned as ``{"status",
"body", "activity"}``).

This module shares no code with the hook on purpose: two independent readings of the protocol
catch each other's mistakes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
import time
import uuid
from collections import deque
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from starlette.responses import Response

from airflow_provider_b1.sandbox.faults import Faults
from airflow_provider_b1.sandbox.server import abort_connection, abortable_app
from airflow_provider_b1.sandbox.teams import data

BOT_SCOPE = "https://api.botframework.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
CARD = "application/vnd.microsoft.card.adaptive"
BOT_TENANT = "botframework.com"
BOT_ISSUER = "https://api.botframework.com"
"""``iss`` of the tokens the Bot Framework signs for calls to a bot."""
OPENID_PATH = "/v1/.well-known/openidconfiguration"
KEYS_PATH = "/v1/.well-known/keys"


@dataclass
class TeamsSandboxConfig:
    """Settings of one imitated tenant.

    :param tenant_id: the Entra ID tenant (a GUID).
    :param bot_app_id: the bot's Microsoft App ID (the client id of its tokens).
    :param bot_app_secret: its client secret.
    :param graph_client_id: the app registration that reads users through Graph.
    :param graph_client_secret: its client secret.
    :param token_lifetime_seconds: ``expires_in`` of every token (Entra ID: 60 to 90 minutes).
    :param bot_requests_per_second: Bot Connector calls admitted per bot in any one second (0 = no limit).
    :param max_message_bytes: the largest webhook body or activity accepted (Teams: about 28 KB).
    :param bot_endpoint: the bot's messaging endpoint, where a pressed button's activity goes.
    """

    tenant_id: str = "6f1c2b9e-0d4a-4c8e-9b1a-3e5f7a9c2d10"
    bot_app_id: str = "4c3f2a1b-8d7e-4f6a-9b0c-1d2e3f4a5b6c"
    bot_app_secret: str = "b1-teams-bot-secret~Q8vR2kT7mW3xZ9"
    graph_client_id: str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    graph_client_secret: str = "b1-teams-graph-secret~L4nP6sD1hJ8"
    token_lifetime_seconds: float = 3599
    bot_requests_per_second: int = 30
    max_message_bytes: int = 28_000
    bot_endpoint: str | None = None


SETTABLE = {
    "bot_endpoint",
    "bot_app_secret",
    "graph_client_secret",
    "token_lifetime_seconds",
    "bot_requests_per_second",
    "max_message_bytes",
}


class TeamsSandbox:
    """State behind the app: tenant, tokens, conversations, posts, throttle, faults, counters."""

    def __init__(self, config: TeamsSandboxConfig) -> None:
        self.config = config
        self.faults = Faults()
        self._signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_hex(8)
        self.reset_state()
        self.reset_counters()

    def reset_state(self) -> None:
        tenant = self.config.tenant_id
        self.users = data.users(tenant)
        self.channels = data.channels(tenant)
        self.tokens: dict[str, dict[str, Any]] = {}
        # conversation id -> {"kind": "personal" | "channel", "members": [user], "activities": {id: activity}}
        self.conversations: dict[str, dict[str, Any]] = {}
        for channel in self.channels:
            members = [u for u in self.users if u["installed"]]
            self.conversations[channel["conversation_id"]] = {
                "kind": "channel",
                "name": f"{channel['team']} / {channel['name']}",
                "members": members,
                "activities": {},
            }
        self.posts: list[dict[str, Any]] = []

    def reset_counters(self) -> None:
        self.calls: dict[str, deque[float]] = {}
        self.tokens_issued: dict[str, int] = {}
        self.token_refusals = 0
        self.requests_total = 0
        self.requests: dict[str, int] = {}
        self.responses: dict[str, int] = {}
        self.throttled = 0
        self.peak_per_second = 0
        self.faults.injected = {}

    def count(self, label: str) -> None:
        self.requests_total += 1
        self.requests[label] = self.requests.get(label, 0) + 1

    def admit(self, bot: str) -> int | None:
        """Admit one Bot Connector call of ``bot`` (any one second holds at most the limit): None,
        or the whole seconds to wait."""
        limit = self.config.bot_requests_per_second
        now = time.monotonic()
        recent = self.calls.setdefault(bot, deque())
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if limit > 0 and len(recent) >= limit:
            self.throttled += 1
            return max(1, math.ceil(recent[len(recent) - limit] + 1.0 - now))
        recent.append(now)
        self.peak_per_second = max(self.peak_per_second, len(recent))
        return None

    def user(self, key: str) -> dict[str, Any] | None:
        """A user by AAD object id, Teams id (``29:...``) or UPN (any case)."""
        key = key.strip()
        for user in self.users:
            if key in (user["id"], user["teams_id"]) or key.lower() == user["userPrincipalName"].lower():
                return user
        return None

    def webhook_url(self, base_url: str, channel: dict[str, Any]) -> str:
        return (
            f"{base_url}/workflows/{channel['workflow_id']}/triggers/manual/paths/invoke"
            f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={channel['sig']}"
        )

    # -- the Bot Framework's signing key ------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The published signing key (JWK), endorsed for the Teams channel as the real keys are."""
        numbers = self._signing_key.public_key().public_numbers()

        def b64(value: int) -> str:
            raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.key_id,
                    "n": b64(numbers.n),
                    "e": b64(numbers.e),
                    "endorsements": ["msteams"],
                }
            ]
        }

    def bot_token(
        self, service_url: str, overrides: dict[str, Any] | None = None, kid: str | None = None
    ) -> str:
        """A JWT as the Bot Framework signs it for a call to the bot; ``overrides`` replace claims
        (a ``None`` value removes one), ``kid`` the key id in the header."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "serviceurl": service_url,
            "nbf": now - 5,
            "exp": now + 3600,
            "iss": BOT_ISSUER,
            "aud": self.config.bot_app_id,
        }
        for name, value in (overrides or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        pem = self._signing_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid or self.key_id})

    def find_activity(self, activity_id: str) -> tuple[str, dict[str, Any]] | None:
        """(conversation id, the activity as last posted or updated) of a bot post."""
        for conversation_id, conversation in self.conversations.items():
            if activity_id in conversation["activities"]:
                return conversation_id, conversation
        return None

    def stats(self) -> dict[str, Any]:
        now = time.time()
        return {
            "tokens_issued": dict(self.tokens_issued),
            "token_requests_refused": self.token_refusals,
            "live_tokens": sum(1 for t in self.tokens.values() if t["expires"] > now),
            "requests_total": self.requests_total,
            "requests": dict(self.requests),
            "responses": dict(self.responses),
            "rate_limited": self.responses.get("429", 0),
            "bot_calls_throttled": self.throttled,
            "peak_bot_calls_per_second": self.peak_per_second,
            "posts": len(self.posts),
            "faults_injected": dict(self.faults.injected),
        }


# ---------------------------------------------------------------------------------------------
# Replies


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(obj).encode(), status, headers=headers, media_type="application/json; charset=utf-8"
    )


def _aad_error(status: int, error: str, code: int, description: str) -> Response:
    trace = str(uuid.uuid4())
    return _json(
        {
            "error": error,
            "error_description": f"AADSTS{code}: {description} Trace ID: {trace}",
            "error_codes": [code],
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
        },
        status,
        {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


def _graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(
        {"error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}},
        status,
        headers,
    )


def _connector_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": {"code": code, "message": message}}, status, headers)


def _workflow_error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


def _throttled(seconds: int, shape: str) -> Response:
    headers = {"Retry-After": str(seconds)}
    if shape == "graph":
        return _graph_error(429, "TooManyRequests", "Too many requests.", headers)
    if shape == "token":
        return Response(b"", 429, headers=headers)
    return _connector_error(429, "TooManyRequests", "Too many requests; retry later.", headers)


# ---------------------------------------------------------------------------------------------
# The app


async def _body_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("The body must be a JSON object")
    return value


def _card_problem(body: Any) -> str | None:
    """Why a webhook body is not a message carrying Adaptive Cards, or ``None`` when it is one."""
    if not isinstance(body, dict):
        return "The body must be a JSON object: a message with Adaptive Card attachments."
    if body.get("type") != "message":
        return 'The body must be {"type": "message", "attachments": [...]}; "type" is not "message".'
    attachments = body.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "The message has no attachments; this workflow posts Adaptive Cards only."
    for index, attachment in enumerate(attachments):
        if not isinstance(attachment, dict) or attachment.get("contentType") != CARD:
            return f"Attachment {index} is not an Adaptive Card (contentType must be {CARD})."
        content = attachment.get("content")
        if not isinstance(content, dict) or content.get("type") != "AdaptiveCard":
            return f'Attachment {index} has no Adaptive Card content ({{"type": "AdaptiveCard", ...}}).'
        if not isinstance(content.get("body", []), list):
            return f"The card of attachment {index} has a body that is not a list."
    return None


def create_app(config: TeamsSandboxConfig | None = None) -> FastAPI:
    """The Teams imitation; ``app.state.sandbox`` is its :class:`TeamsSandbox`.

    :param config: settings; defaults to :class:`TeamsSandboxConfig()`.
    """
    config = config or TeamsSandboxConfig()
    app = abortable_app(title="Microsoft Teams sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = TeamsSandbox(config)

    def sb() -> TeamsSandbox:
        return app.state.sandbox

    def finish(response: Response) -> Response:
        key = str(response.status_code)
        sb().responses[key] = sb().responses.get(key, 0) + 1
        return response

    async def before(
        request: Request, label: str, *, takes_token: bool, shape: str
    ) -> tuple[Response | None, str | None]:
        sandbox = sb()
        sandbox.count(label)
        fault = sandbox.faults.draw(label, takes_token=takes_token)
        if fault == "reset":
            return await abort_connection(request), fault
        if fault == "error":
            status = sandbox.faults.error_status
            return finish(
                _json({"error": {"code": "ServiceUnavailable", "message": "Service Unavailable"}}, status)
            ), fault
        if fault == "slow":
            await asyncio.sleep(sandbox.faults.slow_seconds)
        if fault == "rate_limit":
            return finish(_throttled(sandbox.faults.retry_after, shape)), fault
        return None, fault

    def bearer(request: Request, audience: str, *, expire: bool) -> dict[str, Any] | None:
        """The live token of ``audience`` the request carries, else ``None``."""
        header = request.headers.get("authorization") or ""
        if header[:7].lower() != "bearer ":
            return None
        token = sb().tokens.get(header[7:].strip())
        if token is None or token["audience"] != audience:
            return None
        now = time.time()
        if expire:
            token["expires"] = min(token["expires"], now)
        return token if token["expires"] > now else None

    # -- control plane -------------------------------------------------------------------------

    @app.get("/_sandbox/stats")
    async def stats() -> Response:
        return _json(sb().stats())

    @app.post("/_sandbox/stats/reset")
    async def reset_stats() -> Response:
        sb().reset_counters()
        return _json({"reset": True})

    @app.get("/_sandbox/faults")
    async def get_faults() -> Response:
        return _json(sb().faults.settings)

    @app.post("/_sandbox/faults")
    async def set_faults(request: Request) -> Response:
        try:
            settings = sb().faults.configure(await _body_json(request))
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(settings)

    @app.post("/_sandbox/expire-tokens")
    async def expire_tokens() -> Response:
        now = time.time()
        live = [t for t in sb().tokens.values() if t["expires"] > now]
        for token in live:
            token["expires"] = now
        return _json({"expired": len(live)})

    @app.get("/_sandbox/config")
    async def get_config() -> Response:
        cfg = sb().config
        return _json({f.name: getattr(cfg, f.name) for f in fields(cfg)})

    @app.post("/_sandbox/config")
    async def set_config(request: Request) -> Response:
        try:
            payload = await _body_json(request)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        unknown = set(payload) - SETTABLE
        if unknown:
            return _json(
                {"error": f"Unknown or fixed settings: {sorted(unknown)}; settable: {sorted(SETTABLE)}"}, 400
            )
        cfg = sb().config
        for name, value in payload.items():
            setattr(cfg, name, value)
        return _json({f.name: getattr(cfg, f.name) for f in fields(cfg)})

    @app.post("/_sandbox/reset")
    async def reset() -> Response:
        """Back to the seeded tenant: tokens, conversations, posts, faults and counters cleared."""
        sandbox = sb()
        sandbox.faults.configure({})
        sandbox.reset_state()
        sandbox.reset_counters()
        return _json({"reset": True, "users": len(sandbox.users), "channels": len(sandbox.channels)})

    @app.get("/_sandbox/posts")
    async def posts() -> Response:
        """Every webhook post, activity and update received, oldest first."""
        return _json({"posts": sb().posts})

    @app.post("/_sandbox/press")
    async def press(request: Request) -> Response:
        """A user presses a button of a posted card; the Bot Framework calls the bot with it."""
        sandbox = sb()
        try:
            order = await _body_json(request)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        found = sandbox.find_activity(str(order.get("activity_id") or ""))
        if found is None:
            return _json({"error": "No bot post has that activity id."}, 404)
        conversation_id, conversation = found
        activity_id = str(order["activity_id"])
        posted = conversation["activities"][activity_id]
        wanted = str(order.get("button") or "").lower()
        action = next(
            (
                a
                for attachment in posted.get("attachments") or []
                for a in (attachment.get("content") or {}).get("actions") or []
                if a.get("type") == "Action.Submit" and str(a.get("title", "")).lower() == wanted
            ),
            None,
        )
        if action is None:
            return _json({"error": f"The card has no {order.get('button')!r} button (any more)."}, 409)
        user = sandbox.user(str(order.get("user") or ""))
        if user is None:
            return _json({"error": "No such user in the tenant."}, 404)
        endpoint = order.get("endpoint") or sandbox.config.bot_endpoint
        if not endpoint:
            return _json({"error": "No bot endpoint: set config bot_endpoint or pass endpoint."}, 400)
        base = str(request.base_url).rstrip("/")
        service_url = order.get("service_url") or base
        data = action.get("data") or {}
        activity: dict[str, Any] = {
            "type": "message",
            "id": str(time.time_ns() // 1_000_000),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "serviceUrl": service_url,
            "channelId": "msteams",
            "from": {"id": user["teams_id"], "name": user["displayName"], "aadObjectId": user["id"]},
            "conversation": {
                "id": conversation_id,
                "conversationType": "personal" if conversation["kind"] == "personal" else "channel",
                "tenantId": sandbox.config.tenant_id,
            },
            "recipient": {"id": f"28:{sandbox.config.bot_app_id}", "name": "bot"},
            "replyToId": activity_id,
            "channelData": {"tenant": {"id": sandbox.config.tenant_id}, "source": {"name": "message"}},
            "value": data,
        }
        if order.get("kind") == "invoke":
            activity.update(
                type="invoke",
                name="adaptiveCard/action",
                value={"action": {"type": "Action.Execute", "title": action.get("title"), "data": data}},
            )
        token = sandbox.bot_token(base, order.get("claims"), order.get("kid"))

        def call() -> requests.Response:
            return requests.post(
                endpoint,
                json=activity,
                headers={"Authorization": f"Bearer {token}"},
                timeout=15,
                verify=order.get("verify", True),
            )

        try:
            answer = await asyncio.to_thread(call)
        except requests.RequestException as exc:
            return _json({"error": f"The bot could not be reached ({type(exc).__name__})."}, 502)
        try:
            body: Any = answer.json()
        except ValueError:
            body = answer.text
        return _json({"status": answer.status_code, "body": body, "activity": activity})

    @app.get(OPENID_PATH)
    async def openid_configuration(request: Request) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json(
            {
                "issuer": BOT_ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": base + KEYS_PATH,
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    @app.get(KEYS_PATH)
    async def signing_keys() -> Response:
        return _json(sb().jwks())

    @app.get("/_sandbox/tenant")
    async def tenant(request: Request) -> Response:
        sandbox = sb()
        base = str(request.base_url).rstrip("/")
        return _json(
            {
                "tenant_id": sandbox.config.tenant_id,
                "users": [{k: v for k, v in u.items()} for u in sandbox.users],
                "channels": [{**c, "webhook_url": sandbox.webhook_url(base, c)} for c in sandbox.channels],
            }
        )

    # -- Workflows webhook ---------------------------------------------------------------------

    @app.api_route(
        "/workflows/{workflow_id}/triggers/manual/paths/invoke",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
    )
    async def workflow(workflow_id: str, request: Request) -> Response:
        sandbox = sb()
        early, _ = await before(request, f"{request.method} workflows", takes_token=False, shape="workflow")
        if early is not None:
            return early
        channel = next((c for c in sandbox.channels if c["workflow_id"] == workflow_id), None)
        if channel is None:
            return finish(
                _workflow_error(404, "WorkflowNotFound", f"The workflow '{workflow_id}' could not be found.")
            )
        sig = dict(parse_qsl(request.url.query)).get("sig") or ""
        if not secrets.compare_digest(sig.encode(), channel["sig"].encode()):
            return finish(
                _workflow_error(
                    401,
                    "DirectApiInvalidAuthorizationSignature",
                    "The provided callback URL signature is not valid for this workflow.",
                )
            )
        if request.method != "POST":
            return finish(
                _workflow_error(
                    405,
                    "TriggerRequestMethodNotValid",
                    f"The HTTP method for this request is not valid: expected 'POST' and actual '{request.method}'.",
                )
            )
        raw = await request.body()
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            return finish(
                _workflow_error(
                    400,
                    "InvalidRequestContent",
                    "The request content must be JSON (Content-Type: application/json).",
                )
            )
        if len(raw) > sandbox.config.max_message_bytes:
            return finish(
                _workflow_error(
                    400,
                    "MessageTooLarge",
                    f"The message is {len(raw)} bytes; Teams takes at most {sandbox.config.max_message_bytes}.",
                )
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return finish(
                _workflow_error(400, "InvalidRequestContent", "The request content is not valid JSON.")
            )
        problem = _card_problem(body)
        if problem is not None:
            return finish(_workflow_error(400, "InvalidAdaptiveCard", problem))
        sandbox.posts.append(
            {
                "via": "webhook",
                "channel": f"{channel['team']} / {channel['name']}",
                "conversation_id": channel["conversation_id"],
                "workflow_id": workflow_id,
                "attachments": body["attachments"],
                "at": time.time(),
            }
        )
        return finish(Response(b"", 202))

    # -- tokens ----------------------------------------------------------------------------------

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        sandbox = sb()
        cfg = sandbox.config
        early, _ = await before(request, f"POST token/{tenant}", takes_token=False, shape="token")
        if early is not None:
            return early
        if tenant not in (BOT_TENANT, cfg.tenant_id):
            sandbox.token_refusals += 1
            return finish(_aad_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found."))
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            sandbox.token_refusals += 1
            return finish(
                _aad_error(
                    400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
                )
            )
        client_id, secret, scope = (
            form.get("client_id", ""),
            form.get("client_secret", ""),
            form.get("scope", ""),
        )
        apps = {
            cfg.bot_app_id: (cfg.bot_app_secret, BOT_SCOPE),
            cfg.graph_client_id: (cfg.graph_client_secret, GRAPH_SCOPE),
        }
        if client_id not in apps:
            sandbox.token_refusals += 1
            return finish(
                _aad_error(
                    400,
                    "unauthorized_client",
                    700016,
                    f"Application with identifier '{client_id}' was not found in the directory.",
                )
            )
        expected_secret, allowed_scope = apps[client_id]
        if not secrets.compare_digest(secret.encode(), expected_secret.encode()):
            sandbox.token_refusals += 1
            return finish(_aad_error(401, "invalid_client", 7000215, "Invalid client secret provided."))
        if not scope:
            sandbox.token_refusals += 1
            return finish(
                _aad_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                )
            )
        if scope != allowed_scope or (tenant == BOT_TENANT and scope != BOT_SCOPE):
            sandbox.token_refusals += 1
            return finish(
                _aad_error(
                    400,
                    "invalid_scope",
                    70011,
                    f"The provided value for the input parameter 'scope' is not valid: {scope}.",
                )
            )
        audience = "bot" if scope == BOT_SCOPE else "graph"
        value = secrets.token_urlsafe(48)
        lifetime = int(cfg.token_lifetime_seconds)
        sandbox.tokens[value] = {
            "audience": audience,
            "client_id": client_id,
            "expires": time.time() + cfg.token_lifetime_seconds,
        }
        sandbox.tokens_issued[audience] = sandbox.tokens_issued.get(audience, 0) + 1
        return finish(
            _json(
                {
                    "token_type": "Bearer",
                    "expires_in": lifetime,
                    "ext_expires_in": lifetime,
                    "access_token": value,
                },
                headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
            )
        )

    # -- Bot Connector -------------------------------------------------------------------------------

    async def connector(request: Request, label: str) -> tuple[Response | None, dict[str, Any] | None]:
        early, fault = await before(request, label, takes_token=True, shape="connector")
        if early is not None:
            return early, None
        token = bearer(request, "bot", expire=fault == "expire_token")
        if token is None:
            return finish(
                _json(
                    {"message": "Authorization has been denied for this request."},
                    401,
                    {"WWW-Authenticate": "Bearer"},
                )
            ), None
        wait = sb().admit(token["client_id"])
        if wait is not None:
            return finish(_throttled(wait, "connector")), None
        return None, token

    def activity_problem(body: dict[str, Any]) -> str | None:
        if body.get("type", "message") != "message":
            return "Only message activities can be sent."
        if not body.get("text") and not body.get("attachments"):
            return "A message needs text or attachments."
        if len(json.dumps(body).encode()) > sb().config.max_message_bytes:
            return "The message is larger than Teams accepts (about 28 KB)."
        return None

    @app.post("/v3/conversations")
    async def open_conversation(request: Request) -> Response:
        early, _ = await connector(request, "POST v3/conversations")
        if early is not None:
            return early
        sandbox = sb()
        try:
            body = await _body_json(request)
        except ValueError:
            return finish(_connector_error(400, "BadSyntax", "The body is not a JSON object."))
        members = body.get("members") or []
        tenant = ((body.get("channelData") or {}).get("tenant") or {}).get("id") or body.get("tenantId")
        if tenant != sandbox.config.tenant_id:
            return finish(
                _connector_error(400, "BadArgument", "channelData.tenant.id must name the bot's tenant.")
            )
        if len(members) != 1 or not isinstance(members[0], dict) or not members[0].get("id"):
            return finish(
                _connector_error(400, "BadArgument", "A 1:1 conversation names exactly one member.")
            )
        user = sandbox.user(str(members[0]["id"]))
        if user is None:
            return finish(_connector_error(404, "NotFound", "The user could not be found in the tenant."))
        if not user["installed"]:
            return finish(
                _connector_error(
                    403,
                    "Forbidden",
                    "The bot is not installed for this user; install the app for them first.",
                )
            )
        for conversation_id, conversation in sandbox.conversations.items():
            if conversation["kind"] == "personal" and conversation["members"][0]["id"] == user["id"]:
                return finish(_json({"id": conversation_id}, 200))
        conversation_id = f"a:1{secrets.token_urlsafe(40)}"
        sandbox.conversations[conversation_id] = {
            "kind": "personal",
            "name": user["displayName"],
            "members": [user],
            "activities": {},
        }
        return finish(_json({"id": conversation_id}, 201))

    @app.post("/v3/conversations/{conversation_id}/activities")
    async def send_activity(conversation_id: str, request: Request) -> Response:
        early, _ = await connector(request, "POST v3/conversations/{id}/activities")
        if early is not None:
            return early
        sandbox = sb()
        conversation_id = unquote(conversation_id)
        conversation = sandbox.conversations.get(conversation_id)
        if conversation is None:
            return finish(_connector_error(404, "ConversationNotFound", "Conversation not found."))
        try:
            body = await _body_json(request)
        except ValueError:
            return finish(_connector_error(400, "BadSyntax", "The body is not a JSON object."))
        problem = activity_problem(body)
        if problem:
            return finish(_connector_error(400, "BadArgument", problem))
        activity_id = str(time.time_ns() // 1_000_000 + len(sandbox.posts))
        conversation["activities"][activity_id] = body
        conversation.setdefault("posted_at", {})[activity_id] = time.time()
        sandbox.posts.append(
            {
                "via": "bot",
                "action": "post",
                "conversation_id": conversation_id,
                "conversation": conversation["name"],
                "activity_id": activity_id,
                "text": body.get("text"),
                "attachments": body.get("attachments") or [],
                "at": time.time(),
            }
        )
        return finish(_json({"id": activity_id}, 201))

    @app.put("/v3/conversations/{conversation_id}/activities/{activity_id}")
    async def update_activity(conversation_id: str, activity_id: str, request: Request) -> Response:
        early, _ = await connector(request, "PUT v3/conversations/{id}/activities/{id}")
        if early is not None:
            return early
        sandbox = sb()
        conversation = sandbox.conversations.get(unquote(conversation_id))
        if conversation is None:
            return finish(_connector_error(404, "ConversationNotFound", "Conversation not found."))
        if activity_id not in conversation["activities"]:
            return finish(_connector_error(404, "ActivityNotFound", "The activity to update was not found."))
        try:
            body = await _body_json(request)
        except ValueError:
            return finish(_connector_error(400, "BadSyntax", "The body is not a JSON object."))
        problem = activity_problem(body)
        if problem:
            return finish(_connector_error(400, "BadArgument", problem))
        conversation["activities"][activity_id] = body
        sandbox.posts.append(
            {
                "via": "bot",
                "action": "update",
                "conversation_id": unquote(conversation_id),
                "conversation": conversation["name"],
                "activity_id": activity_id,
                "text": body.get("text"),
                "attachments": body.get("attachments") or [],
                "at": time.time(),
            }
        )
        return finish(_json({"id": activity_id}, 200))

    @app.get("/v3/conversations/{conversation_id}/members")
    async def members(conversation_id: str, request: Request) -> Response:
        early, _ = await connector(request, "GET v3/conversations/{id}/members")
        if early is not None:
            return early
        conversation = sb().conversations.get(unquote(conversation_id))
        if conversation is None:
            return finish(_connector_error(404, "ConversationNotFound", "Conversation not found."))
        return finish(
            _json(
                [
                    {
                        "id": u["teams_id"],
                        "name": u["displayName"],
                        "aadObjectId": u["id"],
                        "userPrincipalName": u["userPrincipalName"],
                        "email": u["mail"],
                    }
                    for u in conversation["members"]
                ]
            )
        )

    # -- Graph -------------------------------------------------------------------------------------------

    def graph_user(user: dict[str, Any], select: str | None) -> dict[str, Any]:
        full = {k: user[k] for k in ("id", "displayName", "userPrincipalName", "mail")}
        if select:
            wanted = [s.strip() for s in select.split(",") if s.strip()]
            return {k: full[k] for k in wanted if k in full} | {"id": user["id"]}
        return full

    async def graph(request: Request, label: str) -> Response | None:
        early, fault = await before(request, label, takes_token=True, shape="graph")
        if early is not None:
            return early
        if bearer(request, "graph", expire=fault == "expire_token") is None:
            return finish(
                _graph_error(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token is empty, invalid or has expired.",
                    {"WWW-Authenticate": "Bearer"},
                )
            )
        return None

    def chat_messages(request: Request, conversation: dict[str, Any]) -> Response:
        params = dict(parse_qsl(request.url.query))
        try:
            top = max(1, min(50, int(params.get("$top", "20"))))
            skip = max(0, int(params.get("$skiptoken", "0")))
        except ValueError:
            return finish(_graph_error(400, "BadRequest", "Invalid $top or $skiptoken."))
        posted = conversation.get("posted_at", {})
        newest = sorted(conversation["activities"].items(), key=lambda kv: -posted.get(kv[0], 0.0))
        shown = newest[skip : skip + top]
        value = []
        for activity_id, body in shown:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(posted.get(activity_id, 0.0)))
            value.append(
                {
                    "id": activity_id,
                    "messageType": "message",
                    "createdDateTime": f"{stamp}Z",
                    "from": {
                        "application": {
                            "id": sb().config.bot_app_id,
                            "applicationIdentityType": "bot",
                        }
                    },
                    "body": {"contentType": "html", "content": body.get("text") or ""},
                    "attachments": [
                        {
                            "id": str(index),
                            "contentType": a.get("contentType"),
                            "contentUrl": None,
                            "content": json.dumps(a.get("content")),
                        }
                        for index, a in enumerate(body.get("attachments") or [])
                    ],
                }
            )
        reply: dict[str, Any] = {"value": value}
        if skip + top < len(newest):
            base = str(request.url).split("?", 1)[0]
            reply["@odata.nextLink"] = f"{base}?$top={top}&$skiptoken={skip + top}"
        return finish(_json(reply))

    @app.get("/v1.0/chats/{chat_id}/messages")
    async def list_chat_messages(chat_id: str, request: Request) -> Response:
        early = await graph(request, "GET v1.0/chats/{id}/messages")
        if early is not None:
            return early
        chat_id = unquote(chat_id)
        sandbox = sb()
        for conversation in sandbox.conversations.values():
            if conversation["kind"] != "personal":
                continue
            user = conversation["members"][0]
            if chat_id == f"19:{user['id']}_{sandbox.config.bot_app_id}@unq.gbl.spaces":
                return chat_messages(request, conversation)
        return finish(_graph_error(404, "NotFound", "Chat not found."))

    @app.get("/v1.0/teams/{team_id}/channels/{channel_id}/messages")
    async def list_channel_messages(team_id: str, channel_id: str, request: Request) -> Response:
        early = await graph(request, "GET v1.0/teams/{id}/channels/{id}/messages")
        if early is not None:
            return early
        sandbox = sb()
        channel_id = unquote(channel_id)
        for channel in sandbox.channels:
            if channel["team_id"] == unquote(team_id) and channel["conversation_id"] == channel_id:
                return chat_messages(request, sandbox.conversations[channel_id])
        return finish(_graph_error(404, "NotFound", "Team or channel not found."))

    @app.get("/v1.0/users/{key}")
    async def get_user(key: str, request: Request) -> Response:
        early = await graph(request, "GET v1.0/users")
        if early is not None:
            return early
        user = sb().user(unquote(key))
        if user is None:
            return finish(
                _graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{unquote(key)}' does not exist or one of its queried reference-property objects are not present.",
                )
            )
        params = dict(parse_qsl(request.url.query))
        return finish(
            _json(
                {
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                    **graph_user(user, params.get("$select")),
                }
            )
        )

    @app.get("/v1.0/users")
    async def list_users(request: Request) -> Response:
        early = await graph(request, "GET v1.0/users")
        if early is not None:
            return early
        params = dict(parse_qsl(request.url.query))
        found = list(sb().users)
        expression = params.get("$filter")
        if expression:
            name, op, value = [*expression.split(" ", 2), "", ""][:3]
            value = value.strip()
            if (
                op != "eq"
                or name not in ("mail", "userPrincipalName")
                or len(value) < 2
                or value[0] != "'"
                or value[-1] != "'"
            ):
                return finish(_graph_error(400, "Request_UnsupportedQuery", "Unsupported query."))
            wanted = value[1:-1].replace("''", "'").lower()
            found = [u for u in found if (u[name] or "").lower() == wanted]
        return finish(
            _json(
                {
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
                    "value": [graph_user(u, params.get("$select")) for u in found],
                }
            )
        )

    return app


__all__ = ["TeamsSandbox", "TeamsSandboxConfig", "create_app"]
