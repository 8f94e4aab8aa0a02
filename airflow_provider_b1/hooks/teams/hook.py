"""Microsoft Teams hooks: cards to a channel through a Workflows webhook, or through a bot.

Teams takes ordinary messages from an app in two ways only (Graph's app-only message POST is for
imports): a **Workflows webhook** (the "post to a channel when a webhook request is received"
flow; its URL, signed by ``sig=``, is the secret) and **Bot Framework proactive messages** over
the Bot Connector REST API (a channel's or a user's conversation; a post returns an activity id
that lets a later message *update* the same card). Graph looks users up.

:class:`TeamsWebhookHook` (``b1_teams_webhook``) and :class:`TeamsBotHook` (``b1_teams_bot``)
share :class:`TeamsHook`: settings, the HTTP client, retries and the card envelope, so a caller
posts with ``hook.post_card(card, to=...)`` whichever connection it was given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import requests
import tenacity
from airflow.sdk import BaseHook

from airflow_provider_b1.connections import TEAMS_BOT, TEAMS_WEBHOOK, form_widgets, ui_field_behaviour
from airflow_provider_b1.exceptions import B1ProviderError, RetryableError
from airflow_provider_b1.hooks.teams.auth import BOT_SCOPE, GRAPH_SCOPE, TeamsTokenAuth
from airflow_provider_b1.hooks.teams.errors import (
    TeamsBadRequestError,
    TeamsError,
    TeamsNotFoundError,
    TeamsRateLimitedError,
    TeamsUnreachableError,
    error_from_response,
    transport_error,
)
from airflow_provider_b1.utils.params import ParamError, blank_to_none, parse_bool
from airflow_provider_b1.utils.ratelimit import RateLimitedAdapter, shared_limiter
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.tls import TlsAdapter

log = logging.getLogger(__name__)

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_MESSAGE_BYTES = 28_000
"""Teams refuses messages over about 28 KB; larger ones are refused here, before sending."""
LOGIN_URL = "https://login.microsoftonline.com"
GRAPH_URL = "https://graph.microsoft.com"
SERVICE_URL = "https://smba.trafficmanager.net/teams"
BOT_TENANT = "botframework.com"


_SIG = re.compile(r"(?<=[?&]sig=)[^&\s\"]+")


class _RedactSignatures(logging.Filter):
    """Blanks ``sig=`` query values in urllib3's request lines, which quote the whole request path:
    a Workflows URL's signature is its secret, and logs outside a task are not masked by Airflow."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and "sig=" in a for a in record.args):
            record.args = tuple(_SIG.sub("***", a) if isinstance(a, str) else a for a in record.args)
        return True


def _redact_signatures_in_urllib3_logs() -> None:
    logger = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(f, _RedactSignatures) for f in logger.filters):
        logger.addFilter(_RedactSignatures())


def message_of(card: Mapping[str, Any] | str, *, cards_only: bool = False) -> dict[str, Any]:
    """The message activity carrying ``card``.

    :param card: an Adaptive Card (``{"type": "AdaptiveCard", ...}``), a whole message
        (``{"type": "message", "attachments": [...]}``, passed on as it is) or, for a bot, text.
    :param cards_only: refuse text (a Workflows webhook posts Adaptive Cards only).
    :raises TeamsBadRequestError: for anything else, or a message over about 28 KB.
    """
    if isinstance(card, str):
        if cards_only:
            raise TeamsBadRequestError(
                "A Workflows webhook posts Adaptive Cards only, not text; send a card."
            )
        message: dict[str, Any] = {"type": "message", "text": card}
    elif isinstance(card, Mapping) and card.get("type") == "AdaptiveCard":
        message = {
            "type": "message",
            "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": dict(card)}],
        }
    elif isinstance(card, Mapping) and card.get("type") == "message":
        message = dict(card)
    else:
        raise TeamsBadRequestError(
            'Teams takes an Adaptive Card ({"type": "AdaptiveCard", ...}) or a message '
            '({"type": "message", "attachments": [...]}); this is neither.'
        )
    size = len(json.dumps(message).encode())
    if size > MAX_MESSAGE_BYTES:
        raise TeamsBadRequestError(
            f"The message is {size} bytes; Teams takes at most about {MAX_MESSAGE_BYTES}: shorten the card."
        )
    return message


class TeamsHook(BaseHook):
    """What both Teams connections share: TLS, retries, the card envelope and ``post_card``.

    :param teams_conn_id: Airflow connection id.
    :param retry_policy: retries of what may succeed later (429 with ``Retry-After``, 5xx, resets).
    :param timeout: requests timeout ``(connect, read)`` in seconds.
    """

    conn_name_attr = "teams_conn_id"
    hook_name = "Microsoft Teams"
    declaration: ClassVar[dict[str, Any]]

    def __init__(
        self,
        teams_conn_id: str | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10, 60),
    ) -> None:
        super().__init__()
        self.teams_conn_id = teams_conn_id or self.default_conn_name
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeout = timeout

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the connection form (Airflow 3.1; 3.2+ reads provider info)."""
        return form_widgets(cls.declaration)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled / hidden standard fields of the connection form."""
        return ui_field_behaviour(cls.declaration)

    def _extra(self) -> tuple[Any, dict[str, Any]]:
        conn = self.get_connection(self.teams_conn_id)
        return conn, {k: blank_to_none(v) for k, v in (conn.extra_dejson or {}).items()}

    @staticmethod
    def _root(url: Any, what: str) -> str:
        text = str(url).strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ParamError(f"{what} must be an http(s) URL, not {url!r}.")
        return text

    def _session(self, verify: bool, ca_bundle: str | None) -> requests.Session:
        session = requests.Session()
        adapter = TlsAdapter(verify=verify, ca_bundle=ca_bundle, pool_maxsize=8)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-b1"})
        return session

    def _retrying(self, *, repeatable: bool) -> tenacity.Retrying:
        """Retries under the policy: a 429 always (after its ``Retry-After``), and what may have
        reached Teams only when the call can be repeated (a post is not: it would post twice)."""

        def retry(exc: BaseException) -> bool:
            if not isinstance(exc, RetryableError) or getattr(exc, "exhausted", False):
                return False
            if repeatable or isinstance(exc, TeamsRateLimitedError):
                return True
            return isinstance(exc, TeamsUnreachableError) and not exc.sent

        return self.retry_policy.retrying().copy(retry=tenacity.retry_if_exception(retry))

    def _call(
        self,
        session: requests.Session,
        method: str,
        url: str,
        *,
        what: str,
        service: str,
        where: str,
        repeatable: bool,
        **kwargs: Any,
    ) -> requests.Response:
        for attempt in self._retrying(repeatable=repeatable):
            with attempt:
                try:
                    response = session.request(method, url, timeout=self.timeout, **kwargs)
                except requests.RequestException as exc:
                    raise transport_error(exc, where, what) from None
                if response.status_code >= 400:
                    raise error_from_response(response, what, service)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    def post_card(self, card: Mapping[str, Any] | str, *, to: str | None = None) -> str | None:
        """Post an Adaptive Card (see :func:`message_of`); the subclass says where ``to`` leads."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the HTTP client(s); shared tokens stay cached for other tasks."""
        for name in ("client",):
            client = self.__dict__.get(name)
            if client is not None:
                client.close()


# -- Workflows webhook ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _WebhookSettings:
    url: str = field(repr=False)
    origin: str
    label: str
    verify: bool
    ca_bundle: str | None


class TeamsWebhookHook(TeamsHook):
    """Post Adaptive Cards to one channel through its Workflows webhook.

    Connection: ``password`` = the webhook URL (a secret: whoever has it can post; masked in
    logs), ``host`` = an optional label of the channel, named in logs and messages instead of the
    URL; extras ``verify_tls`` / ``ca_bundle``.
    """

    default_conn_name = "b1_teams_webhook_default"
    conn_type = "b1_teams_webhook"
    hook_name = "Microsoft Teams (Workflows webhook)"
    declaration = TEAMS_WEBHOOK

    @cached_property
    def settings(self) -> _WebhookSettings:
        """The connection, read once; the URL is checked for the shape of a Workflows trigger URL.

        :raises ParamError: naming what is missing or malformed (never quoting the URL).
        """
        conn, extra = self._extra()
        name = self.teams_conn_id
        url = (conn.password or "").strip()
        mask(url)
        if not url:
            raise ParamError(f"Connection {name!r} needs the Workflows webhook URL in its password.")
        parts = urlsplit(url)
        mask(parse_qs(parts.query).get("sig", [""])[0])
        problems = []
        if parts.scheme != "https" or not parts.hostname:
            problems.append("it must be an https URL")
        if "/workflows/" not in parts.path or not parts.path.endswith("/triggers/manual/paths/invoke"):
            problems.append("its path must be /workflows/<id>/triggers/manual/paths/invoke")
        if not parse_qs(parts.query).get("sig"):
            problems.append("it lacks the sig= signature")
        if problems:
            raise ParamError(
                f"Connection {name!r}: the webhook URL is not a Workflows trigger URL ({'; '.join(problems)}); "
                "copy it from the workflow's 'When a Teams webhook request is received' trigger."
            )
        origin = f"{parts.scheme}://{parts.netloc}"
        label = str(blank_to_none(conn.host) or f"the webhook at {parts.hostname}")
        return _WebhookSettings(
            url=url,
            origin=origin,
            label=label,
            verify=parse_bool(extra.get("verify_tls"), default=True, name="verify_tls"),
            ca_bundle=extra.get("ca_bundle"),
        )

    @cached_property
    def client(self) -> requests.Session:
        """The ``requests.Session`` of this hook (TLS settings)."""
        _redact_signatures_in_urllib3_logs()
        return self._session(self.settings.verify, self.settings.ca_bundle)

    def post_card(self, card: Mapping[str, Any] | str, *, to: str | None = None) -> None:
        """Post an Adaptive Card to the webhook's channel (202 is delivered; any 2xx counts).

        A 429 is retried after its ``Retry-After``; other failures are not, as the flow may have
        run already (Teams would show the card twice).

        :param card: an Adaptive Card, or a whole message with card attachments.
        :param to: must be ``None``: the webhook decides the channel.
        :raises TeamsError: the typed error of a refused or failed post.
        """
        if to is not None:
            raise ValueError(
                "A Workflows webhook posts to its own channel; use a bot connection to choose `to`."
            )
        settings = self.settings
        message = message_of(card, cards_only=True)
        what = f"posting a card to {settings.label}"
        self._call(
            self.client,
            "POST",
            settings.url,
            json=message,
            what=what,
            service="the Workflows webhook",
            where=settings.origin,
            repeatable=False,
        )
        log.info("Posted a card to %s.", settings.label)

    def test_connection(self) -> tuple[bool, str]:
        """Check the URL's shape and that its host answers over TLS, without posting.

        Only the host's root is requested (any HTTP answer proves reachability and the
        certificate): a request to the trigger URL itself could run the workflow.
        """
        try:
            settings = self.settings
        except ValueError as exc:
            return False, str(exc)
        try:
            self.client.head(settings.origin + "/", timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            return False, str(transport_error(exc, settings.origin, "the connection test"))
        return True, (
            f"The Workflows webhook URL for {settings.label} is well formed and {settings.origin} answers over "
            "TLS; no card was posted (a post is the only full test)."
        )


# -- Bot -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BotSettings:
    tenant_id: str
    app_id: str
    app_secret: str = field(repr=False)
    single_tenant: bool
    service_url: str
    graph_client_id: str
    graph_client_secret: str = field(repr=False)
    login_url: str
    graph_url: str
    test_conversation_id: str | None
    verify: bool
    ca_bundle: str | None
    redis_url: str | None = field(default=None, repr=False)

    @property
    def bot_token_url(self) -> str:
        tenant = self.tenant_id if self.single_tenant else BOT_TENANT
        return f"{self.login_url}/{tenant}/oauth2/v2.0/token"

    @property
    def graph_token_url(self) -> str:
        return f"{self.login_url}/{self.tenant_id}/oauth2/v2.0/token"


class TeamsBotHook(TeamsHook):
    """Proactive messages through a Teams bot: 1:1 chats with users, channel posts, card updates.

    Connection: ``login`` = the bot's app id, ``password`` = its secret; extras ``tenant_id``,
    ``single_tenant``, ``service_url``, ``graph_client_id`` / ``graph_client_secret`` (default:
    the bot's), ``test_conversation_id``, ``login_url`` / ``graph_url`` (a sandbox or a
    sovereign cloud), ``verify_tls`` / ``ca_bundle``, ``redis_url`` (count the Bot Connector
    calls of every worker in this Redis, see ``requests_per_second``).

    Tokens (Bot Framework and Graph) are obtained on first use, shared by a worker's task
    processes and renewed once on a 401 (:class:`~airflow_provider_b1.hooks.teams.auth.TeamsTokenAuth`);
    a 429 is waited out as ``Retry-After`` says, within ``retry_policy``; users looked up in
    Graph are remembered for the hook's life.

    :param token_cache_dir: directory of the shared token cache (default: env
        ``B1_TEAMS_CACHE_DIR``, else ``$AIRFLOW_HOME/teams_tokens``).
    :param requests_per_second: when given, Bot Connector calls wait for room under this many a
        second, counted across the worker's processes (:mod:`airflow_provider_b1.utils.ratelimit`;
        Teams allows a bot about 30 a second and answers 429 beyond).
    :param redis_url: count those calls in this Redis, shared by every worker (default: the
        connection's ``redis_url``; neither: each worker counts its own).
    """

    default_conn_name = "b1_teams_bot_default"
    conn_type = "b1_teams_bot"
    hook_name = "Microsoft Teams (bot)"
    declaration = TEAMS_BOT

    def __init__(
        self,
        teams_conn_id: str | None = None,
        *,
        token_cache_dir: str | Path | None = None,
        requests_per_second: int | None = None,
        redis_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(teams_conn_id, **kwargs)
        self.token_cache_dir = token_cache_dir
        self.requests_per_second = requests_per_second
        self.redis_url = redis_url
        self._users: dict[str, str] = {}
        self._users_lock = threading.Lock()

    @cached_property
    def settings(self) -> _BotSettings:
        """The connection, read once and normalised (blank fields are ``None``).

        :raises ParamError: naming the missing or unreadable field.
        """
        conn, extra = self._extra()
        name = self.teams_conn_id
        app_id = blank_to_none(conn.login)
        app_secret = conn.password or ""
        graph_secret = extra.get("graph_client_secret") or app_secret
        for secret in (app_secret, graph_secret):
            mask(secret)
        redis_url = blank_to_none(extra.get("redis_url"))
        if redis_url:
            mask(urlsplit(str(redis_url)).password)
        tenant = extra.get("tenant_id")
        missing = [
            label
            for label, value in (
                ("the bot's app id (login)", app_id),
                ("the bot's app secret (password)", app_secret),
                ("tenant_id", tenant),
            )
            if not value
        ]
        if missing:
            raise ParamError(f"Connection {name!r} needs {', '.join(missing)}.")
        return _BotSettings(
            tenant_id=str(tenant).strip(),
            app_id=str(app_id).strip(),
            app_secret=app_secret,
            single_tenant=parse_bool(extra.get("single_tenant"), default=False, name="single_tenant"),
            service_url=self._root(extra.get("service_url") or SERVICE_URL, "service_url"),
            graph_client_id=str(extra.get("graph_client_id") or app_id).strip(),
            graph_client_secret=graph_secret,
            login_url=self._root(extra.get("login_url") or LOGIN_URL, "login_url"),
            graph_url=self._root(extra.get("graph_url") or GRAPH_URL, "graph_url"),
            test_conversation_id=extra.get("test_conversation_id"),
            verify=parse_bool(extra.get("verify_tls"), default=True, name="verify_tls"),
            ca_bundle=extra.get("ca_bundle"),
            redis_url=str(redis_url).strip() if redis_url else None,
        )

    def _token_session(
        self, token_url: str, client_id: str, secret: str, scope: str, who: str
    ) -> requests.Session:
        """A session with the connection's TLS settings and a token for ``scope``."""
        s = self.settings
        session = self._session(s.verify, s.ca_bundle)
        session.auth = TeamsTokenAuth(
            session,
            token_url,
            client_id,
            secret,
            scope,
            who=who,
            timeout=self.timeout,
            retry_policy=self.retry_policy,
            cache_dir=self.token_cache_dir,
        )
        return session

    @cached_property
    def client(self) -> requests.Session:
        """The Bot Connector session: TLS, the Bot Framework token and, with ``requests_per_second``,
        the shared rate limit on Bot Connector calls."""
        s = self.settings
        session = self._token_session(
            s.bot_token_url, s.app_id, s.app_secret, BOT_SCOPE, "the bot's app id and secret"
        )
        if self.requests_per_second:
            name = "teams-bot-" + hashlib.sha256(f"{s.service_url}|{s.app_id}".encode()).hexdigest()[:16]
            redis_url = self.redis_url or s.redis_url
            limiter = shared_limiter(name, int(self.requests_per_second), 1.0, redis_url=redis_url)
            session.mount(
                f"{s.service_url}/v3/",
                RateLimitedAdapter(limiter, verify=s.verify, ca_bundle=s.ca_bundle, pool_maxsize=8),
            )
        return session

    @cached_property
    def graph_client(self) -> requests.Session:
        """The Graph session: TLS and the Graph token."""
        s = self.settings
        return self._token_session(
            s.graph_token_url,
            s.graph_client_id,
            s.graph_client_secret,
            GRAPH_SCOPE,
            "the Graph client id and secret",
        )

    @property
    def auth(self) -> TeamsTokenAuth:
        """The Bot Framework token (obtained on first use, shared with other processes)."""
        auth = self.client.auth
        assert isinstance(auth, TeamsTokenAuth)
        return auth

    @property
    def graph_auth(self) -> TeamsTokenAuth:
        """The Graph token."""
        auth = self.graph_client.auth
        assert isinstance(auth, TeamsTokenAuth)
        return auth

    def close(self) -> None:
        super().close()
        client = self.__dict__.get("graph_client")
        if client is not None:
            client.close()

    def _token(self, auth: TeamsTokenAuth) -> str:
        for attempt in self._retrying(repeatable=True):
            with attempt:
                return auth.token()
        raise AssertionError("unreachable")  # pragma: no cover

    def _connector(self, method: str, path: str, *, what: str, repeatable: bool, **kwargs: Any) -> Any:
        url = f"{self.settings.service_url}/v3/{path}"
        response = self._call(
            self.client,
            method,
            url,
            what=what,
            service="the Bot Connector",
            where=self.settings.service_url,
            repeatable=repeatable,
            **kwargs,
        )
        return response.json() if response.content else {}

    def _graph(self, path: str, *, what: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self._graph_url(f"{self.settings.graph_url}/v1.0/{path}", what=what, params=params)

    def _graph_url(self, url: str, *, what: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """A Graph GET of a whole URL (a path's, or a listing's ``@odata.nextLink``)."""
        response = self._call(
            self.graph_client,
            "GET",
            url,
            params=params,
            what=what,
            service="Graph",
            where=self.settings.graph_url,
            repeatable=True,
        )
        return response.json()

    # -- users and conversations -------------------------------------------------------------------

    def resolve_user(self, user: str) -> str:
        """The Entra object id of a user named by UPN, email address or object id (remembered).

        The UPN (or object id) is asked first (``GET /users/{upn}``); an address that is no UPN is
        then looked up by ``mail``.

        :param user: ``someone@company.com`` or an object id.
        :raises TeamsNotFoundError: when no user has that name.
        """
        key = user.strip().lower()
        with self._users_lock:
            if key in self._users:
                return self._users[key]
        what = f"looking up user {user.strip()}"
        try:
            found = self._graph(f"users/{quote(user.strip(), safe='@')}", what=what, params={"$select": "id"})
        except TeamsNotFoundError:
            if "@" not in key:
                raise
            escaped = user.strip().replace("'", "''")
            listed = self._graph(
                "users", what=what, params={"$filter": f"mail eq '{escaped}'", "$select": "id"}
            )
            matches = listed.get("value") or []
            if len(matches) != 1:
                raise TeamsNotFoundError(
                    f"Graph knows no user {user.strip()!r} by user principal name or mail ({len(matches)} found); "
                    "check the address.",
                    status=404,
                ) from None
            found = matches[0]
        object_id = str(found["id"])
        with self._users_lock:
            self._users[key] = object_id
        return object_id

    def open_conversation(self, user: str) -> str:
        """The id of the bot's 1:1 chat with a user (opened, or found when it exists).

        :param user: UPN, email address or object id (looked up in Graph unless a GUID or a Teams
            user id ``29:...``).
        :raises TeamsForbiddenError: when the user has not installed the bot.
        """
        member = user.strip()
        if not member.startswith("29:") and not _is_guid(member):
            member = self.resolve_user(member)
        s = self.settings
        body = {
            "bot": {"id": f"28:{s.app_id}"},
            "members": [{"id": member}],
            "channelData": {"tenant": {"id": s.tenant_id}},
            "isGroup": False,
            "tenantId": s.tenant_id,
        }
        # Opening a 1:1 chat that exists returns the same one: safe to repeat.
        reply = self._connector(
            "POST", "conversations", json=body, what=f"opening a chat with {user.strip()}", repeatable=True
        )
        return str(reply["id"])

    def send(self, conversation_id: str, card: Mapping[str, Any] | str) -> str:
        """Post a card (or text) into a conversation; returns the activity id (keep it to update the card).

        Only a 429 (after its ``Retry-After``) and a request that never left are retried: any
        other failure may have posted already.

        :param conversation_id: a channel's ``19:...`` or a chat's ``a:...`` id.
        :param card: an Adaptive Card, a whole message, or text.
        """
        message = message_of(card)
        reply = self._connector(
            "POST",
            f"conversations/{quote(conversation_id, safe=':@.;=')}/activities",
            json=message,
            what=f"posting to conversation {_short(conversation_id)}",
            repeatable=False,
        )
        return str(reply["id"])

    def update(self, conversation_id: str, activity_id: str, card: Mapping[str, Any] | str) -> str:
        """Replace a posted message with a new card (or text), keeping its place; returns the activity id.

        :param conversation_id: the conversation it was posted into.
        :param activity_id: what :meth:`send` returned.
        :param card: the new card.
        """
        message = {**message_of(card), "id": activity_id}
        reply = self._connector(
            "PUT",
            f"conversations/{quote(conversation_id, safe=':@.;=')}/activities/{quote(activity_id, safe='')}",
            json=message,
            what=f"updating activity {activity_id} in conversation {_short(conversation_id)}",
            repeatable=True,
        )
        return str(reply.get("id") or activity_id)

    def post_card(self, card: Mapping[str, Any] | str, *, to: str | None = None) -> str:
        """Post a card to a conversation or a user; returns the activity id.

        :param card: an Adaptive Card, a whole message, or text.
        :param to: a conversation id (``19:...``, ``a:...``) or a user (UPN, email, object id), whose
            1:1 chat is opened first.
        """
        if not to:
            raise ValueError("A bot needs `to`: a conversation id or a user's UPN, email or object id.")
        target = to.strip()
        conversation = target if target.startswith(("19:", "a:")) else self.open_conversation(target)
        return self.send(conversation, card)

    def find_marked(
        self, conversation_id: str, marker: str, *, team_id: str | None = None, pages: int = 4
    ) -> str | None:
        """The id of the bot's message in a conversation whose card carries ``marker`` (the ``id`` of
        one of its elements), among the conversation's most recent messages; ``None`` when none does.

        The Bot Connector cannot list a conversation's messages; Graph can, with application
        permissions: ``GET /chats/{chat}/messages`` (``Chat.Read.All``) for the bot's 1:1 chat with a
        user, whose chat id is ``19:{user object id}_{bot app id}@unq.gbl.spaces`` (*unconfirmed*),
        and ``GET /teams/{team}/channels/{channel}/messages`` (``ChannelMessage.Read.All``) for a
        channel, which needs its team's id. A channel message posted by a bot is the root of a new
        thread, and its id is the activity id the post returned.

        :param conversation_id: a chat's ``a:...`` or a channel's ``19:...`` id.
        :param marker: what the card carries.
        :param team_id: the channel's team (Graph group id); required for a channel.
        :param pages: at most this many pages of 50 messages are read, newest first.
        :raises TeamsNotFoundError: when the conversation cannot be found or read that way.
        """
        if conversation_id.startswith("19:") and "@thread" in conversation_id:
            if not team_id:
                raise TeamsNotFoundError(
                    f"Conversation {_short(conversation_id)} is a channel: its messages can be read only "
                    "through its team's id (give the destination a team)."
                )
            path = f"teams/{quote(team_id, safe='')}/channels/{quote(conversation_id, safe=':@.')}/messages"
        else:
            members = self._connector(
                "GET",
                f"conversations/{quote(conversation_id, safe=':@.;=')}/members",
                what=f"reading the members of conversation {_short(conversation_id)}",
                repeatable=True,
            )
            user = next((m.get("aadObjectId") for m in members if m.get("aadObjectId")), None)
            if not user:
                raise TeamsNotFoundError(
                    f"Conversation {_short(conversation_id)} names no user to find its chat by."
                )
            chat = f"19:{user}_{self.settings.app_id}@unq.gbl.spaces"
            path = f"chats/{quote(chat, safe=':@.')}/messages"
        what = f"reading recent messages of conversation {_short(conversation_id)}"
        params: dict[str, str] | None = {"$top": "50"}
        url = f"{self.settings.graph_url}/v1.0/{path}"
        for _ in range(pages):
            listing = self._graph_url(url, what=what, params=params)
            for message in listing.get("value") or []:
                for attachment in message.get("attachments") or []:
                    content = attachment.get("content")
                    if isinstance(content, str) and f'"{marker}"' in content:
                        return str(message["id"])
            url, params = listing.get("@odata.nextLink"), None
            if not url:
                break
        return None

    # -- connection test ---------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Obtain the bot's token (and Graph's when its credentials differ) and, when the connection
        names a ``test_conversation_id``, read that conversation's members; nothing is posted."""
        try:
            s = self.settings
        except ValueError as exc:
            return False, str(exc)
        done = []
        try:
            self._token(self.auth)
            done.append(f"the bot {s.app_id} obtained a Bot Framework token")
            self._token(self.graph_auth)
            done.append("a Graph token")
            if s.test_conversation_id:
                members = self._connector(
                    "GET",
                    f"conversations/{quote(s.test_conversation_id, safe=':@.;=')}/members",
                    what="reading the test conversation's members",
                    repeatable=True,
                )
                done.append(f"it reaches the test conversation ({len(members)} members)")
        except B1ProviderError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"Unexpected {type(exc).__name__} while testing the Teams bot connection."
        if not s.test_conversation_id:
            done.append("no conversation was read (set test_conversation_id to check one)")
        return True, f"Teams bot connection for tenant {s.tenant_id}: " + "; ".join(done) + "."


def _is_guid(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and all(
        c in "0123456789abcdefABCDEF" for c in text.replace("-", "")
    )


def _short(conversation_id: str) -> str:
    return conversation_id if len(conversation_id) <= 24 else conversation_id[:20] + "..."


__all__ = ["TeamsBotHook", "TeamsError", "TeamsHook", "TeamsWebhookHook", "message_of"]
