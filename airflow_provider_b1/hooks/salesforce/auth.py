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
  :class:`~airflow_provider_b1.utils.auth.RenewingAuth` attached to the hook's
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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from filelock import FileLock, Timeout

from airflow_provider_b1.exceptions import RetryableError
from airflow_provider_b1.hooks.salesforce.errors import (
    SalesforceAuthError,
    SalesforceError,
    token_error_from_response,
    transport_error,
)
from airflow_provider_b1.utils.auth import RenewingAuth, no_auth
from airflow_provider_b1.utils.credential_cache import CredentialFile
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask

log = logging.getLogger(__name__)

TOKEN_PATH = "/services/oauth2/token"

LOCK_TIMEOUT = 120.0
"""Seconds to wait for another process's token request before giving up."""


def default_cache_dir() -> Path:
    """Directory of the shared token cache.

    ``B1_SALESFORCE_CACHE_DIR`` when set, else ``$AIRFLOW_HOME/salesforce_tokens``
    (``~/airflow`` when ``AIRFLOW_HOME`` is unset): every task process of a worker sees it.
    """
    configured = os.environ.get("B1_SALESFORCE_CACHE_DIR")
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / "salesforce_tokens"


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


class TokenCache(CredentialFile):
    """The encrypted, cross-process token file of one (token endpoint, consumer key).

    :param directory: cache directory (created 0700 when missing).
    :param token_url: the token endpoint.
    :param consumer_key: the connected app's consumer key.
    :param consumer_secret: its secret; only used to derive the file's encryption key.
    """

    suffix = ".sftoken"
    what = "Salesforce token cache"
    instead = "asking for a token"
    logger = log

    def __init__(self, directory: Path, token_url: str, consumer_key: str, consumer_secret: str) -> None:
        super().__init__(directory, (token_url, consumer_key), consumer_secret)

    def __repr__(self) -> str:
        return f"TokenCache({str(self.path)!r})"

    def lock(self) -> FileLock:
        """A cross-process lock around token requests for this cache key."""
        return self.file_lock(LOCK_TIMEOUT)

    def load(self) -> SalesforceToken | None:
        """The cached token, or ``None`` when absent, unreadable or written under another secret."""
        loaded = self.read(SalesforceToken.from_payload)
        if loaded is None:
            return None
        token, _ = loaded
        mask(token.value)
        return token

    def store(self, token: SalesforceToken) -> None:
        """Write the token atomically, readable by the owner only."""
        self.write(token.to_payload())

    def delete(self) -> None:
        """Forget the cached token."""
        self.remove()


class SalesforceTokenAuth(RenewingAuth[SalesforceToken]):
    """Salesforce's client-credentials access token, as a ``requests`` auth.

    Attach it to the hook's ``requests.Session``: every request then carries ``Authorization:
    Bearer <token>`` (replacing whatever simple-salesforce put there), and a 401 renews the token
    (under the shared cache's lock, skipping the request when another process already did) and
    sends the call once more. Thread-safe.

    :param http: the ``requests.Session`` to ask for tokens with (its TLS settings apply).
    :param token_url: ``https://<My Domain>/services/oauth2/token``.
    :param consumer_key: the connected app's consumer key.
    :param consumer_secret: its consumer secret.
    :param timeout: requests timeout of the token request.
    :param retry_policy: retries of a token request that failed on the way (5xx, resets).
    :param cache_dir: shared cache directory; :func:`default_cache_dir` when ``None``.
    :param clock: wall clock (epoch seconds), replaceable in tests.
    """

    def __init__(
        self,
        http: requests.Session,
        token_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        timeout: Any = (10, 60),
        retry_policy: RetryPolicy | None = None,
        cache_dir: Path | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.http = http
        self.token_url = token_url
        self.consumer_key = consumer_key
        self._consumer_secret = consumer_secret
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self._clock = clock
        mask(consumer_secret)
        self.cache = TokenCache(
            Path(cache_dir) if cache_dir else default_cache_dir(), token_url, consumer_key, consumer_secret
        )
        self.token_requests = 0
        """Token requests this object made (the other tokens came from the cache)."""

    def __repr__(self) -> str:  # never show the secret or a token
        return f"SalesforceTokenAuth(token_url={self.token_url!r})"

    # -- the RenewingAuth contract ----------------------------------------------------------------

    def is_expired(self, credential: SalesforceToken) -> bool:
        """Never: Salesforce does not say when a token ends; a refusal (401) renews it."""
        return False

    def obtain(self, stale: SalesforceToken | None, *, refused: bool) -> SalesforceToken:
        """Adopt the token another process cached, or ask for one, under the cross-process lock.

        :param stale: the token being replaced, if any.
        :param refused: Salesforce refused ``stale``: it is never taken back from the cache.
        """
        shared = self.cache.load()
        if self._usable(shared, stale, refused):
            assert shared is not None
            return shared
        try:
            with self.cache.lock():
                shared = self.cache.load()
                if self._usable(shared, stale, refused):
                    assert shared is not None
                    log.debug("Using the Salesforce token another task obtained.")
                    return shared
                token = self._request_token()
                self.cache.store(token)
                return token
        except Timeout:
            raise SalesforceError(
                f"Waited {LOCK_TIMEOUT:.0f} s for another task's Salesforce token request; remove a stale lock "
                "file from the token cache directory if a worker died."
            ) from None

    def apply(self, request: requests.PreparedRequest, credential: SalesforceToken) -> None:
        """``Authorization: Bearer <token>``."""
        request.headers["Authorization"] = f"Bearer {credential.value}"

    def same(self, first: SalesforceToken, second: SalesforceToken) -> bool:
        """Tokens are the same when their values are."""
        return first.value == second.value

    # -- Salesforce's own ---------------------------------------------------------------------------

    def token(self) -> SalesforceToken:
        """The token held, obtained (or taken from the cache) when there is none yet."""
        return self.current()

    def forget(self) -> None:
        """Drop the token here and in the shared cache (the next call asks for a new one)."""
        with self._lock:
            self._credential = None
            with self.cache.lock():
                self.cache.delete()

    @staticmethod
    def _usable(shared: SalesforceToken | None, stale: SalesforceToken | None, refused: bool) -> bool:
        if shared is None:
            return False
        return not (refused and stale is not None and shared.value == stale.value)

    def _request_token(self) -> SalesforceToken:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.consumer_key,
            "client_secret": self._consumer_secret,
        }
        started = self._clock()
        try:
            for attempt in self.retry_policy.retrying():
                with attempt:
                    try:
                        # The form is never logged (requests and urllib3 do not log bodies).
                        response = self.http.post(
                            self.token_url,
                            data=form,
                            headers={"Accept": "application/json"},
                            timeout=self.timeout,
                            auth=no_auth,
                        )
                    except requests.RequestException as exc:
                        raise transport_error(exc, self.token_url, "the token request") from None
                    if response.status_code != 200:
                        # A refused key or secret is permanent and not retried.
                        raise token_error_from_response(response, self.token_url)
        except RetryableError as exc:
            # The token request already spent the retry budget: the caller's must not multiply it.
            exc.exhausted = True  # type: ignore[attr-defined]
            raise
        self.token_requests += 1
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
