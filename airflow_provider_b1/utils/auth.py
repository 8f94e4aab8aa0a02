"""Authentication that knows when its credential expires and renews it by itself.

Every system this provider talks to hands out a credential that runs out: an SAP Service Layer
session (idle timeout), a Looker or ServiceTitan access token (``expires_in``), a Salesforce
session (no expiry given at all, only a 401 when it is gone), a Bot Framework token. The rules
for using one are always the same, so they live here once, in :class:`RenewingAuth`, a
:class:`requests.auth.AuthBase`:

* **Obtain on first use, renew before expiry.** Each request takes :meth:`RenewingAuth.current`,
  which logs in when there is no credential or :meth:`~RenewingAuth.is_expired` says it is
  about to run out. Callers never check expiry themselves.
* **One login at a time.** A lock is held while a credential is obtained, so threads that
  start together (a prefetching reader and its caller, parallel writers) share one login.
* **Skip if already refreshed.** A request that was refused renews the credential only if the
  one it sent is still the current one; when another caller has already replaced it, the new
  one is used without logging in again.
* **Exactly one re-send.** When the server refuses the credential
  (:meth:`~RenewingAuth.is_refused`; 401 by default), the credential is renewed and the request
  is sent once more, with the new one. A second refusal is returned to the caller, whose error
  mapping explains it and whose retry policy (:mod:`~airflow_provider_b1.utils.retry`) decides
  whether to try again later: a new attempt sends the request afresh, and a refusal renews the
  credential again, so the renewals stay as bounded as the policy's attempts.

A subclass says only what is particular to its system: how to obtain a credential
(:meth:`~RenewingAuth.obtain`), when one counts as expired, how it goes on a request
(:meth:`~RenewingAuth.apply`) and, when it is not a plain 401, how a refusal looks::

    class ExampleTokenAuth(RenewingAuth[str]):
        def obtain(self, stale, *, refused):
            reply = self.http.post(self.token_url, data=..., auth=no_auth)
            self.expires_at = time.monotonic() + reply.json()["expires_in"]
            return reply.json()["access_token"]

        def is_expired(self, token):
            return time.monotonic() >= self.expires_at - 60

        def apply(self, request, token):
            request.headers["Authorization"] = f"Bearer {token}"

Attach it to a ``requests.Session`` (``session.auth = auth``) or pass it per request
(``auth=auth``). The re-send goes through the same adapter, so it needs a body that can be sent
twice (bytes or a string, as every body this provider sends), not a stream.

OAuth 2.0 client-credentials tokens (Salesforce, ServiceTitan) also share how they are obtained,
so that lives here too, in :class:`ClientCredentialsAuth` and its :class:`SharedTokenCache`:

* **Shared across processes.** The token is cached in an encrypted
  :class:`~airflow_provider_b1.utils.credential_cache.CredentialFile` named after the token URL
  and the client id, in a directory every task process of a worker sees
  (:func:`worker_cache_dir`).
* **One token request at a time.** Requests happen under a cross-process file lock; whoever
  gets it re-reads the cache first and takes a token another process has just obtained
  (skip-if-refreshed). A refused token is never taken back from the cache.
* **The request.** ``POST <token URL>`` with ``grant_type=client_credentials``, the client id and
  the client secret as a form (never logged), retried by the hook's
  :class:`~airflow_provider_b1.utils.retry.RetryPolicy` when it fails on the way; a retryable
  error that is left over is marked ``exhausted`` so that the caller's policy does not repeat it.

A subclass names its API (:attr:`~ClientCredentialsAuth.service`, its error type, logger, cache
and cache directory), maps a failed token request to its errors
(:meth:`~ClientCredentialsAuth.transport_error`, :meth:`~ClientCredentialsAuth.token_error`),
reads the token endpoint's reply (:meth:`~ClientCredentialsAuth.read_token`) and says when a
token expires (:meth:`~RenewingAuth.is_expired`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import requests
import requests.auth
from filelock import FileLock, Timeout

from airflow_provider_b1.exceptions import B1ProviderError, RetryableError
from airflow_provider_b1.utils.credential_cache import CredentialFile
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask

log = logging.getLogger(__name__)

C = TypeVar("C")

LOCK_TIMEOUT = 120.0
"""Seconds to wait for another process's token request before giving up."""

_SENT = "_b1_credential_sent"
_RESENT = "_b1_credential_resent"


def no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Send a request without the session's auth: for a credential's own login and logout calls.

    A login sent through a session whose ``auth`` is the credential being obtained would ask for
    that credential again; ``session.post(url, auth=no_auth)`` overrides it for that one call.
    """
    return request


class RenewingAuth(requests.auth.AuthBase, Generic[C]):
    """A credential that is obtained on first use, renewed before it expires and once after a refusal.

    Thread-safe. Subclasses implement :meth:`obtain`, :meth:`is_expired` and :meth:`apply`, and
    may override :meth:`is_refused`, :meth:`same` and :meth:`accepted`. ``C`` is the credential's
    type: a token string, a session's cookies, anything :meth:`apply` can put on a request.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._credential: C | None = None

    # -- what a subclass says ---------------------------------------------------------------

    def obtain(self, stale: C | None, *, refused: bool) -> C:
        """Get a new credential (log in) and return it; called with the lock held.

        :param stale: the credential being replaced (``None`` on first use).
        :param refused: whether the server refused ``stale`` (rather than it being about to
            expire): a credential shared with other processes must then not be taken back.
        :raises: the subclass's own typed errors (wrong secret, server down): they reach the
            caller of the request unchanged.
        """
        raise NotImplementedError

    def is_expired(self, credential: C) -> bool:
        """Whether ``credential`` is too close to its end to be sent once more.

        :param credential: the credential held.
        """
        raise NotImplementedError

    def apply(self, request: requests.PreparedRequest, credential: C) -> None:
        """Put ``credential`` on ``request`` (a header, a cookie).

        :param request: the request about to be sent.
        :param credential: the credential to send.
        """
        raise NotImplementedError

    def is_refused(self, response: requests.Response) -> bool:
        """Whether the server refused the credential the request carried; 401 by default.

        :param response: the server's answer.
        """
        return response.status_code == 401

    def same(self, first: C, second: C) -> bool:
        """Whether two credentials are the same one (skip-if-refreshed compares with this).

        :param first: a credential.
        :param second: another credential.
        """
        return first == second

    def accepted(self, credential: C, response: requests.Response) -> None:
        """Called after each answer that did not refuse the credential (e.g. to slide an idle timeout).

        :param credential: the credential the request carried.
        :param response: the answer.
        """

    # -- what callers use ---------------------------------------------------------------------

    @property
    def held(self) -> C | None:
        """The credential held now, whether or not it is still fresh (``None`` before the first login)."""
        return self._credential

    def current(self) -> C:
        """A credential fit for one more request: the one held, or a new one when it is missing or expiring."""
        with self._lock:
            credential = self._credential
            if credential is not None and not self.is_expired(credential):
                return credential
            return self._replace(credential, refused=False)

    def renew(self, refused: C) -> C:
        """Replace a credential the server refused, unless another caller already did.

        :param refused: the credential the refused request carried.
        :return: the credential to send instead.
        """
        with self._lock:
            credential = self._credential
            if credential is not None and not self.same(credential, refused):
                return credential
            return self._replace(refused, refused=True)

    def invalidate(self, credential: C | None = None) -> None:
        """Forget the credential so the next request obtains a new one.

        :param credential: forget only if this is still the credential held (a caller that
            knows which one failed does not throw away a newer one); ``None`` forgets any.
        """
        with self._lock:
            held = self._credential
            if held is not None and (credential is None or self.same(held, credential)):
                self._credential = None

    def _replace(self, stale: C | None, *, refused: bool) -> C:
        credential = self.obtain(stale, refused=refused)
        self._credential = credential
        return credential

    # -- requests ---------------------------------------------------------------------------------

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        credential = self.current()
        self.apply(request, credential)
        setattr(request, _SENT, credential)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **send_kwargs: Any) -> requests.Response:
        request = response.request
        sent = getattr(request, _SENT, None)
        if not self.is_refused(response):
            if sent is not None:
                self.accepted(sent, response)
            return response
        if sent is None or getattr(request, _RESENT, False):
            return response
        log.info(
            "%s: the server refused the credential; renewing it and repeating %s %s once.",
            type(self).__name__,
            request.method,
            urlsplit(request.url or "").path,
        )
        # Drain the refusal so its connection goes back to the pool for the re-send.
        response.content  # noqa: B018
        response.close()
        credential = self.renew(sent)
        retry = request.copy()
        self.apply(retry, credential)
        setattr(retry, _SENT, credential)
        setattr(retry, _RESENT, True)
        # The adapter sends without running response hooks again: one re-send at the most.
        new_response = response.connection.send(retry, **send_kwargs)
        new_response.history.append(response)
        new_response.request = retry
        if not self.is_refused(new_response):
            self.accepted(credential, new_response)
        return new_response


# -- OAuth 2.0 client-credentials tokens shared by a worker's processes ---------------------------


def worker_cache_dir(variable: str, folder: str) -> Path:
    """Directory of a credential cache that every task process of a worker sees.

    :param variable: environment variable that names the directory when set
        (e.g. ``B1_SALESFORCE_CACHE_DIR``).
    :param folder: otherwise the directory ``$AIRFLOW_HOME/<folder>`` (``~/airflow`` when
        ``AIRFLOW_HOME`` is unset).
    """
    configured = os.environ.get(variable)
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / folder


class CachedToken(Protocol):
    """What :class:`SharedTokenCache` and :class:`ClientCredentialsAuth` need of a token."""

    value: str
    """The token itself (a secret: never log it)."""

    def to_payload(self) -> dict[str, Any]:
        """The cache file's payload (the class's ``from_payload`` reads it back)."""
        ...


T = TypeVar("T", bound=CachedToken)


@dataclasses.dataclass
class BearerToken:
    """One bearer token that expires, as a shared cache keeps it (ServiceTitan, Teams).

    :param value: the token (a secret: never log it).
    :param obtained_at: epoch seconds at which it was asked for.
    :param expires_at: epoch seconds at which the API stops accepting it.
    """

    #: Renewed this long before its end at most (a tenth of its life when that is less).
    max_margin: ClassVar[float] = 60.0

    value: str = dataclasses.field(repr=False)
    obtained_at: float
    expires_at: float

    def margin(self) -> float:
        """Seconds before the end at which it is renewed: a tenth of its life, at most ``max_margin``."""
        return min(self.max_margin, max(self.expires_at - self.obtained_at, 0.0) * 0.1)

    def is_fresh(self, now: float) -> bool:
        """Whether it may be sent once more."""
        return now < self.expires_at - self.margin()

    def to_payload(self) -> dict[str, Any]:
        """The cache file's payload."""
        return {"token": self.value, "obtained_at": self.obtained_at, "expires_at": self.expires_at}

    @classmethod
    def from_payload(cls, document: dict[str, Any]) -> Any:
        """The token in a cache file's payload, or ``None`` when it holds none."""
        if not document.get("token"):
            return None
        return cls(
            value=str(document["token"]),
            obtained_at=float(document["obtained_at"]),
            expires_at=float(document["expires_at"]),
        )


class SharedTokenCache(CredentialFile, Generic[T]):
    """The encrypted, cross-process token file of one (token endpoint, client id).

    A :class:`~airflow_provider_b1.utils.credential_cache.CredentialFile` (encryption, modes,
    atomic writes, lock, tolerant reads); a subclass names its file and messages with the class
    attributes there and says which :attr:`token_type` it holds.

    :param directory: cache directory (created 0700 when missing).
    :param token_url: the token endpoint.
    :param client_id: the client id.
    :param client_secret: the client secret; only used to derive the file's encryption key.
    """

    token_type: ClassVar[Any]
    """The token's class; its ``from_payload(document)`` returns a token or ``None``."""
    instead = "asking for a token"

    def __init__(self, directory: Path, token_url: str, client_id: str, client_secret: str) -> None:
        super().__init__(directory, (token_url, client_id), client_secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def lock(self) -> FileLock:
        """A cross-process lock around token requests for this cache key."""
        return self.file_lock(LOCK_TIMEOUT)

    def load(self) -> T | None:
        """The cached token, or ``None`` when absent, unreadable or written under another secret."""
        loaded = self.read(self.token_type.from_payload)
        if loaded is None:
            return None
        token, _ = loaded
        mask(token.value)
        return token

    def store(self, token: T) -> None:
        """Write the token atomically (temporary file + rename), readable by the owner only."""
        self.write(token.to_payload())

    def delete(self) -> None:
        """Forget the cached token."""
        self.remove()


class ClientCredentialsAuth(RenewingAuth[T]):
    """An OAuth 2.0 client-credentials token shared by a worker's processes, as a ``requests`` auth.

    Every request carries ``Authorization: Bearer <token>``; a token is adopted from the shared
    cache or asked for under the cache's lock, and a refused one is renewed as
    :class:`RenewingAuth` does. Thread-safe.

    :param http: the ``requests.Session`` to ask for tokens with (its TLS settings apply).
    :param token_url: the token endpoint.
    :param client_id: the client id.
    :param client_secret: the client secret.
    :param timeout: requests timeout of the token request.
    :param retry_policy: retries of a token request that failed on the way (429, 5xx, resets).
    :param cache_dir: shared cache directory; :attr:`default_cache_dir` when ``None``.
    :param clock: wall clock (epoch seconds), replaceable in tests.
    """

    service: ClassVar[str] = "OAuth"
    """The API's name in messages, e.g. ``Salesforce``."""
    error: ClassVar[type[Exception]] = B1ProviderError
    """Raised when another process's token request holds the lock for too long."""
    logger: ClassVar[logging.Logger] = log
    """Where messages go (the subclass's module logger)."""
    cache_type: ClassVar[type[SharedTokenCache[Any]]] = SharedTokenCache
    """The cache file's class."""
    default_cache_dir: ClassVar[Callable[[], Path]]
    """The cache directory when none is given (a ``staticmethod``)."""

    def __init__(
        self,
        http: requests.Session,
        token_url: str,
        client_id: str,
        client_secret: str,
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
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self._clock = clock
        mask(client_secret)
        self.cache: SharedTokenCache[T] = self.cache_type(
            Path(cache_dir) if cache_dir else self.default_cache_dir(), token_url, client_id, client_secret
        )
        self.token_requests = 0
        """Token requests this object made (the other tokens came from the cache)."""

    # -- what a subclass says -----------------------------------------------------------------------

    def transport_error(self, exc: requests.RequestException) -> Exception:
        """The error to raise when the token request failed on the way (no answer).

        :param exc: what requests raised.
        """
        raise NotImplementedError

    def token_error(self, response: requests.Response) -> Exception:
        """The error to raise when the token endpoint answered other than 200.

        :param response: the answer.
        """
        raise NotImplementedError

    def read_token(self, response: requests.Response, started: float) -> T:
        """The token in the token endpoint's 200 answer; masks it before anything else.

        :param response: the answer.
        :param started: epoch seconds at which the token was asked for.
        :raises: the subclass's auth error when the answer holds no token.
        """
        raise NotImplementedError

    # -- the RenewingAuth contract ------------------------------------------------------------------

    def obtain(self, stale: T | None, *, refused: bool) -> T:
        """Adopt the token another process cached, or ask for one, under the cross-process lock.

        :param stale: the token being replaced, if any.
        :param refused: the server refused ``stale``: it is never taken back from the cache.
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
                    self.logger.debug("Using the %s token another task obtained.", self.service)
                    return shared
                token = self._request_token()
                self.cache.store(token)
                return token
        except Timeout:
            raise self.error(
                f"Waited {LOCK_TIMEOUT:.0f} s for another task's {self.service} token request; remove a stale "
                "lock file from the token cache directory if a worker died."
            ) from None

    def apply(self, request: requests.PreparedRequest, credential: T) -> None:
        """``Authorization: Bearer <token>``."""
        request.headers["Authorization"] = f"Bearer {credential.value}"

    def same(self, first: T, second: T) -> bool:
        """Tokens are the same when their values are."""
        return first.value == second.value

    # -- what callers use ---------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop the token here and in the shared cache (the next call asks for a new one)."""
        with self._lock:
            self._credential = None
            with self.cache.lock():
                self.cache.delete()

    def _usable(self, shared: T | None, stale: T | None, refused: bool) -> bool:
        if shared is None or self.is_expired(shared):
            return False
        return not (refused and stale is not None and self.same(shared, stale))

    def token_form(self) -> dict[str, str]:
        """The fields of the token request beyond the client credentials (an API's ``scope``)."""
        return {}

    def _request_token(self) -> T:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            **self.token_form(),
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
                        raise self.transport_error(exc) from None
                    if response.status_code != 200:
                        # A refused client id or secret is permanent and not retried.
                        raise self.token_error(response)
        except RetryableError as exc:
            # The token request already spent the retry budget: the caller's must not multiply it.
            exc.exhausted = True  # type: ignore[attr-defined]
            raise
        self.token_requests += 1
        return self.read_token(response, started)
