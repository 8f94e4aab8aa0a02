"""Microsoft identity platform tokens for the Bot Framework and Graph, in one place.

A bot authenticates to the Bot Connector with a client-credentials token from
``{login}/botframework.com/oauth2/v2.0/token`` (a multi-tenant bot) or
``{login}/{tenant}/oauth2/v2.0/token`` (a single-tenant bot), scope
``https://api.botframework.com/.default``; Graph takes a token from the tenant's endpoint with
scope ``https://graph.microsoft.com/.default``. Tokens live 60 to 90 minutes.

:class:`TeamsTokenAuth` is a :class:`~airflow_provider_b1.utils.auth.ClientCredentialsAuth`:
obtained on first use, shared by a worker's task processes through an encrypted cache file
(one per token endpoint, client id and scope), one token request at a time, renewed shortly
before expiry and once after a 401 (the refused token is never taken back from the cache).
The only thing the identity platform adds is the ``scope`` form field.

Secrets: the client secrets and every token are registered with Airflow's secret masker as soon
as they are known; no message or ``repr`` carries any of them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import requests

from airflow_provider_b1.hooks.teams.errors import (
    TeamsAuthError,
    TeamsError,
    token_error_from_response,
    transport_error,
)
from airflow_provider_b1.utils.auth import (
    BearerToken,
    ClientCredentialsAuth,
    SharedTokenCache,
    worker_cache_dir,
)
from airflow_provider_b1.utils.secrets import mask

log = logging.getLogger(__name__)

BOT_SCOPE = "https://api.botframework.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
MAX_MARGIN = 120.0
"""Renew at most this many seconds before a token's end (a tenth of its life when that is less)."""


def default_cache_dir() -> Path:
    """``B1_TEAMS_CACHE_DIR`` when set, else ``$AIRFLOW_HOME/teams_tokens``."""
    return worker_cache_dir("B1_TEAMS_CACHE_DIR", "teams_tokens")


class AccessToken(BearerToken):
    """One Bot Framework or Graph access token, as cached (renewed a tenth of its life, at most
    120 s, before its end)."""

    max_margin = MAX_MARGIN


class TokenCache(SharedTokenCache[AccessToken]):
    """The encrypted, cross-process token file of one (token endpoint and scope, client id)."""

    suffix = ".token"
    what = "Teams token cache"
    logger = log
    token_type = AccessToken


class TeamsTokenAuth(ClientCredentialsAuth[AccessToken]):
    """A Bot Framework or Graph token as a ``requests`` auth (``Authorization: Bearer``).

    :param http: the ``requests.Session`` to ask for tokens with (its TLS settings apply).
    :param token_url: ``{login}/{tenant or botframework.com}/oauth2/v2.0/token``.
    :param client_id: the app id.
    :param client_secret: its secret.
    :param scope: :data:`BOT_SCOPE` or :data:`GRAPH_SCOPE`.
    :param who: the credentials as messages name them (``the bot's app id and secret``).
    :param options: ``timeout``, ``retry_policy``, ``cache_dir``, ``clock``, as
        :class:`~airflow_provider_b1.utils.auth.ClientCredentialsAuth` takes them.
    """

    service = "Microsoft Teams"
    error = TeamsError
    logger = log
    cache_type = TokenCache
    default_cache_dir = staticmethod(default_cache_dir)

    def __init__(
        self,
        http: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str,
        *,
        who: str = "the app id and secret",
        **options: Any,
    ) -> None:
        super().__init__(http, token_url, client_id, client_secret, **options)
        self.scope = scope
        self.who = who
        # One file per scope as well: a single-tenant bot may read Graph with its own app id.
        cache_dir = options.get("cache_dir")
        self.cache = TokenCache(
            Path(cache_dir) if cache_dir else default_cache_dir(),
            f"{token_url} {scope}",
            client_id,
            client_secret,
        )

    def token_form(self) -> dict[str, str]:
        return {"scope": self.scope}

    def __repr__(self) -> str:
        return f"TeamsTokenAuth(token_url={self.token_url!r}, client_id={self.client_id!r}, scope={self.scope!r})"

    def is_expired(self, credential: AccessToken) -> bool:
        return not credential.is_fresh(self._clock())

    def transport_error(self, exc: requests.RequestException) -> TeamsError:
        return transport_error(exc, self.token_url, "the token request")

    def token_error(self, response: requests.Response) -> TeamsError:
        return token_error_from_response(response, self.token_url, self.who)

    def read_token(self, response: requests.Response, started: float) -> AccessToken:
        try:
            body = response.json()
            value = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 3599)
        except (ValueError, KeyError, TypeError):
            raise TeamsAuthError(
                f"The token endpoint {self.token_url} answered without an access token; check the connection's "
                "login URL.",
                status=response.status_code,
            ) from None
        mask(value)
        log.info("Obtained a token for %s (app %s, valid %g s).", self.scope, self.client_id, expires_in)
        return AccessToken(value=value, obtained_at=started, expires_at=started + expires_in)

    def token(self) -> str:
        """A token valid for one more call (asked for when needed). A secret: never log it."""
        return self.current().value
