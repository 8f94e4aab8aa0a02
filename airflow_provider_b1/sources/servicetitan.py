"""ServiceTitan's customers, invoices and payments as a source of the sync engine.

Each stream (named as the kind: ``customers``, ``invoices``, ``payments``) reads its export
feed (:meth:`ServiceTitanHook.iter_export
<airflow_provider_b1.hooks.servicetitan.ServiceTitanHook.iter_export>`). The feed is ordered by
ServiceTitan and every page comes with its ``continueFrom``, so each page carries the cursor it
reached (a :class:`~airflow_provider_b1.sync.cursors.TokenCursor`) and a read can resume right
after any committed page; the last page's token, empty page or not, is where the next run
starts. Records are handed on as ServiceTitan sent them (money as strings, read with
:func:`~airflow_provider_b1.hooks.servicetitan.money`). Replay re-reads records by id through
the list endpoints' ``ids`` parameter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook, kind_spec
from airflow_provider_b1.hooks.servicetitan.reads import export_from
from airflow_provider_b1.sync.cursors import TokenCursor
from airflow_provider_b1.sync.engine import Page, Source
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.utils.params import ParamError, parse_datetime


class ServiceTitanSource(Source):
    """Reads ServiceTitan's export feeds (one per stream, the stream named as the kind).

    :param hook: the ServiceTitan hook.
    :param include_recent_changes: read the last 15 minutes' changes too (ServiceTitan may then
        send a record again in a later run; the sink's idempotent writes absorb that).
    """

    system = "servicetitan"

    def __init__(self, hook: ServiceTitanHook, *, include_recent_changes: bool = False) -> None:
        self.hook = hook
        self.include_recent_changes = include_recent_changes

    def read(self, stream: Stream, start: Any, *, until: dt.datetime | None) -> Iterator[Page]:
        """Pages of the stream's export from ``start`` (a :class:`TokenCursor`; ``None``: the beginning).

        With ``until`` (a window's end), records modified at or after it are left out; the feed
        itself cannot stop at a moment.
        """
        kind_spec(stream.name)
        token = start.token if isinstance(start, TokenCursor) else None
        pages = self.hook.iter_export(stream.name, token, include_recent_changes=self.include_recent_changes)
        for page in pages:
            records = page.records if until is None else [r for r in page.records if _before(r, until)]
            reached = TokenCursor(page.continue_from) if page.continue_from else None
            yield Page(records, reached=reached, resumable=True)

    def read_keys(self, stream: Stream, keys: Sequence[str]) -> Iterator[Page]:
        """The records with these ids that still exist, a page per request of at most 50 ids."""
        ids = [key for key in (str(k).strip() for k in keys) if key.lstrip("-").isdigit()]
        for records in self.hook.iter_by_ids(stream.name, ids):
            yield Page(records)

    def key_of(self, stream: Stream, record: Any) -> Any:
        """The record's ``id``."""
        return record.get("id") if isinstance(record, dict) else None

    def cursor_at(self, stream: Stream, moment: dt.datetime) -> TokenCursor:
        """An export starting at ``moment`` (ServiceTitan takes a date-time as ``from``)."""
        start = export_from(moment)
        assert start is not None
        return TokenCursor(start)

    def close(self) -> None:
        self.hook.close()


def _before(record: Any, until: dt.datetime) -> bool:
    """Whether a record was modified before ``until``; a record without a readable stamp is kept."""
    if not isinstance(record, dict):
        return True
    try:
        modified = parse_datetime(record.get("modifiedOn"), name="modifiedOn")
    except ParamError:
        return True
    return modified is None or modified < until
