"""The Salesforce hook: settings, HTTP client, token, API limit guard, retries, reads and writes.

The protocol facts are Salesforce's REST API: an OAuth client-credentials token from the org's
My Domain (:mod:`.auth`), calls below ``<instance_url>/services/data/vXX.X/``, errors as arrays
of ``{message, errorCode, fields}`` (:mod:`.errors`), ``Sforce-Limit-Info`` on every reply
(:mod:`.limits`), queries paged through ``nextRecordsUrl``, sObject Collections of at most 200
records with a result per record (:mod:`.results`), and Bulk API 2.0 jobs (:mod:`.bulk`). The
REST calls go through simple-salesforce, built on the hook's own ``requests.Session`` so that
every one of them carries the shared token, the TLS decision and the limit guard.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
import tenacity
from airflow.sdk import BaseHook
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError as SimpleSalesforceError

from airflow_provider_b1.connections import SALESFORCE, form_widgets, ui_field_behaviour
from airflow_provider_b1.exceptions import B1ProviderError, RetryableError
from airflow_provider_b1.hooks.salesforce.auth import TOKEN_PATH, SalesforceToken, SalesforceTokenAuth
from airflow_provider_b1.hooks.salesforce.bulk import (
    DEFAULT_PAGE_RECORDS,
    BulkJobs,
    encode_uploads,
    nest,
    queried_object,
    typed,
)
from airflow_provider_b1.hooks.salesforce.errors import (
    SalesforceError,
    SalesforceNotFoundError,
    SalesforcePagingError,
    SalesforcePermanentError,
    SalesforceSchemaError,
    error_from_response,
    error_from_simple_salesforce,
    transport_error,
)
from airflow_provider_b1.hooks.salesforce.limits import DEFAULT_SHARE, ApiLimitGuard, ApiUsage, GuardedAdapter
from airflow_provider_b1.hooks.salesforce.results import (
    UpsertResult,
    clean,
    collection_record,
    collection_results,
)
from airflow_provider_b1.utils.paging import Page, paginate
from airflow_provider_b1.utils.params import ParamError, blank_to_none, parse_bool
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.tls import TlsAdapter

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_API_VERSION = "62.0"
COLLECTION_SIZE = 200
"""Records per sObject Collections call (Salesforce's maximum), and ids per ``GET composite/sobjects``."""

MIN_BATCH, MAX_BATCH = 200, 2000
"""``Sforce-Query-Options: batchSize`` bounds."""

_VERSION = re.compile(r"^v?(\d{2,3})(?:\.(\d))?$")


@dataclass(frozen=True)
class _Settings:
    host: str
    token_url: str
    consumer_key: str
    consumer_secret: str = field(repr=False)
    api_version: str
    verify: bool
    ca_bundle: str | None
    api_limit_share: float
    timeout: float | None


class _QueryPaginator:
    """Reads a query reply: its records, and ``nextRecordsUrl`` until ``done``."""

    hint = "Salesforce repeated a nextRecordsUrl"

    def read(self, reply: Any) -> Page[list[dict[str, Any]]]:
        records = reply.get("records") or []
        done = bool(reply.get("done", True))
        following = reply.get("nextRecordsUrl")
        if not done and not following:
            raise SalesforcePagingError(
                "Salesforce said a query was not done but gave no nextRecordsUrl; the read stops instead of "
                "returning part of the records as if they were all."
            )
        return Page([clean(r) for r in records], empty=not records, next=None if done else following)


class SalesforceHook(BaseHook):
    """Talk to a Salesforce org's REST and Bulk API 2.0 as a connected app (client credentials).

    Connection (type ``b1_salesforce``): ``host`` = the org's My Domain URL
    (``https://acme.my.salesforce.com``), ``login`` = the connected app's consumer key,
    ``password`` = its consumer secret; extras ``api_version`` (default ``62.0``),
    ``verify_tls`` / ``ca_bundle``, ``api_limit_share`` (default 0.8) and ``timeout`` (seconds).

    Every call carries a token shared by the worker's task processes and renewed once when
    Salesforce refuses it (:class:`~airflow_provider_b1.hooks.salesforce.auth.SalesforceTokenAuth`),
    is refused before it is sent when it would take the org's daily API requests past
    ``api_limit_share`` (:class:`~airflow_provider_b1.hooks.salesforce.limits.ApiLimitGuard`), is
    retried under ``retry_policy`` when that is safe (reads, upserts and updates; never a create
    that may have reached Salesforce), and fails with a typed
    :class:`~airflow_provider_b1.hooks.salesforce.errors.SalesforceError`. A record Salesforce
    refuses inside a write is not an exception: it is a failed
    :class:`~airflow_provider_b1.hooks.salesforce.results.UpsertResult`.

    :param salesforce_conn_id: Airflow connection id.
    :param batch_size: records per query page asked with ``Sforce-Query-Options`` (200 to 2000;
        default: Salesforce's, 2000).
    :param retry_policy: retries of what may succeed later (5xx, resets, lock contention).
    :param timeout: requests timeout ``(connect, read)`` in seconds (overrides the extra).
    :param token_cache_dir: directory of the shared token cache (default: env
        ``B1_SALESFORCE_CACHE_DIR``, else ``$AIRFLOW_HOME/salesforce_tokens``).
    :param api_limit_share: share of the org's daily API requests this hook may take the org
        to (overrides the extra).
    :param bulk_poll_interval: longest wait between two polls of a Bulk API 2.0 job.
    :param bulk_timeout: seconds a Bulk API 2.0 job may take.
    """

    conn_name_attr = "salesforce_conn_id"
    default_conn_name = "b1_salesforce_default"
    conn_type = "b1_salesforce"
    hook_name = "Salesforce (client credentials)"

    def __init__(
        self,
        salesforce_conn_id: str = default_conn_name,
        *,
        batch_size: int | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
        token_cache_dir: str | Path | None = None,
        api_limit_share: float | None = None,
        bulk_poll_interval: float = 5.0,
        bulk_timeout: float = 3600.0,
    ) -> None:
        super().__init__()
        self.salesforce_conn_id = salesforce_conn_id
        self.batch_size = _batch_size(batch_size)
        self.retry_policy = retry_policy or RetryPolicy()
        self._timeout = timeout
        self.token_cache_dir = token_cache_dir
        self._api_limit_share = api_limit_share
        self.bulk_poll_interval = bulk_poll_interval
        self.bulk_timeout = bulk_timeout
        self._describes: dict[str, dict[str, Any]] = {}
        self._sf: Salesforce | None = None
        self._sf_instance: str | None = None
        self._sf_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SalesforceHook(salesforce_conn_id={self.salesforce_conn_id!r})"

    # -- Airflow UI ---------------------------------------------------------------------------

    @staticmethod
    def get_connection_form_widgets() -> dict[str, Any]:
        """Extra fields of the connection form (Airflow 3.1; 3.2+ reads provider info)."""
        return form_widgets(SALESFORCE)

    @staticmethod
    def get_ui_field_behaviour() -> dict[str, Any]:
        """Relabelled / hidden standard fields of the connection form."""
        return ui_field_behaviour(SALESFORCE)

    # -- configuration ------------------------------------------------------------------------

    @cached_property
    def settings(self) -> _Settings:
        """The connection, read once and normalised (blank fields are ``None``).

        :raises ParamError: (a :class:`ValueError` and a
            :class:`~airflow_provider_b1.exceptions.PermanentError`) naming the missing or
            unreadable field.
        """
        conn = self.get_connection(self.salesforce_conn_id)
        extra = {k: blank_to_none(v) for k, v in (conn.extra_dejson or {}).items()}
        name = self.salesforce_conn_id
        secret = conn.password or ""
        mask(secret)
        key = blank_to_none(conn.login)
        host = blank_to_none(conn.host)
        missing = [
            label
            for label, value in (
                ("the My Domain URL (host)", host),
                ("the consumer key (login)", key),
                ("the consumer secret (password)", secret),
            )
            if not value
        ]
        if missing:
            raise ParamError(f"Connection {name!r} needs {', '.join(missing)}.")
        root = _my_domain(str(host), name)
        share = self._api_limit_share if self._api_limit_share is not None else extra.get("api_limit_share")
        timeout = extra.get("timeout")
        try:
            seconds = float(timeout) if timeout is not None else None
        except (TypeError, ValueError):
            seconds = -1.0
        if seconds is not None and seconds <= 0:
            raise ParamError(f"Connection {name!r}: timeout must be a number of seconds, not {timeout!r}.")
        return _Settings(
            host=root,
            token_url=root + TOKEN_PATH,
            consumer_key=str(key).strip(),
            consumer_secret=secret,
            api_version=_api_version(extra.get("api_version"), name),
            verify=parse_bool(extra.get("verify_tls"), default=True, name="verify_tls"),
            ca_bundle=extra.get("ca_bundle"),
            api_limit_share=_share(share, name),
            timeout=seconds,
        )

    @property
    def timeout(self) -> float | tuple[float, float]:
        """Requests timeout ``(connect, read)``: the hook's, else the ``timeout`` extra, else (10, 120)."""
        if self._timeout is not None:
            return self._timeout
        seconds = self.settings.timeout
        return (10.0, seconds) if seconds else (10.0, 120.0)

    @property
    def api_version(self) -> str:
        """The REST API version, e.g. ``"62.0"``."""
        return self.settings.api_version

    # -- HTTP client, token and limit guard -----------------------------------------------------

    @cached_property
    def guard(self) -> ApiLimitGuard:
        """The org's API usage as the replies say, and the share this connection may take it to."""
        return ApiLimitGuard(self.settings.api_limit_share)

    @cached_property
    def client(self) -> requests.Session:
        """The one ``requests.Session`` of this hook: keep-alive, TLS, token, limit guard."""
        settings = self.settings
        session = requests.Session()
        guarded = GuardedAdapter(
            self.guard, verify=settings.verify, ca_bundle=settings.ca_bundle, pool_maxsize=8
        )
        session.mount("https://", guarded)
        session.mount("http://", guarded)
        # The longest matching prefix wins: the token request is not an API request and is not
        # held back by the guard.
        session.mount(settings.token_url, TlsAdapter(verify=settings.verify, ca_bundle=settings.ca_bundle))
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-b1"})
        session.hooks["response"].append(self.guard.observe)
        session.auth = SalesforceTokenAuth(
            session,
            settings.token_url,
            settings.consumer_key,
            settings.consumer_secret,
            timeout=self.timeout,
            retry_policy=self.retry_policy,
            cache_dir=self.token_cache_dir,
        )
        return session

    @property
    def auth(self) -> SalesforceTokenAuth:
        """The token (obtained on first use, shared with other processes), the client's auth."""
        auth = self.client.auth
        assert isinstance(auth, SalesforceTokenAuth)
        return auth

    def token(self) -> SalesforceToken:
        """The current token and what came with it (instance URL, identity URL). A secret: never log it."""
        for attempt in self._retrying():
            with attempt:
                return self.auth.token()
        raise AssertionError("unreachable")  # pragma: no cover

    def get_token(self) -> str:
        """An access token for one more call (a secret: never log it), e.g. for the Pub/Sub API."""
        return self.token().value

    @property
    def instance_url(self) -> str:
        """The org's instance URL, as the token reply gave it (no trailing slash)."""
        return self.token().instance_url

    @property
    def org_id(self) -> str:
        """The org's id (``00D...``), from the token's identity URL (or, failing that, a query)."""
        org = self.token().org_id
        if org:
            return org
        records = [r for page in self.query_pages("SELECT Id FROM Organization LIMIT 1") for r in page]
        if not records:
            raise SalesforcePermanentError("Salesforce did not say which org the token belongs to.")
        return str(records[0]["Id"])

    @property
    def api_usage(self) -> ApiUsage | None:
        """``(used, max)`` daily API requests of the org as the latest reply said (``None`` before one)."""
        return self.guard.usage

    def check_api_limit(self, calls: int = 1, *, what: str = "the next call") -> None:
        """Raise before ``calls`` more requests would take the org past ``api_limit_share``.

        Every call of this hook is checked on its own; a caller about to make many (a bulk load
        of N pages) may ask for them all at once.

        :raises SalesforceApiLimitReached: naming the usage and the share.
        """
        self.guard.check(calls, what=what)

    @property
    def sf(self) -> Salesforce:
        """The simple-salesforce client, built on this hook's session (its token, TLS and guard).

        Built from the token reply's instance URL; kept in step when the token is renewed.
        """
        token = self.token()
        with self._sf_lock:
            sf = self._sf
            if sf is None or self._sf_instance != token.instance_url:
                sf = Salesforce(
                    instance_url=token.instance_url,
                    session_id=token.value,
                    version=self.api_version,
                    session=self.client,
                    object_pairs_hook=dict,
                )
                # Compact replies; the session's auth writes the Authorization header of every call.
                sf.headers.pop("X-PrettyPrint", None)
                self._sf = sf
                self._sf_instance = token.instance_url
            elif sf.session_id != token.value:
                sf.session_id = token.value
                sf.headers["Authorization"] = f"Bearer {token.value}"
            return sf

    def get_conn(self) -> Salesforce:
        """The configured simple-salesforce client, for calls the hook's methods do not cover.

        Its requests carry the shared token (renewed once after a 401) and pass the limit guard;
        they are not retried and raise simple-salesforce's own exceptions.
        """
        return self.sf

    def close(self) -> None:
        """Close the HTTP client; the shared token stays cached for other tasks."""
        client = self.__dict__.get("client")
        if client is not None:
            client.close()

    # -- transport ----------------------------------------------------------------------------

    def _retrying(self) -> tenacity.Retrying:
        """The hook's policy, minus what already spent its retries (a token request that kept failing).

        Whether a call may be repeated is decided where its error is made: a write that is not
        safe to repeat and may have reached Salesforce fails as ambiguous, which is not retried.
        """
        return self.retry_policy.retrying().copy(
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, RetryableError) and not getattr(exc, "exhausted", False)
            )
        )

    def url(self, path: str) -> str:
        """The URL of a path: absolute as given, ``/services/...`` below the instance, else below
        ``/services/data/vXX.X/``."""
        if "://" in path:
            return path
        if path.startswith("/"):
            return self.instance_url + path
        return f"{self.instance_url}/services/data/v{self.api_version}/{path}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        what: str | None = None,
        repeatable: bool | None = None,
    ) -> requests.Response:
        """Send one API call under the hook's rules and return the successful response.

        :param method: HTTP verb.
        :param path: below ``/services/data/vXX.X/`` (``"limits"``), or ``/services/...``, or a URL.
        :param params: query parameters.
        :param json: a JSON body.
        :param data: a raw body (bytes: it may be sent twice, after a renewed token).
        :param headers: extra headers.
        :param what: the call, as messages name it (default ``"METHOD path"``).
        :param repeatable: whether the call may be sent again after it may have reached
            Salesforce (default: GET, HEAD, PUT and PATCH; POST never).
        :raises SalesforceError: the typed error of a failed call.
        """
        method = method.upper()
        repeatable = method != "POST" if repeatable is None else repeatable
        what = what or f"{method} {path.split('?', 1)[0]}"
        url = self.url(path)
        for attempt in self._retrying():
            with attempt:
                try:
                    response = self.client.request(
                        method,
                        url,
                        params=dict(params) if params else None,
                        json=json,
                        data=data,
                        headers=dict(headers) if headers else None,
                        timeout=self.timeout,
                    )
                except requests.RequestException as exc:
                    log.debug("%s failed in transport: %s", what, type(exc).__name__)
                    raise transport_error(exc, self.instance_url, what, repeatable=repeatable) from None
                if response.status_code >= 400:
                    raise error_from_response(response, what, repeatable=repeatable)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _sf_call(self, call: Callable[[Salesforce], T], what: str, *, repeatable: bool = True) -> T:
        """Run a simple-salesforce call under the hook's retries, its errors made typed."""
        for attempt in self._retrying():
            with attempt:
                sf = self.sf
                try:
                    return call(sf)
                except requests.exceptions.JSONDecodeError:
                    raise SalesforcePermanentError(
                        f"Salesforce answered {what} with a body that is not JSON; check that the connection's "
                        "host is the org's My Domain URL (not a proxy's or a login page)."
                    ) from None
                except requests.RequestException as exc:
                    log.debug("%s failed in transport: %s", what, type(exc).__name__)
                    raise transport_error(exc, self.instance_url, what, repeatable=repeatable) from None
                except SimpleSalesforceError as exc:
                    raise error_from_simple_salesforce(exc, what, repeatable=repeatable) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads --------------------------------------------------------------------------------

    def query_pages(
        self,
        soql: str,
        *,
        batch_size: int | None = None,
        include_deleted: bool = False,
        max_pages: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield a SOQL query's records page by page, following ``nextRecordsUrl`` until ``done``.

        Records come without Salesforce's ``attributes``; a parent's fields stay nested under
        its relationship name (``{"Account": {"Name": ...}}``), a child query stays as
        Salesforce gives it (``{"OpportunityLineItems": {"records": [...], ...}}``). Each page
        is one request (retried when it fails on the way); nothing is read ahead.

        :param soql: the query.
        :param batch_size: records per page, 200 to 2000 (``Sforce-Query-Options: batchSize``);
            default the hook's. Salesforce may send fewer (wide records, child queries).
        :param include_deleted: read through ``queryAll`` (deleted and archived records too).
        :param max_pages: read at most this many pages (then stop with an error).
        :raises SalesforceQueryError: malformed SOQL, an unknown object or field.
        :raises SalesforcePagingError: when Salesforce's paging would never end.
        """
        size = _batch_size(batch_size) if batch_size is not None else self.batch_size
        headers = {"Sforce-Query-Options": f"batchSize={size}"} if size else {}
        what = f"the query on {queried_object(soql) or 'Salesforce'}"

        def send(following: Hashable | None) -> Any:
            if following is None:
                return self._sf_call(
                    lambda sf: sf.query(
                        soql, include_deleted=include_deleted, headers=headers, timeout=self.timeout
                    ),
                    what,
                )
            return self._sf_call(
                lambda sf: sf.query_more(
                    str(following), identifier_is_url=True, headers=headers, timeout=self.timeout
                ),
                f"the next page of {what}",
            )

        yield from paginate(
            send,  # type: ignore[arg-type]  # sends return decoded replies, which the paginator reads
            _QueryPaginator(),  # type: ignore[arg-type]
            source="Salesforce",
            what=what,
            max_pages=max_pages,
            error=SalesforcePagingError,
        )

    def query_all_pages(
        self, soql: str, *, batch_size: int | None = None, max_pages: int | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """:meth:`query_pages` through ``queryAll``: deleted (``IsDeleted``) and archived records too."""
        return self.query_pages(soql, batch_size=batch_size, include_deleted=True, max_pages=max_pages)

    def count(self, soql: str, *, include_deleted: bool = False) -> int:
        """How many records a query matches: ``SELECT COUNT() FROM ...``, or any query's ``totalSize``.

        One request: the first page's ``totalSize`` counts every page.
        """
        what = f"counting {queried_object(soql) or 'records'}"
        reply = self._sf_call(
            lambda sf: sf.query(soql, include_deleted=include_deleted, timeout=self.timeout), what
        )
        return int(reply.get("totalSize") or 0)

    def bulk_query_pages(
        self, soql: str, *, include_deleted: bool = False, max_records: int = DEFAULT_PAGE_RECORDS
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield a query's records page by page through a Bulk API 2.0 query job (large extracts).

        Values are typed as the REST API types them, following the describe of the queried
        object (booleans, numbers, ``None`` for empty; dates and datetimes as text, datetimes
        in the REST form ``...000+0000``), and ``Account.Name`` columns nest as
        ``{"Account": {"Name": ...}}``; a missing parent too, its fields ``None`` (the CSV
        cannot tell it from a parent with empty fields; the REST API gives ``None``). Bulk API
        2.0 takes no child queries.

        :param soql: the query.
        :param include_deleted: a ``queryAll`` job.
        :param max_records: records per results page (``maxRecords``).
        :raises SalesforceBulkJobError: the job failed or was aborted.
        """
        sobject = queried_object(soql)
        kinds: dict[str, str | None] | None = None
        for header, rows in self.bulk.query_pages(
            soql, include_deleted=include_deleted, max_records=max_records
        ):
            if kinds is None:
                kinds = {c: self._field_type(sobject, c) for c in header} if sobject else {}
            yield [nest({c: _bulk_value(v, kinds.get(c)) for c, v in zip(header, row)}) for row in rows]

    @cached_property
    def bulk(self) -> BulkJobs:
        """The Bulk API 2.0 job steps, on this hook's transport."""
        return BulkJobs(self.request, poll_interval=self.bulk_poll_interval, timeout=self.bulk_timeout)

    def describe(self, sobject: str) -> dict[str, Any]:
        """The object's describe (``fields``, ``childRelationships``...), asked once per hook.

        :raises SalesforceNotFoundError: the org has no such object (or hides it from the user).
        """
        key = sobject.lower()
        cached = self._describes.get(key)
        if cached is None:
            cached = self._sf_call(
                lambda sf: sf.restful(f"sobjects/{quote(sobject, safe='')}/describe/", timeout=self.timeout),
                f"describing {sobject}",
            )
            self._describes[key] = cached
        return cached

    def fields_of(self, sobject: str) -> dict[str, dict[str, Any]]:
        """The object's fields by name, from :meth:`describe`."""
        return {f["name"]: f for f in self.describe(sobject).get("fields") or []}

    def _field(self, sobject: str, path: str) -> dict[str, Any] | None:
        """The describe of a field path (``Name``, ``Account.Owner.Name``), ``None`` when the org has none."""
        head, _, rest = path.partition(".")
        fields = self.describe(sobject).get("fields") or []
        if not rest:
            return next((f for f in fields if str(f.get("name", "")).lower() == head.lower()), None)
        reference = next(
            (f for f in fields if str(f.get("relationshipName") or "").lower() == head.lower()), None
        )
        if reference is None or not reference.get("referenceTo"):
            return None
        for parent in reference["referenceTo"]:
            try:
                found = self._field(parent, rest)
            except SalesforceNotFoundError:
                continue
            if found is not None:
                return found
        return None

    def _field_type(self, sobject: str | None, path: str) -> str | None:
        if not sobject:
            return None
        try:
            found = self._field(sobject, path)
        except SalesforceError:
            return None
        return str(found.get("type")) if found else None

    def check_fields(self, required: Mapping[str, Iterable[str]]) -> None:
        """Check that the org has these objects and fields (a flow calls it at parse or start time).

        Field names are matched as Salesforce does, ignoring case; a dotted name follows a
        relationship (``Product2.ProductCode`` on ``OpportunityLineItem``). One describe per
        object, cached by the hook.

        :param required: ``{"Account": ["AccountNumber", "SAP_Card_Code__c"], ...}``.
        :raises SalesforceSchemaError: naming every missing object and field.
        """
        missing_objects: list[str] = []
        missing_fields: dict[str, list[str]] = {}
        for sobject, names in required.items():
            try:
                self.describe(sobject)
            except SalesforceNotFoundError:
                missing_objects.append(sobject)
                continue
            absent = [n for n in dict.fromkeys(names) if self._field(sobject, n) is None]
            if absent:
                missing_fields[sobject] = absent
        if not missing_objects and not missing_fields:
            return
        parts = [f"object {o}" for o in missing_objects]
        parts += [
            f"{o} field{'s' if len(fs) > 1 else ''} {', '.join(fs)}" for o, fs in missing_fields.items()
        ]
        raise SalesforceSchemaError(
            f"The Salesforce org lacks {'; '.join(parts)} (or hides them from the connected app's run-as "
            "user); create them, or grant the user access to them (field-level security), or correct the "
            "mapping.",
            missing_objects=missing_objects,
            missing_fields=missing_fields,
        )

    def get_many(self, sobject: str, ids: Iterable[str], fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records with these ids, ``{id: record}``, through ``GET composite/sobjects/{obj}?ids=``.

        At most 200 ids per request. Ids that do not exist (or are deleted) are absent. A record
        is found under its 18-character id and under the id it was asked by.

        :param sobject: the object.
        :param ids: record ids (15 or 18 characters); repeated ids are asked once.
        :param fields: the fields to read (``Id`` is always read).
        """
        wanted = list(dict.fromkeys(str(i).strip() for i in ids if i is not None and str(i).strip()))
        names = ",".join(dict.fromkeys(["Id", *fields]))
        path = f"composite/sobjects/{quote(sobject, safe='')}"
        found: dict[str, dict[str, Any]] = {}
        for begin in range(0, len(wanted), COLLECTION_SIZE):
            chunk = wanted[begin : begin + COLLECTION_SIZE]
            reply = self._sf_call(
                lambda sf, chunk=chunk: sf.restful(
                    path, params={"ids": ",".join(chunk), "fields": names}, method="GET", timeout=self.timeout
                ),
                f"reading {len(chunk)} {sobject} records by id",
            )
            records = reply if isinstance(reply, list) else []
            aligned = len(records) == len(chunk)
            for position, record in enumerate(records):
                if not isinstance(record, Mapping):
                    continue
                record = clean(record)
                record_id = str(record.get("Id") or "")
                found[record_id] = record
                if aligned and chunk[position] != record_id:
                    found[chunk[position]] = record
        return found

    def limits(self) -> dict[str, Any]:
        """The org's limits (``GET limits``), e.g. ``DailyApiRequests: {Max, Remaining}``."""
        return self._sf_call(lambda sf: sf.limits(timeout=self.timeout), "reading the org's limits")

    # -- writes -------------------------------------------------------------------------------

    def upsert_many(
        self,
        sobject: str,
        external_id_field: str,
        records: Iterable[Mapping[str, Any]],
        *,
        all_or_none: bool = False,
    ) -> list[UpsertResult]:
        """Upsert records by an external id through sObject Collections, one call per 200 records.

        ``PATCH composite/sobjects/{sobject}/{external_id_field}``. Each record carries the
        external id field's value; a parent may be referenced by its own external id
        (``{"Account": {"SAP_Card_Code__c": "C00001"}}``). ``Id`` as the external id field means
        update by id (:meth:`update_many`). Upserts by external id are idempotent, so a call that
        fails on the way is sent again.

        :param sobject: the object.
        :param external_id_field: the external id field (or ``Id``).
        :param records: the records' fields (no ``attributes`` needed).
        :param all_or_none: roll back a call's 200 records when one of them fails.
        :return: one result per record, in the order given; refused records are results with
            ``success=False``, not exceptions.
        :raises SalesforceError: a failure of a whole call; ``exc.results`` holds the results
            of the calls made before it.
        """
        if external_id_field.lower() == "id":
            return self.update_many(sobject, records, all_or_none=all_or_none)
        path = f"composite/sobjects/{quote(sobject, safe='')}/{quote(external_id_field, safe='')}"
        return self._collections(
            "PATCH", path, sobject, records, all_or_none, f"upserting {sobject} by {external_id_field}", True
        )

    def update_many(
        self, sobject: str, records: Iterable[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[UpsertResult]:
        """Update records by ``Id`` through sObject Collections (``PATCH composite/sobjects``), 200 a call.

        See :meth:`upsert_many` for the results. A record without ``Id`` is refused by Salesforce
        (a failed result).
        """
        return self._collections(
            "PATCH", "composite/sobjects", sobject, records, all_or_none, f"updating {sobject}", True
        )

    def create_many(
        self, sobject: str, records: Iterable[Mapping[str, Any]], *, all_or_none: bool = False
    ) -> list[UpsertResult]:
        """Create records through sObject Collections (``POST composite/sobjects``), 200 a call.

        Not idempotent: a call whose answer is lost is not sent again but fails with
        :class:`~airflow_provider_b1.hooks.salesforce.errors.SalesforceAmbiguousWriteError`
        (look the records up before creating them again). Prefer :meth:`upsert_many` with an
        external id. See :meth:`upsert_many` for the results.
        """
        return self._collections(
            "POST", "composite/sobjects", sobject, records, all_or_none, f"creating {sobject}", False
        )

    def _collections(
        self,
        method: str,
        path: str,
        sobject: str,
        records: Iterable[Mapping[str, Any]],
        all_or_none: bool,
        what: str,
        repeatable: bool,
    ) -> list[UpsertResult]:
        rows = list(records)
        results: list[UpsertResult] = []
        for begin in range(0, len(rows), COLLECTION_SIZE):
            chunk = rows[begin : begin + COLLECTION_SIZE]
            body = _json_body(
                {"allOrNone": all_or_none, "records": [collection_record(sobject, r) for r in chunk]}
            )
            call = f"{what} (records {begin + 1}-{begin + len(chunk)} of {len(rows)})"
            try:
                reply = self._sf_call(
                    lambda sf, body=body: sf.restful(path, method=method, data=body, timeout=self.timeout),
                    call,
                    repeatable=repeatable,
                )
                results.extend(collection_results(reply, begin, len(chunk), call))
            except SalesforceError as exc:
                exc.results = results  # type: ignore[attr-defined]
                raise
        _log_write(what, results, calls=-(-len(rows) // COLLECTION_SIZE))
        return results

    def bulk_upsert(
        self, sobject: str, external_id_field: str, records: Iterable[Mapping[str, Any]]
    ) -> list[UpsertResult]:
        """Upsert many records through Bulk API 2.0 (for volumes where 200 a call costs too many calls).

        One ingest job per 100 MB of CSV: create, upload, close, poll, then its result files give
        each record's result. ``None`` sets a field to null; a field a record lacks is left as
        it is. ``Id`` as the external id field means an update by id.

        :param sobject: the object.
        :param external_id_field: the external id field (or ``Id``).
        :param records: the records' fields; a parent by external id as ``{"Account":
            {"SAP_Card_Code__c": "C1"}}``.
        :return: one result per record, in the order given (refused records are failed results).
        :raises SalesforceBulkJobError: a job failed as a whole; ``exc.results`` holds the results
            of the jobs before it.
        """
        by_id = external_id_field.lower() == "id"
        return self._bulk_ingest(
            sobject, "update" if by_id else "upsert", records, None if by_id else external_id_field
        )

    def bulk_update(self, sobject: str, records: Iterable[Mapping[str, Any]]) -> list[UpsertResult]:
        """Update many records by ``Id`` through Bulk API 2.0 (see :meth:`bulk_upsert`)."""
        return self._bulk_ingest(sobject, "update", records, None)

    def _bulk_ingest(
        self,
        sobject: str,
        operation: str,
        records: Iterable[Mapping[str, Any]],
        external_id_field: str | None,
    ) -> list[UpsertResult]:
        rows = list(records)
        results: list[UpsertResult] = []
        uploads = encode_uploads(rows)
        for upload in uploads:
            try:
                results.extend(
                    self.bulk.ingest(sobject, operation, upload, external_id_field=external_id_field)
                )
            except SalesforceError as exc:
                exc.results = results  # type: ignore[attr-defined]
                raise
        _log_write(f"bulk {operation} of {sobject}", results, calls=len(uploads), unit="job")
        return results

    # -- connection test ----------------------------------------------------------------------------

    def test_connection(self, fields: Mapping[str, Iterable[str]] | None = None) -> tuple[bool, str]:
        """Get a token, report the org and its daily API requests left, and check fields (the Test button).

        :param fields: ``{object: [field, ...]}`` that must exist (see :meth:`check_fields`); by
            default those the Salesforce flows' mapping names (``B1_SALESFORCE_MAPPING``, else the
            built-in one), as the Test button checks them.
        :return: ``(ok, one paragraph)``: it says "Logged in" only when a token was obtained, and
            "Reused a cached token" when one shared by another task served.
        """
        try:
            settings = self.settings
        except ValueError as exc:
            return False, str(exc)
        try:
            before = self.auth.token_requests
            token = self.token()
            limits = self.limits()
        except B1ProviderError as exc:
            return False, str(exc)
        except Exception as exc:
            return (
                False,
                f"Unexpected {type(exc).__name__} while connecting to Salesforce at {settings.host}.",
            )
        how = "Logged in to" if self.auth.token_requests > before else "Reused a cached token for"
        org = token.org_id or "(id not given)"
        daily = limits.get("DailyApiRequests") or {}
        allowance = ""
        if isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
            allowance = (
                f" {daily['Remaining']:,} of its {daily['Max']:,} daily API requests are left (this connection "
                f"stops at {settings.api_limit_share:.0%} used)."
            )
        message = (
            f"{how} Salesforce org {org} at {token.instance_url} (API v{settings.api_version}) as the "
            f"connected app's run-as user.{allowance}"
        )
        named = ""
        if fields is None:
            try:
                fields, named = _mapping_fields()
            except B1ProviderError as exc:
                return False, f"{message} But the mapping to check cannot be read: {exc}"
            if fields is None:
                return True, f"{message} {named}"
        if fields:
            try:
                self.check_fields(fields)
            except B1ProviderError as exc:
                return False, f"{message} But: {exc}"
            count = sum(len(list(v)) for v in fields.values())
            message += f" The {len(fields)} objects and {count} fields {named or 'checked'} exist."
        return True, message


def _mapping_fields() -> tuple[dict[str, Any] | None, str]:
    """The Salesforce fields the flows' mapping names, and which mapping that is."""
    import os

    from airflow_provider_b1.salesforce.mapping import load_mapping

    source = os.environ.get("B1_SALESFORCE_MAPPING") or None
    if source and source.startswith("var:"):
        # Variables are read through a running task; the DAG's check_mapping task checks it.
        return (
            None,
            f"The mapping kept in Variable {source[4:]!r} is checked by the DAGs' check_mapping task.",
        )
    named = f"the mapping {source} names" if source else "the built-in mapping names"
    return load_mapping(source).salesforce_fields(), named


# -- helpers ---------------------------------------------------------------------------------------


def _my_domain(host: str, name: str) -> str:
    """``https://acme.my.salesforce.com`` from what the user typed (scheme optional, no path)."""
    url = host.strip()
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path == TOKEN_PATH:
        path = ""
    if parts.scheme != "https" or not parts.hostname or path or parts.query:
        raise ParamError(
            f"Connection {name!r}: the host must be the org's My Domain URL over https, such as "
            f"https://acme.my.salesforce.com, not {host!r}."
        )
    return f"https://{parts.netloc}"


def _api_version(value: Any, name: str) -> str:
    if value is None:
        return DEFAULT_API_VERSION
    match = _VERSION.match(str(value).strip())
    if not match:
        raise ParamError(f"Connection {name!r}: api_version must look like 62.0, not {value!r}.")
    return f"{match.group(1)}.{match.group(2) or 0}"


def _share(value: Any, name: str) -> float:
    if value is None:
        return DEFAULT_SHARE
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise ParamError(
            f"Connection {name!r}: api_limit_share must be a share of the org's daily API requests above 0 and "
            f"at most 1 (0.8, or 80%), not {value!r}."
        )
    return share


def _batch_size(value: int | None) -> int | None:
    if value is None:
        return None
    size = int(value)
    if not MIN_BATCH <= size <= MAX_BATCH:
        raise ValueError(f"batch_size must be {MIN_BATCH}..{MAX_BATCH}, not {value}.")
    return size


def _bulk_value(text: str, kind: str | None) -> Any:
    value = typed(text, kind)
    if kind == "datetime" and isinstance(value, str) and value.endswith("Z"):
        return value[:-1] + "+0000"
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(f"A datetime for Salesforce needs a time zone, not {value!r}.")
        return value.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a value Salesforce takes.")


def _json_body(body: Any) -> bytes:
    """The body as UTF-8 JSON bytes (Decimals as numbers, dates in ISO form): sendable twice."""
    return json.dumps(body, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _log_write(what: str, results: Sequence[UpsertResult], *, calls: int, unit: str = "call") -> None:
    if not results:
        return
    refused = sum(1 for r in results if not r.success)
    created = sum(1 for r in results if r.success and r.created)
    log.info(
        "Salesforce %s: %d records in %d %s%s, %d created, %d updated, %d refused.",
        what,
        len(results),
        calls,
        unit,
        "" if calls == 1 else "s",
        created,
        len(results) - refused - created,
        refused,
    )
