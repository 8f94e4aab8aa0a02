"""The sync engine every flow runs on: cursors, the run loop, the audit trail, checkpoints, replay.

Nothing in this package knows any one external system. A flow declares its streams and joins a
:class:`Source` (one system's reads) to a :class:`Sink` (another's writes); the engine gives it
windows, cursors by XCom checked against the target, a trail written with every page, replay of
failed records, summaries and progress lines (:mod:`.engine`, :mod:`.flows`,
:class:`airflow_provider_b1.operators.sync.SyncOperator`).
"""

from __future__ import annotations

from airflow_provider_b1.sync.audit import (
    AuditError,
    AuditRecord,
    AuditSession,
    AuditTrail,
    FailedRecord,
    scrub_error,
)
from airflow_provider_b1.sync.cursors import (
    Cursor,
    KeysetCursor,
    ReplayIdCursor,
    StampCursor,
    TokenCursor,
)
from airflow_provider_b1.sync.engine import (
    Item,
    Page,
    PageCommit,
    PartialWrite,
    Sink,
    Source,
    choose_start,
    replay_keys,
    sync_stream,
    write_alone,
)
from airflow_provider_b1.sync.flows import (
    Flow,
    Stream,
    UnknownFlowError,
    get_flow,
    known_flows,
    register_flow,
    unregister_flow,
)
from airflow_provider_b1.sync.outcomes import Action, Outcome, waiting
from airflow_provider_b1.sync.records import payload_hash
from airflow_provider_b1.sync.replay import ReplaySummary, replay_failed
from airflow_provider_b1.sync.sql_sinks import DatabaseSink, TableSink
from airflow_provider_b1.sync.summary import SyncSummary, combine_summaries
from airflow_provider_b1.sync.window import (
    SyncWindow,
    SyncWindowError,
    cursor_from_summary,
    parse_datetime,
    previous_summary,
    resolve_window,
    sync_params,
)

__all__ = [
    "Action",
    "AuditError",
    "AuditRecord",
    "AuditSession",
    "AuditTrail",
    "Cursor",
    "DatabaseSink",
    "FailedRecord",
    "Flow",
    "Item",
    "KeysetCursor",
    "Outcome",
    "Page",
    "PageCommit",
    "PartialWrite",
    "ReplayIdCursor",
    "ReplaySummary",
    "Sink",
    "Source",
    "StampCursor",
    "Stream",
    "SyncSummary",
    "SyncWindow",
    "SyncWindowError",
    "TableSink",
    "TokenCursor",
    "UnknownFlowError",
    "choose_start",
    "combine_summaries",
    "cursor_from_summary",
    "get_flow",
    "known_flows",
    "parse_datetime",
    "payload_hash",
    "previous_summary",
    "register_flow",
    "replay_failed",
    "replay_keys",
    "resolve_window",
    "scrub_error",
    "sync_params",
    "sync_stream",
    "unregister_flow",
    "waiting",
    "write_alone",
]
