"""SAP Business One entities as a source of the sync engine.

Incremental reads follow the Service Layer's rules (in :meth:`SapB1Hook.read_incremental
<airflow_provider_b1.hooks.sap_b1.SapB1Hook.read_incremental>`): ``UpdateDate`` filtered by day
in the server's time zone, the records the cursor has already seen dropped, pages ordered by key
so that paging stays stable while records change. Because pages come in key order, not stamp
order, a read cannot resume in the middle: the position it reached arrives with a last, empty
page once every record is read, and the engine moves the cursor only when every page before it
is committed. Entities without an update stamp are read in full every run.

A first load of a large entity with integer keys (documents) can be split into key ranges
(:mod:`airflow_provider_b1.sync.partitions`): :meth:`SapB1Source.key_bounds` counts it and finds its
lowest and highest key (``$count``, then ``$top=1`` ordered each way, keys only), and
:meth:`SapB1Source.read_range` reads one range in key order, each page resumable after its last key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor, entity_spec
from airflow_provider_b1.hooks.sap_b1.literals import odata_literal
from airflow_provider_b1.hooks.sap_b1.reads import SETTLE_SECONDS
from airflow_provider_b1.sync.engine import Page, Source
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.partitions import KeyBounds, RangeCursor

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

    def key_bounds(self, stream: Stream) -> KeyBounds:
        """The stream's record count and lowest and highest key (three small GETs), and the
        server's clock when the first was answered (its ``Date`` header; this machine's if absent)
        less the seconds a write stamped just before may still take to commit."""
        key = entity_spec(stream.name).key
        response = self.hook.request("GET", f"{stream.name}/$count")
        observed = _server_clock(response.headers.get("Date")) - dt.timedelta(seconds=SETTLE_SECONDS)
        text = response.content.decode("utf-8-sig").strip()
        count = int(text) if text.isdigit() else self.hook.count(stream.name)
        ends = []
        for order in (key, f"{key} desc"):
            first = next(iter(self.hook.iter_pages(stream.name, select=[key], orderby=order, top=1)), [])
            ends.append(first[0].get(key) if first else None)
        return KeyBounds(count, ends[0], ends[1], observed)

    def read_range(self, stream: Stream, low: Any, high: Any, *, after: Any = None) -> Iterator[Page]:
        """Every record with ``low <= key < high`` (a bound ``None``: open), strictly after ``after``
        when given, in key order; each page resumable after its last key."""
        key = entity_spec(stream.name).key
        clauses = []
        if after is not None:
            clauses.append(f"{key} gt {odata_literal(after)}")
        elif low is not None:
            clauses.append(f"{key} ge {odata_literal(low)}")
        if high is not None:
            clauses.append(f"{key} lt {odata_literal(high)}")
        read = self.hook.read_incremental(
            stream.name,
            None,
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


def _server_clock(header: str | None) -> dt.datetime:
    """The time in an HTTP ``Date`` header (aware), or this machine's clock without one."""
    from email.utils import parsedate_to_datetime

    if header:
        try:
            return parsedate_to_datetime(header)
        except (TypeError, ValueError):
            pass
    return dt.datetime.now(dt.timezone.utc)
