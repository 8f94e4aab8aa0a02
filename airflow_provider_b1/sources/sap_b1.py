"""SAP Business One entities as a source of the sync engine.

Incremental reads follow the Service Layer's rules (in :meth:`SapB1Hook.read_incremental
<airflow_provider_b1.hooks.sap_b1.SapB1Hook.read_incremental>`): ``UpdateDate`` filtered by day
in the server's time zone, the records the cursor has already seen dropped, pages ordered by key
so that paging stays stable while records change. Because pages come in key order, not stamp
order, a read cannot resume in the middle: the position it reached arrives with a last, empty
page once every record is read, and the engine moves the cursor only when every page before it
is committed. Entities without an update stamp are read in full every run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import msgspec

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapCursor, entity_spec
from airflow_provider_b1.sync.engine import Page, Source
from airflow_provider_b1.sync.flows import Stream

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
