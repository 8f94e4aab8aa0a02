"""The deletion check: which records did SAP delete that the warehouse still holds as live?

Incremental reads by ``UpdateDate`` never see a deleted record: it is simply gone. SAP deletes
master data outright (business partners, items, G/L accounts, profit centres not yet used by a
transaction: ``EntitySpec.deletable``); documents, payments and journal entries are closed,
cancelled or reversed instead, and stay records flagged so (``is_cancelled``).

Per entity the check reads SAP's keys only (``$select`` of the key, in big pages: a few KB per
thousand records) and the warehouse's live keys (inferred partners and rows already marked left
out), and marks every live key SAP no longer holds with ``deleted_at`` (never a physical delete),
each logged in ``deletion_log`` in the same transaction. A later load that brings a record with
that key back clears the mark (see :mod:`.loader`).

**Audit trail.** Given the check task's audit session, every marking is a row of the audit trail
like any record a load handles: flow ``sap_b1_to_warehouse``, source system ``sap_b1``, the
entity and key, action ``deleted``, the task's DAG, run, task and try, and the reason ("not among
SAP's 1,234 keys at 2026-05-01 02:00:00 UTC", the time SAP's keys were read). When the audit
trail and the warehouse share a database, the rows are written in the marking's own transaction;
otherwise right after its commit (see :meth:`.WarehouseLoader.mark_deleted`); if that write fails,
the task fails and the next check, before it compares anything, audits every row still marked
whose latest audit row is not ``deleted`` (:func:`audit_late_markings`). A record that comes
back is audited ``restored`` by the load that brings it. So ``history()`` of a key reads
*created, ..., deleted, restored*, and a record whose last attempt failed before SAP deleted it is
no longer offered to replay.

**Guard.** A key set read from the wrong company, or by a user who may not see the entity, looks
like a mass deletion. Before marking anything, every entity is compared; if any would have more
than ``max_share`` of its live rows marked (default half), nothing is marked and
:class:`DeletionGuardError` says which entities and why.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.warehouse.entities import DELETABLE, EntitySpec, entity_spec
from airflow_provider_b1.warehouse.loader import WarehouseLoader

if TYPE_CHECKING:
    from airflow_provider_b1.sync.audit import AuditSession

log = logging.getLogger(__name__)

#: Records per SAP page of keys: a key is a few dozen bytes.
KEYS_PAGE_SIZE = 5000
#: The largest share of an entity's live rows one check may mark deleted.
DEFAULT_MAX_SHARE = 0.5
#: Keys listed per entity in the task log.
LOG_KEYS = 50


class DeletionGuardError(PermanentError):
    """SAP returned far fewer keys than the warehouse holds: nothing was marked."""


@dataclass
class DeletionCheck:
    """One entity's comparison of keys, and what was marked.

    :param entity: the SAP entity.
    :param sap_keys: how many keys SAP holds.
    :param live_keys: how many live rows the warehouse held before the check.
    :param missing: live keys SAP no longer holds.
    :param marked: the keys this check marked deleted (``missing`` unless another writer marked
        or restored some meanwhile).
    :param read_at: when SAP's keys were read (UTC): a missing key was not among them then.
    """

    entity: str
    sap_keys: int
    live_keys: int
    missing: list[Any] = field(default_factory=list)
    marked: list[Any] = field(default_factory=list)
    read_at: dt.datetime | None = None

    @property
    def share(self) -> float:
        return len(self.missing) / self.live_keys if self.live_keys else 0.0

    def describe(self) -> str:
        text = f"{self.entity}: SAP {self.sap_keys} keys, warehouse {self.live_keys} live rows"
        if not self.missing:
            return text + "; none deleted"
        shown = ", ".join(map(str, self.missing[:LOG_KEYS]))
        more = f" and {len(self.missing) - LOG_KEYS} more" if len(self.missing) > LOG_KEYS else ""
        text += f"; {len(self.missing)} deleted in SAP ({self.share:.0%})"
        if self.marked:
            text += f", {len(self.marked)} marked deleted"
        return f"{text}: {shown}{more}"

    @property
    def reason(self) -> str:
        """Why the missing keys are marked, for their audit rows."""
        when = (self.read_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S")
        return f"not among SAP's {self.sap_keys:,} keys at {when} UTC"

    def to_xcom(self) -> dict[str, Any]:
        return {
            "entity": self.entity,
            "sap_keys": self.sap_keys,
            "live_keys": self.live_keys,
            "marked": len(self.marked),
            "first_marked": [str(k) for k in self.marked[:20]],
        }


def sap_keys(hook: Any, spec: EntitySpec, page_size: int = KEYS_PAGE_SIZE) -> set[str]:
    """Every key SAP holds for an entity, as text, read with ``$select`` of the key only.

    :param hook: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param spec: the entity's declaration.
    :param page_size: records per page.
    """
    keys: set[str] = set()
    for page in hook.iter_pages(spec.entity, select=[spec.key_field], page_size=page_size):
        for record in page:
            key = record.get(spec.key_field)
            if key is not None and key != "":
                keys.add(str(key))
    return keys


def compare(hook: Any, loader: WarehouseLoader, spec: EntitySpec) -> DeletionCheck:
    """SAP's keys against the warehouse's live keys for one entity; marks nothing."""
    # The warehouse first: a record created in SAP between the two reads is then only in SAP,
    # which the check ignores, never only in the warehouse.
    live = list(loader.keys(spec))
    in_sap = sap_keys(hook, spec)
    read_at = dt.datetime.now(dt.timezone.utc)
    missing = [key for key in live if str(key) not in in_sap]
    return DeletionCheck(spec.entity, len(in_sap), len(live), missing, read_at=read_at)


def check_deletions(
    hook: Any,
    loader: WarehouseLoader,
    entities: Iterable[str] = DELETABLE,
    *,
    max_share: float = DEFAULT_MAX_SHARE,
    run: Mapping[str, Any] | None = None,
    audit: AuditSession | None = None,
) -> list[DeletionCheck]:
    """Mark the warehouse rows of records deleted in SAP, after checking every entity against the guard.

    :param hook: the SAP hook.
    :param loader: the warehouse loader.
    :param entities: SAP entities to check; each must be one SAP deletes (``EntitySpec.deletable``).
    :param max_share: refuse (and mark nothing at all) when any entity would have more than this
        share of its live rows marked; ``1.0`` turns the guard off.
    :param run: ``dag_id``, ``run_id`` and ``task_id``, logged with each marking; the audit
        session's when not given.
    :param audit: the task's audit session of the ``sap_b1_to_warehouse`` flow: each marking
        becomes a ``deleted`` row of the audit trail, in the marking's transaction when the trail
        shares the warehouse's database, else right after it. ``None`` audits nothing.
    """
    specs = [entity_spec(entity) for entity in entities]
    refused = [spec.entity for spec in specs if not spec.deletable]
    if refused:
        raise ValueError(
            f"SAP does not delete {', '.join(refused)} (closed or cancelled records stay records); "
            f"the deletion check covers {', '.join(DELETABLE)}"
        )
    if not 0 < max_share <= 1:
        raise ValueError(f"max_share must be above 0 and at most 1, not {max_share!r}")
    if audit is not None:
        from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW

        # The markings of a company are its own scope's audit rows (sap_b1_to_warehouse@<conn id>).
        expected = WAREHOUSE_FLOW.scoped({"sap_b1_conn_id": loader.company}).name
        if audit.flow != expected:
            raise ValueError(
                f"The deletion check of company {loader.company} audits into the flow {expected!r}; "
                f"open its session with that name, not {audit.flow!r}"
            )
    if audit is not None:
        audit_late_markings(loader, audit, specs)
    checks = [compare(hook, loader, spec) for spec in specs]
    too_many = [c for c in checks if c.missing and c.share > max_share]
    if too_many:
        raise DeletionGuardError(
            "Refusing to mark records deleted: SAP returned far fewer keys than the warehouse holds live "
            f"(more than {max_share:.0%} would be marked): "
            + "; ".join(
                f"{c.entity}: SAP {c.sap_keys} keys, warehouse {c.live_keys}, {len(c.missing)} would be marked"
                for c in too_many
            )
            + ". Nothing was marked. Check that the SAP connection names the right company and that its "
            "user may read these entities; if SAP really deleted that many, raise max_share for one run."
        )
    for check, spec in zip(checks, specs):
        if check.missing:
            check.marked = loader.mark_deleted(spec, check.missing, run, audit=audit, reason=check.reason)
        log.info("%s", check.describe())
    return checks


#: The reason of a marking audited by a later check.
LATE_REASON = "marked deleted by an earlier deletion check whose audit row was not written; audited late"


def audit_late_markings(loader: WarehouseLoader, audit: AuditSession, specs: Iterable[EntitySpec]) -> int:
    """Audit the markings whose ``deleted`` audit row was never written; return how many.

    Where the trail is in another database than the warehouse, a marking commits before its audit
    row is written, and that write can fail (the task then fails, and its retry finds nothing left
    to mark). So each check first looks at every row still marked: one whose latest audit row is
    not ``deleted`` and was written before the marking lacks its row, which is written now (reason
    :data:`LATE_REASON`, the checking task's run). A latest row written after the marking (a load
    that failed to restore the record SAP re-created) is left as it is: that record's latest word
    is its failure, which replay offers. Markings are few (master data SAP deleted), so this costs
    one look-up per check. The two databases' clocks are compared: a trail clock ahead of the
    warehouse's by more than the time between the last load and the marking hides a gap.
    """
    from airflow_provider_b1.sync.engine import audit_key

    late = 0
    for spec in specs:
        marks = loader.deleted_marks(spec)
        if not marks:
            continue
        latest = audit.trail.latest_at(audit.flow, spec.entity, map(audit_key, marks), source_system="sap_b1")
        missing = []
        for key, marked_at in marks.items():
            action, at = latest.get(audit_key(key), (None, None))
            # SQLite keeps deleted_at in whole seconds: an attempt in the marking's second is before it
            if action != "deleted" and (at is None or at < marked_at + dt.timedelta(seconds=1)):
                missing.append(key)
        if missing:
            log.warning(
                "%s: %d record(s) marked deleted had no audit row saying so (an earlier check's audit "
                "write failed); auditing them now.",
                spec.entity,
                len(missing),
            )
            audit.write(loader.deletion_records(spec, missing, LATE_REASON))
            late += len(missing)
    return late
