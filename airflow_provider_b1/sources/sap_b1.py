"""SAP Business One entities as a source of the sync engine.

Incremental reads follow the Service Layer's rules (in :meth:`SapB1Hook.read_incremental
<airflow_provider_b1.hooks.sap_b1.SapB1Hook.read_incremental>`): ``UpdateDate`` filtered by day
in the server's time zone, the records the cursor has already seen dropped, pages ordered by key
so that paging stays stable while records change. Because pages come in key order, not stamp
order, a read cannot resume in the middle: the position it reached arrives with a last, empty
page once every record is read, and the engine moves the cursor only when every page before it
is committed. Entities without an update stamp are read in full every run.

A load that reads much of a large entity can be split into ranges
(:mod:`airflow_provider_b1.sync.partitions`): by key where keys are integers in creation order
(documents; :meth:`SapB1Source.key_bounds` counts and finds the lowest and highest key with
``$count`` and ``$top=1`` each way), by ``UpdateDate`` where keys are codes (partners, items;
:meth:`SapB1Source.stamp_bounds` and :meth:`SapB1Source.count_before` size day ranges from
filtered ``$count`` answers). :meth:`SapB1Source.read_range` reads one range in key order, each
page resumable after its last key; a window run's ranges read only its window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor, entity_spec
from airflow_provider_b1.hooks.sap_b1.literals import odata_literal, update_stamp_filter
from airflow_provider_b1.hooks.sap_b1.reads import SETTLE_SECONDS
from airflow_provider_b1.sync.engine import Page, Source
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.partitions import KEY, STAMP, KeyBounds, KeyRange, RangeCursor
from airflow_provider_b1.utils.params import parse_datetime

#: At most this many keys per ``$filter`` when records are re-read by key (replay); fewer when
#: the keys are long (see :meth:`SapB1Hook.iter_any_of`).
KEYS_PER_REQUEST = 20


class SapB1Source(Source):
    """Reads SAP Business One entities (one per stream, the stream named as the entity set).

    :param hook: the SAP hook.
    :param select: per entity, the properties to read (``$select``): far less to transfer than
        whole records; the key and update stamp are always added. Entities not named read every
        property.
    :param page_size: records per page; the connection's setting when ``None``.
    :param prefetch: fetch the next page while the engine maps and writes this one.
    :param encoded: hand records on as their JSON bytes, exactly as sent, for sinks that decode
        only what they map (the warehouse); ``False`` gives dicts.
    """

    system = "sap_b1"

    def __init__(
        self,
        hook: SapB1Hook,
        *,
        select: Mapping[str, Sequence[str]] | None = None,
        page_size: int | None = None,
        prefetch: bool = True,
        encoded: bool = True,
    ) -> None:
        self.hook = hook
        self.select = {entity: list(fields) for entity, fields in (select or {}).items()}
        self.page_size = page_size
        self.prefetch = prefetch
        self.encoded = encoded

    def read(self, stream: Stream, start: Any, *, until: dt.datetime | None) -> Iterator[Page]:
        read = self.hook.read_incremental(
            stream.name,
            start,
            until=until,
            select=self.select.get(stream.name),
            page_size=self.page_size,
            prefetch=self.prefetch,
            raw=self.encoded,
        )
        for records in read:
            yield Page(records)
        if read.cursor is not None:
            yield Page((), reached=read.cursor)

    def splits_by(self, stream: Stream) -> str | None:
        """How a load of the stream splits into ranges: by ``DocEntry``-like integer keys (documents,
        journal entries), by ``UpdateDate`` where keys are codes in no useful order (business
        partners, items), not at all without an update stamp (the cursor that follows needs one)."""
        spec = entity_spec(stream.name)
        if not spec.cursor:
            return None
        return KEY if spec.key_type is int else STAMP

    def _window(self, stream: Stream, since: dt.datetime | None, until: dt.datetime | None) -> str | None:
        """The ``UpdateDate`` filter of a window's days (a superset: the time of day is not filtered)."""
        tz = self.hook.server_tz
        return update_stamp_filter(
            stream.name,
            None if since is None else since.astimezone(tz).date(),
            None if until is None else until.astimezone(tz).date(),
        )

    def _count(self, stream: Stream, clauses: Sequence[str | None]) -> tuple[int, dt.datetime]:
        """Records matching every clause, and the server's clock when it answered less the
        seconds a write stamped just before may still take to commit."""
        wanted = [c for c in clauses if c]
        count, clock = self.hook.count_at(stream.name, " and ".join(f"({c})" for c in wanted) or None)
        return count, clock - dt.timedelta(seconds=SETTLE_SECONDS)

    def _first(self, stream: Stream, field: str, order: str, clauses: Sequence[str | None]) -> Any:
        wanted = [c for c in clauses if c]
        key = entity_spec(stream.name).key
        pages = self.hook.iter_pages(
            stream.name,
            filter=" and ".join(f"({c})" for c in wanted) or None,
            select=list(dict.fromkeys([key, field])),
            orderby=order,
            top=1,
        )
        first = next(iter(pages), [])
        return first[0].get(field) if first else None

    def key_bounds(
        self, stream: Stream, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> KeyBounds:
        """The stream's record count (in the window's days, when given) and lowest and highest key
        (three small GETs), and the server's clock when the first was answered."""
        key = entity_spec(stream.name).key
        window = self._window(stream, since, until)
        count, observed = self._count(stream, [window])
        ends = [self._first(stream, key, order, [window]) for order in (key, f"{key} desc")]
        return KeyBounds(count, ends[0], ends[1], observed)

    def stamp_bounds(
        self, stream: Stream, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> KeyBounds:
        """The stream's record count (in the window's days, when given) and its earliest and latest
        ``UpdateDate`` (``YYYY-MM-DD``; three small GETs), and the server's clock when the first
        was answered."""
        window = self._window(stream, since, until)
        count, observed = self._count(stream, [window])
        dated = [window, "UpdateDate ne null"]
        ends = [
            self._first(stream, "UpdateDate", order, dated) for order in ("UpdateDate", "UpdateDate desc")
        ]
        days = [None if day is None else str(day)[:10] for day in ends]
        return KeyBounds(count, days[0], days[1], observed)

    def count_before(
        self, stream: Stream, day: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> int:
        """Records updated before ``day`` (``YYYY-MM-DD``), in the window's days when given."""
        return self._count(
            stream, [self._window(stream, since, until), f"UpdateDate lt {odata_literal(day)}"]
        )[0]

    def read_range(self, stream: Stream, key_range: KeyRange, *, after: Any = None) -> Iterator[Page]:
        """Every record of a range (``low <= key < high``, or updated on a day in ``[low, high)``;
        a bound ``None``: open), strictly after key ``after`` when given, in key order; each page
        resumable after its last key. A range of a window run reads only the window, as an unsplit
        window read would (the records of its days, less those outside its times)."""
        key = entity_spec(stream.name).key
        clauses = []
        field = key if key_range.by == KEY else "UpdateDate"
        if key_range.low is not None:
            clauses.append(f"{field} ge {odata_literal(key_range.low)}")
        if key_range.high is not None:
            below = f"{field} lt {odata_literal(key_range.high)}"
            # The first range of days also takes records never stamped: no other range would.
            clauses.append(
                below if key_range.by == KEY or key_range.low else f"({below} or UpdateDate eq null)"
            )
        if after is not None:
            clauses.append(f"{key} gt {odata_literal(after)}")
        start = until = None
        if key_range.windowed:
            since = parse_datetime(key_range.since, name="since")
            until = parse_datetime(key_range.until, name="until")
            start = None if since is None else self.cursor_at(stream, since)
        read = self.hook.read_incremental(
            stream.name,
            start,
            until=until,
            select=self.select.get(stream.name),
            extra_filter=" and ".join(clauses) or None,
            page_size=self.page_size,
            prefetch=self.prefetch,
            raw=self.encoded,
        )
        for records in read:
            last = self.key_of(stream, records[-1])
            yield Page(
                records, reached=None if last is None else RangeCursor((last,)), resumable=last is not None
            )

    def read_keys(self, stream: Stream, keys: Sequence[str]) -> Iterator[Page]:
        spec = entity_spec(stream.name)
        values: list[Any] = []
        for key in keys:
            if spec.key_type is int:
                try:
                    values.append(int(key))
                except ValueError:
                    continue  # no such record can exist: it ends as "not found"
            else:
                values.append(key)
        # Split by the bytes of each request line as well, so long keys never make a URL too long.
        for records in self.hook.iter_any_of(
            stream.name,
            spec.key,
            values,
            select=self.select.get(stream.name),
            max_values=KEYS_PER_REQUEST,
            raw=self.encoded,
        ):
            yield Page(records)

    def key_of(self, stream: Stream, record: Any) -> Any:
        key = entity_spec(stream.name).key
        if record.__class__ is not dict:
            try:
                record = msgspec.json.decode(record)
            except (msgspec.DecodeError, TypeError):
                return None
        return record.get(key) if isinstance(record, dict) else None

    def cursor_at(self, stream: Stream, moment: dt.datetime) -> SapCursor | None:
        spec = entity_spec(stream.name)
        if not spec.cursor:
            return None
        return SapCursor.from_datetime(moment, self.hook.server_tz, date_only=spec.cursor == "date")

    def close(self) -> None:
        self.hook.close()
