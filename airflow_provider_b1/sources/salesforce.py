"""Salesforce objects as a source of the sync engine: SOQL in ``(SystemModstamp, Id)`` order.

Incremental reads follow Salesforce's advice: poll on ``SystemModstamp`` (it moves with every
change, system changes included; ``LastModifiedDate`` does not), ordered by it and ``Id`` so that
the position after any page is exact: :class:`~airflow_provider_b1.sync.cursors.KeysetCursor`
``(SystemModstamp, Id)``, read strictly after. A read filters on the stamp's second (``>=``, the
literal form every API version takes) and drops what the cursor covers, so records sharing a
millisecond with the cursor's are neither lost nor read twice; ``until`` is judged to the
millisecond the same way. Pages stream through ``nextRecordsUrl``; each page can be resumed
from. A first read matching more than ``bulk_threshold`` records (the first load of a large org)
runs as a Bulk API 2.0 query job instead, with the same query and order, where the
stream's query has no child subquery (Bulk takes none): the same records, in far fewer calls.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_b1.sync.cursors import KeysetCursor
from airflow_provider_b1.sync.engine import Page, Source
from airflow_provider_b1.sync.flows import Stream

log = logging.getLogger(__name__)

STAMP = "SystemModstamp"
#: Ids per ``Id IN (...)`` when records are read again by key (replay, waiting records).
IDS_PER_QUERY = 200
#: Records a read must match to go through a Bulk API 2.0 query job instead of query pages.
DEFAULT_BULK_THRESHOLD = 50_000
#: Records per page of a Bulk job's results.
BULK_PAGE = 2_000


@dataclasses.dataclass(frozen=True)
class SoqlRead:
    """What one stream reads: ``SELECT <fields> FROM <sobject> WHERE <where>``.

    :param sobject: the object (``Account``).
    :param fields: the fields, relationship fields and child subqueries to select (``Id`` and
        ``SystemModstamp`` are added).
    :param where: a SOQL condition every record read must meet (``IsWon = true``), or ``None``.
    """

    sobject: str
    fields: tuple[str, ...]
    where: str | None = None

    @property
    def bulk_readable(self) -> bool:
        """Whether a Bulk API 2.0 query job can run it (Bulk takes no child subqueries)."""
        return not any(field.lstrip().startswith("(") for field in self.fields)

    def select(self) -> str:
        fields = list(dict.fromkeys(("Id", STAMP, *self.fields)))
        return f"SELECT {', '.join(fields)} FROM {self.sobject}"


def soql_datetime(moment: dt.datetime) -> str:
    """A SOQL datetime literal (UTC, seconds): ``2024-05-01T12:00:00Z``."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp_text(moment: dt.datetime) -> str:
    """A moment as Salesforce prints ``SystemModstamp`` (``2024-05-01T12:00:00.000+0000``), so it
    orders with the stamps records carry."""
    utc = moment.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def _next_second(moment: dt.datetime) -> dt.datetime:
    """The first whole second not before ``moment``."""
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + dt.timedelta(seconds=1)


def parse_stamp(text: str) -> dt.datetime:
    """A Salesforce datetime (``2024-05-01T12:00:00.000+0000`` or with ``Z``) as an aware datetime."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("+0000", "+00:00"))


def quoted(value: str) -> str:
    """A SOQL string literal."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceSource(Source):
    """Reads Salesforce objects, one :class:`SoqlRead` per stream.

    :param hook: a :class:`~airflow_provider_b1.hooks.salesforce.SalesforceHook`.
    :param reads: ``{stream name: SoqlRead}``.
    :param batch_size: records per page asked of the query API (200 to 2,000).
    :param bulk_threshold: a first (full) read matching more records than this runs as a Bulk
        API 2.0 query job, in pages of :data:`BULK_PAGE` records, where the stream's
        query allows it (no child subquery); ``None``: never.
    """

    system = "salesforce"

    def __init__(
        self,
        hook: Any,
        reads: dict[str, SoqlRead],
        *,
        batch_size: int = 200,
        bulk_threshold: int | None = DEFAULT_BULK_THRESHOLD,
    ) -> None:
        self.hook = hook
        self.reads = reads
        self.batch_size = batch_size
        self.bulk_threshold = bulk_threshold

    def _pages(
        self, stream: Stream, conditions: Sequence[str], *, first: bool
    ) -> Iterator[list[dict[str, Any]]]:
        """The ordered query's pages: REST query pages, or, for a first (full) read that matches
        more than ``bulk_threshold`` records, a Bulk job's. Reads from a cursor are never
        counted: they cost no extra call."""
        soql = self._soql(stream, conditions, ordered=True)
        read = self.reads[stream.name]
        if first and self.bulk_threshold is not None and read.bulk_readable:
            counting = self._soql(stream, conditions, ordered=False).replace(
                read.select(), f"SELECT COUNT() FROM {read.sobject}", 1
            )
            matching = self.hook.count(counting)
            if matching > self.bulk_threshold:
                log.info(
                    "%s: %s records to read, over %s: through a Bulk API 2.0 query job.",
                    stream.name,
                    f"{matching:,}",
                    f"{self.bulk_threshold:,}",
                )
                return self.hook.bulk_query_pages(soql, max_records=BULK_PAGE)
        return self.hook.query_pages(soql, batch_size=self.batch_size)

    def _soql(self, stream: Stream, conditions: Sequence[str], *, ordered: bool) -> str:
        read = self.reads[stream.name]
        where = [f"({read.where})"] if read.where else []
        where += conditions
        soql = read.select() + (f" WHERE {' AND '.join(where)}" if where else "")
        return soql + (f" ORDER BY {STAMP} ASC, Id ASC" if ordered else "")

    def read(self, stream: Stream, start: Any, *, until: dt.datetime | None) -> Iterator[Page]:
        conditions = []
        if start is not None:
            conditions.append(f"{STAMP} >= {soql_datetime(parse_stamp(start.position[0]))}")
        if until is not None:
            # SOQL literals hold whole seconds: filter before the next whole second, then drop
            # what is not before ``until`` to the millisecond, as stamps print it.
            conditions.append(f"{STAMP} < {soql_datetime(_next_second(until))}")
            bound = stamp_text(until)
        for records in self._pages(stream, conditions, first=start is None):
            if start is not None:
                records = [r for r in records if start.is_new((r[STAMP], r["Id"]))]
            if until is not None:
                records = [r for r in records if stamp_text(parse_stamp(r[STAMP])) < bound]
            if records:
                last = records[-1]
                yield Page(records, reached=KeysetCursor((last[STAMP], last["Id"])), resumable=True)

    def read_keys(self, stream: Stream, keys: Sequence[str]) -> Iterator[Page]:
        ids = [key for key in dict.fromkeys(keys) if key and str(key).isalnum()]
        for begin in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[begin : begin + IDS_PER_QUERY]
            soql = self._soql(stream, [f"Id IN ({', '.join(quoted(i) for i in chunk)})"], ordered=False)
            for records in self.hook.query_pages(soql, batch_size=self.batch_size):
                yield Page(records)

    def key_of(self, stream: Stream, record: Any) -> Any:
        return record.get("Id") if isinstance(record, dict) else None

    def cursor_at(self, stream: Stream, moment: dt.datetime) -> KeysetCursor:
        # Strictly after (stamp, ""): every record stamped at or after the moment.
        return KeysetCursor((stamp_text(moment), ""))

    def close(self) -> None:
        self.hook.close()
