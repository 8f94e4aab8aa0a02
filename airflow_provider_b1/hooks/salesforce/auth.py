"""How Salesforce access tokens work, in one place.

The hook logs in with the OAuth 2.0 client-credentials flow: ``POST <My Domain>/services/oauth2/token``
with ``grant_type=client_credentials``, the consumer key and the consumer secret, answered with
``{access_token, instance_url, id, token_type, issued_at, signature, scope}``. The reply says
nothing about the token's lifetime (no ``expires_in``, no refresh token): it follows the org's
session timeout (two hours by default, measured from the last use), and a token that ran out is
answered 401 ``INVALID_SESSION_ID``. So one token serves every task process of a worker until
Salesforce refuses it:

* **Obtained on first use**, never before a call needs it.
* **Shared across processes.** The token is cached in a file named after
  ``sha256(token URL | consumer key)`` in :func:`default_cache_dir`, encrypted with Fernet under
  a key derived (scrypt) from the consumer secret: only a holder of the secret can read it. Mode
  0600, directory 0700 (see :mod:`airflow_provider_b1.utils.credential_cache`).
* **One token request at a time.** Requests happen under a cross-process file lock; whoever gets
  it re-reads the cache first and takes a token another process has just obtained
  (skip-if-refreshed), so twenty tasks starting together make one request.
* **Renewed once on 401**: :class:`SalesforceTokenAuth` is a
  :class:`~airflow_provider_b1.utils.auth.ClientCredentialsAuth` (the token request, cache and
  lock shared with ServiceTitan's, and a
  :class:`~airflow_provider_b1.utils.auth.RenewingAuth`) attached to the hook's
  ``requests.Session``, so *every* call made through that session (simple-salesforce's REST
  calls, ``query_more``, describes, sObject Collections and the Bulk API 2.0 steps alike) is
  renewed and sent once more when Salesforce refuses its token, never taking the refused token
  back from the cache. simple-salesforce would re-log in itself only for REST calls and only when
  it holds the credentials; it holds just the token here.

Secrets: the consumer secret and every token are registered with Airflow's secret masker as soon
as they are known; the token request's body is never logged, and no message or ``repr`` carries
any of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from airflow_provider_b1.hooks.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    token_error_from_response,
    transport_error,
)
from airflow_provider_b1.utils.auth import ClientCredentialsAuth, SharedTokenCache, worker_cache_dir
from airflow_provider_b1.utils.secrets import mask

log = logging.getLogger(__name__)

TOKEN_PATH = "/services/oauth2/token"


def default_cache_dir() -> Path:
    """Directory of the shared token cache.

    ``B1_SALESFORCE_CACHE_DIR`` when set, else ``$AIRFLOW_HOME/salesforce_tokens``
    (``~/airflow`` when ``AIRFLOW_HOME`` is unset): every task process of a worker sees it.
    """
    return worker_cache_dir("B1_SALESFORCE_CACHE_DIR", "salesforce_tokens")


@dataclass
class SalesforceToken:
    """One Salesforce access token, as cached.

    :param value: the token (a secret: never log it).
    :param instance_url: the org's instance URL every API call goes to.
    :param id_url: the identity URL (``.../id/<org id>/<user id>``).
    :param issued_at: Salesforce's ``issued_at`` (epoch milliseconds), when it gave one.
    :param obtained_at: epoch seconds at which it was asked for.
    """

    value: str = field(repr=False)
    instance_url: str
    id_url: str | None = None
    issued_at: int | None = None
    obtained_at: float = 0.0

    @property
    def org_id(self) -> str | None:
        """The org's id, read from the identity URL (``None`` when Salesforce gave none)."""
        return _id_part(self.id_url, -2)

    @property
    def user_id(self) -> str | None:
        """The run-as user's id, read from the identity URL."""
        return _id_part(self.id_url, -1)

    def to_payload(self) -> dict[str, Any]:
        """The cache file's payload."""
        return {
            "token": self.value,
            "instance_url": self.instance_url,
            "id_url": self.id_url,
            "issued_at": self.issued_at,
            "obtained_at": self.obtained_at,
        }

    @classmethod
    def from_payload(cls, document: dict[str, Any]) -> SalesforceToken | None:
        """The token in a cache file's payload, or ``None`` when it holds none."""
        if not document.get("token") or not document.get("instance_url"):
            return None
        issued = document.get("issued_at")
        return cls(
            value=str(document["token"]),
            instance_url=str(document["instance_url"]),
            id_url=document.get("id_url"),
            issued_at=int(issued) if issued is not None else None,
            obtained_at=float(document.get("obtained_at") or 0.0),
        )


def _id_part(id_url: str | None, index: int) -> str | None:
    if not id_url:
        return None
    parts = [p for p in urlsplit(id_url).path.split("/") if p]
    if len(parts) >= 3 and parts[-3] == "id":
        return parts[index]
    return None


class TokenCache(SharedTokenCache[SalesforceToken]):
    """The encrypted, cross-process token file of one (token endpoint, consumer key).

    :param directory: cache directory (created 0700 when missing).
    :param token_url: the token endpoint.
    :param consumer_key: the connected app's consumer key.
    :param consumer_secret: its secret; only used to derive the file's encryption key.
    """

    suffix = ".sftoken"
    what = "Salesforce token cache"
    logger = log
    token_type = SalesforceToken

    def __init__(self, directory: Path, token_url: str, consumer_key: str, consumer_secret: str) -> None:
        super().__init__(directory, token_url, consumer_key, consumer_secret)


class SalesforceTokenAuth(ClientCredentialsAuth[SalesforceToken]):
    """Salesforce's client-credentials access token, as a ``requests`` auth.

    Attach it to the hook's ``requests.Session``: every request then carries ``Authorization:
    Bearer <token>`` (replacing whatever simple-salesforce put there), and a 401 renews the token
    (under the shared cache's lock, skipping the request when another process already did) and
    sends the call once more. Thread-safe.

    :param http: the ``requests.Session`` to ask for tokens with (its TLS settings apply).
    :param token_url: ``https://<My Domain>/services/oauth2/token``.
    :param consumer_key: the connected app's consumer key.
    :param consumer_secret: its consumer secret.
    :param options: ``timeout`` (of the token request), ``retry_policy`` (retries of a token
        request that failed on the way: 5xx, resets), ``cache_dir`` (:func:`default_cache_dir`
        when ``None``) and ``clock`` (epoch seconds, replaceable in tests), as
        :class:`~airflow_provider_b1.utils.auth.ClientCredentialsAuth` takes them.
    """

    service = "Salesforce"
    error = SalesforceError
    logger = log
    cache_type = TokenCache
    default_cache_dir = staticmethod(default_cache_dir)

    def __init__(
        self, http: requests.Session, token_url: str, consumer_key: str, consumer_secret: str, **options: Any
    ) -> None:
        super().__init__(http, token_url, consumer_key, consumer_secret, **options)
        self.consumer_key = consumer_key

    def __repr__(self) -> str:  # never show the secret or a token
        return f"SalesforceTokenAuth(token_url={self.token_url!r})"

    # -- the ClientCredentialsAuth contract -------------------------------------------------------

    def is_expired(self, credential: SalesforceToken) -> bool:
        """Never: Salesforce does not say when a token ends; a refusal (401) renews it."""
        return False

    def transport_error(self, exc: requests.RequestException) -> SalesforceError:
        """The token request failed on the way."""
        return transport_error(exc, self.token_url, "the token request")

    def token_error(self, response: requests.Response) -> SalesforceError:
        """The token endpoint refused (a refused key or secret is permanent and not retried)."""
        return token_error_from_response(response, self.token_url)

    def read_token(self, response: requests.Response, started: float) -> SalesforceToken:
        """The token, the instance URL every call goes to and the identity URL."""
        try:
            body = response.json()
            value = str(body["access_token"])
            instance_url = str(body["instance_url"]).rstrip("/")
        except (ValueError, KeyError, TypeError):
            raise SalesforceAuthError(
                f"Salesforce's token endpoint {self.token_url} answered without an access token and instance "
                "URL; check that the host is the org's My Domain URL.",
                status=response.status_code,
            ) from None
        mask(value)
        issued = body.get("issued_at")
        try:
            issued_at = int(issued) if issued is not None else None
        except (TypeError, ValueError):
            issued_at = None
        log.info("Obtained a Salesforce access token from %s (instance %s).", self.token_url, instance_url)
        return SalesforceToken(
            value=value,
            instance_url=instance_url,
            id_url=str(body["id"]) if body.get("id") else None,
            issued_at=issued_at,
            obtained_at=started,
        )

    # -- Salesforce's own ---------------------------------------------------------------------------

    def token(self) -> SalesforceToken:
        """The token held, obtained (or taken from the cache) when there is none yet."""
        return self.current()
