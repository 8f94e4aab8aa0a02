"""Replay: send a flow's failed records again, once their cause is fixed, through the same path.

:func:`replay_failed` asks the audit trail for the records whose *latest* attempt in a flow
failed (a failure followed by any later outcome for the same record is settled: a record marked
deleted since it failed is gone from the source, and one restored was written), then, per
stream, re-reads them from the flow's own source by key and writes them through the flow's own
sink (:func:`~airflow_provider_b1.sync.engine.replay_keys`): the same mapping, the same
idempotent write, the same trail, each record's attempt one more than its last. Replaying twice,
or replaying a record that a later run already fixed, changes nothing. Nothing is written by hand
per flow: declaring a :class:`~airflow_provider_b1.sync.flows.Flow` is enough.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from itertools import groupby
from typing import Any

from airflow_provider_b1.sync.audit import KEY_LIMIT, AuditTrail
from airflow_provider_b1.sync.engine import is_stand_in, replay_keys
from airflow_provider_b1.sync.flows import Flow, UnknownFlowError, get_flow
from airflow_provider_b1.sync.outcomes import USUAL_ACTIONS, Action, Outcome
from airflow_provider_b1.sync.window import SyncWindowError

log = logging.getLogger(__name__)

#: Keys handed to the source per call (a source splits them further into short requests).
BATCH_SIZE = 200


@dataclasses.dataclass
class ReplaySummary:
    """What a replay did; :meth:`to_xcom` is the replay task's return value."""

    flow: str
    dry_run: bool
    since: dt.datetime | None
    until: dt.datetime | None
    selected: int = 0
    # A replayed record can come back restored (SAP re-created it after the warehouse marked it
    # deleted): counted when it happens. Replay never marks anything deleted.
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(USUAL_ACTIONS, 0))
    sample: list[str] = dataclasses.field(default_factory=list)

    def to_xcom(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "dry_run": self.dry_run,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "selected": self.selected,
            **self.counts,
            "sample": list(self.sample),
        }


def replay_failed(
    audit: AuditTrail,
    flow: Flow | str,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    dry_run: bool = False,
    *,
    options: Mapping[str, Any] | None = None,
    context: Mapping[str, Any] | None = None,
    batch_size: int = BATCH_SIZE,
    limit: int | None = None,
    session_info: Mapping[str, Any] | None = None,
) -> ReplaySummary:
    """Replay the records of ``flow`` whose latest attempt failed between ``since`` and ``until``.

    :param audit: the audit trail to read failures from and record the new attempts in.
    :param flow: the flow, or its name (see :func:`~airflow_provider_b1.sync.flows.get_flow`).
    :param since: only failures at or after this time.
    :param until: only failures before this time.
    :param dry_run: only select and count; nothing is sent and nothing is recorded.
    :param options: overrides of the flow's options (connection ids...).
    :param context: the Airflow context of the replay task (run ids for the audit rows).
    :param batch_size: keys per call of the source.
    :param limit: replay at most this many records.
    :param session_info: ``dag_id``/``run_id``/``task_id``/``try_number`` for the audit rows when
        there is no Airflow context.
    """
    flow = get_flow(flow) if isinstance(flow, str) else flow
    if since is not None and until is not None and since >= until:
        raise SyncWindowError(f"'since' ({since.isoformat()}) must be before 'until' ({until.isoformat()}).")
    summary = ReplaySummary(flow=flow.name, dry_run=dry_run, since=since, until=until)
    failed = audit.records_for_replay(flow.name, since, until, limit=limit)
    summary.selected = len(failed)
    summary.sample = [f"{r.source_entity}:{r.source_key}" for r in failed[:20]]
    log.info(
        "Flow %s: %d records whose latest attempt failed%s",
        flow.name,
        len(failed),
        " (dry run)" if dry_run else "",
    )
    if dry_run or not failed:
        return summary

    if context is not None:
        session = audit.session_for(flow.name, context)
    else:
        info = dict(session_info or {})
        session = audit.session(
            flow.name, info.get("dag_id"), info.get("run_id"), info.get("task_id"), info.get("try_number")
        )
    refs = sorted(failed, key=lambda r: (r.source_entity, r.source_key))
    with flow.open(options) as (source, sink):
        for entity, group in groupby(refs, key=lambda r: r.source_entity):
            keys = [r.source_key for r in group]
            stand_ins = [key for key in keys if is_stand_in(key)]
            if stand_ins:
                # A key the trail could not hold as such cannot be re-read by: it stays failed.
                reason = (
                    f"its key could not be kept in the audit trail (NUL or over {KEY_LIMIT} characters), "
                    f"so it cannot be re-read by key; fix the key in {flow.source_system}"
                )
                _count(summary, _fail_alone(session, flow, entity, stand_ins, reason))
                keys = [key for key in keys if key not in stand_ins]
            try:
                stream = flow.stream(entity)
            except UnknownFlowError as exc:
                _count(summary, _fail_alone(session, flow, entity, keys, str(exc)))
                continue
            for start in range(0, len(keys), batch_size):
                _count(
                    summary,
                    replay_keys(flow, stream, source, sink, session, keys[start : start + batch_size]),
                )
    return summary


def _count(summary: ReplaySummary, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        summary.counts[outcome.action.value] = summary.counts.get(outcome.action.value, 0) + 1


def _fail_alone(session: Any, flow: Flow, entity: str, keys: list[str], reason: str) -> list[Outcome]:
    """Records of an entity the flow no longer declares stay failed, with the reason."""
    from airflow_provider_b1.sync.audit import AuditRecord

    outcomes = [Outcome(key, Action.FAILED, reason) for key in keys]
    session.write(
        [
            AuditRecord(
                flow.source_system, entity, key, Action.FAILED, target_system=flow.target_system, error=reason
            )
            for key in keys
        ]
    )
    return outcomes
