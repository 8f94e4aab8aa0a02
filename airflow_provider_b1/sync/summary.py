"""The small summary an incremental task returns as its XCom: the new cursor and the counts.

The summary is the only state a flow keeps between runs (see :mod:`.window`), so it holds
primitives only: a cursor (a dict of primitives such as a watermark or a continuation token),
counts, the window that was read, and never any record data.

A task that syncs several entities returns one summary per entity, combined with
:func:`combine_summaries`; :func:`~airflow_provider_b1.sync.window.resolve_window` finds each
entity's cursor in either shape.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_b1.sync.audit import Action

COUNT_FIELDS = ("read", "created", "updated", "unchanged", "skipped", "failed", "waiting", "retried")
#: Counts a summary carries only when they are above 0: records restored after their deletion in
#: the source, and rows marked deleted (flows whose target keeps what the source deletes).
RARE_COUNT_FIELDS = ("restored", "deleted")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclasses.dataclass
class SyncSummary:
    """Outcome of one entity's sync in one task try.

    :param flow: the flow's name, as in the audit trail (e.g. ``sap_b1_to_warehouse``).
    :param entity: the source entity (e.g. ``Invoices``).
    :param cursor: the cursor the next incremental run starts from (primitives only), usually
        :meth:`SyncWindow.cursor_to_store <airflow_provider_b1.sync.window.SyncWindow.cursor_to_store>`.
    :param mode: the window mode that was read: ``incremental``, ``window`` or ``full``.
    :param since: start of the window read (``window`` mode).
    :param until: end of the window read, exclusive.

    ``failed`` counts every record that failed; ``waiting`` those of them that wait for another
    record (the next run retries them), and ``retried`` the waiting records of earlier runs this run
    read again first. ``restored`` counts records brought back after they were marked deleted
    (they are written, like created and updated ones) and ``deleted`` rows marked deleted; both
    appear in :meth:`to_xcom` and :meth:`describe` only when above 0.
    """

    flow: str
    entity: str
    cursor: dict[str, Any] | None = None
    mode: str = "incremental"
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    waiting: int = 0
    retried: int = 0
    restored: int = 0
    deleted: int = 0

    def count(self, action: Action | str, n: int = 1) -> None:
        """Add ``n`` records that ended with ``action`` (``created``, ``failed``, ...)."""
        name = Action(action).value
        setattr(self, name, getattr(self, name) + n)

    @property
    def written(self) -> int:
        """Records the target now holds because of this run (created + updated + restored)."""
        return self.created + self.updated + self.restored

    def describe(self) -> str:
        """The counts in words, for a log line: ``"5 created, 2 updated, ..."``; the rare ones
        (``"1 restored after deletion"``, ``"3 marked deleted"``) only when above 0."""
        text = (
            f"{self.created:,} created, {self.updated:,} updated, {self.unchanged:,} unchanged, "
            f"{self.skipped:,} skipped, {self.failed:,} failed"
        )
        if self.waiting:
            text += f" ({self.waiting:,} waiting for others)"
        if self.retried:
            text += f", {self.retried:,} waiting records retried"
        if self.restored:
            text += f", {self.restored:,} restored after deletion"
        if self.deleted:
            text += f", {self.deleted:,} marked deleted"
        return text

    def to_xcom(self) -> dict[str, Any]:
        """Return the summary as a small dict of primitives, ready to be a task's return value."""
        data: dict[str, Any] = {
            "flow": self.flow,
            "entity": self.entity,
            "mode": self.mode,
            "cursor": dict(self.cursor) if self.cursor is not None else None,
            "since": _iso(self.since),
            "until": _iso(self.until),
        }
        data.update({name: getattr(self, name) for name in COUNT_FIELDS})
        data.update({name: getattr(self, name) for name in RARE_COUNT_FIELDS if getattr(self, name)})
        data["written"] = self.written
        return data

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> SyncSummary:
        """Rebuild a summary from :meth:`to_xcom` output (unknown keys are ignored)."""

        def parse(value: Any) -> dt.datetime | None:
            return dt.datetime.fromisoformat(value) if isinstance(value, str) else value

        return cls(
            flow=data.get("flow", ""),
            entity=data.get("entity", ""),
            cursor=data.get("cursor"),
            mode=data.get("mode", "incremental"),
            since=parse(data.get("since")),
            until=parse(data.get("until")),
            **{name: int(data.get(name) or 0) for name in (*COUNT_FIELDS, *RARE_COUNT_FIELDS)},
        )


def combine_summaries(summaries: Iterable[SyncSummary]) -> dict[str, Any]:
    """Combine per-entity summaries of one task into one XCom value.

    The result is ``{"flow": ..., "entities": {entity: summary.to_xcom()}, "read": total, ...}``;
    the totals make the task's outcome readable at a glance in the UI (``restored`` and
    ``deleted`` only when above 0).

    :param summaries: one summary per entity the task synced.
    """
    entities: dict[str, Any] = {}
    always = (*COUNT_FIELDS, "written")
    totals = dict.fromkeys(always, 0)
    flow = None
    for summary in summaries:
        flow = flow or summary.flow
        entities[summary.entity] = summary.to_xcom()
        for name in always:
            totals[name] += entities[summary.entity][name]
        for name in RARE_COUNT_FIELDS:
            if getattr(summary, name):
                totals[name] = totals.get(name, 0) + getattr(summary, name)
    return {"flow": flow, "entities": entities, **totals}
