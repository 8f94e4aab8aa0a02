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
  :class:`ServiceTitanTokenAuth` is a :class:`~airflow_provider_b1.utils.auth.RenewingAuth`,
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
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock, Timeout

from airflow_provider_b1.exceptions import RetryableError
from airflow_provider_b1.hooks.servicetitan.errors import (
    ServiceTitanAuthError,
    ServiceTitanError,
    token_error_from_response,
    transport_error,
)
from airflow_provider_b1.utils.auth import RenewingAuth, no_auth
from airflow_provider_b1.utils.credential_cache import CredentialFile
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask

log = logging.getLogger(__name__)

LOCK_TIMEOUT = 120.0
"""Seconds to wait for another process's token request before giving up."""

MAX_MARGIN = 60.0
"""Renew at most this many seconds before a token's end (a tenth of its life when that is less)."""


def default_cache_dir() -> Path:
    """Directory of the shared token cache.

    ``B1_SERVICETITAN_CACHE_DIR`` when set, else ``$AIRFLOW_HOME/servicetitan_tokens``
    (``~/airflow`` when ``AIRFLOW_HOME`` is unset): every task process of a worker sees it.
    """
    configured = os.environ.get("B1_SERVICETITAN_CACHE_DIR")
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / "servicetitan_tokens"


@dataclass
class AccessToken:
    """One ServiceTitan access token, as cached.

    :param value: the token (a secret: never log it).
    :param obtained_at: epoch seconds at which it was asked for.
    :param expires_at: epoch seconds at which ServiceTitan stops accepting it.
    """

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    def margin(self) -> float:
        """Seconds before the end at which it is renewed: a tenth of its life, at most 60 s."""
        return min(MAX_MARGIN, max(self.expires_at - self.obtained_at, 0.0) * 0.1)

    def is_fresh(self, now: float) -> bool:
        """Whether it may be sent once more."""
        return now < self.expires_at - self.margin()

    def to_payload(self) -> dict[str, Any]:
        """The cache file's payload."""
        return {"token": self.value, "obtained_at": self.obtained_at, "expires_at": self.expires_at}

    @classmethod
    def from_payload(cls, document: dict[str, Any]) -> AccessToken | None:
        """The token in a cache file's payload, or ``None`` when it holds none."""
        if not document.get("token"):
            return None
        return cls(
            value=str(document["token"]),
            obtained_at=float(document["obtained_at"]),
            expires_at=float(document["expires_at"]),
        )


class TokenCache(CredentialFile):
    """The encrypted, cross-process token file of one (token endpoint, client id).

    A :class:`~airflow_provider_b1.utils.credential_cache.CredentialFile` (encryption, modes,
    atomic writes, lock, tolerant reads) named ``<key>.token``.

    :param directory: cache directory (created 0700 when missing).
    :param token_url: the token endpoint.
    :param client_id: the client id.
    :param client_secret: the client secret; only used to derive the file's encryption key.
    """

    suffix = ".token"
    what = "ServiceTitan token cache"
    instead = "asking for a token"
    logger = log

    def __init__(self, directory: Path, token_url: str, client_id: str, client_secret: str) -> None:
        super().__init__(directory, (token_url, client_id), client_secret)

    def __repr__(self) -> str:
        return f"TokenCache({str(self.path)!r})"

    def lock(self) -> FileLock:
        """A cross-process lock around token requests for this cache key."""
        return self.file_lock(LOCK_TIMEOUT)

    def load(self) -> AccessToken | None:
        """The cached token, or ``None`` when absent, unreadable or written under another secret."""
        loaded = self.read(AccessToken.from_payload)
        if loaded is None:
            return None
        token, _ = loaded
        mask(token.value)
        return token

    def store(self, token: AccessToken) -> None:
        """Write the token atomically (temporary file + rename), readable by the owner only."""
        self.write(token.to_payload())

    def delete(self) -> None:
        """Forget the cached token."""
        self.remove()


class ServiceTitanTokenAuth(RenewingAuth[AccessToken]):
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
    :param timeout: requests timeout of the token request.
    :param retry_policy: retries of a token request that failed on the way (429, 5xx, resets).
    :param cache_dir: shared cache directory; :func:`default_cache_dir` when ``None``.
    :param clock: wall clock (epoch seconds), replaceable in tests.
    """

    def __init__(
        self,
        http: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: str,
        app_key: str,
        *,
        timeout: Any = (10, 60),
        retry_policy: RetryPolicy | None = None,
        cache_dir: Path | str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._app_key = app_key
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self._clock = clock
        for secret in (client_secret, app_key):
            mask(secret)
        self.cache = TokenCache(
            Path(cache_dir) if cache_dir else default_cache_dir(), token_url, client_id, client_secret
        )
        self.token_requests = 0
        """Token requests this object made (the other tokens came from the cache)."""

    def __repr__(self) -> str:  # never show the secret, the app key or a token
        return f"ServiceTitanTokenAuth(token_url={self.token_url!r}, client_id={self.client_id!r})"

    # -- the RenewingAuth contract ----------------------------------------------------------------

    def is_expired(self, credential: AccessToken) -> bool:
        """Whether the token is within its renewal margin of the end."""
        return not credential.is_fresh(self._clock())

    def obtain(self, stale: AccessToken | None, *, refused: bool) -> AccessToken:
        """Adopt the token another process cached, or ask for one, under the cross-process lock.

        :param stale: the token being replaced, if any.
        :param refused: ServiceTitan refused ``stale``: it is never taken back from the cache.
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
                    log.debug("Using the ServiceTitan token another task obtained.")
                    return shared
                token = self._request_token()
                self.cache.store(token)
                return token
        except Timeout:
            error = ServiceTitanError(
                f"Waited {LOCK_TIMEOUT:.0f} s for another task's ServiceTitan token request; remove a stale lock "
                "file from the token cache directory if a worker died."
            )
            raise error from None

    def apply(self, request: requests.PreparedRequest, credential: AccessToken) -> None:
        """``Authorization: Bearer <token>`` and ``ST-App-Key: <app key>``."""
        request.headers["Authorization"] = f"Bearer {credential.value}"
        request.headers["ST-App-Key"] = self._app_key

    def same(self, first: AccessToken, second: AccessToken) -> bool:
        """Tokens are the same when their values are."""
        return first.value == second.value

    # -- ServiceTitan's own ---------------------------------------------------------------------

    def token(self) -> str:
        """A token valid for one more call (asked for when needed). A secret: never log it."""
        return self.current().value

    def forget(self) -> None:
        """Drop the token here and in the shared cache (the next call asks for a new one)."""
        with self._lock:
            self._credential = None
            with self.cache.lock():
                self.cache.delete()

    def _usable(self, shared: AccessToken | None, stale: AccessToken | None, refused: bool) -> bool:
        if shared is None or not shared.is_fresh(self._clock()):
            return False
        return not (refused and stale is not None and shared.value == stale.value)

    def _request_token(self) -> AccessToken:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
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
                        # A refused client id/secret is permanent and not retried.
                        raise token_error_from_response(response, self.token_url)
        except RetryableError as exc:
            # The token request already spent the retry budget: the caller's must not multiply it.
            exc.exhausted = True  # type: ignore[attr-defined]
            raise
        self.token_requests += 1
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
