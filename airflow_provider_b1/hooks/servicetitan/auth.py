"""How ServiceTitan access tokens work, in one place.

ServiceTitan hands out a token per ``POST /connect/token`` (OAuth client credentials) that lives
``expires_in`` seconds (900), and throttles the token endpoint itself. So one token serves every
task process of a worker for as long as it lives:

* **Obtained on first use**, never before a call needs it.
* **Shared across processes.** The token is cached in a file named after
  ``sha256(token URL | client id)`` in :func:`default_cache_dir`, encrypted with Fernet under a
  key derived (scrypt) from the client secret: only a holder of the secret can read it. Mode
  0600, directory 0700 (see :mod:`airflow_provider_b1.utils.credential_cache`).
* **One token request at a time.** Requests happen under a cross-process file lock; whoever
  gets it re-reads the cache first and takes a token another process has just obtained
  (skip-if-refreshed), so twenty tasks starting together make one request.
* **Renewed shortly before expiry** (a tenth of its life, at most 60 s), and **once on 401**:
  :class:`ServiceTitanTokenAuth` is a
  :class:`~airflow_provider_b1.utils.auth.ClientCredentialsAuth` (the token request, cache and
  lock shared with Salesforce's, and a :class:`~airflow_provider_b1.utils.auth.RenewingAuth`),
  which renews the refused token (never taking the refused one back from the cache) and sends
  the call once more.
* **The app key on every call.** ``ST-App-Key`` goes on each request this auth signs, re-sends
  included.

Secrets: the client secret, the app key and every token are registered with Airflow's secret
masker as soon as they are known; the token request's body is never logged, and no message or
``repr`` carries any of them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import requests

from airflow_provider_b1.hooks.servicetitan.errors import (
    ServiceTitanAuthError,
    ServiceTitanError,
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

MAX_MARGIN = 60.0
"""Renew at most this many seconds before a token's end (a tenth of its life when that is less)."""


def default_cache_dir() -> Path:
    """Directory of the shared token cache.

    ``B1_SERVICETITAN_CACHE_DIR`` when set, else ``$AIRFLOW_HOME/servicetitan_tokens``
    (``~/airflow`` when ``AIRFLOW_HOME`` is unset): every task process of a worker sees it.
    """
    return worker_cache_dir("B1_SERVICETITAN_CACHE_DIR", "servicetitan_tokens")


class AccessToken(BearerToken):
    """One ServiceTitan access token, as cached (renewed a tenth of its life, at most
    60 s, before its end)."""

    max_margin = MAX_MARGIN


class TokenCache(SharedTokenCache[AccessToken]):
    """The encrypted, cross-process token file of one (token endpoint, client id), named ``<key>.token``.

    :param directory: cache directory (created 0700 when missing).
    :param token_url: the token endpoint.
    :param client_id: the client id.
    :param client_secret: the client secret; only used to derive the file's encryption key.
    """

    suffix = ".token"
    what = "ServiceTitan token cache"
    logger = log
    token_type = AccessToken


class ServiceTitanTokenAuth(ClientCredentialsAuth[AccessToken]):
    """ServiceTitan's OAuth client-credentials token and app key, as a ``requests`` auth.

    Attach it to the hook's ``requests.Session``: every request then carries
    ``Authorization: Bearer <token>`` and ``ST-App-Key``; a token about to expire is replaced
    before it is sent; a 401 renews the token (under the shared cache's lock, skipping the
    request when another process already did) and sends the call once more. Thread-safe.

    :param http: the ``requests.Session`` to ask for tokens with (its TLS settings apply).
    :param token_url: the token endpoint, e.g. ``https://auth.servicetitan.io/connect/token``.
    :param client_id: the client id.
    :param client_secret: the client secret.
    :param app_key: the application key, sent as ``ST-App-Key``.
    :param options: ``timeout`` (of the token request), ``retry_policy`` (retries of a token
        request that failed on the way: 429, 5xx, resets), ``cache_dir``
        (:func:`default_cache_dir` when ``None``) and ``clock`` (epoch seconds, replaceable in
        tests), as :class:`~airflow_provider_b1.utils.auth.ClientCredentialsAuth` takes them.
    """

    service = "ServiceTitan"
    error = ServiceTitanError
    logger = log
    cache_type = TokenCache
    default_cache_dir = staticmethod(default_cache_dir)

    def __init__(
        self,
        http: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: str,
        app_key: str,
        **options: Any,
    ) -> None:
        super().__init__(http, token_url, client_id, client_secret, **options)
        self._app_key = app_key
        mask(app_key)

    def __repr__(self) -> str:  # never show the secret, the app key or a token
        return f"ServiceTitanTokenAuth(token_url={self.token_url!r}, client_id={self.client_id!r})"

    # -- the ClientCredentialsAuth contract -------------------------------------------------------

    def is_expired(self, credential: AccessToken) -> bool:
        """Whether the token is within its renewal margin of the end."""
        return not credential.is_fresh(self._clock())

    def apply(self, request: requests.PreparedRequest, credential: AccessToken) -> None:
        """``Authorization: Bearer <token>`` and ``ST-App-Key: <app key>``."""
        super().apply(request, credential)
        request.headers["ST-App-Key"] = self._app_key

    def transport_error(self, exc: requests.RequestException) -> ServiceTitanError:
        """The token request failed on the way."""
        return transport_error(exc, self.token_url, "the token request")

    def token_error(self, response: requests.Response) -> ServiceTitanError:
        """The token endpoint refused (a refused client id/secret is permanent and not retried)."""
        return token_error_from_response(response, self.token_url)

    def read_token(self, response: requests.Response, started: float) -> AccessToken:
        """The token and its lifetime (``expires_in``, 900 s when not given)."""
        try:
            body = response.json()
            value = str(body["access_token"])
            expires_in = float(body.get("expires_in") or 900)
        except (ValueError, KeyError, TypeError):
            raise ServiceTitanAuthError(
                f"ServiceTitan's token endpoint {self.token_url} answered without an access token; check the "
                "connection's environment (or auth_url).",
                status=response.status_code,
            ) from None
        mask(value)
        log.info(
            "Obtained a ServiceTitan access token for client %s (valid %g s).", self.client_id, expires_in
        )
        # Counted from before the request, so network time only makes us renew earlier.
        return AccessToken(value=value, obtained_at=started, expires_at=started + expires_in)

    # -- ServiceTitan's own ---------------------------------------------------------------------

    def token(self) -> str:
        """A token valid for one more call (asked for when needed). A secret: never log it."""
        return self.current().value
