"""How SAP Business One Service Layer sessions work, in one place.

A Service Layer session costs a slow login (seconds) and holds a user licence while it lives, so
one session serves every task process on a worker for as long as SAP keeps it alive:

* **Login on first use.** Nothing happens until the first call needs a session.
* **Shared across processes.** The session (the ``B1SESSION`` and ``ROUTEID`` cookies, always
  together: ``ROUTEID`` pins the load balancer's node that owns the session) is cached in a file
  named after ``sha256(url|company|user)`` in :func:`default_cache_dir`. The file is encrypted
  with Fernet under a key derived (scrypt) from the connection's password and the cache key:
  only a holder of the password can read it. Mode 0600, directory 0700 (see
  :mod:`airflow_provider_b1.utils.credential_cache`).
* **One login at a time.** Logins happen under a cross-process file lock. Whoever gets the
  lock first re-reads the cache: if another caller refreshed the session while it waited, it
  takes that session instead of logging in (B1SLayer's "skip if already refreshed").
* **Renewed before the idle timeout.** ``SessionTimeout`` (minutes, from the login reply) is an
  *idle* timeout, so expiry slides with use. Each process tracks its last use; the cache file's
  modification time carries the last use across processes and is touched at most every few
  seconds, never re-encrypted per request. A session that would expire within a safety margin
  is replaced before it is used.
* **Expired anyway** (server restart, another client logged out): 401 with code 301 or -5002
  makes :meth:`SapSession.renew` run the same locked, skip-if-refreshed login, and the refused
  call is sent once more with the new session. When SAP refuses that one too, the hook's retry
  policy sends the call again later, each time with a fresh session, a bounded number of times
  (:class:`~airflow_provider_b1.hooks.sap_b1.errors.SapB1SessionExpiredError` is retryable).
* **Never a second refused login.** A login refused for its credentials, or for a locked user,
  is not retried by anything: each attempt would count towards SAP's lock-out of the user.

:class:`SapSession` is a :class:`~airflow_provider_b1.utils.auth.RenewingAuth`: attached to the
hook's ``requests.Session``, it does all of the above for every request, and callers never
check a session's expiry themselves.

Secrets: the login body is never logged; every session id and cookie value is registered with
Airflow's secret masker as soon as it is known.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from filelock import FileLock, Timeout

from airflow_provider_b1.exceptions import RetryableError
from airflow_provider_b1.hooks.sap_b1.errors import (
    SapB1Error,
    SapB1LoginBusyError,
    is_session_expired,
    login_error_from_response,
    transport_error,
)
from airflow_provider_b1.utils.auth import RenewingAuth, no_auth
from airflow_provider_b1.utils.credential_cache import CredentialFile
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.tls import never_sent

log = logging.getLogger(__name__)

SESSION_COOKIES = ("B1SESSION", "ROUTEID")
"""Cookies that make a session; both are sent back on every call."""

TOUCH_INTERVAL = 5.0
"""Seconds between updates of the shared last-use time (the cache file's mtime)."""

LOCK_TIMEOUT = 300.0
"""Seconds to wait for another process's login before giving up (logins take 3-8 s, more when slow)."""


def default_cache_dir() -> Path:
    """Directory of the shared session cache.

    ``B1_SESSION_CACHE_DIR`` when set, else ``$AIRFLOW_HOME/b1_sessions`` (``~/airflow`` when
    ``AIRFLOW_HOME`` is unset): on a worker, every task process sees the same directory.
    """
    configured = os.environ.get("B1_SESSION_CACHE_DIR")
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / "b1_sessions"


@dataclass
class SessionState:
    """One Service Layer session, as cached.

    :param cookies: session cookies (``B1SESSION``, ``ROUTEID`` when the balancer sets one).
    :param timeout: idle timeout in seconds, from the login reply's ``SessionTimeout``.
    :param login_at: epoch seconds of the login.
    :param last_used: epoch seconds of the last use known to this process.
    """

    cookies: dict[str, str]
    timeout: float
    login_at: float
    last_used: float = 0.0
    touched: float = field(default=0.0, compare=False)

    @property
    def session_id(self) -> str:
        """The ``B1SESSION`` value (a secret: never log it)."""
        return self.cookies.get("B1SESSION", "")

    def margin(self) -> float:
        """Seconds before the idle timeout at which the session is renewed instead of used.

        A tenth of the timeout, at most 60 s: covers clock drift and a request's own duration
        without wasting much of a 30-minute session, and still works for a test's 2-second one.
        """
        return min(60.0, self.timeout * 0.1)

    def is_fresh(self, now: float) -> bool:
        """Whether the session should still be alive on the server for one more call."""
        return now - max(self.last_used, self.login_at) < self.timeout - self.margin()

    def cookie_header(self) -> str:
        """The ``Cookie`` header value carrying every session cookie."""
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    def to_payload(self) -> dict[str, Any]:
        """The cache file's payload."""
        return {
            "cookies": self.cookies,
            "timeout": self.timeout,
            "login_at": self.login_at,
            "last_used": self.last_used,
        }

    @classmethod
    def from_payload(cls, document: dict[str, Any]) -> SessionState | None:
        """The session in a cache file's payload, or ``None`` when it holds none."""
        if not document.get("cookies"):
            return None
        return cls(
            cookies={str(k): str(v) for k, v in document["cookies"].items()},
            timeout=float(document["timeout"]),
            login_at=float(document["login_at"]),
            last_used=float(document.get("last_used") or 0.0),
        )


class SessionCache(CredentialFile):
    """The encrypted, cross-process session file of one (Service Layer, company, user).

    A :class:`~airflow_provider_b1.utils.credential_cache.CredentialFile` (encryption, modes,
    atomic writes, lock, tolerant reads) named ``<key>.session``; the file's modification time
    is the session's last use by any process.

    :param directory: cache directory (created 0700 when missing).
    :param base_url: Service Layer root URL.
    :param company: company database.
    :param user: SAP user name.
    :param password: the user's password; only used to derive the file's encryption key.
    :param slot: which of the user's parallel sessions (0, the default, is the one every task
        shares; writers working side by side each hold another, 1, 2, ...).
    """

    suffix = ".session"
    what = "SAP session cache"
    instead = "logging in"
    secret_name = "password"
    logger = log

    def __init__(
        self, directory: Path, base_url: str, company: str, user: str, password: str, slot: int = 0
    ) -> None:
        identity = (base_url.rstrip("/"), company, user) + ((f"session {slot}",) if slot else ())
        super().__init__(directory, identity, password)

    def lock(self) -> FileLock:
        """A cross-process lock around login for this cache key."""
        return self.file_lock(LOCK_TIMEOUT)

    def load(self) -> SessionState | None:
        """Read the cached session, or ``None`` when absent, unreadable or from another password.

        The file's modification time is the last use by any process, so it raises ``last_used``.
        """
        loaded = self.read(SessionState.from_payload)
        if loaded is None:
            return None
        state, mtime = loaded
        state.last_used = max(state.last_used, mtime)
        state.touched = mtime
        for value in state.cookies.values():
            mask(value)
        return state

    def store(self, state: SessionState) -> None:
        """Write the session atomically (temporary file + rename), readable by the owner only."""
        # The file time is the shared last use (see load), so it must not claim "now".
        last_use = max(state.last_used, state.login_at)
        self.write(state.to_payload(), mtime=last_use)
        state.touched = last_use

    def touch(self, state: SessionState) -> None:
        """Publish a recent use to other processes, cheaply: the file's mtime, no re-encryption."""
        if self.set_mtime(state.last_used):
            state.touched = state.last_used

    def delete(self, only_if: SessionState | None = None) -> None:
        """Remove the cached session (``only_if``: only when it still holds that session)."""
        if only_if is not None:
            current = self.load()
            if current is None or current.session_id != only_if.session_id:
                return
        self.remove()


class SapSession(RenewingAuth[SessionState]):
    """The session of one hook, as a ``requests`` auth: log in on first use, share, renew, re-login once after 401.

    Attach it to the hook's ``requests.Session`` (``session.auth = sap_session``): every request
    then carries the session's cookies, a session about to reach its idle timeout is replaced
    before it is sent, and a request the server refuses with 401 and code 301 or -5002 is sent
    once more after the same locked, skip-if-refreshed login (see
    :class:`~airflow_provider_b1.utils.auth.RenewingAuth`). What is particular to SAP lives here:
    the shared encrypted cache, the cross-process login lock and the login itself.

    Thread-safe (a prefetching reader and the caller may use it at the same time).

    :param http: the ``requests.Session`` to log in and out with (keep-alive, TLS adapter mounted);
        usually the one this auth is attached to.
    :param base_url: Service Layer root ending in ``/``, e.g. ``https://h:50000/b1s/v2/``.
    :param company: company database.
    :param user: SAP user name.
    :param password: SAP password.
    :param language: optional SAP language code sent at login.
    :param timeout: requests timeout for the login call.
    :param retry_policy: retries of a login that failed on the way (connection, 502/503/504/429).
    :param cache_dir: shared cache directory; :func:`default_cache_dir` when ``None``.
    :param slot: which of the user's parallel sessions this is (see :class:`SessionCache`): the
        task processes of a worker share each slot's session, and slots never share one.
    """

    def __init__(
        self,
        http: requests.Session,
        base_url: str,
        company: str,
        user: str,
        password: str,
        *,
        language: int | None = None,
        timeout: Any = (10, 300),
        retry_policy: RetryPolicy | None = None,
        cache_dir: Path | str | None = None,
        slot: int = 0,
    ) -> None:
        super().__init__()
        self.http = http
        self.base_url = base_url
        self.company = company
        self.user = user
        self._password = password
        self.language = language
        self.timeout = timeout
        self.retry_policy = retry_policy or RetryPolicy()
        self.slot = slot
        self.cache = SessionCache(
            Path(cache_dir) if cache_dir else default_cache_dir(), base_url, company, user, password, slot
        )
        self.logins = 0
        """Logins this object performed (the others' sessions were taken from the cache)."""

    def __repr__(self) -> str:  # never show the password or a session id
        slot = f", slot={self.slot}" if self.slot else ""
        return f"SapSession(base_url={self.base_url!r}, company={self.company!r}, user={self.user!r}{slot})"

    # -- the RenewingAuth contract --------------------------------------------------------------

    def is_expired(self, credential: SessionState) -> bool:
        """Whether the session is within its safety margin of the idle timeout (see :meth:`SessionState.is_fresh`)."""
        return not credential.is_fresh(time.time())

    def obtain(self, stale: SessionState | None, *, refused: bool) -> SessionState:
        """Adopt the session another process shared, or log in, under the cross-process lock.

        :param stale: the session being replaced, if any.
        :param refused: the server refused ``stale``: it is never taken back from the cache.
        """
        # Fast path without the file lock: another process may already hold a good session.
        shared = self.cache.load()
        if shared is not None and self._usable(shared, stale, refused):
            return shared
        try:
            with self.cache.lock():
                # Re-read inside the lock: whoever held it before us may have just logged in.
                shared = self.cache.load()
                if shared is not None and self._usable(shared, stale, refused):
                    log.debug("Using the SAP session another task refreshed.")
                    return shared
                state = self._login()
                self.cache.store(state)
                return state
        except Timeout:
            error = SapB1LoginBusyError(
                f"Waited {LOCK_TIMEOUT:.0f} s for another task's SAP login to finish; check the Service Layer's "
                "login times and remove a stale lock file from the session cache directory if a worker died.",
            )
            # The wait took the whole login budget: the task's retries, not the hook's, try again.
            error.exhausted = True  # type: ignore[attr-defined]
            raise error from None

    def apply(self, request: requests.PreparedRequest, credential: SessionState) -> None:
        """Send the session's cookies (``B1SESSION`` and ``ROUTEID``, always together)."""
        request.headers["Cookie"] = credential.cookie_header()

    def is_refused(self, response: requests.Response) -> bool:
        """401 with code 301 or -5002 (numeric or string): "log in again"."""
        return is_session_expired(response)

    def same(self, first: SessionState, second: SessionState) -> bool:
        """Sessions are the same when their ``B1SESSION`` is."""
        return first.session_id == second.session_id

    def accepted(self, credential: SessionState, response: requests.Response) -> None:
        """A successful call slides the idle timeout (:meth:`mark_used`)."""
        if response.status_code < 400:
            self.mark_used(credential)

    # -- SAP's own --------------------------------------------------------------------------------

    def mark_used(self, state: SessionState) -> None:
        """Record a successful call: slides the idle timeout, shared at most every few seconds.

        :param state: the session the call carried.
        """
        now = time.time()
        state.last_used = now
        if now - state.touched >= TOUCH_INTERVAL:
            self.cache.touch(state)

    def logout(self) -> None:
        """End the session on the server and forget it everywhere (frees the user licence).

        Other processes that use the same session will log in again on their next call.
        """
        with self._lock:
            state = self._credential or self.cache.load()
            self._credential = None
            if state is None:
                return
            with contextlib.suppress(requests.RequestException):
                self.http.post(
                    self.base_url + "Logout",
                    headers={"Cookie": state.cookie_header()},
                    timeout=self.timeout,
                    auth=no_auth,
                )
            with self.cache.lock():
                self.cache.delete(only_if=state)

    # -- internals --------------------------------------------------------------------------

    @staticmethod
    def _usable(shared: SessionState, stale: SessionState | None, refused: bool) -> bool:
        if not shared.is_fresh(time.time()):
            return False
        # The session the server just refused is never taken back, however fresh it looks.
        return not (refused and stale is not None and shared.session_id == stale.session_id)

    def _login(self) -> SessionState:
        body: dict[str, Any] = {"CompanyDB": self.company, "UserName": self.user, "Password": self._password}
        if self.language is not None:
            body["Language"] = self.language
        url = self.base_url + "Login"
        started = time.monotonic()
        try:
            for attempt in self.retry_policy.retrying():
                with attempt:
                    try:
                        # The body is built here and never logged (requests/urllib3 do not log bodies).
                        response = self.http.post(url, json=body, timeout=self.timeout, auth=no_auth)
                    except requests.RequestException as exc:
                        # A repeated login is harmless (at worst an extra session): any drop is retried.
                        raise transport_error(
                            exc,
                            self.base_url,
                            method="POST",
                            sent=not never_sent(exc),
                            repeatable=True,
                            what="Login",
                        ) from None
                    # A refused login (wrong credentials, locked user) is a PermanentError and is
                    # not retried here: every attempt would count towards SAP's lock-out.
                    if response.status_code != 200:
                        raise login_error_from_response(response, self.company, self.user)
        except RetryableError as exc:
            # The login already spent the retry budget: the caller's retries must not multiply it.
            exc.exhausted = True  # type: ignore[attr-defined]
            raise
        self.logins += 1
        cookies = {name: value for name, value in response.cookies.items() if name in SESSION_COOKIES}
        try:
            document = response.json()
        except ValueError:
            document = {}
        session_id = document.get("SessionId")
        if "B1SESSION" not in cookies and session_id:
            cookies["B1SESSION"] = str(session_id)
        for value in (*cookies.values(), session_id):
            mask(value)
        if "B1SESSION" not in cookies:
            raise SapB1Error(
                "The Service Layer accepted the login but sent no B1SESSION cookie; check that the URL points "
                "at the Service Layer (…/b1s/v1/ or …/b1s/v2/) and not at a proxy that strips cookies.",
                status=response.status_code,
            )
        try:
            timeout_minutes = float(document.get("SessionTimeout") or 30)
        except (TypeError, ValueError):
            timeout_minutes = 30.0
        now = time.time()
        log.info(
            "Logged in to SAP Business One company %s as %s in %.1f s (idle timeout %g min).",
            self.company,
            self.user,
            time.monotonic() - started,
            timeout_minutes,
        )
        return SessionState(cookies=cookies, timeout=timeout_minutes * 60.0, login_at=now, last_used=now)
