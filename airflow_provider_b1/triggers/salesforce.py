"""Waiting for Salesforce changes in the triggerer: Change Data Capture through the Pub/Sub API.

:class:`SalesforceChangeEventTrigger` subscribes to change event topics asynchronously and fires
one event as soon as changes arrive, so a task that waits on it holds no worker slot. CDC here is
a *wake-up*, not a data feed: the event names which records changed (and which fields), and the
task that runs next reads the records themselves by polling on ``SystemModstamp``. So an event
that is never delivered (a replay id past the 72-hour retention, a broken stream, CDC switched
off for an object) costs latency, never an edit: the trigger then fires a *fallback* event saying
why, and the poll that follows catches up.

Replay ids travel as text (hex; see
:func:`~airflow_provider_b1.hooks.salesforce.pubsub.replay.replay_id_to_text`). They are per
topic: with one topic ``replay_id`` is a string (or ``None``), with several a mapping of topic to
string (or ``None``). ``None`` starts at the tip of the stream (``LATEST``): what changed before
is the poll's to find.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_b1.hooks.salesforce.pubsub.errors import (
    PubSubError,
    ReplayIdExpiredError,
    TopicUnavailableError,
)
from airflow_provider_b1.hooks.salesforce.pubsub.replay import replay_id_from_text, replay_id_to_text
from airflow_provider_b1.utils.params import ParamError

DEFAULT_CONN_ID = "b1_salesforce_default"
DEFAULT_TOPICS = ("/data/AccountChangeEvent", "/data/OpportunityChangeEvent")

CHANGES = "changes"
IDLE = "idle"
FALLBACK = "fallback"

CDC_NOT_ENABLED = "cdc_not_enabled"
"""The org offers no such topic: the object is not selected for Change Data Capture, or CDC is off."""
REPLAY_ID_EXPIRED = "replay_id_expired"
"""Salesforce refused the replay id: older than the event bus keeps events (72 h). Restart at LATEST."""
STREAM_FAILED = "stream_failed"
"""The subscription kept failing after bounded retries (or could not start: credentials, the cdc extra)."""


ReplayIds = str | Mapping[str, str | None] | None


def topic_list(topics: str | Sequence[str]) -> list[str]:
    """Topics given as a list, a JSON list or comma-separated text (what a template renders)."""
    if isinstance(topics, str):
        text = topics.strip()
        topics = json.loads(text) if text.startswith("[") else text.split(",")
    found = [str(t).strip() for t in topics if str(t).strip()]
    if not found:
        raise ParamError("Name at least one Salesforce change event topic (e.g. /data/AccountChangeEvent).")
    return list(dict.fromkeys(found))


def replay_positions(
    topics: Sequence[str], replay_id: Any, *, strict: bool = True
) -> dict[str, bytes | None]:
    """Each topic's replay id (bytes, or ``None`` for LATEST) from the text form.

    :param topics: the subscription's topics.
    :param replay_id: ``None``, a string (one topic only), a mapping topic -> string, or its JSON.
    :param strict: refuse a single string for several topics (``False``: ignore it, start LATEST).
    """
    if isinstance(replay_id, str) and replay_id.strip().startswith("{"):
        replay_id = json.loads(replay_id)
    if replay_id is None or replay_id == "":
        return dict.fromkeys(topics)
    if isinstance(replay_id, Mapping):
        return {t: replay_id_from_text(replay_id.get(t), name=f"replay_id of {t}") for t in topics}
    if len(topics) != 1:
        if strict:
            raise ParamError(
                "A replay id belongs to one topic; with several topics pass a mapping of topic to replay id."
            )
        return dict.fromkeys(topics)
    return {topics[0]: replay_id_from_text(replay_id)}


def replay_text(positions: Mapping[str, bytes | None]) -> ReplayIds:
    """The text form of each topic's replay id: a string with one topic, a mapping with several."""
    if len(positions) == 1:
        return replay_id_to_text(next(iter(positions.values())))
    return {topic: replay_id_to_text(position) for topic, position in positions.items()}


def fallback_reason(error: BaseException) -> str:
    """Which fallback a failure of the subscription means."""
    if isinstance(error, TopicUnavailableError):
        return CDC_NOT_ENABLED
    if isinstance(error, ReplayIdExpiredError):
        return REPLAY_ID_EXPIRED
    return STREAM_FAILED


class _Changes:
    """What the events say changed, per object: record ids, change types, field names."""

    def __init__(self) -> None:
        self.by_entity: dict[str, dict[str, dict[str, None]]] = {}
        self.count = 0

    def add(self, event: Any) -> None:
        self.count += 1
        entry = self.by_entity.setdefault(
            event.entity, {"record_ids": {}, "changed_fields": {}, "change_types": {}}
        )
        entry["record_ids"].update(dict.fromkeys(event.record_ids))
        entry["change_types"].update({event.change_type: None})
        if event.change_type in ("CREATE", "UNDELETE"):
            fields = list(event.values)
        else:
            fields = [*event.changed_fields, *event.nulled_fields]
        entry["changed_fields"].update(dict.fromkeys(fields))

    def as_dict(self) -> dict[str, dict[str, list[str]]]:
        return {
            entity: {key: list(values) for key, values in entry.items()}
            for entity, entry in sorted(self.by_entity.items())
        }


class SalesforceChangeEventTrigger(BaseTrigger):
    """Fire once Salesforce change events arrive on any of the topics (or why they cannot).

    One event ``{"status", "replay_id", "changes", "events", "fallback", "message", "topics"}``,
    of primitives only:

    * ``status`` ``"changes"``: ``changes`` is ``{entity: {"record_ids": [...], "changed_fields":
      [...], "change_types": [...]}}`` (changed fields decoded from the event bitmaps; for a
      create, the fields it set), ``events`` how many events, ``replay_id`` where to go on from
      (after the last event counted).
    * ``status`` ``"idle"``: ``wait_seconds`` passed without an event; ``replay_id`` is the
      stream's newest position (from keepalives), so a quiet topic's replay id stays inside the
      retention window.
    * ``status`` ``"fallback"``: ``fallback`` is :data:`CDC_NOT_ENABLED`, :data:`REPLAY_ID_EXPIRED`
      or :data:`STREAM_FAILED` and ``message`` the cause; poll instead. A topic whose replay id
      expired gets ``None`` (start at LATEST next time); the others keep theirs, and changes
      received before the failure are reported.

    Events after the first are gathered for ``linger_seconds`` (a burst of edits, one wake-up),
    up to ``max_events``; events not counted are delivered again to the next subscription.

    :param salesforce_conn_id: the Salesforce connection (``b1_salesforce``; its extras point at
        the Pub/Sub endpoint).
    :param topics: change event topics (``/data/AccountChangeEvent``, ``/data/ChangeEvents``...).
    :param replay_id: where to start: ``None`` (LATEST), the text form of a replay id (one topic) or
        a mapping of topic to it.
    :param wait_seconds: fire ``"idle"`` after this long without events (``None``: wait for ever).
    :param linger_seconds: keep gathering this long after the first event.
    :param max_events: fire as soon as this many events are gathered.
    :param max_attempts: subscribe attempts in a row after a broken stream before falling back.
    :param backoff_seconds: first pause between attempts (doubling).
    :param num_requested: events in flight per topic (1 to 100).
    :param ignore_own_changes: events committed by the connection's own run-as user (the flows'
        write-backs: partner codes, order numbers, balances) move the replay id on but wake
        nothing, so a run's own writes do not start the next run.
    """

    def __init__(
        self,
        salesforce_conn_id: str = DEFAULT_CONN_ID,
        topics: str | Sequence[str] = DEFAULT_TOPICS,
        replay_id: ReplayIds = None,
        wait_seconds: float | None = None,
        linger_seconds: float = 0.5,
        max_events: int = 1000,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        num_requested: int = 100,
        ignore_own_changes: bool = True,
    ) -> None:
        super().__init__()
        self.salesforce_conn_id = salesforce_conn_id
        self.topics = topic_list(topics)
        self.positions = replay_positions(self.topics, replay_id)
        self.replay_id = replay_text(self.positions)
        self.wait_seconds = None if wait_seconds is None else float(wait_seconds)
        self.linger_seconds = float(linger_seconds)
        self.max_events = int(max_events)
        self.max_attempts = int(max_attempts)
        self.backoff_seconds = float(backoff_seconds)
        self.num_requested = int(num_requested)
        self.ignore_own_changes = bool(ignore_own_changes)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "salesforce_conn_id": self.salesforce_conn_id,
                "topics": list(self.topics),
                "replay_id": self.replay_id,
                "wait_seconds": self.wait_seconds,
                "linger_seconds": self.linger_seconds,
                "max_events": self.max_events,
                "max_attempts": self.max_attempts,
                "backoff_seconds": self.backoff_seconds,
                "num_requested": self.num_requested,
                "ignore_own_changes": self.ignore_own_changes,
            },
        )

    def _event(
        self,
        status: str,
        positions: Mapping[str, bytes | None],
        changes: _Changes,
        fallback: str | None = None,
        message: str | None = None,
    ) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "replay_id": replay_text(positions),
                "changes": changes.as_dict(),
                "events": changes.count,
                "fallback": fallback,
                "message": message,
                "topics": list(self.topics),
            }
        )

    async def _client(self) -> Any:
        from airflow_provider_b1.hooks.salesforce.pubsub.client import AsyncSalesforcePubSubClient

        connection = await BaseHook.aget_connection(self.salesforce_conn_id)
        return AsyncSalesforcePubSubClient(
            self.salesforce_conn_id,
            connection=connection,
            num_requested=self.num_requested,
            max_attempts=self.max_attempts,
            backoff_seconds=self.backoff_seconds,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        positions = dict(self.positions)
        changes = _Changes()
        try:
            client = await self._client()
        except Exception as exc:  # a missing connection or extra: poll, and say why
            self.log.error("Salesforce CDC cannot start: %s", exc)
            yield self._event(FALLBACK, positions, changes, STREAM_FAILED, _message(exc))
            return
        own: str | None = None
        if self.ignore_own_changes:
            try:
                own = await client.run_as_user()
            except Exception as exc:  # the subscription will meet the same cause and say it
                self.log.warning("Salesforce CDC: the run-as user is unknown (%s); every change wakes.", exc)
        ignored = 0
        queue: asyncio.Queue[tuple[str, Any, BaseException | None]] = asyncio.Queue()

        async def pump(topic: str) -> None:
            try:
                async for batch in client.fetch(topic, replay_id=positions[topic]):
                    await queue.put((topic, batch, None))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await queue.put((topic, None, exc))

        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(pump(topic), name=f"salesforce-cdc {topic}") for topic in self.topics]
        deadline = None if self.wait_seconds is None else loop.time() + self.wait_seconds
        gathered_until: float | None = None
        try:
            while True:
                until = gathered_until if gathered_until is not None else deadline
                timeout = None if until is None else until - loop.time()
                if timeout is not None and timeout <= 0:
                    break
                try:
                    topic, batch, error = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    break
                if error is not None:
                    reason = fallback_reason(error)
                    if reason == REPLAY_ID_EXPIRED:
                        positions[topic] = None
                    self.log.warning("Salesforce CDC falls back to polling (%s): %s", reason, error)
                    yield self._event(FALLBACK, positions, changes, reason, _message(error))
                    return
                if batch.events:
                    theirs = [e for e in batch.events if own is None or e.commit_user != own]
                    ignored += len(batch.events) - len(theirs)
                    counted = theirs[: max(0, self.max_events - changes.count)]
                    for event in counted:
                        changes.add(event)
                    if len(counted) == len(theirs):  # every event of the batch dealt with
                        positions[topic] = batch.events[-1].replay_id
                    elif counted:  # the rest comes again to the next subscription
                        positions[topic] = counted[-1].replay_id
                    if counted and gathered_until is None:
                        gathered_until = loop.time() + self.linger_seconds
                    if changes.count >= self.max_events:
                        break
                elif batch.latest_replay_id:
                    positions[topic] = batch.latest_replay_id
            status = CHANGES if changes.count else IDLE
            self.log.info(
                "Salesforce CDC: %d change event(s) on %s%s.",
                changes.count,
                ", ".join(self.topics),
                f" ({ignored} more written by the flows themselves, ignored)" if ignored else "",
            )
            yield self._event(status, positions, changes)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.close()


def _message(error: BaseException) -> str:
    if isinstance(error, PubSubError):
        return str(error)
    return f"{type(error).__name__}: {error}"
