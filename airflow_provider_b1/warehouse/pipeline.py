"""One entity from SAP into the warehouse: read pages, load each, leave a trail for every record.

Three stages overlap: the hook fetches the next page in a background thread (its ``prefetch``),
this thread maps the page it holds, and writer threads copy and merge the pages before it. On
PostgreSQL two writers, each on its own connection, work side by side by default: the database's
share of a load (parsing the raw JSON into ``jsonb`` above all) then runs on two cores. Pages
still commit in the order they were read, and a page sharing a key with a page in flight waits
for it, so a record read twice ends as its later copy. Memory holds a handful of pages at most.
The operators in :mod:`airflow_provider_b1.transfers.sap_b1_to_warehouse` are configuration
around these functions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from airflow_provider_b1.sync import Action, AuditRecord, SyncSummary, SyncWindow
from airflow_provider_b1.warehouse.entities import EntitySpec, entity_spec
from airflow_provider_b1.warehouse.loader import FAILED, PageResult, PreparedPage, WarehouseLoader

log = logging.getLogger(__name__)

FLOW = "sap_b1_to_warehouse"
SOURCE_SYSTEM = "sap_b1"
TARGET_SYSTEM = "warehouse"
#: Keys per ``$filter`` when records are re-read by key (replay): keeps URLs short.
KEYS_PER_REQUEST = 20
#: Warehouse connections writing pages side by side, when the warehouse takes several (PostgreSQL).
DEFAULT_WRITERS = 2


class CommitOrder:
    """Pages commit in the order they were read, whichever writer holds them.

    A writer calls :meth:`wait` with its page's number once the page's rows are written, and
    :meth:`release` once the page is committed, or has failed.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next = 0  # every page before this one is released
        self._released: set[int] = set()

    def wait(self, number: int) -> None:
        """Return once every page numbered below ``number`` is released."""
        with self._changed:
            self._changed.wait_for(lambda: self._next >= number)

    def release(self, number: int) -> None:
        with self._changed:
            self._released.add(number)
            while self._next in self._released:
                self._released.remove(self._next)
                self._next += 1
            self._changed.notify_all()


def _write_in_order(
    loader: WarehouseLoader, page: PreparedPage, number: int, order: CommitOrder
) -> PageResult:
    try:
        return loader.write_page(page, turn=lambda: order.wait(number))
    finally:
        order.release(number)


def audit_records(spec: EntitySpec, result: PageResult, target_entity: str) -> Iterable[AuditRecord]:
    """The audit rows of one loaded page, one per record."""
    for outcome in result.outcomes:
        key = "(no key)" if outcome.key is None or outcome.key == "" else str(outcome.key)
        yield AuditRecord(
            source_system=SOURCE_SYSTEM,
            source_entity=spec.entity,
            source_key=key,
            action=Action(outcome.action),
            target_system=TARGET_SYSTEM,
            target_entity=target_entity,
            target_key=None if outcome.action == FAILED else key,
            error=outcome.error,
            payload_hash=outcome.payload_hash,
        )


def load_entity(
    hook: Any,
    loader: WarehouseLoader,
    audit: Any,
    entity: str,
    window: SyncWindow,
    *,
    extra_select: Sequence[str] = (),
    page_size: int | None = None,
    target_prefix: str = "",
    writers: int = DEFAULT_WRITERS,
) -> SyncSummary:
    """Read one entity from SAP over ``window`` and load it; return its summary (new cursor included).

    :param hook: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param loader: an open warehouse loader, schema in place.
    :param audit: an open :class:`~airflow_provider_b1.sync.AuditSession`.
    :param entity: the SAP entity, declared in :mod:`.entities`.
    :param window: what to read (:func:`~airflow_provider_b1.sync.resolve_window`).
    :param extra_select: further SAP properties to read and keep in ``raw`` (e.g. ``U_Region``).
    :param page_size: records per page; the connection's setting when ``None``.
    :param target_prefix: prefix of the table name in audit rows (``sap_b1.``).
    :param writers: warehouse connections writing pages side by side (``loader`` and as many more
        as :meth:`~.WarehouseLoader.open_another` gives); 1 writes every page on ``loader``.
    """
    from airflow_provider_b1.hooks.sap_b1 import SapCursor

    spec = entity_spec(entity)
    date_only = spec.cursor == "date"
    if window.mode == "full":
        cursor = None
    elif window.mode == "window":
        cursor = (
            SapCursor.from_datetime(window.since, hook.server_tz, date_only=date_only)
            if window.since is not None and spec.cursor != "none"
            else None
        )
    else:
        cursor = SapCursor.from_dict(window.cursor) if window.cursor and spec.cursor != "none" else None
    until = window.until if spec.cursor != "none" else None
    read = hook.read_incremental(
        entity,
        cursor,
        until=until,
        select=spec.select(extra_select),
        page_size=page_size,
        prefetch=True,
        raw=True,  # the loader decodes only what it maps and keeps the rest as sent
    )
    summary = SyncSummary(flow=FLOW, entity=entity, mode=window.mode, since=window.since, until=window.until)
    target = f"{target_prefix}{spec.table}"
    started = time.monotonic()
    inferred = 0

    def settle(result: PageResult, page_size_read: int) -> None:
        nonlocal inferred
        summary.read += page_size_read
        inferred += result.inferred_partners
        for record in audit_records(spec, result, target):
            audit.record(record)
            summary.count(record.action)

    extra_writers: list[WarehouseLoader] = []
    try:
        while len(extra_writers) < writers - 1:
            another = loader.open_another()
            if another is None:
                break
            extra_writers.append(another)
        _load_pages(spec, read, loader, [loader, *extra_writers], settle, entity, summary)
    finally:
        for extra in extra_writers:
            extra.close()
    new_cursor = read.cursor.to_dict() if getattr(read, "cursor", None) is not None else None
    summary.cursor = window.cursor_to_store(new_cursor) if spec.cursor != "none" else None
    elapsed = time.monotonic() - started
    log.info(
        "%s (%s): read %d in %.1f s (%.0f/s): %d created, %d updated, %d unchanged, %d skipped, %d failed%s",
        entity,
        window.describe(),
        summary.read,
        elapsed,
        summary.read / elapsed if elapsed > 0 else 0.0,
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.skipped,
        summary.failed,
        f"; {inferred} business partners not loaded yet were added as inferred" if inferred else "",
    )
    return summary


def _load_pages(
    spec: EntitySpec,
    read: Iterable[list],
    loader: WarehouseLoader,
    free: list[WarehouseLoader],
    settle: Any,
    entity: str,
    summary: SyncSummary,
) -> None:
    """Map each page here and hand it to a free writer; settle the written pages in reading order."""
    order = CommitOrder()
    # Pages handed to a writer and not settled yet, oldest first:
    # (number, result, records read, keys, writer).
    in_flight: deque[tuple[int, Future[PageResult], int, Any, WarehouseLoader]] = deque()

    def settle_oldest() -> None:
        _number, future, count, _keys, writer = in_flight.popleft()
        result = future.result()
        free.append(writer)
        settle(result, count)

    with ThreadPoolExecutor(max_workers=len(free), thread_name_prefix="warehouse-writer") as pool:
        try:
            for number, page in enumerate(read):
                prepared = loader.prepare_page(spec, page)
                keys = prepared.batch.keys()
                # A free writer, and no key in common with a page in flight (two copies of a
                # record in two open transactions would wait on each other's locks).
                while in_flight and (not free or any(not keys.isdisjoint(f[3]) for f in in_flight)):
                    settle_oldest()
                writer = free.pop()
                future = pool.submit(_write_in_order, writer, prepared, number, order)
                in_flight.append((number, future, len(page), keys, writer))
                if (number + 1) % 50 == 0:
                    log.info("%s: %d records loaded so far", entity, summary.read)
            while in_flight:
                settle_oldest()
        finally:
            # The read or a write failed: the pages that still commit still get their trail.
            while in_flight:
                number, future, count, _keys, writer = in_flight.popleft()
                free.append(writer)
                if future.cancel():
                    order.release(number)  # never written: the pages after it must not wait for it
                    continue
                with contextlib.suppress(Exception):
                    settle(future.result(), count)


def reload_keys(
    hook: Any,
    loader: WarehouseLoader,
    entity: str,
    keys: Sequence[str],
    *,
    extra_select: Sequence[str] = (),
    target_prefix: str = "",
) -> list[AuditRecord]:
    """Re-read records of one entity from SAP by key and load them through the same path.

    Keys SAP no longer has are reported as failed ("not found in SAP").

    :param hook: the SAP hook.
    :param loader: an open warehouse loader.
    :param entity: the SAP entity.
    :param keys: the keys as text (as the audit trail holds them).
    :param extra_select: further properties to read, as in the load.
    :param target_prefix: prefix of the table name in audit rows.
    """
    from airflow_provider_b1.hooks.sap_b1 import odata_any_of

    spec = entity_spec(entity)
    target = f"{target_prefix}{spec.table}"
    outcomes: list[AuditRecord] = []
    typed = {}
    for key in keys:
        try:
            typed[key] = int(key) if spec.key_kind == "int" else key
        except ValueError:
            outcomes.append(_failed(spec, key, target, f"{key!r} is not a valid {spec.key_field}"))
    wanted = list(typed.items())
    for start in range(0, len(wanted), KEYS_PER_REQUEST):
        chunk = wanted[start : start + KEYS_PER_REQUEST]
        records = [
            record
            for page in hook.iter_pages(
                entity,
                filter=odata_any_of(spec.key_field, [value for _, value in chunk]),
                select=spec.select(extra_select),
                raw=True,
            )
            for record in page
        ]
        result = loader.load_page(spec, records)
        outcomes.extend(audit_records(spec, result, target))
        found = {str(o.key) for o in result.outcomes}
        outcomes.extend(
            _failed(spec, text, target, f"{spec.entity} {text} was not found in SAP")
            for text, _ in chunk
            if text not in found
        )
    return outcomes


def _failed(spec: EntitySpec, key: str, target: str, reason: str) -> AuditRecord:
    return AuditRecord(
        source_system=SOURCE_SYSTEM,
        source_entity=spec.entity,
        source_key=key,
        action=Action.FAILED,
        target_system=TARGET_SYSTEM,
        target_entity=target,
        error=reason,
    )


def extra_fields(extra_select: Mapping[str, Sequence[str]] | None, entity: str) -> list[str]:
    """The extra properties configured for ``entity``; only ``U_`` user fields and plain names."""
    fields = list((extra_select or {}).get(entity) or ())
    for name in fields:
        if not isinstance(name, str) or not name.replace("_", "").isalnum():
            raise ValueError(f"extra_select[{entity!r}] holds {name!r}, which is not a SAP property name")
    return fields
