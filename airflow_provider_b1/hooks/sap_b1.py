"""SAP Business One Service Layer hook: reads, incremental reads, idempotent writes, ``$batch``.

The protocol facts it relies on are in the Service Layer documentation: OData v3 (``/b1s/v1``)
and v4 (``/b1s/v2``) flavours, next links followed as given, ``Prefer: odata.maxpagesize``,
``UpdateDate`` / ``UpdateTime`` in the server's local time zone, no idempotency key on POST.
Sessions (login, cache, lock, renewal) live in :mod:`airflow_provider_b1.hooks.sap_b1_session`;
``$batch`` framing in :mod:`airflow_provider_b1.hooks.sap_b1_batch`; error mapping in
:mod:`airflow_provider_b1.hooks.sap_b1_errors`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from functools import cache, cached_property
from http.cookiejar import DefaultCookiePolicy
from typing import Any, TypeVar
from urllib.parse import quote, urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import msgspec
import requests
import tenacity
from airflow.sdk import BaseHook

from airflow_provider_b1.connections import SAP_B1, form_widgets, ui_field_behaviour
from airflow_provider_b1.exceptions import RetryableError
from airflow_provider_b1.hooks.sap_b1_batch import (
    BatchRequest,
    BatchResult,
    build_batch,
    parse_batch_reply,
)
from airflow_provider_b1.hooks.sap_b1_errors import (
    SapB1AmbiguousWriteError,
    SapB1BusinessError,
    SapB1CompanyError,
    SapB1ConflictError,
    SapB1Error,
    SapB1LoginError,
    SapB1NotFoundError,
    SapB1PermissionError,
    SapB1ServerError,
    SapB1SessionExpiredError,
    SapB1TLSError,
    SapB1UnreachableError,
    SapB1UserLockedError,
    error_from_response,
    is_session_expired,
    never_sent,
    transport_error,
)
from airflow_provider_b1.hooks.sap_b1_session import SapSession
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.tls import TlsAdapter

__all__ = [
    "ENTITIES",
    "BatchRequest",
    "BatchResult",
    "CreateResult",
    "EntitySpec",
    "IncrementalRead",
    "SapB1AmbiguousWriteError",
    "SapB1BusinessError",
    "SapB1CompanyError",
    "SapB1ConflictError",
    "SapB1Error",
    "SapB1Hook",
    "SapB1LoginError",
    "SapB1NotFoundError",
    "SapB1PermissionError",
    "SapB1ServerError",
    "SapB1SessionExpiredError",
    "SapB1TLSError",
    "SapB1UnreachableError",
    "SapB1UserLockedError",
    "SapCursor",
    "entity_path",
    "odata_literal",
]

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 500
MAX_EMPTY_PAGES = 3
"""Pages in a row with no record but a next link, after which a read is declared stuck."""

SETTLE_SECONDS = 5
"""An incremental cursor never moves past the server's clock minus this: writes stamped in the
last seconds may still be committing, and a record updated during the read must be read again."""

LOOKUP_CHUNK = 20
"""Dedupe values per ``$filter`` lookup: ``f eq 'a' or f eq 'b' ...`` keeps URLs well under 2 KB."""


# -- what the hook knows about entities (one table: STYLE.md rule 5) ------------------------


@dataclass(frozen=True)
class EntitySpec:
    """What the hook must know about an entity set.

    :param key: key property.
    :param key_type: ``int`` (rendered bare, ``Orders(22)``) or ``str`` (quoted, ``Items('A')``).
    :param cursor: ``"datetime"`` (``UpdateDate`` + ``UpdateTime``), ``"date"`` (``UpdateDate``
        only) or ``None`` (no update stamp: read in full every time).
    """

    key: str
    key_type: type = str
    cursor: str | None = "datetime"

    @property
    def has_update_time(self) -> bool:
        return self.cursor == "datetime"


_DOCUMENT = EntitySpec("DocEntry", int)

ENTITIES: dict[str, EntitySpec] = {
    "BusinessPartners": EntitySpec("CardCode", str),
    "Items": EntitySpec("ItemCode", str),
    "Orders": _DOCUMENT,
    "Invoices": _DOCUMENT,
    "CreditNotes": _DOCUMENT,
    "DeliveryNotes": _DOCUMENT,
    "PurchaseOrders": _DOCUMENT,
    "PurchaseInvoices": _DOCUMENT,
    "PurchaseCreditNotes": _DOCUMENT,
    "PurchaseDeliveryNotes": _DOCUMENT,
    "Quotations": _DOCUMENT,
    "IncomingPayments": _DOCUMENT,
    "VendorPayments": _DOCUMENT,
    "JournalEntries": EntitySpec("JdtNum", int, cursor="date"),
    "ChartOfAccounts": EntitySpec("Code", str, cursor=None),
    "ProfitCenters": EntitySpec("CenterCode", str, cursor=None),
    "Dimensions": EntitySpec("DimensionCode", int, cursor=None),
    "DistributionRules": EntitySpec("FactorCode", str, cursor=None),
    "Warehouses": EntitySpec("WarehouseCode", str, cursor=None),
}

TEST_AREAS: tuple[tuple[str, str], ...] = (
    ("business partners", "BusinessPartners"),
    ("sales orders", "Orders"),
    ("purchase orders", "PurchaseOrders"),
    ("invoices", "Invoices"),
    ("items", "Items"),
    ("inventory", "Warehouses"),
    ("journal entries", "JournalEntries"),
    ("chart of accounts", "ChartOfAccounts"),
    ("payments", "IncomingPayments"),
    ("delivery notes", "DeliveryNotes"),
)
"""Data areas that :meth:`SapB1Hook.test_connection` probes, with the entity that stands for each."""


def entity_spec(entity: str) -> EntitySpec:
    """The declared spec of an entity set.

    :raises KeyError: with a clear message when the entity is not declared in :data:`ENTITIES`.
    """
    try:
        return ENTITIES[entity]
    except KeyError:
        raise KeyError(
            f"Entity {entity!r} is not declared in ENTITIES (key, key type, update stamp); add it there."
        ) from None


# -- OData literals: the ONE place values enter a URL -----------------------------------------


def odata_literal(value: Any) -> str:
    """Render a Python value as an OData literal for ``$filter`` or a key.

    Strings are quoted with single quotes doubled inside (``O'Hara`` -> ``'O''Hara'``): the only
    escape OData knows, and the only thing between a value and filter injection. Numbers are
    bare, booleans ``true``/``false``, ``None`` is ``null``, dates ``'YYYY-MM-DD'``.

    :param value: the value.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        if isinstance(value, float) and value != value:  # NaN has no OData literal
            raise ValueError("NaN cannot be used in an OData filter.")
        return str(value)
    if isinstance(value, dt.datetime):
        return "'" + value.strftime("%Y-%m-%dT%H:%M:%S") + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"Cannot render a {type(value).__name__} as an OData literal.")


def entity_path(entity: str, key: Any) -> str:
    """Address one record: ``Orders(22)``, ``BusinessPartners('C''1')``.

    The key type comes from :data:`ENTITIES` when declared, so ``"22"`` for ``Orders`` is
    rendered bare; undeclared entities use the Python type of ``key``.

    :param entity: entity set.
    :param key: key value.
    """
    spec = ENTITIES.get(entity)
    if spec is not None and spec.key_type is int and not isinstance(key, bool):
        try:
            key = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{entity} keys are integers; got {key!r}.") from None
    elif spec is not None and spec.key_type is str:
        key = str(key)
    return f"{entity}({odata_literal(key)})"


def odata_eq(field_name: str, value: Any) -> str:
    """``field eq <literal>`` with the value escaped by :func:`odata_literal`."""
    return f"{field_name} eq {odata_literal(value)}"


def odata_any_of(field_name: str, values: Iterable[Any]) -> str:
    """``field eq a or field eq b ...`` (OData v3 has no ``in``), values escaped."""
    return " or ".join(odata_eq(field_name, value) for value in values)


# Characters kept verbatim in a query value. Everything else (space, &, +, #, =, ?) is
# percent-encoded: a raw "+" would read as a space and a raw "&" would end the value.
_QUERY_SAFE = "'(),:/$*@"
_PATH_SAFE = "'(),=/$"


def _query_string(params: dict[str, Any]) -> str:
    return "&".join(f"{name}={quote(str(value), safe=_QUERY_SAFE)}" for name, value in params.items())


# -- incremental cursor -------------------------------------------------------------------


def _record_date(value: Any) -> str | None:
    """A record's ``UpdateDate`` as ``YYYY-MM-DD``."""
    # v1 "2024-05-01", v2 "2024-05-01T00:00:00Z": the date is the first ten characters.
    return str(value)[:10] if value else None


def _record_time(value: Any) -> str:
    """A record's ``UpdateTime`` as ``HH:MM:SS`` (midnight when it has none)."""
    if not value:
        return "00:00:00"
    if (
        value.__class__ is str
        and len(value) == 8
        and value[2] == ":" == value[5]
        and value.replace(":", "").isdigit()
    ):
        return value  # the usual form, as it is
    text = str(value)
    if text.startswith("PT"):  # an OData v4 duration, in case a server sends one
        hours = minutes = seconds = 0
        number = ""
        for char in text[2:]:
            if char.isdigit() or char == ".":
                number += char
                continue
            amount = int(float(number or 0))
            number = ""
            if char == "H":
                hours = amount
            elif char == "M":
                minutes = amount
            elif char == "S":
                seconds = amount
        return f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    parts = [*text.split(":"), "0", "0"][:3]
    try:
        return ":".join(f"{int(float(part)):02d}" for part in parts)
    except ValueError:
        # Not a time at all: the record still reaches the caller (whose checks name the fault)
        # and counts for its day, instead of stopping the read.
        return "00:00:00"


@dataclass(frozen=True)
class SapCursor:
    """Where an incremental read stopped, in the server's local time.

    SAP stamps records with ``UpdateDate`` (no time of day) and ``UpdateTime`` in the server's
    time zone, and filters on ``UpdateDate`` at day granularity only. So a read re-reads the
    cursor's whole day and drops what the cursor has already seen: records stamped before it,
    and those stamped exactly at it whose key is in :attr:`seen_keys`.

    :param update_date: ``YYYY-MM-DD``.
    :param update_time: ``HH:MM:SS``; ``None`` for entities without ``UpdateTime`` (the
        cursor is then a date and :attr:`seen_keys` the keys read on that date).
    :param seen_keys: keys already read at exactly this timestamp.
    """

    update_date: str
    update_time: str | None = None
    seen_keys: tuple[Any, ...] = ()

    @property
    def timestamp(self) -> tuple[str, str]:
        return (self.update_date, self.update_time or "")

    def is_new(self, date: str, time_of_day: str | None, key: Any) -> bool:
        """Whether a record stamped ``(date, time)`` with ``key`` is not yet covered."""
        stamp = (date, (time_of_day or "") if self.update_time is not None else "")
        if stamp != self.timestamp:
            return stamp > self.timestamp
        return key not in set(self.seen_keys)

    def to_dict(self) -> dict[str, Any]:
        """Primitives only, for XCom."""
        return {
            "update_date": self.update_date,
            "update_time": self.update_time,
            "seen_keys": list(self.seen_keys),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SapCursor:
        """Rebuild a cursor from :meth:`to_dict` output.

        :param data: the dict.
        """
        return cls(
            update_date=str(data["update_date"]),
            update_time=data.get("update_time"),
            seen_keys=tuple(data.get("seen_keys") or ()),
        )

    @classmethod
    def from_datetime(
        cls, moment: dt.datetime, server_tz: dt.tzinfo, *, date_only: bool = False
    ) -> SapCursor:
        """A cursor at a window start: records stamped at or after ``moment`` are new.

        :param moment: an aware datetime (e.g. a data interval start).
        :param server_tz: the SAP server's time zone (:attr:`SapB1Hook.server_tz`).
        :param date_only: for entities without ``UpdateTime``.
        """
        if moment.tzinfo is None:
            raise ValueError("SapCursor.from_datetime needs an aware datetime (with a time zone).")
        local = moment.astimezone(server_tz)
        if date_only:
            return cls(update_date=local.date().isoformat())
        return cls(update_date=local.date().isoformat(), update_time=local.strftime("%H:%M:%S"))


_T = TypeVar("_T")
_decode_json = msgspec.json.Decoder().decode


class _PageFrame(msgspec.Struct):
    """What paging needs from a reply: the records still encoded, and the next link (v1 or v2)."""

    value: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"[]"))
    next_v4: str | None = msgspec.field(name="@odata.nextLink", default=None)
    next_v3: str | None = msgspec.field(name="odata.nextLink", default=None)


# Reads the frame without building a single record: msgspec skips the rest of the reply at
# parsing speed, so the fetching thread can ask for the next page before this one is decoded.
_decode_frame = msgspec.json.Decoder(_PageFrame).decode


def _is_empty_array(raw: msgspec.Raw) -> bool:
    return len(raw) < 32 and bytes(raw).translate(None, b" \t\r\n") == b"[]"


def _decoded(frames: Iterator[msgspec.Raw], decode: Callable[[msgspec.Raw], list]) -> Iterator[list]:
    """Turn each page's still-encoded records into a list, in the caller's thread."""
    try:
        for raw in frames:
            yield decode(raw)
    finally:
        frames.close()


#: A page's records split apart but each still encoded, exactly as the server sent it: a scan,
#: not a parse (nothing is built but the list).
_split_records = msgspec.json.Decoder(list[msgspec.Raw]).decode


@cache
def _stamp_decoder(key: str) -> Callable[[msgspec.Raw], Any]:
    """Reads only the key and the update stamp of an encoded record, skipping the rest unbuilt."""
    stamp = msgspec.defstruct(
        "RecordStamp",
        [("key", Any, None), ("UpdateDate", Any, None), ("UpdateTime", Any, None)],
        rename={"key": key},
        gc=False,
    )
    return msgspec.json.Decoder(stamp).decode


def _stamps(spec: EntitySpec, raw: bool) -> Callable[[Any], tuple[Any, Any, Any]]:
    """``record -> (UpdateDate, UpdateTime, key)`` for dict records or encoded (``raw``) ones.

    A record that is not a JSON object has no stamp: it is kept, for the caller to report.
    """
    key = spec.key
    if not raw:

        def of_dict(record: Any) -> tuple[Any, Any, Any]:
            if record.__class__ is not dict:
                return None, None, None
            return record.get("UpdateDate"), record.get("UpdateTime"), record.get(key)

        return of_dict
    decode = _stamp_decoder(key)

    def of_raw(record: msgspec.Raw) -> tuple[Any, Any, Any]:
        try:
            found = decode(record)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None, None, None
        return found.UpdateDate, found.UpdateTime, found.key

    return of_raw


class IncrementalRead:
    """The pages of an incremental read, without the records its cursor has already seen.

    Iterate it once; afterwards :attr:`cursor` is the new cursor (the old one when nothing new
    arrived; ``None`` for entities without an update stamp). :attr:`read` counts records
    received, :attr:`new` those yielded.
    """

    def __init__(
        self,
        hook: SapB1Hook,
        entity: str,
        cursor: SapCursor | None,
        *,
        until: dt.datetime | None = None,
        select: list[str] | str | None = None,
        extra_filter: str | None = None,
        page_size: int | None = None,
        prefetch: bool = False,
        raw: bool = False,
    ) -> None:
        self.hook = hook
        self.entity = entity
        self.spec = entity_spec(entity)
        self.start = cursor
        self.cursor = cursor
        self.until = until
        self.read = 0
        self.new = 0
        self.done = False
        self._select = select
        self._extra_filter = extra_filter
        self._page_size = page_size
        self._prefetch = prefetch
        self._raw = raw
        self._consumed = False

    def _filter(self) -> str | None:
        clauses = []
        if self.spec.cursor and self.start is not None:
            clauses.append(f"UpdateDate ge {odata_literal(self.start.update_date)}")
        if self.spec.cursor and self.until is not None:
            until_local = self.until.astimezone(self.hook.server_tz)
            clauses.append(f"UpdateDate le {odata_literal(until_local.date().isoformat())}")
        if self._extra_filter:
            clauses.append(f"({self._extra_filter})")
        return " and ".join(clauses) or None

    def _select_fields(self) -> str | None:
        if self._select is None:
            return None
        fields = (
            [f.strip() for f in self._select.split(",")]
            if isinstance(self._select, str)
            else list(self._select)
        )
        needed = [self.spec.key]
        if self.spec.cursor:
            needed.append("UpdateDate")
        if self.spec.has_update_time:
            needed.append("UpdateTime")
        for name in needed:
            if name not in fields:
                fields.append(name)
        return ",".join(fields)

    def _until_stamp(self) -> tuple[str, str] | None:
        if self.until is None:
            return None
        local = self.until.astimezone(self.hook.server_tz)
        if self.spec.has_update_time:
            return (local.date().isoformat(), local.strftime("%H:%M:%S"))
        # Date-only: a window ending at midnight excludes that day; any later time includes it.
        day = local.date() if local.time() == dt.time(0) else local.date() + dt.timedelta(days=1)
        return (day.isoformat(), "")

    def __iter__(self) -> Iterator[list[Any]]:
        if self._consumed:
            raise RuntimeError(
                "An IncrementalRead can be iterated only once; start a new read_incremental()."
            )
        self._consumed = True
        spec = self.spec
        key_name = spec.key
        dated = spec.cursor is not None
        with_time = spec.has_update_time
        until = self._until_stamp()
        best: tuple[str, str] | None = None
        best_keys: set[Any] = set()
        horizon: tuple[str, str] | None = None
        pages = self.hook._pages(
            self.entity,
            filter=self._filter(),
            select=self._select_fields(),
            orderby=key_name,
            page_size=self._page_size,
            prefetch=self._prefetch,
            on_first_response=self._note_server_clock,
            raw=self._raw,
        )
        stamp_of = _stamps(spec, self._raw)
        for page in pages:
            self.read += len(page)
            if not dated:
                self.new += len(page)
                yield page
                continue
            if horizon is None:
                horizon = self._horizon()
            kept = []
            for record in page:
                date_value, time_value, key = stamp_of(record)
                date = _record_date(date_value)
                if date is None:
                    kept.append(record)
                    continue
                stamp = (date, _record_time(time_value) if with_time else "")
                if until is not None and stamp >= until:
                    continue
                if self.start is not None and not self.start.is_new(stamp[0], stamp[1] or None, key):
                    continue
                kept.append(record)
                capped = min(stamp, horizon)
                if best is None or capped > best:
                    best, best_keys = capped, set()
                if capped == best and stamp == capped:
                    best_keys.add(key)
            if kept:
                self.new += len(kept)
                yield kept
        self.done = True
        if not dated or best is None:
            return
        if self.start is not None and best <= self.start.timestamp:
            if best < self.start.timestamp:
                return
            best_keys |= set(self.start.seen_keys)
        self.cursor = SapCursor(
            update_date=best[0],
            update_time=best[1] if with_time else None,
            seen_keys=tuple(sorted(best_keys, key=lambda k: (str(type(k)), k))),
        )

    _server_now: dt.datetime | None = None

    def _note_server_clock(self, response: requests.Response) -> None:
        header = response.headers.get("Date")
        with contextlib.suppress(TypeError, ValueError):
            self._server_now = parsedate_to_datetime(header) if header else None

    def _horizon(self) -> tuple[str, str]:
        """The latest stamp the cursor may take: the server clock minus :data:`SETTLE_SECONDS`.

        For date-only entities, the last *complete* day: a day still running may get more records.
        """
        now = self._server_now or dt.datetime.now(dt.timezone.utc)
        local = (now - dt.timedelta(seconds=SETTLE_SECONDS)).astimezone(self.hook.server_tz)
        if self.spec.has_update_time:
            return (local.date().isoformat(), local.strftime("%H:%M:%S"))
        return ((local.date() - dt.timedelta(days=1)).isoformat(), "")


# -- idempotent bulk create results ------------------------------------------------------------


@dataclass
class CreateResult:
    """The outcome of one input of :meth:`SapB1Hook.create_many`.

    :param index: position of the input.
    :param dedupe_value: its dedupe value.
    :param outcome: ``"created"``, ``"skipped"`` (already in SAP, or a repeat of an earlier
        input) or ``"failed"``.
    :param record: the created record (as returned by SAP) or the existing one (key and dedupe
        field only), when known.
    :param error: why it failed, one sentence.
    :param code: SAP's error code when SAP refused it.
    """

    index: int
    dedupe_value: Any
    outcome: str = "pending"
    record: dict[str, Any] | None = None
    error: str | None = None
    code: int | str | None = None


# -- the hook ------------------------------------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _as_bool(value: Any, default: bool) -> bool:
    value = _blank_to_none(value)
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


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


class SapB1Hook(BaseHook):
    """Talk to the SAP Business One Service Layer.

    Connection: ``host`` is the Service Layer URL (``https://h:50000/b1s/v2/``, trailing slash
    optional; ``https://h:50000`` alone uses the ``api_version`` extra, default v2), ``schema``
    the company database, ``login``/``password`` the SAP user. Extras: ``api_version``,
    ``verify_tls``, ``ca_bundle``, ``cert_fingerprint``, ``page_size``, ``timezone``,
    ``language``.

    :param sap_b1_conn_id: Airflow connection id.
    :param page_size: records per page (overrides the ``page_size`` extra; default 500).
    :param retry_policy: retries of what may succeed later; :class:`RetryPolicy` default.
    :param timeout: requests timeout ``(connect, read)`` in seconds.
    :param session_cache_dir: directory of the shared session cache (default: env
        ``B1_SESSION_CACHE_DIR``, else ``$AIRFLOW_HOME/b1_sessions``).
    :param prefetch: fetch the next page in a background thread while the caller handles the
        current one (at most one page ahead), for every read of this hook. On by default:
        decoding a wide page and the caller's work then overlap the server's next answer.
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
        prefetch: bool = True,
    ) -> None:
        super().__init__()
        self.sap_b1_conn_id = sap_b1_conn_id
        self._page_size = page_size
        self.retry_policy = retry_policy or RetryPolicy()
        self.timeout = timeout
        self.session_cache_dir = session_cache_dir
        self.prefetch = prefetch

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
        """The connection, read once and normalised (blank fields are ``None``)."""
        conn = self.get_connection(self.sap_b1_conn_id)
        extra = {k: _blank_to_none(v) for k, v in (conn.extra_dejson or {}).items()}
        host = _blank_to_none(conn.host)
        if not host:
            raise ValueError(f"Connection {self.sap_b1_conn_id!r} has no Service Layer URL (host).")
        company = _blank_to_none(conn.schema)
        user = _blank_to_none(conn.login)
        password = conn.password or ""
        if not company or not user:
            raise ValueError(
                f"Connection {self.sap_b1_conn_id!r} needs the company database (schema) and the user (login)."
            )
        base_url, api_version = self._service_root(host, conn.port, extra.get("api_version"))
        page_size = self._page_size or extra.get("page_size") or DEFAULT_PAGE_SIZE
        language = extra.get("language")
        return _Settings(
            base_url=base_url,
            api_version=api_version,
            company=str(company),
            user=str(user),
            password=password,
            verify=_as_bool(extra.get("verify_tls"), True),
            ca_bundle=extra.get("ca_bundle"),
            fingerprint=extra.get("cert_fingerprint"),
            page_size=int(page_size),
            timezone=str(extra.get("timezone") or "UTC"),
            language=int(language) if language is not None else None,
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
    def page_size(self) -> int:
        return self.settings.page_size

    @cached_property
    def server_tz(self) -> ZoneInfo:
        """The SAP server's time zone (extra ``timezone``, default UTC)."""
        return ZoneInfo(self.settings.timezone)

    @cached_property
    def client(self) -> requests.Session:
        """The one ``requests.Session`` of this hook: keep-alive, TLS decision mounted."""
        settings = self.settings
        session = requests.Session()
        adapter = TlsAdapter(
            verify=settings.verify, ca_bundle=settings.ca_bundle, fingerprint=settings.fingerprint
        )
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        # Session cookies are managed by SapSession and sent explicitly; a jar that accepts
        # nothing keeps requests from replaying a stale cookie next to the current one.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        session.headers.update({"Accept": "application/json", "User-Agent": "airflow-provider-b1"})
        # Proxies from the environment still apply; a .netrc must not add Basic auth.
        session.trust_env = True
        return session

    @cached_property
    def sap_session(self) -> SapSession:
        """The SAP session (login on first use, shared with other task processes)."""
        settings = self.settings
        return SapSession(
            self.client,
            settings.base_url,
            settings.company,
            settings.user,
            settings.password,
            language=settings.language,
            timeout=self.timeout,
            retry_policy=self.retry_policy,
            cache_dir=self.session_cache_dir,
        )

    # -- transport ----------------------------------------------------------------------------

    def _url(self, target: str, params: dict[str, Any] | None = None) -> str:
        if "://" in target or target.startswith("/"):
            url = urljoin(self.base_url, target)
        else:
            url = self.base_url + quote(target, safe=_PATH_SAFE)
        if params:
            url += ("&" if "?" in url else "?") + _query_string(params)
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
        """One call with the session, re-logging in once when the session was refused."""
        session = self.sap_session
        state = session.current()
        response = self._transmit(method, url, what, headers, body, state.cookie_header(), repeatable)
        if is_session_expired(response):
            # The server refused the session before doing anything: replaying the call is safe,
            # writes included. Once only: a second refusal is a real error.
            log.info("The SAP session expired; logging in again and repeating %s %s once.", method, what)
            state = session.renew(state)
            response = self._transmit(method, url, what, headers, body, state.cookie_header(), repeatable)
        if response.status_code >= 400:
            raise error_from_response(response, what, method="GET" if repeatable else method)
        session.mark_used(state)
        return response

    def _transmit(
        self,
        method: str,
        url: str,
        what: str,
        headers: dict[str, str] | None,
        body: bytes | None,
        cookie: str,
        repeatable: bool,
    ) -> requests.Response:
        all_headers = {"Cookie": cookie}
        if headers:
            all_headers.update(headers)
        try:
            return self.client.request(method, url, data=body, headers=all_headers, timeout=self.timeout)
        except requests.RequestException as exc:
            sent = not never_sent(exc)
            log.debug("%s %s failed in transport: %s", method, what, type(exc).__name__)
            raise transport_error(
                exc, self.base_url, method="GET" if repeatable else method, sent=sent
            ) from None

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

        :param repeatable: whether the call may be sent again after it may have reached the
            server (GETs: yes; POSTs: never; PATCH: when it cannot add anything twice).
        """
        method = method.upper()
        repeatable = method in ("GET", "HEAD") if repeatable is None else repeatable
        url = self._url(target, params)
        what = what or target.split("?", 1)[0]
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
        # Decoding the raw bytes skips requests' charset sniffing of large bodies; msgspec
        # decodes wide Service Layer pages about twice as fast as json.loads.
        return _decode_json(response.content) if response.content else None

    # -- reads ------------------------------------------------------------------------------

    def iter_pages(
        self,
        entity: str,
        *,
        filter: str | None = None,
        select: list[str] | str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        page_size: int | None = None,
        prefetch: bool | None = None,
        raw: bool = False,
    ) -> Iterator[list[Any]]:
        """Stream an entity set page by page, following the server's next links as given.

        :param entity: entity set, e.g. ``"Invoices"``.
        :param filter: OData ``$filter``; build values with :func:`odata_literal`.
        :param select: properties to return (list or comma-separated): far less to transfer.
        :param orderby: OData ``$orderby``.
        :param top: at most this many records in all.
        :param page_size: records per page (``Prefer: odata.maxpagesize``).
        :param prefetch: fetch the next page while the caller works on this one (default: the
            hook's ``prefetch``).
        :param raw: yield each record still encoded, as a :class:`msgspec.Raw` holding its JSON
            exactly as the server sent it, instead of a dict: for callers that keep the record as
            sent, or decode only the properties they use (``msgspec.json.decode(r, type=...)``).
        :raises SapB1Error: when the server's paging loops (a next link seen twice, or empty
            pages with next links again and again).
        """
        return self._pages(
            entity,
            filter=filter,
            select=select,
            orderby=orderby,
            top=top,
            page_size=page_size,
            prefetch=self.prefetch if prefetch is None else prefetch,
            raw=raw,
        )

    def iter_records(self, entity: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Stream records one by one; same arguments as :meth:`iter_pages`."""
        for page in self.iter_pages(entity, **kwargs):
            yield from page

    def _pages(
        self,
        entity: str,
        *,
        filter: str | None = None,
        select: list[str] | str | None = None,
        orderby: str | None = None,
        top: int | None = None,
        page_size: int | None = None,
        prefetch: bool = False,
        on_first_response: Any = None,
        raw: bool = False,
    ) -> Iterator[list[Any]]:
        params: dict[str, Any] = {}
        if filter:
            params["$filter"] = filter
        if select:
            params["$select"] = select if isinstance(select, str) else ",".join(select)
        if orderby:
            params["$orderby"] = orderby
        if top is not None:
            params["$top"] = int(top)
        size = int(page_size or self.page_size)
        frames = self._follow(entity, params, size, on_first_response)
        # With prefetch the next request is on the wire while this page is being decoded.
        return _decoded(_prefetched(frames) if prefetch else frames, _split_records if raw else _decode_json)

    def _follow(
        self, entity: str, params: dict[str, Any], size: int, on_first_response: Any
    ) -> Iterator[msgspec.Raw]:
        """Yield each non-empty page's records still encoded, following the next links."""
        headers = {"Prefer": f"odata.maxpagesize={size}"}
        url = self._url(entity, params)
        seen: set[str] = set()
        empty_in_a_row = 0
        first = True
        while True:
            response = self._call("GET", url, headers=headers, what=entity)
            if first and on_first_response is not None:
                on_first_response(response)
            first = False
            frame = _decode_frame(response.content) if response.content else _PageFrame()
            next_link = frame.next_v4 or frame.next_v3
            if not _is_empty_array(frame.value):
                empty_in_a_row = 0
                yield frame.value
            elif next_link:
                empty_in_a_row += 1
                if empty_in_a_row >= MAX_EMPTY_PAGES:
                    raise SapB1Error(
                        f"The Service Layer sent {empty_in_a_row} empty pages of {entity} in a row, each with a "
                        "next link; the read stops instead of looping (check the server's paging settings)."
                    )
            if not next_link:
                return
            # Relative to the service root ("Orders?$skip=20"), an absolute path or a full URL.
            url = urljoin(self.base_url, next_link)
            if url in seen:
                raise SapB1Error(
                    f"The Service Layer sent the same next link twice while reading {entity}; the read stops "
                    "instead of looping forever (check the $orderby and the server's paging settings)."
                )
            seen.add(url)

    def get(self, entity: str, key: Any, *, select: list[str] | str | None = None) -> dict[str, Any]:
        """One record by key.

        :param entity: entity set.
        :param key: key value (rendered per :func:`entity_path`).
        :param select: properties to return.
        :raises SapB1NotFoundError: when there is no such record.
        """
        params = {"$select": select if isinstance(select, str) else ",".join(select)} if select else None
        path = entity_path(entity, key)
        return self._json(self._call("GET", path, params=params, what=path))

    def count(self, entity: str, filter: str | None = None) -> int:
        """Number of records (``/$count``), optionally filtered.

        :param entity: entity set.
        :param filter: OData ``$filter``.
        """
        params = {"$filter": filter} if filter else None
        response = self._call("GET", f"{entity}/$count", params=params, what=f"{entity}/$count")
        text = response.content.decode("utf-8-sig").strip()
        try:
            return int(text)
        except ValueError:
            document = json.loads(text)
            return int(document["value"] if isinstance(document, dict) else document)

    def read_incremental(
        self,
        entity: str,
        cursor: SapCursor | None,
        *,
        until: dt.datetime | None = None,
        select: list[str] | str | None = None,
        extra_filter: str | None = None,
        page_size: int | None = None,
        prefetch: bool | None = None,
        raw: bool = False,
    ) -> IncrementalRead:
        """Read what changed since ``cursor`` (everything when ``None``).

        Filters ``UpdateDate ge '<cursor date>'`` (day granularity is all SAP offers), orders by
        key so that paging stays stable while records change, and drops what the cursor has
        already seen. The new cursor never passes the server's clock minus a few seconds, so a
        record changed during the read is read again next time (upserts make that harmless).

        :param entity: entity set declared in :data:`ENTITIES`.
        :param cursor: where the last read stopped.
        :param until: exclusive end (aware datetime), e.g. a data interval end.
        :param select: properties to return; the key and update stamp are added.
        :param extra_filter: further ``$filter`` clause, and-ed.
        :param page_size: records per page.
        :param prefetch: fetch one page ahead (default: the hook's ``prefetch``).
        :param raw: pages of still-encoded records (:class:`msgspec.Raw`), as in :meth:`iter_pages`.
        """
        return IncrementalRead(
            self,
            entity,
            cursor,
            until=until,
            select=select,
            extra_filter=extra_filter,
            page_size=page_size,
            prefetch=self.prefetch if prefetch is None else prefetch,
            raw=raw,
        )

    # -- writes -----------------------------------------------------------------------------

    def _record_from_write(self, response: requests.Response) -> dict[str, Any]:
        if response.status_code == 204 or not response.content:
            location = response.headers.get("Location")
            if not location:
                return {}
            return self._json(self._call("GET", self._service_relative(location)))
        record = self._json(response)
        etag = response.headers.get("ETag")
        if etag and isinstance(record, dict):
            record.setdefault("@odata.etag", etag)
        return record

    def _service_relative(self, location: str) -> str:
        """A ``Location`` may name the server by another host name; keep only the service path."""
        marker = f"/b1s/{self.api_version}/"
        path = urlsplit(location).path if "://" in location else location
        return path.split(marker, 1)[1] if marker in path else path.lstrip("/")

    def create(
        self, entity: str, payload: dict[str, Any], *, dedupe_field: str | None = None
    ) -> dict[str, Any]:
        """Create a record (``POST``) and return it as SAP stored it.

        A POST is never repeated blindly: SAP has no idempotency key. When the outcome is
        unknown (reset, timeout or 5xx after sending) and ``dedupe_field`` is given, the record
        is looked up by that field first and only sent again when absent. Without
        ``dedupe_field`` the ambiguous outcome is raised.

        :param entity: entity set.
        :param payload: the record.
        :param dedupe_field: a field whose value identifies the record (``NumAtCard``, ``U_*``).
        :raises SapB1AmbiguousWriteError: outcome unknown and no way to check.
        """
        if dedupe_field is None:
            try:
                return self._record_from_write(self._call("POST", entity, json_body=payload))
            except SapB1AmbiguousWriteError as exc:
                raise SapB1AmbiguousWriteError(
                    f"{exc} It was not retried because create() was given no dedupe_field to check with; "
                    "pass one (e.g. NumAtCard or a U_ field holding the source id).",
                    status=exc.status,
                    code=exc.code,
                    sap_message=exc.sap_message,
                ) from None
        if dedupe_field not in payload or payload[dedupe_field] in (None, ""):
            raise ValueError(f"The payload has no value for its dedupe field {dedupe_field!r}.")
        value = payload[dedupe_field]
        uncertain = False
        for attempt in self.retry_policy.retrying(retry_on=SapB1AmbiguousWriteError):
            with attempt:
                if uncertain:
                    existing = self.find_by(entity, dedupe_field, value)
                    if existing is not None:
                        log.info("The interrupted create of %s did reach SAP; not sending it again.", entity)
                        return existing
                try:
                    return self._record_from_write(self._call("POST", entity, json_body=payload))
                except SapB1AmbiguousWriteError:
                    uncertain = True
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def update(
        self,
        entity: str,
        key: Any,
        payload: dict[str, Any],
        *,
        etag: str | None = None,
        replace_collections: bool = False,
    ) -> None:
        """Change a record (``PATCH``: merges; child rows without their row number are added).

        :param entity: entity set.
        :param key: key value.
        :param payload: the properties to change.
        :param etag: ``If-Match`` value: the change fails with :class:`SapB1ConflictError`
            when the record changed since it was read.
        :param replace_collections: send ``B1S-ReplaceCollectionsOnPatch: true`` so child
            collections are replaced rather than appended to.
        """
        headers: dict[str, str] = {}
        if etag:
            headers["If-Match"] = etag
        if replace_collections:
            headers["B1S-ReplaceCollectionsOnPatch"] = "true"
        # A PATCH can be repeated when it cannot add rows twice and no ETag would reject the
        # repeat of a change that already went through.
        adds_rows = any(isinstance(value, list) for value in payload.values()) and not replace_collections
        path = entity_path(entity, key)
        self._call("PATCH", path, json_body=payload, headers=headers, repeatable=not adds_rows and not etag)

    def find_by(
        self, entity: str, field_name: str, value: Any, *, select: list[str] | str | None = None
    ) -> dict[str, Any] | None:
        """The first record whose ``field_name`` equals ``value`` (escaped), or ``None``.

        :param entity: entity set.
        :param field_name: property to match.
        :param value: value to match.
        :param select: properties to return.
        """
        for page in self.iter_pages(entity, filter=odata_eq(field_name, value), select=select, top=1):
            if page:
                return page[0]
        return None

    def create_if_absent(
        self, entity: str, payload: dict[str, Any], *, dedupe_field: str
    ) -> tuple[dict[str, Any], bool]:
        """Create a record unless one with the same ``dedupe_field`` value exists.

        :param entity: entity set.
        :param payload: the record.
        :param dedupe_field: field identifying the record (``NumAtCard``, ``U_ExternalId``).
        :return: ``(record, created)``.
        """
        if dedupe_field not in payload or payload[dedupe_field] in (None, ""):
            raise ValueError(f"The payload has no value for its dedupe field {dedupe_field!r}.")
        existing = self.find_by(entity, dedupe_field, payload[dedupe_field])
        if existing is not None:
            return existing, False
        return self.create(entity, payload, dedupe_field=dedupe_field), True

    def batch(self, requests: list[BatchRequest], *, atomic: bool = True) -> list[BatchResult]:
        """Send requests in one ``$batch`` and return one result per request, in order.

        Execution stops at the first failure: later requests come back with
        ``executed == False``. With ``atomic=True`` consecutive writes share a changeset and
        stand or fall together; with ``atomic=False`` each write has a changeset of its own.

        :param requests: the requests.
        :param atomic: see above.
        :raises SapB1AmbiguousWriteError: the batch held writes and its outcome is unknown.
        """
        if not requests:
            return []
        service_path = urlsplit(self.base_url).path
        body, content_type, units = build_batch(requests, service_path=service_path, atomic=atomic)
        has_writes = any(request.is_write for request in requests)
        response = self._call(
            "POST",
            "$batch",
            data=body,
            headers={"Content-Type": content_type, "Accept": "multipart/mixed"},
            what="$batch",
            repeatable=not has_writes,
        )
        try:
            return parse_batch_reply(
                response.content, response.headers.get("Content-Type", ""), requests, units
            )
        except ValueError as exc:
            raise SapB1AmbiguousWriteError(
                f"The $batch reply could not be read ({exc}); look the records up before sending them again.",
                status=response.status_code,
            ) from None

    def existing_values(
        self, entity: str, field_name: str, values: Iterable[Any], *, chunk_size: int = LOOKUP_CHUNK
    ) -> dict[Any, dict[str, Any]]:
        """Which of ``values`` already exist in ``field_name``: one filtered GET per chunk.

        :param entity: entity set.
        :param field_name: the dedupe field.
        :param values: values to look for.
        :param chunk_size: values per request (keeps URLs short).
        :return: ``{value: record}`` with the key and ``field_name`` of each record found.
        """
        distinct = list(dict.fromkeys(v for v in values if v not in (None, "")))
        spec = ENTITIES.get(entity)
        select = [spec.key, field_name] if spec and spec.key != field_name else [field_name]
        found: dict[Any, dict[str, Any]] = {}
        for start in range(0, len(distinct), chunk_size):
            chunk = distinct[start : start + chunk_size]
            for page in self.iter_pages(entity, filter=odata_any_of(field_name, chunk), select=select):
                for record in page:
                    found.setdefault(record.get(field_name), record)
        return found

    def create_many(
        self,
        entity: str,
        payloads: list[dict[str, Any]],
        *,
        dedupe_field: str,
        chunk_size: int = LOOKUP_CHUNK,
    ) -> list[CreateResult]:
        """Create many records idempotently with ``$batch``; one result per input, in order.

        Per chunk: one filtered GET finds the dedupe values already in SAP (``skipped``); the
        absent records go in one ``$batch``, each in its own changeset, so a bad record fails
        alone (``failed`` with SAP's message) and the records SAP did not reach after it are
        sent again in the next round. When a batch's outcome is unknown (reset, timeout, 5xx),
        the chunk's values are looked up again before anything is re-sent, so nothing is created
        twice. Inputs repeating an earlier input's dedupe value are ``skipped``.

        :param entity: entity set.
        :param payloads: the records.
        :param dedupe_field: field identifying each record (``NumAtCard``, ``U_ExternalId``).
        :param chunk_size: records per lookup and per ``$batch``.
        """
        results = [CreateResult(index=i, dedupe_value=p.get(dedupe_field)) for i, p in enumerate(payloads)]
        first_seen: dict[Any, int] = {}
        todo: list[int] = []
        for result in results:
            value = result.dedupe_value
            if value in (None, ""):
                result.outcome = "failed"
                result.error = f"The record has no value for its dedupe field {dedupe_field}."
            elif value in first_seen:
                result.outcome = "skipped"
                result.error = f"Same {dedupe_field} as input #{first_seen[value]}."
            else:
                first_seen[value] = result.index
                todo.append(result.index)
        for start in range(0, len(todo), chunk_size):
            self._create_chunk(entity, payloads, results, todo[start : start + chunk_size], dedupe_field)
        return results

    def _create_chunk(
        self,
        entity: str,
        payloads: list[dict[str, Any]],
        results: list[CreateResult],
        chunk: list[int],
        dedupe_field: str,
    ) -> None:
        existing = self.existing_values(entity, dedupe_field, [results[i].dedupe_value for i in chunk])
        pending: list[int] = []
        for index in chunk:
            record = existing.get(results[index].dedupe_value)
            if record is not None:
                results[index].outcome, results[index].record = "skipped", record
            else:
                pending.append(index)
        uncertain_rounds = 0
        while pending:
            requests_ = [BatchRequest("POST", entity, payloads[i]) for i in pending]
            try:
                replies = self.batch(requests_, atomic=False)
            except SapB1AmbiguousWriteError as exc:
                uncertain_rounds += 1
                if uncertain_rounds >= self.retry_policy.max_attempts:
                    for index in pending:
                        results[index].outcome, results[index].error = "failed", str(exc)
                    return
                time.sleep(
                    min(
                        self.retry_policy.initial_wait * 2 ** (uncertain_rounds - 1),
                        self.retry_policy.max_wait,
                    )
                )
                # What reached SAP before the failure was created by us: it was absent above.
                landed = self.existing_values(
                    entity, dedupe_field, [results[i].dedupe_value for i in pending]
                )
                still = []
                for index in pending:
                    record = landed.get(results[index].dedupe_value)
                    if record is not None:
                        results[index].outcome, results[index].record = "created", record
                    else:
                        still.append(index)
                pending = still
                continue
            except SapB1Error as exc:
                for index in pending:
                    results[index].outcome, results[index].error, results[index].code = (
                        "failed",
                        str(exc),
                        exc.code,
                    )
                return
            progressed = False
            still = []
            for index, reply in zip(pending, replies):
                result = results[index]
                if reply.ok:
                    result.outcome, result.record = "created", reply.record
                    progressed = True
                elif reply.executed:
                    result.outcome, result.code = "failed", reply.code
                    result.error = f"SAP refused the record (HTTP {reply.status}, SAP code {reply.code}: {reply.message})."
                    progressed = True
                else:
                    still.append(index)
            if not progressed:
                for index in still:
                    results[index].outcome = "failed"
                    results[index].error = "The Service Layer ran none of the batch's requests."
                return
            pending = still

    # -- session and connection test ---------------------------------------------------------------

    def login(self) -> None:
        """Make sure a session exists (logs in unless a shared one is alive)."""
        self.sap_session.current()

    def logout(self) -> None:
        """End the session on the server, freeing its user licence."""
        self.sap_session.logout()

    def test_connection(self) -> tuple[bool, str]:
        """Log in and report which data areas the user can read (the UI's Test button).

        Each area costs one ``$top=1&$select=<key>`` GET.
        """
        try:
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
                return False, f"Logged in, but reading {area} failed: {exc}"
        settings = self.settings
        message = (
            f"Logged in to company {settings.company} as {settings.user} (Service Layer {settings.api_version}). "
            f"Readable: {', '.join(readable) or 'none'}."
        )
        if denied:
            message += f" Denied: {', '.join(denied)} (grant authorisations in SAP to read them)."
        if missing:
            message += f" Not available on this server: {', '.join(missing)}."
        return True, message


def _prefetched(pages: Iterator[_T]) -> Iterator[_T]:
    """Fetch page N+1 in a background thread while the caller works on page N.

    Memory stays bounded: the fetcher only starts the next request once the caller has taken
    the previous page, so at most one page waits besides the one in the caller's hands.
    Exceptions of the fetcher are raised in the caller at the point of the page they replace.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
    may_fetch = threading.Semaphore(1)
    stop = threading.Event()

    def fetch() -> None:
        try:
            while True:
                while not may_fetch.acquire(timeout=0.2):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                try:
                    page = next(pages)
                except StopIteration:
                    handoff.put(("end", None))
                    return
                handoff.put(("page", page))
        except BaseException as exc:
            handoff.put(("error", exc))
        finally:
            with contextlib.suppress(Exception):
                pages.close()

    worker = threading.Thread(target=fetch, name="sap-b1-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            may_fetch.release()
            # Hand the interpreter lock to the fetcher so the next request leaves now; decoding
            # this page holds the lock for tens of milliseconds, during which the fetcher could
            # not even send it.
            time.sleep(0)
            yield value
    finally:
        stop.set()
        # Unblock a fetcher waiting to hand over a page the caller no longer wants.
        with contextlib.suppress(queue.Empty):
            handoff.get_nowait()
        worker.join(timeout=1.0)
