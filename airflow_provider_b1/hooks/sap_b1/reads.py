"""Reading from the Service Layer: pages, next links, incremental reads and their cursor.

Pages are streamed: each reply's records are handed on as soon as they arrive, never piled up.
Next links (v1 ``odata.nextLink``, v2 ``@odata.nextLink``; relative, an absolute path or a
full URL) are followed exactly as given, through the shared loop guard of
:func:`~airflow_provider_b1.utils.paging.paginate`. A page's frame is read without building
its records, so the next request can leave (with ``prefetch``) before this page is decoded.

An incremental read filters ``UpdateDate`` by day (all SAP offers), re-reads the cursor's day
and drops what the cursor has already seen by ``(UpdateDate, UpdateTime)`` and key.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin

import msgspec
import requests

from airflow_provider_b1.hooks.sap_b1.entities import EntitySpec, entity_spec
from airflow_provider_b1.hooks.sap_b1.errors import SapB1Error, SapB1RequestTooLongError
from airflow_provider_b1.hooks.sap_b1.literals import (
    MAX_REQUEST_LINE,
    NEXT_LINK_HEADROOM,
    any_of_chunks,
    entity_path,
    entity_set,
    request_line_length,
    update_stamp_filter,
)
from airflow_provider_b1.sync.cursors import StampCursor
from airflow_provider_b1.utils.paging import Page, paginate
from airflow_provider_b1.utils.params import parse_datetime
from airflow_provider_b1.utils.prefetch import prefetched

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from airflow_provider_b1.hooks.sap_b1.hook import SapB1Hook

SETTLE_SECONDS = 5
"""An incremental cursor never moves past the server's clock minus this: writes stamped in the
last seconds may still be committing, and a record updated during the read must be read again."""

# -- the cursor and the update stamps -------------------------------------------------------


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


class SapCursor(StampCursor):
    """Where an incremental read stopped, in the server's local time: the sync engine's
    :class:`~airflow_provider_b1.sync.cursors.StampCursor` with SAP's names.

    SAP stamps records with ``UpdateDate`` (no time of day) and ``UpdateTime`` in the server's
    time zone, and filters on ``UpdateDate`` at day granularity only. So a read re-reads the
    cursor's whole day and drops what the cursor has already seen: records stamped before it,
    and those stamped exactly at it whose key is in :attr:`seen_keys`.

    :param update_date: ``YYYY-MM-DD``.
    :param update_time: ``HH:MM:SS``; ``None`` for entities without ``UpdateTime`` (the
        cursor is then a date and :attr:`seen_keys` the keys read on that date).
    :param seen_keys: keys already read at exactly this timestamp.
    """

    kind: ClassVar[str] = "sap_stamp"

    def __init__(
        self,
        update_date: str | None = None,
        update_time: str | None = None,
        seen_keys: Iterable[Any] = (),
        *,
        stamp: tuple[str, ...] | None = None,
    ) -> None:
        if stamp is None:
            if not update_date:
                raise ValueError("A SapCursor needs an update_date.")
            stamp = (str(update_date),) if update_time is None else (str(update_date), str(update_time))
        super().__init__(stamp, tuple(seen_keys))

    @property
    def update_date(self) -> str:
        return self.stamp[0]

    @property
    def update_time(self) -> str | None:
        return self.stamp[1] if len(self.stamp) > 1 else None

    @property
    def timestamp(self) -> tuple[str, str]:
        return (self.update_date, self.update_time or "")

    def to_xcom(self) -> dict[str, Any]:
        """Primitives only, for XCom, under SAP's names."""
        return {
            "kind": self.kind,
            "update_date": self.update_date,
            "update_time": self.update_time,
            "seen_keys": list(self.seen_keys),
        }

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> SapCursor:
        """Rebuild a cursor from :meth:`to_xcom` output (also a summary's from before the kind was kept).

        :param data: the dict.
        :raises ValueError: when it is not a SAP stamp cursor.
        """
        if not data.get("update_date") or data.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"not a SAP stamp cursor: {dict(data)!r}")
        return cls(str(data["update_date"]), data.get("update_time"), tuple(data.get("seen_keys") or ()))

    to_dict = to_xcom
    from_dict = from_xcom

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

    def describe(self) -> str:
        """``UpdateDate 2024-05-01 12:00:00`` (the server's local time), for log lines."""
        return "UpdateDate " + " ".join(self.stamp) + self._seen_note()


_decode_fast = msgspec.json.Decoder().decode
_decode_wide = msgspec.json.Decoder(float_hook=float).decode


def decode_json(data: bytes | str) -> Any:
    """Decode a whole JSON document (msgspec: about twice as fast as ``json.loads`` on wide pages).

    A number beyond a double (``1e309``) becomes ``inf``, as :func:`json.loads` reads it, instead
    of failing the whole page: whoever maps the record fails that one record.
    """
    try:
        return _decode_fast(data)
    except msgspec.ValidationError:
        return _decode_wide(data)


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


class ODataNextLinks:
    """The Service Layer's paging: the next link of v1 (``odata.nextLink``) or v2 (``@odata.nextLink``).

    A :class:`~airflow_provider_b1.utils.paging.Paginator` whose pages carry their records still
    encoded (a :class:`msgspec.Raw` of the ``value`` array): only the frame is read here, in the
    fetching thread, and the records are decoded by whoever takes the page.

    :param base_url: the service root; a link is resolved against it (relative to the root,
        an absolute path or a full URL: followed as given, never recomputed).
    """

    hint = "check the $orderby and the server's paging settings"

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def read(self, response: requests.Response) -> Page[msgspec.Raw]:
        """The page's records (still encoded) and the URL of the next page, if any.

        :param response: a successful reply to a collection GET.
        """
        frame = _decode_frame(response.content) if response.content else _PageFrame()
        link = frame.next_v4 or frame.next_v3
        return Page(
            content=frame.value,
            empty=_is_empty_array(frame.value),
            next=urljoin(self.base_url, link) if link else None,
        )


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


def _split_as_bytes(raw: msgspec.Raw) -> list[bytes]:
    """A page's records, each as the ``bytes`` of its JSON exactly as sent.

    A :class:`msgspec.Raw` is a view into the whole reply; ``bytes`` of it is the one copy a
    record costs (consumers that need ``bytes`` then take it as it is, without a copy of their
    own), and it lets the reply's buffer go as soon as the page is split.
    """
    return list(map(bytes, _split_records(raw)))


@cache
def _stamp_decoder(key: str) -> Callable[[bytes], Any]:
    """Reads only the key and the update stamp of an encoded record, skipping the rest unbuilt."""
    stamp = msgspec.defstruct(
        "RecordStamp",
        [("key", Any, None), ("UpdateDate", Any, None), ("UpdateTime", Any, None)],
        rename={"key": key},
        gc=False,
    )
    return msgspec.json.Decoder(stamp).decode


def _stamps(spec: EntitySpec, raw: bool) -> Callable[[Any], tuple[Any, Any, Any]]:
    """``record -> (UpdateDate, UpdateTime, key)`` for dict records or encoded (``raw``, bytes) ones.

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

    def of_raw(record: bytes) -> tuple[Any, Any, Any]:
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
    received, :attr:`new` those yielded. Built by :meth:`SapB1Reads.read_incremental`, whose
    parameters it takes.

    :param hook: the hook that reads.
    :param entity: entity set declared in :data:`~airflow_provider_b1.hooks.sap_b1.entities.ENTITIES`.
    :param cursor: where the last read stopped; ``None`` reads everything.
    :param until: exclusive end: an aware datetime, or RFC 3339 text with its offset or a plain
        date (:func:`~airflow_provider_b1.utils.params.parse_datetime`); a naive datetime is refused.
    :param select: properties to return; the key and update stamp are added.
    :param extra_filter: further ``$filter`` clause, and-ed.
    :param page_size: records per page.
    :param prefetch: fetch one page ahead in a background thread.
    :param raw: pages of records as ``bytes`` (their JSON as sent) instead of dicts.
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
        # Strict: a string (RFC 3339 with its offset, or a plain date) or an aware datetime; a
        # naive one is refused rather than taken as this machine's local time.
        self.until = parse_datetime(until, name="until")
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
        until_day = None
        if self.until is not None:
            until_day = self.until.astimezone(self.hook.server_tz).date()
        clauses = []
        stamp = update_stamp_filter(
            self.spec, self.start.update_date if self.start is not None else None, until_day
        )
        if stamp:
            clauses.append(stamp)
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
        with_start_time = self.start is not None and self.start.update_time is not None
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
                if self.start is not None and not self.start.is_new(
                    stamp if with_start_time else stamp[:1], key
                ):
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
        reached = SapCursor(best[0], best[1] if with_time else None, best_keys)
        self.cursor = reached if self.start is None else self.start.advance(reached)

    _server_now: dt.datetime | None = None

    def _note_server_clock(self, response: requests.Response) -> None:
        self._server_now = server_clock(response)

    def _horizon(self) -> tuple[str, str]:
        """The latest stamp the cursor may take: the server clock minus :data:`SETTLE_SECONDS`.

        For date-only entities, the last *complete* day: a day still running may get more records.
        """
        now = self._server_now or dt.datetime.now(dt.timezone.utc)
        local = (now - dt.timedelta(seconds=SETTLE_SECONDS)).astimezone(self.hook.server_tz)
        if self.spec.has_update_time:
            return (local.date().isoformat(), local.strftime("%H:%M:%S"))
        return ((local.date() - dt.timedelta(days=1)).isoformat(), "")


def server_clock(response: requests.Response) -> dt.datetime | None:
    """The server's clock when it sent ``response`` (its ``Date`` header, aware), or ``None``."""
    header = response.headers.get("Date")
    if not header:
        return None
    try:
        return parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None


# -- the hook's reads ---------------------------------------------------------------------------


class SapB1Reads:
    """The reading half of :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.

    Relies on the hook's transport (``_call``, ``_url``, ``_json``), its ``base_url``,
    ``page_size`` and ``prefetch``.
    """

    base_url: str
    page_size: int
    prefetch: bool
    server_tz: ZoneInfo
    _call: Callable[..., requests.Response]
    _url: Callable[..., str]
    _json: Callable[[requests.Response], Any]

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
        :param filter: OData ``$filter``; build values with
            :func:`~airflow_provider_b1.hooks.sap_b1.literals.odata_literal`.
        :param select: properties to return (list or comma-separated): far less to transfer.
        :param orderby: OData ``$orderby``.
        :param top: at most this many records in all.
        :param page_size: records per page (``Prefer: odata.maxpagesize``).
        :param prefetch: fetch the next page in a background thread while the caller works on
            this one, one page ahead at the most (default: the hook's ``prefetch``, off unless
            the hook was built with ``prefetch=True``).
        :param raw: yield each record as ``bytes``, its JSON exactly as the server sent it,
            instead of a dict: for callers that keep the record as sent, or decode only the
            properties they use (``msgspec.json.decode(record, type=...)``).
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
        """Stream records one by one.

        :param entity: entity set.
        :param kwargs: the keyword arguments of :meth:`iter_pages`.
        """
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
        entity_set(entity)
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
        if prefetch:
            # The next request is on the wire while this page is being decoded and handled.
            frames = prefetched(frames, name="sap-b1-prefetch")
        return _decoded(frames, _split_as_bytes if raw else decode_json)

    def _follow(
        self, entity: str, params: dict[str, Any], size: int, on_first_response: Any
    ) -> Iterator[msgspec.Raw]:
        """Yield each non-empty page's records still encoded, following the next links."""
        headers = {"Prefer": f"odata.maxpagesize={size}"}
        first_url = self._url(entity, params)

        def send(next_url: Hashable | None) -> requests.Response:
            response = self._call("GET", next_url or first_url, headers=headers, what=entity)
            if next_url is None and on_first_response is not None:
                on_first_response(response)
            return response

        return paginate(
            send, ODataNextLinks(self.base_url), source="The Service Layer", what=entity, error=SapB1Error
        )

    def get(self, entity: str, key: Any, *, select: list[str] | str | None = None) -> dict[str, Any]:
        """One record by key.

        :param entity: entity set.
        :param key: key value (rendered per
            :func:`~airflow_provider_b1.hooks.sap_b1.literals.entity_path`).
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
        return self.count_at(entity, filter)[0]

    def count_at(self, entity: str, filter: str | None = None) -> tuple[int, dt.datetime]:
        """:meth:`count`, and the server's clock when it answered (its ``Date`` header; this
        machine's without one), for a reader that must know when the count was true."""
        params = {"$filter": filter} if filter else None
        entity_set(entity)
        response = self._call("GET", f"{entity}/$count", params=params, what=f"{entity}/$count")
        text = response.content.decode("utf-8-sig").strip()
        try:
            counted = int(text)
        except ValueError:
            document = json.loads(text)
            counted = int(document["value"] if isinstance(document, dict) else document)
        return counted, server_clock(response) or dt.datetime.now(dt.timezone.utc)

    # -- lookups by many values ---------------------------------------------------------------

    def _lookup_room(self, entity: str, select: list[str] | str | None) -> int:
        """Bytes a lookup's encoded ``$filter`` may take: the request line's limit, minus the rest of
        the line (method, path, other options, protocol) and room for the server's next links."""
        params: dict[str, Any] = {"$filter": ""}
        if select:
            params["$select"] = select if isinstance(select, str) else ",".join(select)
        rest = request_line_length("GET", self._url(entity_set(entity), params))
        return MAX_REQUEST_LINE - NEXT_LINK_HEADROOM - rest

    def too_long_to_look_up(
        self,
        entity: str,
        field_name: str,
        values: Iterable[Any],
        *,
        select: list[str] | str | None = None,
    ) -> list[Any]:
        """The values that cannot be looked up at all: ``field eq <value>`` alone makes a URL too long.

        The web server in front of the Service Layer refuses request lines over
        :data:`~airflow_provider_b1.hooks.sap_b1.literals.MAX_REQUEST_LINE` bytes; a value of a few
        hundred characters of CJK text (9 bytes each once percent-encoded) is enough.

        :param entity: entity set.
        :param field_name: the property compared.
        :param values: the values.
        :param select: the ``$select`` the lookup would send.
        """
        return any_of_chunks(field_name, values, room=self._lookup_room(entity, select))[1]

    def iter_any_of(
        self,
        entity: str,
        field_name: str,
        values: Iterable[Any],
        *,
        select: list[str] | str | None = None,
        max_values: int | None = None,
        page_size: int | None = None,
        prefetch: bool | None = None,
        raw: bool = False,
    ) -> Iterator[list[Any]]:
        """Pages of the records whose ``field_name`` equals any of ``values``, in as few GETs as fit.

        ``field eq a or field eq b ...`` is split by the bytes each request line takes once
        percent-encoded (method, path, query and protocol), never more than the Service Layer's
        web server accepts, not by a count of values: 20 values of 100 CJK characters would make
        an 18 KB URL, 20 short codes a few hundred bytes.

        :param entity: entity set.
        :param field_name: the property compared.
        :param values: the values (repeats are looked up once).
        :param select: properties to return.
        :param max_values: at most this many values per request as well (keeps each answer short).
        :param page_size: records per page.
        :param prefetch: fetch one page ahead (default: the hook's ``prefetch``).
        :param raw: pages of records as ``bytes``, as in :meth:`iter_pages`.
        :raises SapB1RequestTooLongError: at once, before anything is sent, when a value alone
            makes the request line too long (:meth:`too_long_to_look_up` finds them beforehand).
        """
        distinct = list(dict.fromkeys(values))
        chunks, too_long = any_of_chunks(
            field_name, distinct, room=self._lookup_room(entity, select), max_values=max_values
        )
        if too_long:
            raise SapB1RequestTooLongError(
                f"Cannot look {entity} up by {field_name}: {len(too_long)} of the values are too long to look "
                f"up, since '{field_name} eq <value>' alone makes a request line over the {MAX_REQUEST_LINE:,} "
                "bytes the Service Layer's web server accepts; leave them out (too_long_to_look_up finds them)."
            )
        return self._any_of_pages(entity, chunks, select, page_size, prefetch, raw)

    def _any_of_pages(
        self,
        entity: str,
        chunks: list[tuple[list[Any], str]],
        select: list[str] | str | None,
        page_size: int | None,
        prefetch: bool | None,
        raw: bool,
    ) -> Iterator[list[Any]]:
        for _, filter_ in chunks:
            yield from self.iter_pages(
                entity, filter=filter_, select=select, page_size=page_size, prefetch=prefetch, raw=raw
            )

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

        :param entity: entity set declared in
            :data:`~airflow_provider_b1.hooks.sap_b1.entities.ENTITIES`.
        :param cursor: where the last read stopped.
        :param until: exclusive end, e.g. a data interval end: an aware datetime, or RFC 3339 text
            with its offset or a plain date; a naive datetime is refused (:class:`ParamError`).
        :param select: properties to return; the key and update stamp are added.
        :param extra_filter: further ``$filter`` clause, and-ed.
        :param page_size: records per page.
        :param prefetch: fetch one page ahead (default: the hook's ``prefetch``).
        :param raw: pages of records as ``bytes`` (their JSON as sent), as in :meth:`iter_pages`.
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
