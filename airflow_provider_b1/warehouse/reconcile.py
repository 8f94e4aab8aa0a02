"""Reconciliation: does the warehouse hold what SAP holds, entity by entity?

Per entity it compares the number of records and, for documents, the sum of ``DocTotal``,
over the same window on both sides:

* **SAP:** documents are streamed with ``$select`` of the key, the update stamp and
  ``DocTotal`` only, in big pages, counting and summing on the way (one pass gives a count and
  a sum that belong together); other entities are counted with ``/$count``. Within a window,
  SAP can only filter by day, so the stream is read by day and trimmed to the exact
  ``(UpdateDate, UpdateTime)`` window here, the same rule the warehouse query applies.
* **Warehouse:** one ``count(*)`` / ``sum(doc_total)`` query, inferred partners and rows marked
  deleted in SAP (``deleted_at``, see :mod:`.deletions`) excluded.

Sums are exact decimals (SAP's JSON numbers go through their shortest ``repr``), compared to
the cent. A ``DocTotal`` that is not a number in SAP (``"abc"``, ``"12,50"``, ``Infinity``) is
no reason to stop: it is a difference of its own, with its key.

When the figures differ, both sides are read again key by key, and the report names **every**
difference with its key and reason, in four kinds: records the flow itself **recorded as
failed** (the reason from the audit trail: fix them in SAP, then replay), records **missing**
for no recorded reason (a load that was skipped: reload the window), records **only in the
warehouse** (deleted in SAP), and records whose **amount differs**.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.hooks.sap_b1.literals import update_stamp_filter
from airflow_provider_b1.sync.engine import audit_key
from airflow_provider_b1.warehouse.entities import EntitySpec, entity_spec
from airflow_provider_b1.warehouse.flow import NAME as WAREHOUSE_FLOW_NAME
from airflow_provider_b1.warehouse.loader import StampWindow, WarehouseLoader

if TYPE_CHECKING:
    from airflow_provider_b1.sync.audit import AuditTrail

log = logging.getLogger(__name__)

CENT = Decimal("0.01")
RECONCILE_PAGE_SIZE = 5000


class ReconciliationError(PermanentError):
    """SAP and the warehouse disagree; the message is the full report. A retry compares the same data."""


#: The kinds of difference, in the order a report lists them.
FAILED = "recorded as failed"
MISSING = "missing for no recorded reason"
EXTRA = "only in the warehouse"
AMOUNT = "amount differs"
UNREADABLE = "amount not a number in SAP"
KINDS = (FAILED, MISSING, EXTRA, AMOUNT, UNREADABLE)
#: Differences listed in the failure message per entity (the task log lists more).
MESSAGE_LINES = 20
#: Differences listed in the task log per entity; the counts are always complete.
LOG_LINES = 1000


@dataclass(frozen=True)
class Difference:
    """One record on which SAP and the warehouse disagree.

    :param key: the record's key.
    :param kind: one of :data:`KINDS`.
    :param reason: why, in a sentence (for a recorded failure, the flow's own reason).
    """

    key: str
    kind: str
    reason: str

    def describe(self) -> str:
        return f"{self.key}: {self.kind}: {self.reason}"


@dataclass
class EntityReconciliation:
    """SAP and warehouse figures for one entity over one window, and every difference found."""

    entity: str
    window: str
    sap_count: int
    warehouse_count: int
    sap_sum: Decimal | None = None
    warehouse_sum: Decimal | None = None
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        if self.differences or self.sap_count != self.warehouse_count:
            return False
        if self.sap_sum is None or self.warehouse_sum is None:
            return True
        return _cents(self.sap_sum) == _cents(self.warehouse_sum)

    def counts(self) -> dict[str, int]:
        """``{kind: records}`` for every kind of :data:`KINDS`."""
        counts = dict.fromkeys(KINDS, 0)
        for difference in self.differences:
            counts[difference.kind] += 1
        return counts

    def describe(self) -> str:
        text = (
            f"{self.entity} ({self.window}): SAP {self.sap_count} records, warehouse {self.warehouse_count}"
        )
        if self.sap_sum is not None:
            text += (
                f"; DocTotal SAP {_cents(self.sap_sum)}, warehouse {_cents(self.warehouse_sum or Decimal(0))}"
            )
        found = [f"{n} {kind}" for kind, n in self.counts().items() if n]
        if found:
            text += "; " + ", ".join(found)
        elif not self.ok:
            text += "; no single record explains it"
        return text

    def lines(self, limit: int | None = None) -> list[str]:
        """One line per difference (``key: kind: reason``), the first ``limit`` of them."""
        shown = self.differences if limit is None else self.differences[:limit]
        lines = [d.describe() for d in shown]
        if len(shown) < len(self.differences):
            lines.append(f"... and {len(self.differences) - len(shown)} more")
        return lines

    def to_xcom(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "window": self.window,
            "ok": self.ok,
            "sap_count": self.sap_count,
            "warehouse_count": self.warehouse_count,
            "sap_sum": None if self.sap_sum is None else str(_cents(self.sap_sum)),
            "warehouse_sum": None if self.warehouse_sum is None else str(_cents(self.warehouse_sum)),
            "differences": {kind: n for kind, n in self.counts().items() if n},
            "first_differences": [
                {"key": d.key, "kind": d.kind, "reason": d.reason} for d in self.differences[:MESSAGE_LINES]
            ],
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


def _amount(value: Any) -> Decimal | None:
    """An amount as an exact decimal; ``None`` for one that is no finite number."""
    if value is None:
        return Decimal(0)
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return Decimal(repr(value)) if value - value == 0.0 else None
    if isinstance(value, (int, Decimal)):
        number = Decimal(value)
        return number if number.is_finite() else None
    return None  # a string ("12,50", even "12.50") or anything else is no JSON number


def _cents(amount: Decimal) -> Decimal:
    """``amount`` to the cent, whatever its size (SAP may hold an amount far beyond the warehouse's)."""
    with localcontext() as context:
        context.prec = max(28, amount.adjusted() + 4)
        return amount.quantize(CENT)


def _unreadable(spec: EntitySpec, value: Any) -> str:
    return f"{spec.amount_field} {value!r} in SAP is not a number"


def sap_figures(
    hook: Any, spec: EntitySpec, window: StampWindow | None, unreadable: dict[str, str] | None = None
) -> tuple[int, Decimal | None]:
    """Count (and DocTotal sum for documents) of an entity in SAP over ``window``.

    :param hook: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param spec: the entity's declaration.
    :param window: the stamp window; ``None`` for every record.
    :param unreadable: filled with ``{key: reason}`` for each amount that is no number (left out
        of the sum, still counted).
    """
    windowed = window is not None and spec.cursor != "none"
    if not windowed and spec.amount_field is None:
        return hook.count(spec.entity), None
    count = 0
    total = Decimal(0)
    for record in _sap_records(hook, spec, window, [spec.amount_field] if spec.amount_field else []):
        count += 1
        if spec.amount_field:
            value = record.get(spec.amount_field)
            amount = _amount(value)
            if amount is None:
                if unreadable is not None:
                    unreadable[str(record.get(spec.key_field))] = _unreadable(spec, value)
            else:
                total += amount
    return count, (total if spec.amount_field else None)


def _sap_amounts(hook: Any, spec: EntitySpec, window: StampWindow | None) -> dict[str, Any]:
    fields = [spec.amount_field] if spec.amount_field else []
    return {
        str(record.get(spec.key_field)): record.get(spec.amount_field) if spec.amount_field else None
        for record in _sap_records(hook, spec, window, fields)
    }


def _natural(key: str) -> tuple:
    return (0, int(key), "") if key.lstrip("-").isdigit() else (1, 0, key)


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
    hook: Any,
    loader: WarehouseLoader,
    entity: str | EntitySpec,
    window: StampWindow | None = None,
    *,
    audit: AuditTrail | None = None,
    flow: str = WAREHOUSE_FLOW_NAME,
) -> EntityReconciliation:
    """Compare one entity between SAP and the warehouse.

    On a difference both sides are read again key by key (only then: it costs a second read)
    and every differing record is named, with its reason.

    :param hook: the SAP hook.
    :param loader: the warehouse loader (its connection is used for the queries).
    :param entity: the SAP entity or its declaration.
    :param window: the stamp window; ``None`` for every record.
    :param audit: the audit trail, to tell records the flow recorded as failed (with its reason)
        from records missing for no recorded reason.
    :param flow: the flow whose audit rows explain the differences.
    """
    spec = entity if isinstance(entity, EntitySpec) else entity_spec(entity)
    effective = window if spec.cursor != "none" else None
    unreadable: dict[str, str] = {}
    sap_count, sap_sum = sap_figures(hook, spec, effective, unreadable)
    wh_count, wh_sum = loader.stats(spec, effective)
    result = EntityReconciliation(
        spec.entity, _describe_window(effective, spec), sap_count, wh_count, sap_sum, wh_sum
    )
    if result.ok and not unreadable:
        return result
    sap = _sap_amounts(hook, spec, effective)
    warehouse = {str(key): amount for key, amount in loader.amounts(spec, effective)}
    missing = [key for key in sap if key not in warehouse]
    # The trail holds a key it cannot store as such (600 characters, NUL) by its stand-in.
    recorded = (
        audit.latest(flow, spec.entity, map(audit_key, missing)) if audit is not None and missing else {}
    )
    differences: list[Difference] = []
    for key in missing:
        action, error = recorded.get(audit_key(key), (None, None))
        if action == "failed":
            differences.append(Difference(key, FAILED, error or "failed without a reason"))
        elif key in unreadable:
            differences.append(Difference(key, UNREADABLE, unreadable[key]))
        elif action == "deleted":
            differences.append(
                Difference(
                    key,
                    MISSING,
                    "in SAP again after the warehouse marked it deleted; the next load reading it restores it",
                )
            )
        else:
            seen = f" (its latest attempt: {action})" if action else ""
            differences.append(Difference(key, MISSING, f"in SAP, not in the warehouse{seen}"))
    differences += [
        Difference(key, EXTRA, "in the warehouse, not in SAP: deleted in SAP, or outside its window there")
        for key in warehouse
        if key not in sap
    ]
    if spec.amount_field:
        for key, value in sap.items():
            stored = warehouse.get(key)
            if key not in warehouse:
                continue
            amount = _amount(value)
            if amount is None:
                differences.append(Difference(key, UNREADABLE, _unreadable(spec, value)))
            elif stored is None or _cents(amount) != _cents(stored):
                shown = "nothing" if stored is None else _cents(stored)
                differences.append(
                    Difference(key, AMOUNT, f"{spec.amount_field} SAP {_cents(amount)}, warehouse {shown}")
                )
    order = {kind: n for n, kind in enumerate(KINDS)}
    differences.sort(key=lambda d: (order[d.kind], _natural(d.key)))
    result.differences = differences
    return result


def reconcile(
    hook: Any,
    loader: WarehouseLoader,
    entities: Iterable[str],
    window: StampWindow | None = None,
    *,
    raise_on_difference: bool = True,
    audit: AuditTrail | None = None,
    flow: str = WAREHOUSE_FLOW_NAME,
) -> list[EntityReconciliation]:
    """Reconcile several entities; raise :class:`ReconciliationError` with a full report on any difference.

    Every entity is compared and reported (in the task log, every difference up to
    :data:`LOG_LINES` per entity) before anything is raised.

    :param hook: the SAP hook.
    :param loader: the warehouse loader.
    :param entities: SAP entity names.
    :param window: the stamp window; ``None`` for every record.
    :param raise_on_difference: raise (the default) or only return the results.
    :param audit: the audit trail that explains records the flow failed.
    :param flow: the flow whose audit rows explain the differences.
    """
    results = []
    for entity in entities:
        result = reconcile_entity(hook, loader, entity, window, audit=audit, flow=flow)
        if result.ok:
            log.info("OK   %s", result.describe())
        else:
            log.warning("DIFF %s", "\n       ".join([result.describe(), *result.lines(LOG_LINES)]))
        results.append(result)
    bad = [r for r in results if not r.ok]
    if bad and raise_on_difference:
        report = "\n".join(
            "\n".join([f"  - {r.describe()}", *(f"      {line}" for line in r.lines(MESSAGE_LINES))])
            for r in bad
        )
        raise ReconciliationError(
            f"The warehouse differs from SAP for {len(bad)} of {len(results)} entities:\n{report}\n"
            f"Records {FAILED}: fix them in SAP as their reason says, then replay them (b1_replay_failed). "
            f"Records {MISSING}: reload their window (since/until). Records {EXTRA}: they were deleted in "
            "SAP; the deletion check (check_deletions) marks those SAP deletes outright with deleted_at, "
            "after which reconciliation leaves them out."
        )
    return results
