"""The ServiceTitan API v2 hook: settings, HTTP client, rate limit, retries and reads.

The protocol facts are those of ServiceTitan's API v2: OAuth client credentials at
``/connect/token`` (tokens live 900 s), ``ST-App-Key`` on every call, calls below
``/{module}/v2/tenant/{tenant}/``, exports paged by ``continueFrom``, lists by ``page``, 60
calls/s per application and tenant, 429 with ``Retry-After`` and a problem+json body. Tokens are
in :mod:`~airflow_provider_b1.hooks.servicetitan.auth`, errors in
:mod:`~airflow_provider_b1.hooks.servicetitan.errors`, kinds and paging in
:mod:`~airflow_provider_b1.hooks.servicetitan.reads`; this module puts them together.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import tenacity
from airflow.sdk import BaseHook

from airflow_provider_b1.connections import SERVICETITAN, form_widgets, ui_field_behaviour
from airflow_provider_b1.exceptions import B1ProviderError, RetryableError
from airflow_provider_b1.hooks.servicetitan.auth import ServiceTitanTokenAuth
from airflow_provider_b1.hooks.servicetitan.errors import (
    ServiceTitanPagingError,
    ServiceTitanRateLimitedError,
    error_from_response,
    transport_error,
)
from airflow_provider_b1.hooks.servicetitan.reads import (
    IDS_PER_REQUEST,
    ExportPage,
    ExportPaginator,
    ListPaginator,
    decode,
    export_from,
    kind_spec,
    with_decimals,
)
from airflow_provider_b1.utils.paging import paginate
from airflow_provider_b1.utils.params import ParamError, blank_to_none, parse_bool
from airflow_provider_b1.utils.ratelimit import RateLimitedAdapter, SharedRateLimiter, shared_limiter
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.tls import TlsAdapter

log = logging.getLogger(__name__)

ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "production": ("https://auth.servicetitan.io", "https://api.servicetitan.io"),
    "integration": ("https://auth-integration.servicetitan.io", "https://api-integration.servicetitan.io"),
}
"""``environment`` extra -> (auth root, API root)."""

DEFAULT_RATE_LIMIT = 60
"""Calls per second per application and tenant, ServiceTitan's limit."""

DEFAULT_PAGE_SIZE = 500
"""Records per list page unless the caller says otherwise (ServiceTitan's own default is 50)."""

MAX_PAGE_SIZE = 5000
"""ServiceTitan's largest ``pageSize``."""

TOKEN_PATH = "/connect/token"


@dataclass(frozen=True)
class _Settings:
    environment: str
    token_url: str
    api_url: str
    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    app_key: str = field(repr=False)
    verify: bool
    ca_bundle: str | None
    rate_limit: int
    redis_url: str | None = field(repr=False)


class ServiceTitanHook(BaseHook):
    """Talk to the ServiceTitan API v2: exports, lists and lookups by id.

    Connection: ``login`` = client id, ``password`` = client secret; extras ``environment``
    (``production``, the default, or ``integration``), ``tenant_id``, ``app_key``, optionally
    ``api_url`` / ``auth_url`` (to reach a sandbox or a proxy), ``verify_tls`` / ``ca_bundle``,
    ``rate_limit`` (calls/s, default 60) and ``redis_url`` (share the rate limit across workers).

    Every call carries a token shared by the worker's task processes (see
    :class:`~airflow_provider_b1.hooks.servicetitan.auth.ServiceTitanTokenAuth`) and the app key,
    waits for room under the application's rate limit (shared by every process of the worker,
    or of every worker with ``redis_url``), is retried under ``retry_policy`` when that is
    safe, and fails with a typed
    :class:`~airflow_provider_b1.hooks.servicetitan.errors.ServiceTitanError` naming the cause.

    :param servicetitan_conn_id: Airflow connection id.
    :param page_size: records per list page (default 500, at most 5000).
    :param retry_policy: retries of what may succeed later (429, 5xx, resets).
    :param timeout: requests timeout ``(connect, read)`` in seconds (ServiceTitan gives up after 100 s).
    :param token_cache_dir: directory of the shared token cache (default: env
        ``B1_SERVICETITAN_CACHE_DIR``, else ``$AIRFLOW_HOME/servicetitan_tokens``).
    :param rate_limit: calls per second (overrides the ``rate_limit`` extra).
    :param rate_limit_dir: directory of the per-worker rate counter (default: env
        ``B1_RATE_LIMIT_DIR``, else ``$AIRFLOW_HOME/b1_rate_limits``).
    """

    conn_name_attr = "servicetitan_conn_id"
    default_conn_name = "servicetitan_default"
    conn_type = "servicetitan"
    hook_name = "ServiceTitan"

    def __init__(
        self,
        servicetitan_conn_id: str = default_conn_name,
        *,
        page_size: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (10, 110),
        token_cache_dir: str | Path | None = None,
        rate_limit: int | None = None,
        rate_limit_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.servicetitan_conn_id = servicetitan_conn_id
        if page_size is not None and not 1 <= int(page_size) <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size}.")
        self.page_size = int(page_size) if page_size is not None else DEFAULT_PAGE_SIZE
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeout = timeout
        self.token_cache_dir = token_cache_dir
        self._rate_limit = rate_limit
        self.rate_limit_dir = rate_limit_dir

    # -- Airflow UI ---------------------------------------------------------------------------

    @staticmethod
    def get_connection_form_widgets() -> dict[str, Any]:
        """Extra fields of the connection form (Airflow 3.1; 3.2+ reads provider info)."""
        return form_widgets(SERVICETITAN)

    @staticmethod
    def get_ui_field_behaviour() -> dict[str, Any]:
        """Relabelled / hidden standard fields of the connection form."""
        return ui_field_behaviour(SERVICETITAN)

    # -- configuration ------------------------------------------------------------------------

    @cached_property
    def settings(self) -> _Settings:
        """The connection, read once and normalised (blank fields are ``None``).

        :raises ParamError: (a :class:`ValueError` and a
            :class:`~airflow_provider_b1.exceptions.PermanentError`) naming the missing or
            unreadable field.
        """
        conn = self.get_connection(self.servicetitan_conn_id)
        extra = {k: blank_to_none(v) for k, v in (conn.extra_dejson or {}).items()}
        name = self.servicetitan_conn_id
        client_id = blank_to_none(conn.login)
        client_secret = conn.password or ""
        app_key = extra.get("app_key")
        tenant = extra.get("tenant_id")
        for secret in (client_secret, app_key):
            mask(str(secret) if secret else None)
        missing = [
            label
            for label, value in (
                ("the client id (login)", client_id),
                ("the client secret (password)", client_secret),
                ("tenant_id", tenant),
                ("app_key", app_key),
            )
            if not value
        ]
        if missing:
            raise ParamError(f"Connection {name!r} needs {', '.join(missing)}.")
        if not str(tenant).strip().isdigit():
            raise ParamError(f"Connection {name!r}: tenant_id must be the tenant's number, not {tenant!r}.")
        environment = str(extra.get("environment") or "production").strip().lower()
        if environment not in ENVIRONMENTS:
            raise ParamError(
                f"Connection {name!r}: environment must be {' or '.join(ENVIRONMENTS)}, not {environment!r}."
            )
        auth_root, api_root = ENVIRONMENTS[environment]
        auth_url = self._root(extra.get("auth_url") or auth_root, "auth_url")
        token_url = auth_url if auth_url.endswith(TOKEN_PATH) else auth_url + TOKEN_PATH
        api_url = self._root(extra.get("api_url") or api_root, "api_url")
        rate_limit = self._rate_limit if self._rate_limit is not None else extra.get("rate_limit")
        try:
            rate = int(rate_limit) if rate_limit is not None else DEFAULT_RATE_LIMIT
        except (TypeError, ValueError):
            rate = 0
        if rate < 1 or (rate_limit is not None and str(rate) != str(rate_limit).strip()):
            raise ParamError(
                f"Connection {name!r}: rate_limit must be a whole number of calls per second, not {rate_limit!r}."
            )
        redis_url = extra.get("redis_url")
        if redis_url:
            mask(urlsplit(str(redis_url)).password)
        return _Settings(
            environment=environment,
            token_url=token_url,
            api_url=api_url,
            tenant_id=str(tenant).strip(),
            client_id=str(client_id).strip(),
            client_secret=client_secret,
            app_key=str(app_key).strip(),
            verify=parse_bool(extra.get("verify_tls"), default=True, name="verify_tls"),
            ca_bundle=extra.get("ca_bundle"),
            rate_limit=rate,
            redis_url=str(redis_url) if redis_url else None,
        )

    @staticmethod
    def _root(url: str, what: str) -> str:
        text = str(url).strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ParamError(
                f"{what} must be an http(s) URL such as https://api.servicetitan.io, not {url!r}."
            )
        return text

    @property
    def tenant_id(self) -> str:
        """The tenant every call is made for."""
        return self.settings.tenant_id

    @property
    def api_url(self) -> str:
        """The API root, without a trailing slash."""
        return self.settings.api_url

    # -- HTTP client, token and rate limit -------------------------------------------------------

    @cached_property
    def limiter(self) -> SharedRateLimiter:
        """The application's allowance on this tenant, shared by every process that uses it."""
        settings = self.settings
        digest = hashlib.sha256(
            f"{settings.api_url}|{settings.app_key}|{settings.tenant_id}".encode()
        ).hexdigest()
        return shared_limiter(
            f"servicetitan-{digest[:32]}",
            settings.rate_limit,
            1.0,
            directory=self.rate_limit_dir,
            redis_url=settings.redis_url,
        )

    @cached_property
    def client(self) -> requests.Session:
        """The one ``requests.Session`` of this hook: keep-alive, TLS, rate limit, token and app key."""
        settings = self.settings
        session = requests.Session()
        plain = TlsAdapter(verify=settings.verify, ca_bundle=settings.ca_bundle)
        limited = RateLimitedAdapter(
            self.limiter, verify=settings.verify, ca_bundle=settings.ca_bundle, pool_maxsize=8
        )
        session.mount("https://", plain)
        session.mount("http://", plain)
        # Requests picks the longest matching prefix: API calls wait for the rate limit, and the
        # token request does not, even when one host serves both (a sandbox).
        session.mount(settings.api_url + "/", limited)
        session.mount(settings.token_url, plain)
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-b1"})
        session.auth = ServiceTitanTokenAuth(
            session,
            settings.token_url,
            settings.client_id,
            settings.client_secret,
            settings.app_key,
            timeout=self.timeout,
            retry_policy=self.retry_policy,
            cache_dir=self.token_cache_dir,
        )
        return session

    @property
    def auth(self) -> ServiceTitanTokenAuth:
        """The token and app key, the client's auth (token obtained on first use, shared with other processes)."""
        auth = self.client.auth
        assert isinstance(auth, ServiceTitanTokenAuth)
        return auth

    def get_conn(self) -> requests.Session:
        """The configured ``requests.Session``, for calls the hook's methods do not cover.

        It carries the TLS decision, the rate limit, the token (renewed by itself, and once
        after a 401) and the app key. It does not retry or map errors: prefer :meth:`request`.
        """
        return self.client

    def get_token(self) -> str:
        """An access token valid for one more call (a secret: never log it)."""
        for attempt in self._retrying(repeatable=True):
            with attempt:
                return self.auth.token()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the HTTP client; the shared token stays cached for other tasks."""
        client = self.__dict__.get("client")
        if client is not None:
            client.close()

    # -- transport ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """The URL of an API path.

        ``"crm/customers"`` becomes ``{api}/crm/v2/tenant/{tenant}/customers`` (the module, then
        the rest below the tenant); a path that already names ``/v2/tenant/`` or starts with
        ``/`` is taken below the API root as it is.

        :param path: the path.
        """
        text = path.strip()
        if text.startswith("/") or "/tenant/" in text:
            return f"{self.api_url}/{text.lstrip('/')}"
        module, _, rest = text.partition("/")
        if not module or not rest:
            raise ValueError(
                f"A ServiceTitan path is '<module>/<resource>' (e.g. 'crm/customers'), not {path!r}."
            )
        return f"{self.api_url}/{module}/v2/tenant/{quote(self.tenant_id, safe='')}/{rest}"

    @staticmethod
    def _params(params: Mapping[str, Any] | None) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, value in (params or {}).items():
            if value is None:
                continue
            if isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, dt.datetime):
                if value.tzinfo is None or value.utcoffset() is None:
                    raise ValueError(f"{name} needs a time zone (e.g. tzinfo=datetime.timezone.utc).")
                out[name] = value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
            elif isinstance(value, dt.date):
                out[name] = value.isoformat()
            elif isinstance(value, (list, tuple, set, frozenset)):
                out[name] = ",".join(str(v) for v in value)
            else:
                out[name] = str(value)
        return out

    def _retrying(self, *, repeatable: bool) -> tenacity.Retrying:
        """The hook's policy: what may succeed later, minus what already spent its retries (a token
        request that kept failing); for a call that must not be applied twice, only a 429."""

        def retry(exc: BaseException) -> bool:
            if not isinstance(exc, RetryableError) or getattr(exc, "exhausted", False):
                return False
            return repeatable or isinstance(exc, ServiceTitanRateLimitedError)

        return self.retry_policy.retrying().copy(retry=tenacity.retry_if_exception(retry))

    def _send(
        self, method: str, url: str, *, params: dict[str, str], json_body: Any, what: str
    ) -> requests.Response:
        try:
            response = self.client.request(method, url, params=params, json=json_body, timeout=self.timeout)
        except requests.RequestException as exc:
            log.debug("%s failed in transport: %s", what, type(exc).__name__)
            raise transport_error(exc, self.api_url, what) from None
        if response.status_code >= 400:
            raise error_from_response(response, what, tenant=self.tenant_id)
        return response

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        what: str | None = None,
        repeatable: bool | None = None,
    ) -> requests.Response:
        """Send one API call under the hook's rules and return the successful response.

        :param method: HTTP verb.
        :param path: ``"<module>/<resource>"`` below the tenant (see :meth:`url`).
        :param params: query parameters; ``None`` values are left out, booleans sent as
            ``true``/``false``, aware datetimes in UTC (RFC 3339), lists joined by commas.
        :param json: a JSON body.
        :param what: the call as messages name it (default ``"METHOD path"``).
        :param repeatable: whether the call may be sent again after it may have reached
            ServiceTitan (default: GET and HEAD only); any call is retried after a 429.
        :raises ServiceTitanError: the typed error of a failed call.
        """
        method = method.upper()
        repeatable = method in ("GET", "HEAD") if repeatable is None else repeatable
        url = self.url(path)
        query = self._params(params)
        what = what or f"{method} {path}"
        for attempt in self._retrying(repeatable=repeatable):
            with attempt:
                return self._send(method, url, params=query, json_body=json, what=what)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, *, what: str | None = None
    ) -> dict:
        """``GET`` a path and return its JSON object (see :meth:`request`)."""
        what = what or f"GET {path}"
        return decode(self.request("GET", path, params=params, what=what), what)

    # -- reads --------------------------------------------------------------------------------

    def iter_list(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        page_size: int | None = None,
        max_pages: int | None = None,
        decimals: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the pages of a list endpoint, page by page (``page`` from 1 while ``hasMore``).

        :param path: ``"<module>/<resource>"``, e.g. ``"crm/customers"``.
        :param params: filters (``modifiedOnOrAfter``, ``modifiedBefore``, ``ids``, ...).
        :param page_size: records per page (default the hook's, at most 5000).
        :param max_pages: read at most this many pages (then stop with an error).
        :param decimals: a kind (``"invoices"``): hand its money fields on as Decimals.
        :raises ServiceTitanPagingError: when ServiceTitan's paging would never end.
        """
        size = int(page_size or self.page_size)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {size}.")
        base = dict(params or {})
        base.pop("page", None)
        base["pageSize"] = size
        what = path.rsplit("/", 1)[-1]

        def send(page: Hashable | None) -> requests.Response:
            return self.request("GET", path, params={**base, "page": page or 1}, what=f"reading {what}")

        pages = paginate(
            send,
            ListPaginator(what),
            source="ServiceTitan",
            what=what,
            max_pages=max_pages,
            error=ServiceTitanPagingError,
        )
        for records in pages:
            yield [with_decimals(decimals, r) for r in records] if decimals else records

    def iter_export(
        self,
        kind: str,
        start: Any = None,
        *,
        include_recent_changes: bool = False,
        max_pages: int | None = None,
        decimals: bool = False,
    ) -> Iterator[ExportPage]:
        """Yield the pages of a kind's export feed, from ``start`` to what ServiceTitan has now.

        Pass each page's :attr:`~ExportPage.continue_from` back as ``start`` to read on later: the
        last page's is the cursor of the next run (the last page is yielded even when empty, for
        that token). Exports include inactive and deleted records.

        :param kind: ``customers``, ``invoices`` or ``payments``.
        :param start: ``None`` (from the beginning), a continuation token, or a date / aware
            datetime to start at.
        :param include_recent_changes: include the last 15 minutes' changes (ServiceTitan then
            may send a record again later).
        :param max_pages: read at most this many pages (then stop with an error).
        :param decimals: hand money fields on as Decimals (default: as sent, strings).
        :raises ServiceTitanPagingError: when ServiceTitan's paging would never end.
        """
        spec = kind_spec(kind)
        first = export_from(start)
        path = f"{spec.module}/{spec.export}"
        what = f"the {kind} export"

        def send(token: Hashable | None) -> requests.Response:
            params = {"from": token if token is not None else first}
            if include_recent_changes:
                params["includeRecentChanges"] = True
            return self.request("GET", path, params=params, what=f"reading {what}")

        pages = paginate(
            send,
            ExportPaginator(what),
            source="ServiceTitan",
            what=what,
            max_pages=max_pages,
            error=ServiceTitanPagingError,
        )
        for page in pages:
            if decimals:
                page = ExportPage(
                    [with_decimals(kind, r) for r in page.records], page.continue_from, page.has_more
                )
            yield page

    def iter_by_ids(
        self, kind: str, ids: Iterable[Any], *, decimals: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield the records of a kind with these ids, a page per request of at most 50 ids.

        Ids that do not exist are simply absent. Repeated ids are asked for once.

        :param kind: ``customers``, ``invoices`` or ``payments``.
        :param ids: record ids (numbers, or their text).
        :param decimals: hand money fields on as Decimals.
        """
        spec = kind_spec(kind)
        unique = list(dict.fromkeys(str(i).strip() for i in ids if str(i).strip()))
        path = f"{spec.module}/{spec.resource}"
        for offset in range(0, len(unique), IDS_PER_REQUEST):
            chunk = unique[offset : offset + IDS_PER_REQUEST]
            records: list[dict[str, Any]] = []
            for page in self.iter_list(path, {"ids": chunk}, page_size=max(len(chunk), 1)):
                records.extend(page)
            if records:
                yield [with_decimals(kind, r) for r in records] if decimals else records

    def get_by_ids(self, kind: str, ids: Iterable[Any], *, decimals: bool = False) -> list[dict[str, Any]]:
        """The records of a kind with these ids (see :meth:`iter_by_ids`), in ServiceTitan's order."""
        return [record for page in self.iter_by_ids(kind, ids, decimals=decimals) for record in page]

    # -- connection test ----------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Get a token and read one page of customers (the UI's Test button).

        Each failure is named in one sentence: the client id and secret (token), the app key,
        the tenant, or the application's permission to read customers.
        """
        try:
            settings = self.settings
        except ValueError as exc:
            return False, str(exc)
        try:
            self.get_token()
        except B1ProviderError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, f"Unexpected {type(exc).__name__} while asking ServiceTitan for a token."
        try:
            body = self.get_json(
                "crm/customers", {"page": 1, "pageSize": 1, "includeTotal": True}, what="reading customers"
            )
        except B1ProviderError as exc:
            return False, str(exc)
        total = body.get("totalCount")
        count = f" ({total} in all)" if isinstance(total, int) else ""
        return True, (
            f"Connected to ServiceTitan at {settings.api_url} as client {settings.client_id}, tenant "
            f"{settings.tenant_id}: customers are readable{count}."
        )
