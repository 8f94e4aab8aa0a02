"""Wait for Salesforce changes without holding a worker slot: Change Data Capture as a wake-up.

:class:`SalesforceChangeSensor` defers to
:class:`~airflow_provider_b1.triggers.salesforce.SalesforceChangeEventTrigger` and succeeds as soon
as accounts or opportunities change (seconds after the edit), so the tasks after it (the sync of
those objects, which polls on ``SystemModstamp``) run at once instead of at the next schedule.

CDC only says *that* records changed; the sync reads them. So nothing is lost when CDC cannot
deliver: a replay id older than the 72-hour retention, a stream that keeps failing, or an object
not selected for CDC make the sensor succeed with ``fallback`` naming why, and the poll that
follows reads every record changed since its own cursor. A typical DAG::

    wait = SalesforceChangeSensor(task_id="wait_for_salesforce", wait_seconds=3600)
    sync = SyncOperator(task_id="sync", flow="salesforce_to_sap_b1", streams=["accounts", "opportunities"])
    wait >> sync

run continuously (``schedule="@continuous"``, ``max_active_runs=1``) or on a schedule with
``return_when_idle=True`` so each run polls at least once.

The sensor's return value (its XCom) is ``{"replay_id", "changes", "fallback"}``: ``replay_id``
is where the next run goes on from (a hex string with one topic, a mapping topic -> hex string
with several; ``None``: start at the newest event), ``changes`` is ``{entity: {"record_ids",
"changed_fields", "change_types"}}``, ``fallback`` ``None`` or the reason. Without a ``replay_id``
argument the sensor takes the one its previous successful run returned (the same look-up as the
sync engine's cursor,
:func:`~airflow_provider_b1.sync.window.previous_summary`), so no event between two runs is
skipped while it stays within the retention.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

from airflow_provider_b1.triggers.salesforce import (
    DEFAULT_CONN_ID,
    DEFAULT_TOPICS,
    IDLE,
    ReplayIds,
    SalesforceChangeEventTrigger,
    replay_positions,
    replay_text,
    topic_list,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


class SalesforceChangeSensor(BaseSensorOperator):
    """Succeed once Salesforce change events arrive, or CDC says it cannot deliver them.

    Always deferrable: it waits in the triggerer. Returns ``{"replay_id", "changes", "fallback"}``
    (see the module documentation).

    :param salesforce_conn_id: the Salesforce connection (``b1_salesforce``).
    :param topics: change event topics (default Account and Opportunity). Templated.
    :param replay_id: where to start (text form; a mapping topic -> text with several topics);
        ``None``: where the previous successful run of this task stopped, else the newest event.
        Templated.
    :param wait_seconds: how long one deferral waits for events before looking again (each look
        refreshes the replay id from the stream's keepalives).
    :param return_when_idle: succeed with no changes when ``wait_seconds`` pass quietly, instead
        of waiting on until the sensor's ``timeout``.
    :param linger_seconds: after the first event, keep gathering this long.
    :param max_events: succeed as soon as this many events are gathered.
    :param max_attempts: subscribe attempts in a row after a broken stream before falling back.
    :param backoff_seconds: first pause between those attempts (doubling).
    :param num_requested: events in flight per topic (1 to 100).
    :param timeout: seconds to wait in all (the sensor's usual ``timeout``; ``soft_fail`` applies).
    """

    template_fields: Sequence[str] = ("topics", "replay_id")
    ui_color = "#e3f1fb"

    def __init__(
        self,
        *,
        salesforce_conn_id: str = DEFAULT_CONN_ID,
        topics: str | Sequence[str] = DEFAULT_TOPICS,
        replay_id: ReplayIds = None,
        wait_seconds: float = 3600.0,
        return_when_idle: bool = False,
        linger_seconds: float = 0.5,
        max_events: int = 1000,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        num_requested: int = 100,
        timeout: float = 7 * 24 * 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, **kwargs)
        self.salesforce_conn_id = salesforce_conn_id
        self.topics = topics
        self.replay_id = replay_id
        self.wait_seconds = float(wait_seconds)
        self.return_when_idle = return_when_idle
        self.linger_seconds = linger_seconds
        self.max_events = max_events
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.num_requested = num_requested

    def poke(self, context: Context) -> bool:
        raise NotImplementedError("SalesforceChangeSensor always defers; it has no poke.")

    def previous_replay_id(self, context: Context) -> ReplayIds:
        """The replay id the previous successful run of this task returned, when there was one."""
        from airflow_provider_b1.sync.window import previous_summary

        previous = previous_summary(context)
        if isinstance(previous, Mapping):
            return previous.get("replay_id")
        return None

    def execute(self, context: Context) -> Any:
        topics = topic_list(self.topics)
        if self.replay_id not in (None, "", {}):
            start = replay_text(replay_positions(topics, self.replay_id))
        else:
            previous = self.previous_replay_id(context)
            # A previous run's ids for other topics (the task's topics changed) start at LATEST.
            start = replay_text(replay_positions(topics, previous, strict=False))
            self.log.info("Going on from the previous run's replay id %s.", start)
        self._defer(topics, start, started_at=time.time())

    def _defer(self, topics: list[str], replay_id: ReplayIds, *, started_at: float) -> None:
        remaining = self.timeout - (time.time() - started_at)
        self.defer(
            trigger=SalesforceChangeEventTrigger(
                salesforce_conn_id=self.salesforce_conn_id,
                topics=topics,
                replay_id=replay_id,
                wait_seconds=min(self.wait_seconds, max(remaining, 1.0)),
                linger_seconds=self.linger_seconds,
                max_events=self.max_events,
                max_attempts=self.max_attempts,
                backoff_seconds=self.backoff_seconds,
                num_requested=self.num_requested,
            ),
            method_name="execute_complete",
            kwargs={"started_at": started_at},
            timeout=dt.timedelta(seconds=max(remaining, 1.0)),
        )

    def execute_complete(
        self, context: Context, event: Mapping[str, Any], started_at: float | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger fired: wait on when it was idle, else return what it found."""
        started = started_at if started_at is not None else time.time()
        if event.get("status") == IDLE and not self.return_when_idle:
            self.log.info("No Salesforce changes in %.0f s; waiting on.", self.wait_seconds)
            self._defer(
                list(event.get("topics") or topic_list(self.topics)),
                event.get("replay_id"),
                started_at=started,
            )
        fallback = event.get("fallback")
        if fallback:
            self.log.warning(
                "Salesforce CDC could not deliver changes (%s): %s The tasks downstream poll as usual.",
                fallback,
                event.get("message"),
            )
        else:
            for entity, found in (event.get("changes") or {}).items():
                self.log.info(
                    "%s: %d record(s) changed (%s); fields %s.",
                    entity,
                    len(found.get("record_ids", [])),
                    ", ".join(found.get("change_types", [])),
                    ", ".join(found.get("changed_fields", [])) or "-",
                )
        return {
            "replay_id": event.get("replay_id"),
            "changes": event.get("changes") or {},
            "fallback": fallback,
        }
