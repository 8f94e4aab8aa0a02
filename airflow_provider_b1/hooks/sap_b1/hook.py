"""The SAP Business One Service Layer hook: settings, HTTP client, transport and public API.

The protocol facts it relies on are in the Service Layer documentation: OData v3 (``/b1s/v1``)
and v4 (``/b1s/v2``) flavours, next links followed as given, ``Prefer: odata.maxpagesize``,
``UpdateDate`` / ``UpdateTime`` in the server's local time zone, no idempotency key on POST.
Each concern has its own module in this package: entities, literals, errors, ``$batch``
framing, sessions, reads and writes; this one puts them together.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
import tenacity
from airflow.sdk import BaseHook

from airflow_provider_b1.connections import SAP_B1, form_widgets, ui_field_behaviour
from airflow_provider_b1.exceptions import RetryableError
from airflow_provider_b1.hooks.sap_b1.entities import ENTITIES, TEST_AREAS
from airflow_provider_b1.hooks.sap_b1.errors import (
    SapB1Error,
    SapB1NotFoundError,
    SapB1PermissionError,
    SapB1RequestTooLongError,
    error_from_response,
    transport_error,
)
from airflow_provider_b1.hooks.sap_b1.literals import (
    MAX_REQUEST_LINE,
    query_string,
    quote_target,
    request_line_length,
)
from airflow_provider_b1.hooks.sap_b1.reads import SapB1Reads, decode_json
from airflow_provider_b1.hooks.sap_b1.session import SapSession
from airflow_provider_b1.hooks.sap_b1.webhooks import SapB1Webhooks
from airflow_provider_b1.hooks.sap_b1.writes import SapB1Writes
from airflow_provider_b1.utils.params import blank_to_none, parse_bool
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.tls import TlsAdapter, never_sent

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 500
"""Records per page unless the connection or the caller says otherwise (the server's own is 20)."""
#: SAP sessions a partitioned load holds at once unless the connection says (each holds a licence).
DEFAULT_MAX_SESSIONS = 4


@dataclass(frozen=True)
class _Settings:
    base_url: str
    api_version: str
    company: str
    user: str
    password: str = field(repr=False)
    verify: bool
    ca_bundle: str | None
    fingerprint: str | None
    page_size: int
    timezone: str
    language: int | None
    max_sessions: int


class SapB1Hook(SapB1Reads, SapB1Writes, SapB1Webhooks, BaseHook):
    """Talk to the SAP Business One Service Layer.

    Connection: ``host`` is the Service Layer URL (``https://h:50000/b1s/v2/``, trailing slash
    optional; ``https://h:50000`` alone uses the ``api_version`` extra, default v2), ``schema``
    the company database, ``login``/``password`` the SAP user. Extras: ``api_version``,
    ``verify_tls``, ``ca_bundle``, ``cert_fingerprint``, ``page_size``, ``timezone``,
    ``language``, ``max_sessions`` (the SAP sessions, each holding a licence, that a partitioned
    load may hold at once; default 4).

    Every call logs in on first use (one session shared by the worker's task processes; see
    :class:`~airflow_provider_b1.hooks.sap_b1.session.SapSession`), is retried under
    ``retry_policy`` when that is safe (reads; never a write that may have reached SAP), and
    fails with a typed :class:`~airflow_provider_b1.hooks.sap_b1.errors.SapB1Error` that names
    the cause and the fix.

    :param sap_b1_conn_id: Airflow connection id.
    :param page_size: records per page (overrides the ``page_size`` extra; default 500).
    :param retry_policy: retries of what may succeed later; :class:`RetryPolicy` default.
    :param timeout: requests timeout ``(connect, read)`` in seconds.
    :param session_cache_dir: directory of the shared session cache (default: env
        ``B1_SESSION_CACHE_DIR``, else ``$AIRFLOW_HOME/b1_sessions``).
    :param prefetch: fetch the next page in a background thread while the caller handles the
        current one (at most one page ahead), for every read of this hook that does not say
        otherwise. Off by default, so a read starts no thread unless asked: a bulk read whose
        caller does real work per page (decoding wide records, loading a warehouse) passes
        ``prefetch=True`` to overlap that work with the server's next answer.
    :param session_slot: which of the user's SAP sessions this hook uses: 0, the default, is
        shared by every task process of the worker; :meth:`with_session` gives writers working
        side by side one each (every session holds a licence).
    """

    conn_name_attr = "sap_b1_conn_id"
    default_conn_name = "sap_b1_default"
    conn_type = "sap_b1"
    hook_name = "SAP Business One Service Layer"

    def __init__(
        self,
        sap_b1_conn_id: str = default_conn_name,
        *,
        page_size: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10, 300),
        session_cache_dir: str | None = None,
        prefetch: bool = False,
        session_slot: int = 0,
    ) -> None:
        super().__init__()
        self.sap_b1_conn_id = sap_b1_conn_id
        self._page_size = page_size
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeout = timeout
        self.session_cache_dir = session_cache_dir
        self.prefetch = prefetch
        if session_slot < 0:
            raise ValueError(f"session_slot must be 0 or more, not {session_slot}")
        self.session_slot = session_slot

    def with_session(self, slot: int) -> SapB1Hook:
        """The same connection on another of the user's SAP sessions (``slot``), for a writer
        working beside this hook: a session serves one request at a time, so SAP's throughput
        comes from several (PROTOCOLS.md). The connection is not read again."""
        other = type(self)(
            self.sap_b1_conn_id,
            page_size=self._page_size,
            retry_policy=self.retry_policy,
            timeout=self.timeout,
            session_cache_dir=self.session_cache_dir,
            prefetch=self.prefetch,
            session_slot=slot,
        )
        if "settings" in self.__dict__:
            other.__dict__["settings"] = self.settings
        return other

    # -- Airflow UI ---------------------------------------------------------------------------

    @staticmethod
    def get_connection_form_widgets() -> dict[str, Any]:
        """Extra fields of the connection form (Airflow 3.1; 3.2+ reads provider info)."""
        return form_widgets(SAP_B1)

    @staticmethod
    def get_ui_field_behaviour() -> dict[str, Any]:
        """Relabelled / hidden standard fields of the connection form."""
        return ui_field_behaviour(SAP_B1)

    # -- configuration ------------------------------------------------------------------------

    @cached_property
    def settings(self) -> _Settings:
        """The connection, read once and normalised (blank fields are ``None``).

        :raises ValueError: for a missing URL, company or user, or an extra that cannot be read
            (e.g. ``verify_tls`` that is neither true nor false).
        """
        conn = self.get_connection(self.sap_b1_conn_id)
        extra = {k: blank_to_none(v) for k, v in (conn.extra_dejson or {}).items()}
        host = blank_to_none(conn.host)
        if not host:
            raise ValueError(f"Connection {self.sap_b1_conn_id!r} has no Service Layer URL (host).")
        company = blank_to_none(conn.schema)
        user = blank_to_none(conn.login)
        password = conn.password or ""
        if not company or not user:
            raise ValueError(
                f"Connection {self.sap_b1_conn_id!r} needs the company database (schema) and the user (login)."
            )
        base_url, api_version = self._service_root(host, conn.port, extra.get("api_version"))
        page_size = self._page_size or extra.get("page_size") or DEFAULT_PAGE_SIZE
        language = extra.get("language")
        max_sessions = extra.get("max_sessions") or DEFAULT_MAX_SESSIONS
        try:
            max_sessions = int(max_sessions)
        except (TypeError, ValueError):
            max_sessions = 0
        if max_sessions < 1:
            raise ValueError(
                f"Connection {self.sap_b1_conn_id!r}: max_sessions must be a whole number of sessions, 1 or more, "
                f"not {extra.get('max_sessions')!r}."
            )
        return _Settings(
            base_url=base_url,
            api_version=api_version,
            company=str(company),
            user=str(user),
            password=password,
            verify=parse_bool(extra.get("verify_tls"), default=True, name="verify_tls"),
            ca_bundle=extra.get("ca_bundle"),
            fingerprint=extra.get("cert_fingerprint"),
            page_size=int(page_size),
            timezone=str(extra.get("timezone") or "UTC"),
            language=int(language) if language is not None else None,
            max_sessions=max_sessions,
        )

    @staticmethod
    def _service_root(host: str, port: int | None, api_version: str | None) -> tuple[str, str]:
        """``(https://h:50000/b1s/v2/, "v2")`` from what the user typed."""
        url = host.strip()
        if "://" not in url:
            url = "https://" + url
        parts = urlsplit(url)
        netloc = parts.netloc
        if port and parts.port is None:
            netloc = f"{netloc}:{port}"
        path = parts.path.rstrip("/")
        segments = path.split("/")
        wanted = (api_version or "").strip().lower() or None
        if wanted not in (None, "v1", "v2"):
            raise ValueError(f"api_version must be 'v1' or 'v2', not {api_version!r}.")
        if len(segments) >= 2 and segments[-2] == "b1s" and segments[-1] in ("v1", "v2"):
            if wanted and wanted != segments[-1]:
                raise ValueError(
                    f"The Service Layer URL says {segments[-1]} but the api_version extra says {wanted}; "
                    "make them agree (or leave api_version empty)."
                )
            version = segments[-1]
        else:
            version = wanted or "v2"
            if not path.endswith("/b1s"):
                path = f"{path}/b1s"
            path = f"{path}/{version}"
        return urlunsplit((parts.scheme, netloc, path + "/", "", "")), version

    @property
    def base_url(self) -> str:
        """Service root, ending in ``/``."""
        return self.settings.base_url

    @property
    def api_version(self) -> str:
        """``"v1"`` or ``"v2"``."""
        return self.settings.api_version

    @property
    def max_sessions(self) -> int:
        """SAP sessions (each holding a licence) a partitioned load may hold at once: the
        ``max_sessions`` extra, default :data:`DEFAULT_MAX_SESSIONS`."""
        return self.settings.max_sessions

    @property
    def page_size(self) -> int:
        """Records per page unless a read says otherwise."""
        return self.settings.page_size

    @cached_property
    def server_tz(self) -> ZoneInfo:
        """The SAP server's time zone (extra ``timezone``, default UTC)."""
        return ZoneInfo(self.settings.timezone)

    # -- HTTP client and session ---------------------------------------------------------------

    @cached_property
    def client(self) -> requests.Session:
        """The one ``requests.Session`` of this hook: keep-alive, TLS decision mounted, SAP session attached."""
        settings = self.settings
        session = requests.Session()
        adapter = TlsAdapter(
            verify=settings.verify, ca_bundle=settings.ca_bundle, fingerprint=settings.fingerprint
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # The session's cookies are sent by its auth (SapSession); a jar that accepts nothing
        # keeps requests from replaying a stale cookie next to the current one.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-b1"})
        # Proxies from the environment still apply; with an auth attached, a .netrc adds nothing.
        session.trust_env = True
        session.auth = SapSession(
            session,
            settings.base_url,
            settings.company,
            settings.user,
            settings.password,
            language=settings.language,
            timeout=self.timeout,
            retry_policy=self.retry_policy,
            cache_dir=self.session_cache_dir,
            slot=self.session_slot,
        )
        return session

    @property
    def sap_session(self) -> SapSession:
        """The SAP session (login on first use, shared with other task processes), the client's auth."""
        auth = self.client.auth
        assert isinstance(auth, SapSession)
        return auth

    def get_conn(self) -> requests.Session:
        """The configured ``requests.Session``, for calls the hook's methods do not cover.

        It carries the connection's TLS decision and the SAP session as its auth: every request
        logs in when needed, sends the session cookies and, when SAP answers that the session
        expired, logs in again and repeats the request once. It does not retry, map errors or
        quote URLs: prefer :meth:`request`, which does::

            hook.get_conn().get(hook.base_url + "Items?$top=1", timeout=hook.timeout)
        """
        return self.client

    def close(self) -> None:
        """Close the HTTP client and its kept-alive connections.

        The SAP session stays alive: other task processes share it. :meth:`logout` ends it.
        """
        client = self.__dict__.get("client")
        if client is not None:
            client.close()

    # -- transport ----------------------------------------------------------------------------

    def _url(self, target: str, params: dict[str, Any] | None = None) -> str:
        if "://" in target or target.startswith("/"):
            url = urljoin(self.base_url, target)
        else:
            url = self.base_url + quote_target(target)
        if params:
            url += ("&" if "?" in url else "?") + query_string(params)
        return url

    def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        repeatable: bool,
    ) -> requests.Response:
        """One call; the session's auth logs in, and logs in again once when the session was refused.

        Errors name the verb that was sent; ``repeatable`` only decides whether a failure after
        sending is ambiguous (a write that may have happened) or worth retrying.
        """
        try:
            response = self.client.request(method, url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            sent = not never_sent(exc)
            log.debug("%s %s failed in transport: %s", method, what, type(exc).__name__)
            raise transport_error(
                exc, self.base_url, method=method, sent=sent, repeatable=repeatable, what=what
            ) from None
        if response.status_code >= 400:
            raise error_from_response(response, what, method=method, repeatable=repeatable)
        return response

    def _call(
        self,
        method: str,
        target: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        what: str | None = None,
        repeatable: bool | None = None,
    ) -> requests.Response:
        """A call under the retry policy.

        The retries cover what may succeed later: connection failures, 429/502/503/504, and a
        session SAP refuses again right after a fresh login (sent again with a new session; SAP
        refused it before doing anything, so even a write may be). A refused login is never
        retried: every retry would count towards SAP's lock-out of the user.

        :param repeatable: whether the call may be sent again after it may have reached the
            server (GETs: yes; POSTs: never; PATCH: when it cannot add anything twice).
        :raises SapB1RequestTooLongError: before sending, when the request line would be longer
            than the Service Layer's web server accepts (:data:`MAX_REQUEST_LINE`).
        """
        method = method.upper()
        repeatable = method in ("GET", "HEAD") if repeatable is None else repeatable
        url = self._url(target, params)
        what = what or target.split("?", 1)[0]
        length = request_line_length(method, url)
        if length > MAX_REQUEST_LINE:
            raise SapB1RequestTooLongError(
                f"{method} {what} was not sent: its request line would take {length:,} bytes once "
                f"percent-encoded, more than the {MAX_REQUEST_LINE:,} the web server in front of the Service "
                "Layer accepts (Apache's LimitRequestLine); shorten the filter or the values in it.",
            )
        body = data
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            all_headers.setdefault("Content-Type", "application/json")
        for attempt in self._retrying():
            with attempt:
                return self._send(
                    method, url, what=what, headers=all_headers, body=body, repeatable=repeatable
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _retrying(self) -> tenacity.Retrying:
        """The hook's policy, minus errors whose own retries are spent (a login that kept failing)."""
        return self.retry_policy.retrying().copy(
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, RetryableError) and not getattr(exc, "exhausted", False)
            )
        )

    @staticmethod
    def _json(response: requests.Response) -> Any:
        # Decoding the raw bytes skips requests' charset sniffing of large bodies.
        return decode_json(response.content) if response.content else None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        repeatable: bool | None = None,
    ) -> requests.Response:
        """Send any Service Layer call, under the same rules as the typed methods.

        For what they do not cover: document actions (``POST Orders(5)/Close``,
        ``POST Orders(5)/Cancel``), services (``POST DraftsService_SaveDraftToDocument``),
        ``SQLQueries('q1')/List``. Logs in when needed, retries what may be retried (a GET; a
        write only when ``repeatable`` says so, never blindly) and raises the typed error of
        a failed reply.

        :param method: HTTP verb.
        :param path: below the service root, e.g. ``"Orders(5)/Close"`` (build keys with
            :func:`~airflow_provider_b1.hooks.sap_b1.literals.entity_path`), or an absolute path.
        :param params: query options, e.g. ``{"$filter": ..., "$select": ...}``; values are
            percent-encoded here.
        :param json: a JSON body.
        :param headers: extra headers.
        :param repeatable: whether the call may be sent again after it may have reached SAP;
            by default only GET and HEAD are. A write whose outcome is unknown raises
            :class:`~airflow_provider_b1.hooks.sap_b1.errors.SapB1AmbiguousWriteError`.
        :return: the successful response.
        :raises SapB1Error: the typed error of a failed call.
        """
        return self._call(method, path, params=params, json_body=json, headers=headers, repeatable=repeatable)

    # -- session and connection test ---------------------------------------------------------------

    def login(self) -> None:
        """Make sure a session exists (logs in unless a shared one is alive)."""
        self.sap_session.current()

    def logout(self) -> None:
        """End the session on the server, freeing its user licence (other processes log in again)."""
        self.sap_session.logout()

    def test_connection(self) -> tuple[bool, str]:
        """Log in and report which data areas the user can read (the UI's Test button).

        Each area costs one ``$top=1&$select=<key>`` GET. The message says "Logged in to" only
        when this test logged in, and "Reused a cached session for" when a session shared by
        another task (or an earlier test) served.
        """
        try:
            logins_before = self.sap_session.logins
            self.login()
        except (SapB1Error, ValueError) as exc:
            return False, str(exc)
        readable, denied, missing = [], [], []
        for area, entity in TEST_AREAS:
            spec = ENTITIES[entity]
            try:
                list(self.iter_pages(entity, select=spec.key, top=1, page_size=1))
                readable.append(area)
            except SapB1PermissionError:
                denied.append(area)
            except SapB1NotFoundError:
                missing.append(area)
            except SapB1Error as exc:
                connected = "Logged in" if self.sap_session.logins > logins_before else "Connected"
                return False, f"{connected}, but reading {area} failed: {exc}"
        settings = self.settings
        how = "Logged in to" if self.sap_session.logins > logins_before else "Reused a cached session for"
        message = (
            f"{how} company {settings.company} as {settings.user} (Service Layer {settings.api_version}). "
            f"Readable: {', '.join(readable) or 'none'}."
        )
        if denied:
            message += f" Denied: {', '.join(denied)} (grant authorisations in SAP to read them)."
        if missing:
            message += f" Not available on this server: {', '.join(missing)}."
        return True, message
