"""Looker API 4.0: how the provider talks to Looker.

Everything about Looker's access tokens lives in :class:`LookerTokenAuth`, a
:class:`~airflow_provider_b1.utils.auth.RenewingAuth` (log in on first use, renew shortly before
``expires_in`` runs out, one re-send after a 401); :class:`LookerHook` knows
the endpoints this provider needs: datagroups (refresh dashboards after a warehouse load), PDT
rebuilds and inline queries. Errors are typed and name the cause and the fix in one sentence;
no client secret or access token ever reaches a log line or an exception message.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk import BaseHook

from airflow_provider_b1.connections import LOOKER, form_widgets, ui_field_behaviour
from airflow_provider_b1.exceptions import B1ProviderError, PermanentError, RetryableError
from airflow_provider_b1.utils.auth import RenewingAuth, no_auth
from airflow_provider_b1.utils.params import blank_to_none, parse_bool
from airflow_provider_b1.utils.retry import RetryPolicy, parse_retry_after
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.tls import TlsAdapter, is_transport_drop

if TYPE_CHECKING:
    from airflow.sdk import Connection

API_PREFIX = "/api/4.0"

#: PDT materialization states, as Looker reports them in ``resp_text``.
PDT_RUNNING_STATES = frozenset({"added", "pending", "running", "new"})
PDT_DONE_STATE = "complete"
PDT_FAILED_STATES = frozenset({"error", "killed", "unknown"})

#: Looker answers these with a JSON body ``{"message": ..., "documentation_url": ...}``.
_RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class LookerError(B1ProviderError):
    """A failure talking to Looker; ``status`` is the HTTP status when there was an answer.

    :param message: one sentence naming the cause and the fix.
    :param status: HTTP status of Looker's answer, if any.
    :param looker_message: Looker's own ``message`` field, if any.
    :param retry_after: seconds Looker asked us to wait (429), if it said so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        looker_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.looker_message = looker_message
        self.retry_after = retry_after


class LookerAuthError(LookerError, PermanentError):
    """Looker refused the client id / secret, or the token did not survive one fresh login."""


class LookerTLSError(LookerError, PermanentError):
    """The Looker certificate could not be verified (a connection dropped mid-TLS is :class:`LookerUnreachableError`)."""


class LookerUnreachableError(LookerError, RetryableError):
    """No answer from the Looker host (DNS, refused connection, reset, timeout)."""


class LookerRateLimitedError(LookerError, RetryableError):
    """Looker answered 429; ``retry_after`` holds its ``Retry-After`` when given."""


class LookerServerError(LookerError, RetryableError):
    """Looker answered 5xx."""


class LookerNotFoundError(LookerError):
    """Looker answered 404 for something other than the login."""


class LookerDatagroupNotFoundError(LookerNotFoundError):
    """The datagroup id (or model and name) is unknown to this Looker instance."""


class LookerValidationError(LookerError):
    """Looker rejected the request body or parameters (400/422)."""

    def __init__(self, message: str, *, errors: list[dict] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors = errors or []


class LookerPermissionError(LookerError, PermanentError):
    """The API user lacks the permission the call needs (403)."""


class LookerPdtBuildError(LookerError):
    """A PDT rebuild ended in ``error``, was killed, or its state is unknown.

    :param pdt_status: the last state Looker reported.
    """

    def __init__(self, message: str, *, pdt_status: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.pdt_status = pdt_status


class LookerTimeoutError(LookerError):
    """A PDT rebuild did not finish within the time the caller allowed."""


def _looker_message(response: requests.Response) -> tuple[str | None, list[dict]]:
    try:
        body = response.json()
    except ValueError:
        return None, []
    if not isinstance(body, dict):
        return None, []
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    return body.get("message"), errors


def _error_for(response: requests.Response, *, what: str) -> LookerError:
    """Turn a non-2xx answer into the matching typed error; ``what`` names the call for the message."""
    status = response.status_code
    looker_message, errors = _looker_message(response)
    said = f": {looker_message}" if looker_message else ""
    if status == 429:
        wait = parse_retry_after(response.headers.get("Retry-After"))
        return LookerRateLimitedError(
            f"Looker rate-limited {what} (HTTP 429); it is retried after "
            f"{'the Retry-After of ' + format(wait, 'g') + ' s' if wait is not None else 'a backoff'}.",
            status=status,
            looker_message=looker_message,
            retry_after=wait,
        )
    if status in _RETRYABLE_STATUSES:
        return LookerServerError(
            f"Looker failed on {what} (HTTP {status}{said}); it is retried, and if it persists check "
            "the instance's health page.",
            status=status,
            looker_message=looker_message,
        )
    if status == 401:
        return LookerAuthError(
            f"Looker rejected the access token on {what} even after a fresh login (HTTP 401); "
            "check that the API user is not disabled.",
            status=status,
            looker_message=looker_message,
        )
    if status == 403:
        return LookerPermissionError(
            f"The Looker API user may not {what} (HTTP 403{said}); give its role the needed permission.",
            status=status,
            looker_message=looker_message,
        )
    if status == 404:
        return LookerNotFoundError(
            f"Looker does not know the target of {what} (HTTP 404); check the id or name.",
            status=status,
            looker_message=looker_message,
        )
    if status in (400, 422):
        details = "; ".join(
            f"{e.get('field', '?')}: {e.get('message') or e.get('code')}"
            for e in errors
            if isinstance(e, dict)
        )
        return LookerValidationError(
            f"Looker rejected {what} (HTTP {status}{said}{' - ' + details if details else ''}); "
            "correct the request values.",
            status=status,
            looker_message=looker_message,
            errors=errors,
        )
    return LookerError(
        f"Looker answered HTTP {status} to {what}{said}.", status=status, looker_message=looker_message
    )


@contextlib.contextmanager
def _transport_errors(base_url: str, *, what: str) -> Iterator[None]:
    """Map ``requests`` transport failures to typed errors with a one-sentence cause and fix."""
    try:
        yield
    except requests.exceptions.SSLError as exc:
        if is_transport_drop(exc):
            # EOF or reset in the middle of TLS: the network, not the certificate.
            raise LookerUnreachableError(
                f"The connection to Looker at {base_url} broke during {what} ({exc.__class__.__name__}); "
                "it is retried, and if it persists check the network."
            ) from exc
        raise LookerTLSError(
            f"The TLS certificate of {base_url} could not be verified during {what}; set the connection's "
            "CA bundle to the PEM that signs it (verify_tls off only for a throwaway instance)."
        ) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise LookerUnreachableError(
            f"Looker at {base_url} did not answer {what} ({exc.__class__.__name__}); check the connection's "
            "host and port (API port is 443 on Looker-hosted instances, 19999 on older ones) and the network."
        ) from exc


# --------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------


class LookerTokenAuth(RenewingAuth[str]):
    """Looker API 4.0 access token: obtained on first use, renewed before it expires, re-sent once after 401.

    Attach it to requests (``session.get(url, auth=auth)``). Thread-safe: concurrent callers
    share one login, and a caller that saw a 401 does not log in again when another caller
    has already replaced the token (see :class:`~airflow_provider_b1.utils.auth.RenewingAuth`).

    :param base_url: Looker API root, e.g. ``https://company.looker.com`` (without ``/api/4.0``).
    :param client_id: API key client id.
    :param client_secret: API key client secret.
    :param session: the ``requests.Session`` used for login and logout (its TLS settings apply).
    :param timeout: ``(connect, read)`` timeout of login and logout.
    :param margin: seconds before ``expires_in`` runs out at which the token counts as expired.
    :param clock: monotonic clock, replaceable in tests.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        session: requests.Session,
        timeout: float | tuple[float, float] = (10, 60),
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._session = session
        self._timeout = timeout
        self.margin = margin
        self._clock = clock
        self._expires_at = 0.0
        #: Logins performed by this object (observability and tests).
        self.login_count = 0

    def __repr__(self) -> str:  # never show the secret or the token
        return f"LookerTokenAuth(base_url={self.base_url!r}, client_id={self._client_id!r})"

    @property
    def expires_at(self) -> float:
        """Monotonic-clock moment at which the token runs out (0 when there is none)."""
        return self._expires_at if self.held is not None else 0.0

    def is_token_expired(self) -> bool:
        """Whether the token is missing or within ``margin`` seconds of its end."""
        token = self.held
        return token is None or self.is_expired(token)

    def is_expired(self, credential: str) -> bool:
        """Whether the token is within ``margin`` seconds of its end."""
        return self._clock() >= self._expires_at - self.margin

    def obtain(self, stale: str | None, *, refused: bool) -> str:
        """Log in (``POST /api/4.0/login``) and return the new token."""
        what = "the login"
        with _transport_errors(self.base_url, what=what):
            started = self._clock()
            response = self._session.post(
                f"{self.base_url}{API_PREFIX}/login",
                data={"client_id": self._client_id, "client_secret": self._client_secret},
                timeout=self._timeout,
                auth=no_auth,
            )
        if response.status_code in (401, 403, 404):
            # Looker answers 404 "Not found" to a wrong client id or secret.
            raise LookerAuthError(
                f"Looker at {self.base_url} refused the client id/secret (HTTP {response.status_code}); "
                "put a valid API key pair (Admin > Users > Edit Keys) in the connection's Client ID and "
                "Client secret, and give the instance URL without /api/4.0.",
                status=response.status_code,
            )
        if not response.ok:
            raise _error_for(response, what=what)
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError) as exc:
            raise LookerError(
                f"Looker at {self.base_url} answered the login without an access token; check that the "
                "host is the Looker API URL."
            ) from exc
        mask(token)
        # Measured from before the request, so network time only makes us renew earlier.
        self._expires_at = started + expires_in
        self.login_count += 1
        return token

    def apply(self, request: requests.PreparedRequest, credential: str) -> None:
        """``Authorization: token <access token>``."""
        request.headers["Authorization"] = f"token {credential}"

    def token(self) -> str:
        """Return a token valid for at least ``margin`` more seconds, logging in if needed."""
        return self.current()

    def logout(self) -> None:
        """Revoke the token (``DELETE /api/4.0/logout``) if there is one; failures are ignored."""
        with self._lock:
            token, self._credential = self._credential, None
        if token is None:
            return
        with contextlib.suppress(requests.exceptions.RequestException):
            self._session.delete(
                f"{self.base_url}{API_PREFIX}/logout",
                headers={"Authorization": f"token {token}"},
                timeout=self._timeout,
                auth=no_auth,
            )


# --------------------------------------------------------------------------------------------
# Hook
# --------------------------------------------------------------------------------------------


class LookerHook(BaseHook):
    """Talk to the Looker API 4.0: datagroups, PDT rebuilds, inline queries.

    Connection: host = Looker API URL (``https://company.looker.com``, with ``:19999`` on older
    instances, or the port field), login = client id, password = client secret; extras
    ``verify_tls`` (default true) and ``ca_bundle``.

    :param looker_conn_id: Airflow connection id of type ``looker_api``.
    :param retry_policy: retries of 429, 5xx and connection errors (default :class:`RetryPolicy`).
    :param timeout: ``(connect, read)`` seconds per request.
    :param token_margin: renew the token this many seconds before Looker's ``expires_in`` ends.
    :param connection: an already fetched Connection (triggers fetch it asynchronously); by
        default it is looked up by ``looker_conn_id``.
    """

    conn_name_attr = "looker_conn_id"
    default_conn_name = "looker_default"
    conn_type = "looker_api"
    hook_name = "Looker API 4.0"

    def __init__(
        self,
        looker_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10, 120),
        token_margin: float = 60.0,
        connection: Connection | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.looker_conn_id = looker_conn_id
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeout = timeout
        self.token_margin = token_margin
        self._connection = connection

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra connection form fields (Airflow 3.1; 3.2+ reads provider info)."""
        return form_widgets(LOOKER)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled and hidden connection form fields (Airflow 3.1; 3.2+ reads provider info)."""
        return ui_field_behaviour(LOOKER)

    # ---- connection and transport, built once -----------------------------------------------

    @cached_property
    def connection(self) -> Connection:
        """The Airflow connection this hook uses."""
        return self._connection or self.get_connection(self.looker_conn_id)

    @cached_property
    def base_url(self) -> str:
        """Looker API root without ``/api/4.0`` and without a trailing slash."""
        conn = self.connection
        host = (conn.host or "").strip()
        if not host:
            raise LookerError(
                f"Connection {self.looker_conn_id!r} has no host; set it to the Looker API URL, "
                "e.g. https://company.looker.com."
            )
        if "://" not in host:
            host = f"https://{host}"
        host = host.rstrip("/")
        for suffix in (API_PREFIX, "/api"):
            if host.endswith(suffix):
                host = host[: -len(suffix)]
        if conn.port and host.count(":") < 2:
            host = f"{host}:{conn.port}"
        return host

    @cached_property
    def session(self) -> requests.Session:
        """The HTTP session, with TLS verification set from the connection extras."""
        extras = self.connection.extra_dejson or {}
        session = requests.Session()
        session.headers["Accept"] = "application/json"
        session.headers["User-Agent"] = "airflow-provider-b1 looker"
        verify_tls = parse_bool(extras.get("verify_tls"), default=True, name="verify_tls")
        # The adapter owns the trust decision (REQUESTS_CA_BUNDLE cannot override it) and
        # warns when verification is switched off.
        adapter = TlsAdapter(verify=verify_tls, ca_bundle=blank_to_none(extras.get("ca_bundle")))
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @cached_property
    def auth(self) -> LookerTokenAuth:
        """The access-token object: one login per hook, renewed before it runs out."""
        conn = self.connection
        client_id = (blank_to_none(conn.login) or "").strip()
        client_secret = blank_to_none(conn.password) or ""
        if not client_id or not client_secret:
            raise LookerAuthError(
                f"Connection {self.looker_conn_id!r} lacks the client id or client secret; fill both from an "
                "API key pair (Admin > Users > Edit Keys)."
            )
        mask(client_secret)
        return LookerTokenAuth(
            self.base_url,
            client_id,
            client_secret,
            session=self.session,
            timeout=self.timeout,
            margin=self.token_margin,
        )

    def close(self) -> None:
        """Log out and close the HTTP session."""
        if "auth" in self.__dict__:
            self.auth.logout()
        if "session" in self.__dict__:
            self.session.close()

    # ---- requests -------------------------------------------------------------------------

    def _send_once(self, method: str, path: str, *, what: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{API_PREFIX}/{path.lstrip('/')}"
        with _transport_errors(self.base_url, what=what):
            response = self.session.request(method, url, auth=self.auth, timeout=self.timeout, **kwargs)
        if not response.ok:
            raise _error_for(response, what=what)
        return response

    def request(self, method: str, path: str, *, what: str | None = None, **kwargs: Any) -> requests.Response:
        """Send one API call under the retry policy and return the successful response.

        :param method: HTTP method.
        :param path: path below ``/api/4.0``, e.g. ``datagroups/12``.
        :param what: words naming the call in error messages (default ``"METHOD path"``).
        :param kwargs: passed to :meth:`requests.Session.request` (``params``, ``json``, ...).
        """
        what = what or f"{method.upper()} {path}"
        for attempt in self.retry_policy.retrying():
            with attempt:
                return self._send_once(method, path, what=what, **kwargs)
        raise AssertionError("unreachable: the retry policy re-raises")  # pragma: no cover

    def login(self) -> None:
        """Make sure a valid token is held (logs in when there is none or it is about to expire)."""
        for attempt in self.retry_policy.retrying():
            with attempt:
                self.auth.token()

    def logout(self) -> None:
        """Revoke the held token, if any."""
        self.auth.logout()

    # ---- datagroups -----------------------------------------------------------------------

    def get_datagroups(self) -> list[dict]:
        """Return every datagroup of the instance (``GET /datagroups``)."""
        return self.request("GET", "datagroups", what="listing datagroups").json()

    def get_datagroup(self, datagroup_id: str | int) -> dict:
        """Return one datagroup.

        :param datagroup_id: Looker's datagroup id.
        """
        return self._datagroup_call("GET", datagroup_id, what="reading datagroup")

    def find_datagroup(self, model: str, name: str) -> dict:
        """Return the datagroup ``name`` of LookML model ``model``.

        :param model: LookML model name.
        :param name: datagroup name as written in the model file.
        """
        for group in self.get_datagroups():
            if group.get("model_name") == model and group.get("name") == name:
                return group
        raise LookerDatagroupNotFoundError(
            f"Looker has no datagroup {name!r} in model {model!r}; deploy the LookML project to production "
            "or correct the model and datagroup names."
        )

    def resolve_datagroup_id(self, ref: str | int) -> str:
        """Turn ``"42"`` or ``"model::datagroup_name"`` into a datagroup id.

        :param ref: a datagroup id, or a model and datagroup name joined by ``::``.
        """
        text = str(ref).strip()
        if "::" in text:
            model, _, name = text.partition("::")
            return str(self.find_datagroup(model.strip(), name.strip())["id"])
        return text

    def trigger_datagroup(self, datagroup_id: str | int, *, when: datetime | float | None = None) -> dict:
        """Mark a datagroup as triggered so caches and PDTs built on it are rebuilt.

        Sends ``triggered_at`` as whole Unix seconds: now by default, never a moment in the future.

        :param datagroup_id: Looker's datagroup id.
        :param when: moment of the trigger (datetime or Unix seconds); clamped to now.
        :return: the updated datagroup.
        """
        return self._set_datagroup_time(datagroup_id, "triggered_at", when)

    def set_datagroup_stale_before(
        self, datagroup_id: str | int, when: datetime | float | None = None
    ) -> dict:
        """Mark every cache entry of a datagroup built before ``when`` as stale.

        :param datagroup_id: Looker's datagroup id.
        :param when: cut-off (datetime or Unix seconds); now by default, clamped to now.
        :return: the updated datagroup.
        """
        return self._set_datagroup_time(datagroup_id, "stale_before", when)

    def _set_datagroup_time(self, datagroup_id: str | int, field: str, when: datetime | float | None) -> dict:
        now = time.time()
        moment = now if when is None else (when.timestamp() if isinstance(when, datetime) else float(when))
        if moment > now:
            self.log.warning("Datagroup %s: %s in the future is not allowed; using now.", datagroup_id, field)
            moment = now
        value = int(moment)
        try:
            result = self._datagroup_call(
                "PATCH", datagroup_id, what=f"setting {field} of", json={field: value}
            )
        except LookerValidationError as exc:
            # Our clock may run ahead of Looker's: "now" is then in Looker's future. Retry once,
            # a few seconds earlier, rather than fail a whole load over clock skew.
            if not any(e.get("field") == field for e in exc.errors):
                raise
            value -= 5
            result = self._datagroup_call(
                "PATCH", datagroup_id, what=f"setting {field} of", json={field: value}
            )
        self.log.info("Looker datagroup %s: %s set to %s.", datagroup_id, field, value)
        return result

    def _datagroup_call(self, method: str, datagroup_id: str | int, *, what: str, **kwargs: Any) -> dict:
        try:
            return self.request(
                method, f"datagroups/{datagroup_id}", what=f"{what} datagroup", **kwargs
            ).json()
        except LookerNotFoundError as exc:
            raise LookerDatagroupNotFoundError(
                f"Looker has no datagroup with id {datagroup_id!r} (HTTP 404); list them with GET "
                "/api/4.0/datagroups (or pass model::name) and correct the id.",
                status=exc.status,
            ) from exc

    # ---- persistent derived tables ----------------------------------------------------------

    def start_pdt_build(
        self,
        model: str,
        view: str,
        force_rebuild: bool = True,
        *,
        force_full_incremental: bool | None = None,
        workspace: str | None = None,
        source: str | None = "airflow",
    ) -> str:
        """Start rebuilding a persistent derived table and return its materialization id.

        :param model: LookML model of the PDT.
        :param view: view (PDT) name.
        :param force_rebuild: rebuild even when Looker thinks the table is current.
        :param force_full_incremental: rebuild an incremental PDT completely.
        :param workspace: ``production`` (default on Looker's side) or ``dev``.
        :param source: caller name recorded by Looker.
        """
        params: dict[str, str] = {"force_rebuild": str(bool(force_rebuild)).lower()}
        if force_full_incremental is not None:
            params["force_full_incremental"] = str(bool(force_full_incremental)).lower()
        if workspace:
            params["workspace"] = workspace
        if source:
            params["source"] = source
        try:
            body = self.request(
                "GET", f"derived_table/{model}/{view}/start", params=params, what="starting the PDT build"
            ).json()
        except LookerNotFoundError as exc:
            raise LookerNotFoundError(
                f"Looker has no persistent derived table {view!r} in model {model!r} (HTTP 404); check the "
                "names and that the LookML is deployed to production.",
                status=exc.status,
            ) from exc
        materialization_id = str(body["materialization_id"])
        self.log.info("Looker PDT %s.%s: build started, materialization %s.", model, view, materialization_id)
        return materialization_id

    def pdt_build_status(self, materialization_id: str) -> dict:
        """Return ``{"materialization_id", "status", "message"}`` of a PDT build.

        ``status`` is one of ``added``, ``pending``, ``running``, ``complete``, ``error``,
        ``killed``, ``unknown``. Looker nests it as JSON text in ``resp_text``; a top-level
        ``status`` is read too.

        :param materialization_id: id returned by :meth:`start_pdt_build`.
        """
        body = self.request(
            "GET", f"derived_table/{materialization_id}/status", what="reading the PDT build status"
        ).json()
        return parse_pdt_status(materialization_id, body)

    def stop_pdt_build(self, materialization_id: str) -> dict:
        """Ask Looker to stop a PDT build.

        :param materialization_id: id returned by :meth:`start_pdt_build`.
        """
        body = self.request(
            "GET",
            f"derived_table/{materialization_id}/stop",
            params={"source": "airflow"},
            what="stopping the PDT build",
        ).json()
        return parse_pdt_status(materialization_id, body)

    def wait_for_pdt_build(
        self,
        materialization_id: str,
        *,
        poll_interval: float = 10.0,
        timeout: float | None = None,
        stop_on_timeout: bool = True,
    ) -> dict:
        """Poll a PDT build until it completes; return its last status.

        :param materialization_id: id returned by :meth:`start_pdt_build`.
        :param poll_interval: seconds between polls.
        :param timeout: seconds to wait in all (``None``: no limit).
        :param stop_on_timeout: ask Looker to stop the build when ``timeout`` is reached.
        :raises LookerPdtBuildError: the build ended in ``error``, ``killed`` or ``unknown``.
        :raises LookerTimeoutError: ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            status = self.pdt_build_status(materialization_id)
            check_pdt_status(status)
            if status["status"] == PDT_DONE_STATE:
                self.log.info("Looker PDT materialization %s complete.", materialization_id)
                return status
            if deadline is not None and time.monotonic() >= deadline:
                if stop_on_timeout:
                    with contextlib.suppress(LookerError):
                        self.stop_pdt_build(materialization_id)
                raise LookerTimeoutError(
                    f"Looker PDT materialization {materialization_id} was still {status['status']!r} after "
                    f"{timeout:g} s; raise the timeout or look at the PDT's build log in Looker."
                )
            time.sleep(poll_interval)

    # ---- queries --------------------------------------------------------------------------

    def run_inline_query(
        self,
        model: str,
        view: str,
        fields: list[str],
        *,
        filters: dict[str, str] | None = None,
        sorts: list[str] | None = None,
        limit: int | None = None,
        result_format: str = "json",
    ) -> Any:
        """Run an inline query (``POST /queries/run/{result_format}``) and return its result.

        :param model: LookML model.
        :param view: explore name.
        :param fields: fields as ``view.field``.
        :param filters: ``{field: Looker filter expression}``.
        :param sorts: e.g. ``["fact_sales_invoice_line.total_revenue desc"]``.
        :param limit: maximum rows (Looker's default is 500).
        :param result_format: ``json`` (parsed rows) or another Looker format (returned as text).
        """
        body: dict[str, Any] = {"model": model, "view": view, "fields": list(fields)}
        if filters:
            body["filters"] = filters
        if sorts:
            body["sorts"] = list(sorts)
        if limit is not None:
            body["limit"] = str(limit)
        response = self.request("POST", f"queries/run/{result_format}", json=body, what="running the query")
        return response.json() if result_format == "json" else response.text

    # ---- UI -------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Log in and read the API user: the connection form's Test button."""
        try:
            me = self.request(
                "GET", "user", params={"fields": "id,display_name,email"}, what="reading the API user"
            )
            user = me.json()
        except B1ProviderError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"Unexpected {exc.__class__.__name__} talking to Looker: {exc}"
        name = user.get("display_name") or user.get("email") or user.get("id")
        return True, f"Connected to Looker API 4.0 at {self.base_url} as {name}."


def parse_pdt_status(materialization_id: str, body: Any) -> dict:
    """Normalise Looker's PDT status answer to ``{"materialization_id", "status", "message"}``.

    :param materialization_id: the build's id, used when the answer lacks it.
    :param body: the decoded answer of the status, start or stop call.
    """
    inner: Any = body.get("resp_text") if isinstance(body, dict) else None
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except ValueError:
            inner = {"status": "unknown", "message": inner}
    if not isinstance(inner, dict) or "status" not in inner:
        inner = body if isinstance(body, dict) and "status" in body else {"status": "unknown"}
    return {
        "materialization_id": str((body or {}).get("materialization_id") or materialization_id),
        "status": str(inner.get("status") or "unknown").lower(),
        "message": inner.get("message"),
    }


def check_pdt_status(status: dict) -> None:
    """Raise :class:`LookerPdtBuildError` when a parsed PDT status is a failure.

    :param status: a dict from :func:`parse_pdt_status`.
    """
    state = status["status"]
    if state in PDT_FAILED_STATES:
        detail = f": {status['message']}" if status.get("message") else ""
        raise LookerPdtBuildError(
            f"Looker PDT materialization {status['materialization_id']} ended {state!r}{detail}; fix the "
            "derived table's SQL or its connection in Looker and rebuild.",
            pdt_status=state,
        )
