"""The sync engine every flow shares: cursor windows, summaries, the audit trail and replay.

Nothing in this package knows any one external system: a flow joins a hook (one system's
protocol) to these pieces.
"""

from __future__ import annotations

from airflow_provider_b1.sync.audit import (
    Action,
    AuditError,
    AuditRecord,
    AuditSession,
    AuditTrail,
    FailedRecord,
    scrub_error,
)
from airflow_provider_b1.sync.flows import get_replayer, register_replayer, registered_flows
from airflow_provider_b1.sync.records import (
    SeenFilter,
    canonical_json,
    chunked,
    dedupe_latest,
    payload_hash,
)
from airflow_provider_b1.sync.replay import ReplayContext, Replayer, ReplaySummary, SourceRef, replay_failed
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
    "FailedRecord",
    "ReplayContext",
    "ReplaySummary",
    "Replayer",
    "SeenFilter",
    "SourceRef",
    "SyncSummary",
    "SyncWindow",
    "SyncWindowError",
    "canonical_json",
    "chunked",
    "combine_summaries",
    "cursor_from_summary",
    "dedupe_latest",
    "get_replayer",
    "parse_datetime",
    "payload_hash",
    "previous_summary",
    "register_replayer",
    "registered_flows",
    "replay_failed",
    "resolve_window",
    "scrub_error",
    "sync_params",
]
