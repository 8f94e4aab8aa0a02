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
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import requests
import requests.auth

log = logging.getLogger(__name__)

C = TypeVar("C")

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
