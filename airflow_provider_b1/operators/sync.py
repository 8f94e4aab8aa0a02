"""The Airflow tasks every flow is made of: a load of some of its streams, and the replay of its failures.

:class:`SyncOperator` runs streams of a declared :class:`~airflow_provider_b1.sync.flows.Flow`
through the engine (:func:`~airflow_provider_b1.sync.engine.sync_stream`): the window from the
run (``since``/``until`` params, a backfill's data interval, ``full_refresh``, or the cursor of
the last successful run, checked against the target), the audit trail written with every page,
a progress line every few pages, and the summary (new cursors and counts) as its XCom. A flow's
operator is configuration over it.

Failures no retry can fix (:class:`~airflow_provider_b1.exceptions.PermanentError`: refused
credentials, a bad param, a configuration or mapping error, a reconciliation difference) fail the
task at once, without spending its retries; transient ones (5xx, resets, timeouts, 429) keep them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID as DEFAULT_AUDIT_CONN_ID
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as DEFAULT_AUDIT_SCHEMA
from airflow_provider_b1.sync.engine import PROGRESS_EVERY_PAGES
from airflow_provider_b1.sync.flows import Flow, Stream, get_flow

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_b1.sync.audit import AuditSession
    from airflow_provider_b1.sync.engine import Sink, Source
    from airflow_provider_b1.sync.summary import SyncSummary
    from airflow_provider_b1.sync.window import SyncWindow

log = logging.getLogger(__name__)


def fail_without_retry(exc: PermanentError) -> BaseException:
    """The exception that fails a task at once, whatever its retries, saying why (unless the
    message already says why it is not retried, as a refused SAP login's does)."""
    from airflow.sdk.exceptions import AirflowFailException

    message = str(exc)
    if "Not retried" in message:
        return AirflowFailException(message)
    return AirflowFailException(f"{message} (Not retried: retrying cannot fix this.)")


class PermanentFailures:
    """Mixin: an ``execute`` that raises :class:`PermanentError` fails the task without retries."""

    def execute(self, context: Context) -> Any:
        try:
            return self.run(context)
        except PermanentError as exc:
            # The message says what failed and what to do; the frames of the hook, its retry
            # library and the engine that led there would only bury it. They stay at debug level.
            log.debug("%s raised from:", type(exc).__name__, exc_info=exc)
            raise fail_without_retry(exc) from None

    def run(self, context: Context) -> Any:
        raise NotImplementedError


class SyncOperator(PermanentFailures, BaseOperator):
    """Run streams of a flow incrementally, over a window, or in full; return their summary.

    :param flow: the flow, or its registered name.
    :param streams: the streams to run, in order; all of the flow's when ``None``.
    :param options: overrides of the flow's options (connection ids, page size...).
    :param audit_conn_id: the audit trail's connection (``postgres``, or ``sqlite`` with the file
        in its host). When it is the target's own database, each page's audit rows are written in
        the page's transaction.
    :param audit_schema: the PostgreSQL schema of the audit trail.
    :param writers: pages written side by side when the target takes several writers.
    :param progress_every: pages between progress lines in the task log.
    :param outlets: the Assets the task updates; by default those the flow declares for its streams.
    """

    template_fields: Sequence[str] = ("streams", "options", "audit_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        flow: Flow | str,
        streams: Sequence[str] | None = None,
        options: Mapping[str, Any] | None = None,
        audit_conn_id: str = DEFAULT_AUDIT_CONN_ID,
        audit_schema: str = DEFAULT_AUDIT_SCHEMA,
        writers: int = 1,
        progress_every: int = PROGRESS_EVERY_PAGES,
        **kwargs: Any,
    ) -> None:
        if not kwargs.get("outlets") and isinstance(flow, Flow):
            kwargs["outlets"] = flow.assets_of(
                streams if streams is not None else [s.name for s in flow.streams]
            )
        super().__init__(**kwargs)
        if writers < 1:
            raise ValueError(f"writers must be at least 1, not {writers}")
        self.flow = flow
        self.streams = list(streams) if streams is not None else None
        self.options = dict(options or {})
        self.audit_conn_id = audit_conn_id
        self.audit_schema = audit_schema
        self.writers = writers
        self.progress_every = progress_every

    @property
    def flow_declaration(self) -> Flow:
        """The flow object (looked up by name when a name was given), scoped by the task's options
        (:meth:`~airflow_provider_b1.sync.flows.Flow.scoped`: one SAP company's own audit rows and
        checkpoints)."""
        flow = get_flow(self.flow) if isinstance(self.flow, str) else self.flow
        return flow.scoped(self.lineage_options())

    def lineage_options(self) -> Mapping[str, Any]:
        """The options the task runs its flow with (overrides of the flow's), for its lineage."""
        return self.options

    def get_openlineage_facets_on_start(self) -> Any:
        """What the task's streams read and write, for the OpenLineage provider (which calls this
        when lineage is enabled, at the start of the task; its completion reports the same).

        :return: an ``OperatorLineage`` naming the flow's datasets (see :mod:`airflow_provider_b1.lineage`),
            or ``None`` without the ``openlineage`` extra or for a flow that declares no lineage.
        """
        from airflow_provider_b1.lineage import operator_lineage

        return operator_lineage(self.flow_declaration, self.streams, self.lineage_options())

    def resolve_windows(self, context: Context, streams: Sequence[str]) -> dict[str, SyncWindow]:
        """What each stream reads in this run (:func:`~airflow_provider_b1.sync.resolve_window`)."""
        from airflow_provider_b1.sync import previous_summary, resolve_window

        previous = previous_summary(context)  # one question to Airflow for every stream
        return {name: resolve_window(context, entity=name, previous=previous) for name in streams}

    def run(self, context: Context) -> dict[str, Any]:
        from airflow_provider_b1.sync import AuditTrail, combine_summaries

        flow = self.flow_declaration
        streams = [flow.stream(name) for name in (self.streams or [s.name for s in flow.streams])]
        windows = self.resolve_windows(context, [s.name for s in streams])
        summaries = []
        with AuditTrail(self.audit_conn_id, schema=self.audit_schema) as audit:
            audit.ensure_schema()
            with flow.open(self.options) as (source, sink), audit.session_for(flow.name, context) as session:
                for stream in streams:
                    summaries.append(
                        self.sync_stream(flow, stream, source, sink, session, windows[stream.name])
                    )
        return combine_summaries(summaries)

    def sync_stream(
        self,
        flow: Flow,
        stream: Stream,
        source: Source,
        sink: Sink,
        session: AuditSession,
        window: SyncWindow,
    ) -> SyncSummary:
        """Run one stream through the engine; a subclass changes how one stream is read here."""
        from airflow_provider_b1.sync.engine import sync_stream

        return sync_stream(
            flow,
            stream,
            source,
            sink,
            session,
            window,
            writers=self.writers,
            progress_every=self.progress_every,
        )


class ReplayFailedOperator(PermanentFailures, BaseOperator):
    """Replay the records of a flow whose latest attempt failed, through the flow's own source and sink.

    :param flow: the flow, or its name (templated: the replay DAG takes it from a param).
    :param since: only failures at or after this time (ISO 8601; templated).
    :param until: only failures before this time.
    :param dry_run: only count and list what would be replayed.
    :param options: overrides of the flow's options.
    :param audit_conn_id: the audit trail's connection.
    :param audit_schema: its PostgreSQL schema.
    """

    template_fields: Sequence[str] = ("flow", "since", "until", "dry_run", "options", "audit_conn_id")

    def __init__(
        self,
        *,
        flow: Flow | str,
        since: Any = None,
        until: Any = None,
        dry_run: Any = True,
        options: Mapping[str, Any] | None = None,
        audit_conn_id: str = DEFAULT_AUDIT_CONN_ID,
        audit_schema: str = DEFAULT_AUDIT_SCHEMA,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.flow = flow
        self.since = since
        self.until = until
        self.dry_run = dry_run
        self.options = options or {}
        self.audit_conn_id = audit_conn_id
        self.audit_schema = audit_schema

    def run(self, context: Context) -> dict[str, Any]:
        from airflow_provider_b1.sync import AuditTrail, parse_datetime, replay_failed
        from airflow_provider_b1.utils.params import ParamError, parse_bool

        dry_run = parse_bool(self.dry_run, default=True, name="Param 'dry_run'")
        try:
            options = json.loads(self.options) if isinstance(self.options, str) else self.options
        except ValueError:
            options = self.options
        if not isinstance(options, Mapping):
            raise ParamError(f"Param 'options' must be an object of the flow's options, not {options!r}.")
        with AuditTrail(self.audit_conn_id, schema=self.audit_schema) as audit:
            audit.ensure_schema()
            summary = replay_failed(
                audit,
                self.flow,
                since=parse_datetime(self.since, name="since"),
                until=parse_datetime(self.until, name="until"),
                dry_run=dry_run,
                options=options,
                context=context,
            )
        return summary.to_xcom()
