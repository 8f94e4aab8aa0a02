"""Reconciliation: does the warehouse hold what SAP holds, entity by entity?

Per entity it compares the number of records and, for documents, the sum of ``DocTotal``,
over the same window on both sides:

* **SAP:** documents are streamed with ``$select`` of the key, the update stamp and
  ``DocTotal`` only, in big pages, counting and summing on the way (one pass gives a count and
  a sum that belong together); other entities are counted with ``/$count``. Within a window,
  SAP can only filter by day, so the stream is read by day and trimmed to the exact
  ``(UpdateDate, UpdateTime)`` window here, the same rule the warehouse query applies.
* **Warehouse:** one ``count(*)`` / ``sum(doc_total)`` query, inferred partners excluded.

Sums are exact decimals (SAP's JSON numbers go through their shortest ``repr``), compared to
the cent. On a difference the report names the entity, both sides, and up to a few keys
missing on either side, so whoever reads the task log knows where to look.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.hooks.sap_b1.literals import update_stamp_filter
from airflow_provider_b1.warehouse.entities import EntitySpec, entity_spec
from airflow_provider_b1.warehouse.loader import StampWindow, WarehouseLoader

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
RECONCILE_PAGE_SIZE = 5000
SAMPLE_KEYS = 10


class ReconciliationError(PermanentError):
    """SAP and the warehouse disagree; the message is the full report. A retry compares the same data."""


@dataclass
class EntityReconciliation:
    """SAP and warehouse figures for one entity over one window."""

    entity: str
    window: str
    sap_count: int
    warehouse_count: int
    sap_sum: Decimal | None = None
    warehouse_sum: Decimal | None = None
    missing_in_warehouse: tuple[str, ...] = ()
    extra_in_warehouse: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        if self.sap_count != self.warehouse_count:
            return False
        if self.sap_sum is None or self.warehouse_sum is None:
            return True
        return self.sap_sum.quantize(CENT) == self.warehouse_sum.quantize(CENT)

    def describe(self) -> str:
        text = (
            f"{self.entity} ({self.window}): SAP {self.sap_count} records, warehouse {self.warehouse_count}"
        )
        if self.sap_sum is not None:
            text += f"; DocTotal SAP {self.sap_sum.quantize(CENT)}, warehouse {(self.warehouse_sum or 0):.2f}"
        if self.missing_in_warehouse:
            text += f"; missing in the warehouse: {', '.join(self.missing_in_warehouse)}"
        if self.extra_in_warehouse:
            text += f"; in the warehouse but not in SAP: {', '.join(self.extra_in_warehouse)}"
        return text

    def to_xcom(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "window": self.window,
            "ok": self.ok,
            "sap_count": self.sap_count,
            "warehouse_count": self.warehouse_count,
            "sap_sum": None if self.sap_sum is None else str(self.sap_sum.quantize(CENT)),
            "warehouse_sum": None if self.warehouse_sum is None else str(self.warehouse_sum.quantize(CENT)),
        }


def stamp_window(
    since: dt.datetime | None, until: dt.datetime | None, server_tz: dt.tzinfo
) -> StampWindow | None:
    """The window ``[since, until)`` (aware datetimes) in the SAP server's local stamps."""
    if since is None and until is None:
        return None

    def local(moment: dt.datetime | None) -> tuple[str, str] | None:
        if moment is None:
            return None
        here = moment.astimezone(server_tz)
        return (here.date().isoformat(), here.strftime("%H:%M:%S"))

    return StampWindow(local(since), local(until))


def _describe_window(window: StampWindow | None, spec: EntitySpec) -> str:
    if window is None or spec.cursor == "none":
        return "all records"
    since = " ".join(window.since) if window.since else "the beginning"
    until = " ".join(window.until) if window.until else "now"
    return f"updated {since} .. {until} (server time)"


def _amount(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))


def sap_figures(hook: Any, spec: EntitySpec, window: StampWindow | None) -> tuple[int, Decimal | None]:
    """Count (and DocTotal sum for documents) of an entity in SAP over ``window``.

    :param hook: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param spec: the entity's declaration.
    :param window: the stamp window; ``None`` for every record.
    """
    windowed = window is not None and spec.cursor != "none"
    if not windowed and spec.amount_field is None:
        return hook.count(spec.entity), None
    count = 0
    total = Decimal(0)
    for record in _sap_records(hook, spec, window, [spec.amount_field] if spec.amount_field else []):
        count += 1
        if spec.amount_field:
            total += _amount(record.get(spec.amount_field))
    return count, (total if spec.amount_field else None)


def _sap_keys(hook: Any, spec: EntitySpec, window: StampWindow | None) -> set[str]:
    return {str(record.get(spec.key_field)) for record in _sap_records(hook, spec, window, [])}


def _sap_records(
    hook: Any, spec: EntitySpec, window: StampWindow | None, fields: list[str]
) -> Iterator[dict[str, Any]]:
    """SAP's records of ``window`` (all with ``None``), only the key, stamps and ``fields``.

    SAP filters by day only; records of the edge days outside the window are dropped here.
    """
    windowed = window is not None and spec.cursor != "none"
    select = [spec.key_field, *fields]
    if windowed:
        select.append("UpdateDate")
        if spec.cursor == "datetime":
            select.append("UpdateTime")
    for page in hook.iter_pages(
        spec.entity,
        filter=update_stamp_filter(
            spec.entity, window.since[0] if window.since else None, window.until[0] if window.until else None
        )
        if windowed
        else None,
        select=select,
        page_size=RECONCILE_PAGE_SIZE,
    ):
        for record in page:
            if windowed and not window.contains(
                record.get("UpdateDate"), record.get("UpdateTime"), date_only=spec.cursor == "date"
            ):
                continue
            yield record


def reconcile_entity(
    hook: Any, loader: WarehouseLoader, entity: str | EntitySpec, window: StampWindow | None = None
) -> EntityReconciliation:
    """Compare one entity between SAP and the warehouse.

    On a difference the keys on both sides are compared too (only then: it costs a second
    read), and a sample of the differing keys goes into the report.

    :param hook: the SAP hook.
    :param loader: the warehouse loader (its connection is used for the queries).
    :param entity: the SAP entity or its declaration.
    :param window: the stamp window; ``None`` for every record.
    """
    spec = entity if isinstance(entity, EntitySpec) else entity_spec(entity)
    effective = window if spec.cursor != "none" else None
    sap_count, sap_sum = sap_figures(hook, spec, effective)
    wh_count, wh_sum = loader.stats(spec, effective)
    result = EntityReconciliation(
        spec.entity, _describe_window(effective, spec), sap_count, wh_count, sap_sum, wh_sum
    )
    if not result.ok:
        sap_keys = _sap_keys(hook, spec, effective)
        wh_keys = {str(k) for k in loader.keys(spec, effective)}
        result.missing_in_warehouse = tuple(sorted(sap_keys - wh_keys)[:SAMPLE_KEYS])
        result.extra_in_warehouse = tuple(sorted(wh_keys - sap_keys)[:SAMPLE_KEYS])
    return result


def reconcile(
    hook: Any,
    loader: WarehouseLoader,
    entities: Iterable[str],
    window: StampWindow | None = None,
    *,
    raise_on_difference: bool = True,
) -> list[EntityReconciliation]:
    """Reconcile several entities; raise :class:`ReconciliationError` with a full report on any difference.

    :param hook: the SAP hook.
    :param loader: the warehouse loader.
    :param entities: SAP entity names.
    :param window: the stamp window; ``None`` for every record.
    :param raise_on_difference: raise (the default) or only return the results.
    """
    results = []
    for entity in entities:
        result = reconcile_entity(hook, loader, entity, window)
        log.info("%s %s", "OK  " if result.ok else "DIFF", result.describe())
        results.append(result)
    bad = [r for r in results if not r.ok]
    if bad and raise_on_difference:
        report = "\n".join(f"  - {r.describe()}" for r in bad)
        raise ReconciliationError(
            f"The warehouse differs from SAP for {len(bad)} of {len(results)} entities:\n{report}\n"
            "Fewer records in the warehouse: look for failed records in the audit trail and replay them "
            "once fixed, or reload the window (since/until) if a load was skipped. More records in the "
            "warehouse: they were deleted in SAP; the warehouse keeps deleted records until removed by key."
        )
    return results
