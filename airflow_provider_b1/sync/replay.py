"""Replay: send a flow's failed records again, once their cause is fixed, through the same path.

:func:`replay_failed` asks the audit trail for the records whose *latest* attempt in a flow
failed (a failure followed by any later outcome for the same record is settled), hands their
keys to the flow's replayer in batches, and records what the replayer reports as new attempts
(``attempt`` = previous + 1). The replayer re-reads each record from its source and writes it
through the flow's normal idempotent path, so replaying twice, or replaying a record that a
later run already fixed, changes nothing.

A replayer is any callable ``replayer(refs: list[SourceRef], context: ReplayContext) ->
Iterable[AuditRecord]`` (see :class:`Replayer`). Each call gets the refs of one
``(source_system, source_entity)``. It should yield one :class:`AuditRecord` per ref, failed
ones included, and must not raise for a single bad record. A ref it yields nothing for is
recorded as failed ("the replayer reported no outcome"); if the call raises, every ref of that
call is recorded as failed with the scrubbed error, and the replay continues with the next batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from itertools import groupby
from typing import Any, Protocol

from airflow_provider_b1.sync.audit import Action, AuditRecord, AuditTrail, FailedRecord, scrub_error
from airflow_provider_b1.sync.flows import get_replayer
from airflow_provider_b1.sync.records import chunked

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SourceRef:
    """One record to replay, as the audit trail knows it.

    :param source_system: e.g. ``sap_b1``.
    :param source_entity: e.g. ``Invoices``.
    :param source_key: the natural key as text (``DocEntry`` 42 is ``"42"``).
    :param target_system: where the failed attempt was writing, when recorded.
    :param target_entity: the target table or entity, when recorded.
    :param target_key: the target key, when recorded.
    :param last_error: the failed attempt's (scrubbed) reason.
    :param attempt: the failed attempt's number; the replay's attempt is one more.
    """

    source_system: str
    source_entity: str
    source_key: str
    target_system: str | None = None
    target_entity: str | None = None
    target_key: str | None = None
    last_error: str | None = None
    attempt: int = 1

    @classmethod
    def from_failed(cls, row: FailedRecord) -> SourceRef:
        return cls(
            row.source_system,
            row.source_entity,
            row.source_key,
            row.target_system,
            row.target_entity,
            row.target_key,
            row.error,
            row.attempt,
        )


@dataclasses.dataclass(frozen=True)
class ReplayContext:
    """What a replayer knows about the replay.

    :param flow: the flow being replayed.
    :param options: the options registered with the flow's replayer (connection ids, ...).
    :param airflow_context: the replay task's Airflow context, ``None`` outside a task.
    """

    flow: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    airflow_context: Mapping[str, Any] | None = None


class Replayer(Protocol):
    """Re-sends records of one flow through its idempotent write path."""

    def __call__(self, refs: list[SourceRef], context: ReplayContext) -> Iterable[AuditRecord]: ...


@dataclasses.dataclass
class ReplaySummary:
    """What a replay did; :meth:`to_xcom` is the replay task's return value."""

    flow: str
    dry_run: bool
    since: dt.datetime | None
    until: dt.datetime | None
    selected: int = 0
    counts: dict[str, int] = dataclasses.field(
        default_factory=lambda: dict.fromkeys((a.value for a in Action), 0)
    )
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
    flow: str,
    replayer: Replayer | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    dry_run: bool = False,
    *,
    context: Mapping[str, Any] | None = None,
    batch_size: int = 200,
    limit: int | None = None,
    session_info: Mapping[str, Any] | None = None,
) -> ReplaySummary:
    """Replay the records of ``flow`` whose latest attempt failed between ``since`` and ``until``.

    :param audit: the audit trail to read failures from and record the new attempts in.
    :param flow: the flow name.
    :param replayer: the flow's replayer; defaults to the one registered in
        :mod:`airflow_provider_b1.sync.flows`.
    :param since: only failures at or after this time.
    :param until: only failures before this time.
    :param dry_run: only select and count; nothing is sent and nothing is recorded.
    :param context: the Airflow context of the replay task (run ids for the audit rows).
    :param batch_size: refs per replayer call.
    :param limit: replay at most this many records.
    :param session_info: ``dag_id``/``run_id``/``task_id``/``try_number`` for the audit rows when
        there is no Airflow context.
    """
    options: dict[str, Any] = {}
    if replayer is None:
        replayer, options = get_replayer(flow)
    summary = ReplaySummary(flow=flow, dry_run=dry_run, since=since, until=until)
    failed = audit.records_for_replay(flow, since, until, limit=limit)
    summary.selected = len(failed)
    summary.sample = [f"{r.source_entity}:{r.source_key}" for r in failed[:20]]
    log.info(
        "Flow %s: %d records whose latest attempt failed%s",
        flow,
        len(failed),
        " (dry run)" if dry_run else "",
    )
    if dry_run or not failed:
        return summary

    replay_context = ReplayContext(flow=flow, options=options, airflow_context=context)
    refs = sorted(
        (SourceRef.from_failed(r) for r in failed),
        key=lambda r: (r.source_system, r.source_entity, r.source_key),
    )
    if context is not None:
        session = audit.session_for(flow, context)
    else:
        info = dict(session_info or {})
        session = audit.session(
            flow, info.get("dag_id"), info.get("run_id"), info.get("task_id"), info.get("try_number")
        )
    with session:
        for _, group in groupby(refs, key=lambda r: (r.source_system, r.source_entity)):
            for batch in chunked(group, batch_size):
                for outcome in _replay_batch(replayer, batch, replay_context):
                    session.record(outcome)
                    summary.counts[outcome.action.value] += 1
    return summary


def _replay_batch(replayer: Replayer, batch: list[SourceRef], context: ReplayContext) -> list[AuditRecord]:
    wanted = {(r.source_system, r.source_entity, r.source_key): r for r in batch}
    outcomes: list[AuditRecord] = []
    try:
        for outcome in replayer(list(batch), context):
            if outcome.identity not in wanted:
                log.warning("Replayer reported %s, which was not asked for; ignored.", outcome.identity)
                continue
            outcomes.append(outcome)
    except Exception as exc:
        # The scrubbed reason only: a traceback would repeat the raw message, secrets and all.
        log.warning(
            "The %s replayer failed on a batch of %d; they stay failed: %s",
            context.flow,
            len(batch),
            scrub_error(exc),
        )
        answered = {o.identity for o in outcomes}
        outcomes.extend(_failed(ref, exc) for key, ref in wanted.items() if key not in answered)
        return outcomes
    answered = {o.identity for o in outcomes}
    outcomes.extend(
        _failed(ref, "the replayer reported no outcome for this record")
        for key, ref in wanted.items()
        if key not in answered
    )
    return outcomes


def _failed(ref: SourceRef, error: str | BaseException) -> AuditRecord:
    return AuditRecord(
        source_system=ref.source_system,
        source_entity=ref.source_entity,
        source_key=ref.source_key,
        action=Action.FAILED,
        target_system=ref.target_system,
        target_entity=ref.target_entity,
        target_key=ref.target_key,
        error=error,
    )
