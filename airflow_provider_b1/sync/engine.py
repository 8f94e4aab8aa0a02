"""The one run loop every flow uses: window, read, write, audit, checkpoint, count.

A flow joins a :class:`Source` (reads pages of one system) to a :class:`Sink` (writes them to
another); both are small interfaces that know nothing of Airflow. :func:`sync_stream` runs one
stream (an entity) of a flow over a window:

1. **Where to start.** ``full``: from nothing; ``window``: from the source's cursor at the window
   start; ``incremental``: from the cursor of the last successful run, checked against the
   target's own checkpoint (:func:`choose_start`): a target behind the cursor (new, restored,
   truncated, another database) is read from what it holds, with a warning naming both; an
   unfinished earlier try of the same run is resumed after its last committed page. A target
   that keeps its checkpoints in the audit trail (an API) and has none there although a run left a
   cursor (the audit database is new, or was reset) is read from the beginning, with a warning:
   its writes are idempotent, and a cursor nothing vouches for could skip records it never got.
   Then, in an incremental run, the records of the stream that **wait** for another record (their
   latest outcome failed with :attr:`Outcome.waiting_for`: a payment for an invoice not in the
   target yet) are read again by key, the least recently tried first and at most
   :attr:`Stream.retry_waiting` of them, and written through the same pages before anything new.
2. **Pages.** The source yields :class:`Page` objects. Each page is prepared by the sink (mapped,
   in the reading thread), deduplicated by key (the same record twice in one page is written
   once, as its later copy, and both reads are audited), then written by a writer: the sink
   itself, or one of its forks working side by side. Pages commit in the order they were read
   whichever writer holds them, and a page sharing a key with a page in flight waits for it.
3. **Trail with the page.** The page's audit rows (one per record read) are written in the
   page's own transaction when the target and the audit trail share a database (the sink calls
   :meth:`PageCommit.seal`), else right after its commit and before any later page commits. A
   killed task never leaves a committed record without its trail in the shared case, and at most
   the page it was committing in the other. An API sink that wrote part of a page before failing
   reports it (:class:`PartialWrite`) and those records keep their trail.
4. **Cursor and checkpoint.** The cursor moves past a page only once the page is committed. A
   source whose pages are resumable (a server-ordered feed) gets its checkpoint written with every
   page; a source read in another order (SAP reads by key) gets it written when the read ends.
   A window run (since/until, a backfill) never moves the checkpoint, and no run moves it back.
5. **Summary.** Counts per outcome (a record still waiting counts as failed, and as ``waiting``),
   the records retried, the new cursor, the window; a progress line every few pages.

Nothing here knows any one system: a new flow is a source, a sink and a mapping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.sync.audit import KEY_LIMIT, AuditRecord, AuditSession, scrub_error
from airflow_provider_b1.sync.checkpoints import Checkpoint
from airflow_provider_b1.sync.cursors import Cursor, cursor_from_xcom
from airflow_provider_b1.sync.outcomes import Action, Outcome
from airflow_provider_b1.sync.summary import SyncSummary
from airflow_provider_b1.sync.window import SyncWindow
from airflow_provider_b1.utils.sql import Database, transaction

if TYPE_CHECKING:
    from airflow_provider_b1.sync.flows import Flow, Stream

log = logging.getLogger(__name__)

#: A progress line every this many pages (and at least once a minute).
PROGRESS_EVERY_PAGES = 20
PROGRESS_EVERY_SECONDS = 60.0
#: Keys no longer than this go into the audit trail as they are (its column's limit).
NO_KEY = "(no key)"


# --- what sources and sinks exchange ----------------------------------------------------------


@dataclasses.dataclass
class Page:
    """Records a source read together, and how far they take the cursor.

    :param records: the records, in whatever form the source reads and its sink prepares.
    :param reached: the position the read reached with these records (``None``: they do not
        move the cursor, e.g. a re-read by key; a read may end with an empty page that only
        carries the position of everything before it).
    :param resumable: a read can resume right after this page from :attr:`reached` (true for
        server-ordered feeds: continuation tokens, replay ids, keyset order).
    """

    records: Sequence[Any]
    reached: Cursor | None = None
    resumable: bool = False


@dataclasses.dataclass(slots=True)
class Item:
    """A record prepared for writing.

    :param key: its natural key in the source, which also identifies it within a page (the
        foreign id that makes the write idempotent).
    :param data: what the sink writes (a mapped row, a payload).
    :param payload_hash: SHA-256 of what is written, for the audit trail and change detection.
    """

    key: Hashable
    data: Any
    payload_hash: str | None = None


class Source(ABC):
    """Reads one system. :attr:`system` names it in the audit trail (``sap_b1``)."""

    system: str

    @abstractmethod
    def read(self, stream: Stream, start: Cursor | None, *, until: dt.datetime | None) -> Iterable[Page]:
        """Pages of the stream's records changed after ``start`` (everything when ``None``),
        before ``until`` (exclusive, aware) when given."""

    @abstractmethod
    def read_keys(self, stream: Stream, keys: Sequence[str]) -> Iterable[Page]:
        """Pages holding the records with these keys (as the audit trail writes them) that still
        exist; for replay. A key the source does not have is simply absent."""

    def key_of(self, stream: Stream, record: Any) -> Any:
        """A record's key as the source names it (``None`` when it has none): the audit trail's key of
        a record the sink could not even map."""
        return None

    def cursor_at(self, stream: Stream, moment: dt.datetime) -> Cursor | None:
        """The cursor from which a read yields what changed at or after ``moment`` (a window's
        start). ``None``: the source cannot start at a time, and a window reads everything."""
        return None

    def close(self) -> None:
        """Release what the source holds (HTTP sessions)."""
        return None


class Sink(ABC):
    """Writes into one system. :attr:`system` names it in the audit trail (``warehouse``).

    :attr:`database` is the database its transactions run in, ``None`` for an API. A sink with a
    database keeps its checkpoints there (:meth:`read_checkpoint`, :meth:`save_checkpoint`) and
    must call :meth:`PageCommit.seal` inside each page's transaction.
    """

    system: str
    database: Database | None = None
    page_limit: int | None = None
    """The most records the sink takes in one write; a longer page read is split into parts that
    writers take side by side (only its last part moves the cursor). ``None``: pages as read."""

    @abstractmethod
    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        """Map a page (no I/O: it runs while earlier pages are being written): one entry per
        record, in order: an :class:`Item` to write, or a failed :class:`Outcome` with its reason."""

    @abstractmethod
    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> Mapping[Hashable, Outcome]:
        """Write a page's items (keys unique) and return each item's outcome by key.

        Bad data fails its own record, never the call. A sink with transactions writes the page
        in one, calls ``page.seal(cursor, outcomes)`` in it once the rows are final, then
        ``page.turn()`` before it commits (pages commit in reading order). Raise only for what
        stops the load (the target is down).
        """

    def target_entity(self, stream: Stream) -> str:
        """The target entity named in audit rows (a table, an object)."""
        return stream.target or stream.name

    def fork(self) -> Sink | None:
        """Another writer of the same target on its own connection, to write pages side by side;
        ``None`` when the target takes one writer at a time."""
        return None

    def read_checkpoint(self, flow: str, stream: Stream) -> Checkpoint | None:
        """The target's own checkpoint of a stream, ``None`` when it holds none or holds no data
        for it. Only for sinks with a :attr:`database`."""
        return None

    def save_checkpoint(
        self, flow: str, stream: Stream, position: Mapping[str, Any], run: Mapping, *, complete: bool = True
    ) -> None:
        """Record a checkpoint in the target, in a transaction of its own."""
        return None

    def write_checkpoint(
        self,
        cursor: Any,
        flow: str,
        stream: Stream,
        position: Mapping[str, Any],
        run: Mapping,
        *,
        complete: bool = False,
    ) -> None:
        """Record a checkpoint through ``cursor``, inside the page transaction that reached it."""
        return None

    def hold(self, flow: str, stream: Stream) -> contextlib.AbstractContextManager[None]:
        """Held while one task loads a stream, so that two tasks loading it into the same target at
        once take turns (their pages would otherwise wait on each other's locks for ever)."""
        return contextlib.nullcontext()

    def finish(self, stream: Stream) -> str | None:
        """Called when a stream's load ends; a phrase for its summary line (``"3 partners inferred"``)."""
        return None

    def close(self) -> None:
        """Release the connection (and any fork's)."""
        return None


class PartialWrite(Exception):
    """Raised by a sink without transactions (an API) that wrote part of a page, then met an error
    that stops the load: the engine records the trail of what was written, then raises ``cause``.

    :param written: the outcomes of the records that reached the target, by key.
    :param cause: the error that stopped the write.
    """

    def __init__(self, written: Mapping[Hashable, Outcome], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.written = dict(written)
        self.cause = cause


# --- committing a page ---------------------------------------------------------------------------


class PageAborted(Exception):
    """A page read earlier failed to commit: this one must not commit after it (it would leave a
    gap behind the cursor)."""


class CommitOrder:
    """Pages commit in the order they were read, whichever writer holds them, and none after a
    page that failed.

    A writer calls :meth:`wait` with its page's number once the page's rows are written, and
    :meth:`release` once the page is committed, or :meth:`fail` when it could not be.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._next = 0  # every page before this one is released
        self._released: set[int] = set()
        self._failed: int | None = None

    def wait(self, number: int) -> None:
        """Return once every page numbered below ``number`` is released.

        :raises PageAborted: when one of them failed instead.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._next >= number or self._failed_before(number))
            if self._failed_before(number):
                raise PageAborted(f"page {self._failed} failed before page {number} could commit")

    def _failed_before(self, number: int) -> bool:
        return self._failed is not None and self._failed < number

    def release(self, number: int) -> None:
        with self._changed:
            self._released.add(number)
            while self._next in self._released:
                self._released.remove(self._next)
                self._next += 1
            self._changed.notify_all()

    def fail(self, number: int) -> None:
        with self._changed:
            if self._failed is None or number < self._failed:
                self._failed = number
            self._changed.notify_all()


class PageCommit:
    """What a sink calls while it commits one page: its turn, and the page's trail.

    Built by the engine for each page; a sink only calls :meth:`turn` and :meth:`seal`.
    """

    def __init__(self, run: _StreamRun, prepared: _Prepared) -> None:
        self._run = run
        self._prepared = prepared
        self._waited = False
        #: The audit rows written by :meth:`seal`, when the trail shares the target's database.
        self.sealed: list[AuditRecord] | None = None

    @property
    def number(self) -> int:
        """The page's number in reading order, from 0."""
        return self._prepared.number

    def turn(self) -> None:
        """Wait until every page read before this one has committed (idempotent)."""
        if not self._waited:
            self._run.order.wait(self._prepared.number)
            self._waited = True

    def seal(self, cursor: Any, outcomes: Mapping[Hashable, Outcome]) -> None:
        """Write the page's trail inside the sink's open transaction, through ``cursor``.

        Writes the audit rows of every record of the page (when the audit trail lives in the same
        database) and the checkpoint (when the page is resumable: that part waits for the page's
        :meth:`turn`), so both commit with the page. Call it again if the transaction was rolled
        back and redone.

        :param cursor: a DB-API cursor of the transaction that commits the page.
        :param outcomes: what :meth:`Sink.write` will return.
        """
        run = self._run
        if run.shared_audit:
            records = run.audit_records(_merged(self._prepared, outcomes))
            run.session.write(records, cursor, counted=False)
            self.sealed = records
        checkpoint = self._prepared.checkpoint
        if checkpoint is not None and run.audited and run.sink.database is not None:
            # One checkpoint row per stream, shared by every page: it is written in reading order
            # (a page holding its lock while waiting for an earlier page would never be let through).
            self.turn()
            run.sink.write_checkpoint(
                cursor, run.flow.name, run.stream, checkpoint.to_xcom(), run.session.run, complete=False
            )


# --- the run loop --------------------------------------------------------------------------------


def choose_start(
    cursor: Cursor | None,
    mark: Cursor | None,
    *,
    stream: str,
    resume: bool = False,
    target_empty: bool = False,
    trail_kept: bool = False,
) -> tuple[Cursor | None, str, int]:
    """Where an incremental read starts, given the last run's cursor and the target's checkpoint.

    The checkpoint only ever moves the start *earlier* than the cursor, never past it: re-running
    a run reads its window again, as it did the first time. The rules:

    * ``resume``: the checkpoint was written mid-read by an earlier try of this same run, which
      never finished (killed, or failed on a later page): resume right after it;
    * no cursor (a first run, or the first run cleared): from the beginning;
    * the target holds nothing of the stream (new, emptied, another database): from the
      beginning, whatever the cursor says;
    * the checkpoint is kept in the audit trail for the target (``trail_kept``: an API, which
      keeps none itself) and there is none: the audit database is new or was reset, so nothing
      vouches for the cursor: from the beginning (the target's writes are idempotent);
    * the target holds data but keeps no checkpoint of it yet (loaded before it kept any): from
      the cursor;
    * the checkpoint behind the cursor (a restored target), or the two cannot be ordered: from
      the checkpoint;
    * otherwise from the cursor.

    :return: ``(start, reason, log level)``.
    """
    if resume and mark is not None:
        return (
            mark,
            f"resuming after {mark}, the last page an earlier try of this run committed",
            logging.INFO,
        )
    if cursor is None:
        return (
            None,
            "first run: no earlier successful run returned a cursor, reading everything",
            logging.INFO,
        )
    if target_empty:
        return (
            None,
            f"the target holds nothing of {stream} (a new, emptied or different database?) although the last "
            f"successful run reached {cursor}: reading everything instead of continuing from that cursor",
            logging.WARNING,
        )
    if mark is None and trail_kept:
        return (
            None,
            f"the audit trail keeps no checkpoint of {stream} (a new or reset audit database?) although the "
            f"last successful run reached {cursor}, and the target keeps none of its own: reading everything "
            "instead of continuing from that cursor (its writes are idempotent)",
            logging.WARNING,
        )
    if mark is None:
        return (
            cursor,
            f"continuing from cursor {cursor}; the target keeps no checkpoint of {stream} yet (it was loaded "
            "before it kept any), so this once the cursor cannot be checked against it",
            logging.INFO,
        )
    order = mark.compare(cursor)
    if order == 0 or order == 1:
        return cursor, f"continuing from cursor {cursor}", logging.INFO
    if order == -1:
        return (
            mark,
            f"the target's checkpoint {mark} is behind the last successful run's cursor {cursor} (restored "
            "or another database?): reading from the target's checkpoint",
            logging.WARNING,
        )
    return (
        mark,
        f"the last run's cursor {cursor} and the target's checkpoint {mark} cannot be ordered: continuing from "
        "the target's checkpoint, which it wrote with its last committed page",
        logging.WARNING,
    )


class _StreamRun:
    """State of one stream's load (or replay) shared by the reading thread and the writers.

    Without a flow and an audit session (:func:`write_alone`) pages are written with no trail.
    """

    def __init__(
        self,
        flow: Flow | None,
        stream: Stream,
        source: Source | None,
        sink: Sink,
        session: AuditSession | None,
    ) -> None:
        self.flow = flow
        self.stream = stream
        self.source = source
        self.sink = sink
        self.session = session
        self.order = CommitOrder()
        self.target_entity = sink.target_entity(stream)
        if flow is None or session is None:
            self.shared_audit = False
            self.audited = False
            return
        self.audited = True
        self.shared_audit = sink.database is not None and sink.database.same_as(session.trail.database)
        self.checkpoints = session.trail.checkpoints
        self._audit_fields = (flow.source_system, stream.name, flow.target_system, self.target_entity)

    def audit_records(self, outcomes: Iterable[Outcome]) -> list[AuditRecord]:
        """One audit row per outcome."""
        source_system, entity, target_system, target_entity = self._audit_fields
        return [_audit_record(o, source_system, entity, target_system, target_entity) for o in outcomes]

    def write_trail(self, outcomes: Iterable[Outcome], checkpoint: Cursor | None = None) -> None:
        """Audit rows (and a checkpoint the target cannot keep) in one audit-trail transaction."""
        if not self.audited:
            return
        trail = self.session.trail
        with transaction(trail.connection()) as cursor:
            self.session.write(self.audit_records(outcomes), cursor, counted=False)
            if checkpoint is not None and self.sink.database is None:
                self.checkpoints.write(
                    cursor,
                    self.flow.name,
                    self.stream.name,
                    checkpoint.to_xcom(),
                    self.session.run,
                    complete=False,
                )


def unusable_key(key: Any) -> str | None:
    """Why a record's key cannot identify it in the audit trail (``None`` when it can): too long
    for the trail's key column, or holding a NUL character, which PostgreSQL text cannot store."""
    kind = key.__class__
    if kind is int:
        return None  # the usual document key: nothing to check
    text = key if kind is str else str(key)
    if len(text) > KEY_LIMIT:
        return f"its key is {len(text)} characters long; the audit trail keeps keys of at most {KEY_LIMIT}"
    if "\x00" in text:
        return "its key holds a NUL character, which the audit trail cannot store"
    return None


def audit_key(key: Any) -> str:
    """A record's key as the audit trail holds it: the key itself, or for a key :func:`unusable_key`
    refuses, a readable stand-in (NUL shown as ``\\0``, the length kept)."""
    if key is None or key == "":
        return NO_KEY
    text = str(key)
    if unusable_key(text) is None:
        return text
    shown = text.replace("\x00", "\\0")
    suffix = f"...({len(text)} characters)"
    return shown if len(shown) <= KEY_LIMIT else shown[: KEY_LIMIT - len(suffix)] + suffix


_STAND_IN_LENGTH = re.compile(r"\.\.\.\(\d+ characters\)$")


def is_stand_in(audit_key_text: str) -> bool:
    """Whether a key read from the audit trail is :func:`audit_key`'s stand-in for a key it could
    not hold (a NUL shown as ``\\0``, a long key cut with its length): not a key to re-read by."""
    return "\\0" in audit_key_text or _STAND_IN_LENGTH.search(audit_key_text) is not None


def _audit_record(
    outcome: Outcome, source_system: str, entity: str, target_system: str, target: str
) -> AuditRecord:
    text = audit_key(outcome.key)
    failed = outcome.action is Action.FAILED
    target_key = None if failed else str(outcome.target_key if outcome.target_key is not None else text)
    return AuditRecord(
        source_system=source_system,
        source_entity=entity,
        source_key=text,
        action=outcome.action,
        target_system=target_system,
        target_entity=target,
        target_key=target_key,
        error=outcome.error,
        payload_hash=outcome.payload_hash,
        waiting_for=outcome.waiting_for,
    )


@dataclasses.dataclass
class _Prepared:
    number: int
    outcomes: list[Outcome | None]  # read order; None where an item's write decides
    pending: dict[Hashable, int]  # item key -> its position in outcomes
    items: list[Item]
    size: int
    keys: frozenset  # every key the page names, failed ones too: their audit rows must stay in order
    checkpoint: Cursor | None = None


def prepare_page(
    sink: Sink, stream: Stream, records: Sequence[Any], number: int = 0, source: Source | None = None
) -> _Prepared:
    """Map a page and keep one copy of each key: the later one wins, the earlier is ``skipped``.

    A record the sink cannot map, and whose key it cannot tell, is keyed as the source names it.
    """
    outcomes: list[Outcome | None] = []
    latest: dict[Hashable, Item] = {}
    pending: dict[Hashable, int] = {}
    entries = sink.prepare(stream, records)
    if len(entries) != len(records):
        raise TypeError(
            f"{type(sink).__name__}.prepare() gave {len(entries)} entries for a page of {len(records)} records; "
            "it must give one per record (an Item, or a failed Outcome)."
        )
    for position, entry in enumerate(entries):
        if entry.__class__ is Outcome:
            if entry.key is None and source is not None:
                key = source.key_of(stream, records[position])
                if key is not None:
                    entry = dataclasses.replace(entry, key=key)
            outcomes.append(entry)
            continue
        key = entry.key
        refused = unusable_key(key)
        if refused is not None:
            # Written, it would be a row without a trail: it fails alone, before any write.
            outcomes.append(Outcome(key, Action.FAILED, f"not written: {refused}", entry.payload_hash))
            continue
        earlier = pending.get(key)
        if earlier is not None:
            outcomes[earlier] = Outcome(
                key,
                Action.SKIPPED,
                "read again later in the same page; the later copy was written",
                latest[key].payload_hash,
            )
            del latest[key]  # re-inserted below: the items keep the order of their last copies
        latest[key] = entry
        pending[key] = len(outcomes)
        outcomes.append(None)
    keys = frozenset(o.key for o in outcomes if o is not None).union(pending)
    return _Prepared(number, outcomes, pending, list(latest.values()), len(records), keys)


def _merged(prepared: _Prepared, written: Mapping[Hashable, Outcome]) -> list[Outcome]:
    """The page's outcomes in read order, each item's taken from what its write reported."""
    strangers = [key for key in written if key not in prepared.pending]
    if strangers:
        raise TypeError(
            f"The sink reported outcomes for keys it was not given ({strangers[:3]!r}...): it must key its "
            "outcomes by each Item's key, as given (mind 42 and '42')."
        )
    merged = list(prepared.outcomes)
    for key, position in prepared.pending.items():
        found = written.get(key)
        merged[position] = (
            found
            if found is not None
            else Outcome(key, Action.FAILED, "the target reported no outcome for this record")
        )
    return merged  # type: ignore[return-value]


def _write_page(run: _StreamRun, writer: Sink, prepared: _Prepared) -> list[Outcome]:
    """Write one page on ``writer`` in its turn; its trail too when the sink did not seal it."""
    commit = PageCommit(run, prepared)
    try:
        try:
            written = writer.write(run.stream, prepared.items, commit) if prepared.items else {}
        except PartialWrite as partial:
            # What reached an API before it failed keeps its trail; the rest of the page is read
            # again by the next try.
            waiting = set(prepared.pending.values())
            done = [
                outcome
                for position, outcome in enumerate(_merged(prepared, partial.written))
                if position not in waiting or outcome.key in partial.written
            ]
            _trail_without_turn(run, done)
            raise partial.cause from None
        try:
            commit.turn()
        except PageAborted:
            if writer.database is None:
                # An API took this page while an earlier one failed: what it wrote stays there,
                # so its trail is written (no checkpoint: the earlier page is read again).
                _trail_without_turn(run, _merged(prepared, written))
            raise
        outcomes = _merged(prepared, written)
        if commit.sealed is None:
            # The target is an API or another database: the trail follows the commit at once,
            # before any later page may commit.
            run.write_trail(outcomes, prepared.checkpoint)
    except BaseException:
        run.order.fail(prepared.number)
        raise
    run.order.release(prepared.number)
    return outcomes


def _trail_without_turn(run: _StreamRun, outcomes: list[Outcome]) -> None:
    """The trail of what an API page wrote before the load stopped, in no particular turn (pages in
    flight never share a key, so their rows need no order) and with no checkpoint."""
    run.write_trail(outcomes)
    if run.audited:
        run.session.count(outcomes)


def write_alone(sink: Sink, stream: Stream, records: Sequence[Any]) -> list[Outcome]:
    """Prepare and write one page on its own: no audit trail, no checkpoint (tools and tests).

    :return: one outcome per record, in read order.
    """
    return _write_page(_StreamRun(None, stream, None, sink, None), sink, prepare_page(sink, stream, records))


def sync_stream(
    flow: Flow,
    stream: Stream,
    source: Source,
    sink: Sink,
    session: AuditSession,
    window: SyncWindow,
    *,
    writers: int = 1,
    progress_every: int = PROGRESS_EVERY_PAGES,
    retry_waiting: int | None = None,
) -> SyncSummary:
    """Read one stream of a flow over ``window`` and write it; return its summary.

    :param flow: the flow (its name, systems, streams).
    :param stream: the stream to run.
    :param source: an open source.
    :param sink: an open sink (its schema in place).
    :param session: the task try's audit session.
    :param window: what to read (:func:`~airflow_provider_b1.sync.window.resolve_window`).
    :param writers: pages written side by side (the sink and up to ``writers - 1`` forks).
    :param progress_every: pages between progress lines.
    :param retry_waiting: at most this many waiting records are retried before an incremental
        read (``0``: none); the stream's :attr:`~airflow_provider_b1.sync.flows.Stream.retry_waiting`
        when ``None``.
    """
    run = _StreamRun(flow, stream, source, sink, session)
    summary = SyncSummary(
        flow=flow.name, entity=stream.name, mode=window.mode, since=window.since, until=window.until
    )
    with sink.hold(flow.name, stream):
        start, until, description, reason = _start(run, window)
        log.info("%s: %s%s", stream.name, description, f" ({reason})" if reason else "")
        progress = _Progress(stream.name, description, summary, progress_every)
        cursor = start
        extra: list[Sink] = []
        try:
            # Writers side by side: a database's roll back what they wrote when an earlier page
            # fails; an API's writes stay, with their trail, and are found again by the next try
            # (an API sink forks only when its writes are idempotent).
            while len(extra) < writers - 1:
                another = sink.fork()
                if another is None:
                    break
                extra.append(another)
            free = [sink, *extra]
            if window.mode == "incremental" and stream.cursor is not None:
                limit = stream.retry_waiting if retry_waiting is None else retry_waiting
                _retry_waiting(run, free, summary, progress, limit)
            pages = _split(source.read(stream, start, until=until), sink.page_limit)
            checkpoints = stream.cursor is not None and window.mode != "window"
            for page_cursor in _pipeline(run, pages, free, summary, progress, checkpoints):
                cursor = page_cursor if cursor is None else cursor.advance(page_cursor)
        finally:
            for writer in extra:
                writer.close()
        if stream.cursor is not None and window.mode != "window" and cursor is not None:
            _save_end(run, cursor)
    if stream.cursor is not None:
        summary.cursor = window.cursor_to_store(cursor.to_xcom() if cursor is not None else None)
    note = sink.finish(stream)
    progress.done(note)
    return summary


#: Keys handed to a source's ``read_keys`` per call when waiting records are retried.
KEY_BATCH = 200


def _retry_waiting(
    run: _StreamRun, free: list[Sink], summary: SyncSummary, progress: _Progress, limit: int
) -> None:
    """Read again, by key, the records of the stream whose latest outcome is "waiting for" another
    record, and write them through the usual pages (before the run reads anything new).

    At most ``limit``, the least recently tried first. A record the source no longer has is settled
    as ``skipped``. A transient error stops the run (the task is retried); any other leaves the
    records waiting for the next run, with a warning, and the run reads what changed.
    """
    if limit <= 0 or not run.audited:
        return
    flow, stream = run.flow, run.stream
    found = run.session.trail.waiting(flow.name, stream.name, source_system=flow.source_system, limit=limit)
    keys = [key for key, _ in found if not is_stand_in(key)]
    if not keys:
        return
    shown = ", ".join(f"{key} for {what}" for key, what in found[:5])
    log.info(
        "%s: retrying %d records that wait for others (%s%s) before reading what changed",
        stream.name,
        len(keys),
        shown,
        ", ..." if len(found) > 5 else "",
    )
    # A run of its own: its pages commit in their own order, apart from the read's.
    retry = _StreamRun(flow, stream, run.source, run.sink, run.session)
    answered: set[str] = set()
    summary.retried += len(keys)

    def settled(outcomes: list[Outcome]) -> None:
        answered.update(audit_key(outcome.key) for outcome in outcomes)

    def pages() -> Iterator[Page]:
        for begin in range(0, len(keys), KEY_BATCH):
            yield from run.source.read_keys(stream, keys[begin : begin + KEY_BATCH])

    try:
        for _ in _pipeline(
            retry, _split(pages(), run.sink.page_limit), free, summary, progress, False, settled
        ):
            pass  # pages read by key move no cursor
    except RetryableError:
        raise
    except Exception as exc:
        log.warning(
            "%s: retrying the records that wait for others failed; they wait for the next run: %s",
            stream.name,
            scrub_error(exc),
        )
        return
    gone = [
        Outcome(
            key, Action.SKIPPED, f"{stream.name} {key} is no longer in {flow.source_system}: nothing waits"
        )
        for key in keys
        if key not in answered
    ]
    if gone:
        retry.write_trail(gone)
        run.session.count(gone)
        for outcome in gone:
            summary.count(outcome.action)


def _split(pages: Iterable[Page], limit: int | None) -> Iterable[Page]:
    """Pages of at most ``limit`` records; the position a page reached goes with its last part."""
    return pages if not limit else _parts(pages, limit)


def _parts(pages: Iterable[Page], limit: int) -> Iterator[Page]:
    try:
        for page in pages:
            records = page.records
            if len(records) <= limit:
                yield page
                continue
            last = (len(records) - 1) // limit * limit
            for begin in range(0, last, limit):
                yield Page(records[begin : begin + limit])
            yield Page(records[last:], reached=page.reached, resumable=page.resumable)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:  # the source's read ends with ours (its HTTP stream, its thread)
            close()


def _save_end(run: _StreamRun, cursor: Cursor) -> None:
    """The read finished: its end becomes the target's checkpoint, complete, unless the checkpoint is
    already further on (a later run's: a cleared older run re-reads its own window only)."""
    mark, _, _ = run_mark(run)
    if mark is not None and mark.compare(cursor) == 1:
        return
    info, flow, stream = run.session.run, run.flow.name, run.stream
    if run.sink.database is not None:
        run.sink.save_checkpoint(flow, stream, cursor.to_xcom(), info, complete=True)
        return
    trail = run.session.trail
    with transaction(trail.connection()) as db:
        trail.checkpoints.write(db, flow, stream.name, cursor.to_xcom(), info, complete=True)


def _start(run: _StreamRun, window: SyncWindow) -> tuple[Cursor | None, dt.datetime | None, str, str]:
    """``(start, until, what is read, why)`` of one stream's read."""
    stream = run.stream
    if stream.cursor is None:
        return None, None, "full read", "this entity has no update stamp"
    if window.mode == "full":
        return None, window.until, window.describe(), window.reason
    if window.mode == "window":
        start = run.source.cursor_at(stream, window.since) if window.since is not None else None
        if start is None and window.since is not None:
            log.warning(
                "%s: %s cannot start a read at a time; the window reads everything it serves.",
                stream.name,
                type(run.source).__name__,
            )
        return start, window.until, window.describe(), window.reason
    try:
        cursor = cursor_from_xcom(stream.cursor, window.cursor)
    except ValueError:
        log.warning(
            "%s: the last run's cursor %r cannot be read; reading everything.", stream.name, window.cursor
        )
        cursor = None
    mark, resume, empty = run_mark(run)
    if cursor is None and mark is None and _positions_nothing(run):
        # No earlier run could have returned a cursor: saying "first run" every time would mislead.
        return (
            None,
            window.until,
            "full read",
            f"{run.flow.source_system if run.flow else 'the source'} keeps no update stamp for {stream.name}: "
            "every run reads it in full",
        )
    start, reason, level = choose_start(
        cursor,
        mark,
        stream=stream.name,
        resume=resume,
        target_empty=empty,
        trail_kept=run.sink.database is None,
    )
    if level >= logging.WARNING:
        log.warning("%s: %s", stream.name, reason)
        reason = "see the warning above"
    until = f" until {window.until.isoformat()}" if window.until else " until now"
    return start, window.until, f"incremental from {start or 'the beginning'}{until}", reason


def _positions_nothing(run: _StreamRun) -> bool:
    """Whether the stream's source says it cannot position a read of it at all (an entity with no
    update stamp): its own :meth:`Source.cursor_at` gives no cursor even for now."""
    source = run.source
    if source is None or type(source).cursor_at is Source.cursor_at:
        return False  # a source that never positions by time may still hand out cursors
    try:
        return source.cursor_at(run.stream, dt.datetime.now(dt.timezone.utc)) is None
    except Exception:  # only the wording of a log line depends on it
        return False


def run_mark(run: _StreamRun) -> tuple[Cursor | None, bool, bool]:
    """The target's checkpoint of the stream (``None``: it keeps none), whether an unfinished earlier
    try of this very run wrote it (the read may resume after it), and whether the target holds
    nothing of the stream at all."""
    if run.sink.database is not None:
        checkpoint = run.sink.read_checkpoint(run.flow.name, run.stream)
    else:
        checkpoint = run.session.trail.checkpoint(run.flow.name, run.stream.name)
    if checkpoint is None:
        return None, False, False
    if checkpoint.empty:
        return None, False, True
    try:
        mark = cursor_from_xcom(run.stream.cursor, checkpoint.position)
    except ValueError:
        log.warning(
            "%s: the target's checkpoint %r cannot be read; ignoring it.", run.stream.name, checkpoint
        )
        return None, False, False
    resume = (
        not checkpoint.complete
        and checkpoint.run_id is not None
        and checkpoint.run_id == run.session.run["run_id"]
    )
    return mark, resume, False


def _pipeline(
    run: _StreamRun,
    pages: Iterable[Page],
    free: list[Sink],
    summary: SyncSummary,
    progress: _Progress,
    checkpoints: bool = True,
    settled: Callable[[list[Outcome]], None] | None = None,
) -> Iterator[Cursor]:
    """Prepare each page here and hand it to a free writer; settle written pages in reading order.

    Yields each committed page's ``reached`` position (in reading order); ``settled`` is given
    each committed page's outcomes.
    """
    in_flight: deque[tuple[_Prepared, Future, Sink, Cursor | None]] = deque()
    cumulative: Cursor | None = None

    def settle_oldest() -> Cursor | None:
        prepared, future, writer, reached = in_flight.popleft()
        outcomes = future.result()
        free.append(writer)
        run.session.count(outcomes)
        summary.read += prepared.size
        for outcome in outcomes:
            summary.count(outcome.action)
            if outcome.waiting_for is not None:
                summary.waiting += 1
        if settled is not None:
            settled(outcomes)
        if prepared.size:
            progress.page()
        return reached

    iterator = iter(pages)
    with ThreadPoolExecutor(max_workers=len(free), thread_name_prefix=f"{run.flow.name}-writer") as pool:
        try:
            for number, page in enumerate(iterator):
                prepared = prepare_page(run.sink, run.stream, page.records, number, run.source)
                if page.reached is not None:
                    cumulative = page.reached if cumulative is None else cumulative.advance(page.reached)
                    prepared.checkpoint = cumulative if page.resumable and checkpoints else None
                # A free writer, and no key in common with a page in flight (two copies of a record
                # in two open transactions would wait on each other's locks).
                while in_flight and (
                    not free or any(not prepared.keys.isdisjoint(f[0].keys) for f in in_flight)
                ):
                    reached = settle_oldest()
                    if reached is not None:
                        yield reached
                writer = free.pop()
                in_flight.append(
                    (prepared, pool.submit(_write_page, run, writer, prepared), writer, page.reached)
                )
            while in_flight:
                reached = settle_oldest()
                if reached is not None:
                    yield reached
        finally:
            # The read or a write failed. Pages in flight finish: after a failed read they still
            # commit (they were read whole), after a failed write they roll back (none commits
            # after a page that did not); either way their trail matches what committed.
            while in_flight:
                prepared, future, writer, _ = in_flight.popleft()
                free.append(writer)
                try:
                    outcomes = future.result()
                except Exception:  # the first error is the one raised
                    log.debug("A page in flight did not commit", exc_info=True)
                    continue
                if run.audited:
                    run.session.count(outcomes)
            close = getattr(iterator, "close", None)
            if close is not None:
                close()


class _Progress:
    """A progress line every few pages (and at least once a minute), and the closing line."""

    def __init__(self, name: str, description: str, summary: SyncSummary, every: int) -> None:
        self.name, self.description, self.summary = name, description, summary
        self.every = max(1, every)
        self.started = self.last = time.monotonic()
        self.pages = 0

    def page(self) -> None:
        self.pages += 1
        now = time.monotonic()
        if self.pages % self.every == 0 or now - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = now
            log.info("%s: page %d, %s; %s", self.name, self.pages, self._figures(now), self.description)

    def done(self, note: str | None) -> None:
        log.info("%s: done, %s%s", self.name, self._figures(time.monotonic()), f"; {note}" if note else "")

    def _figures(self, now: float) -> str:
        s = self.summary
        elapsed = now - self.started
        rate = s.read / elapsed if elapsed > 0 else 0.0
        return f"{s.read:,} read in {elapsed:.1f} s ({rate:,.0f}/s): {s.describe()}"


# --- replay --------------------------------------------------------------------------------------


def replay_keys(
    flow: Flow,
    stream: Stream,
    source: Source,
    sink: Sink,
    session: AuditSession,
    keys: Sequence[str],
) -> list[Outcome]:
    """Re-read records of one stream by key and write them through the flow's own path.

    A key the source no longer has is settled as ``skipped`` (nothing to replay). Each outcome is
    audited as a new attempt, with its page, exactly as a load's. An error no retry can fix, or a
    transient one (:class:`~airflow_provider_b1.exceptions.PermanentError`,
    :class:`~airflow_provider_b1.exceptions.RetryableError`), is raised: the task fails or is
    retried. Any other error fails the keys not answered yet, with the (scrubbed) reason, and the
    replay goes on.
    """
    run = _StreamRun(flow, stream, source, sink, session)
    wanted = list(dict.fromkeys(str(k) for k in keys))
    answered: dict[str, Outcome] = {}
    try:
        for number, page in enumerate(source.read_keys(stream, wanted)):
            outcomes = _write_page(run, sink, prepare_page(sink, stream, page.records, number, source))
            session.count(outcomes)
            for outcome in outcomes:
                key = str(outcome.key)
                if outcome.action is not Action.SKIPPED or key not in answered:
                    answered[key] = outcome
    except (PermanentError, RetryableError):
        raise  # refused credentials, an outage: the task fails (or is retried) instead of every record
    except Exception as exc:
        reason = scrub_error(exc) or type(exc).__name__
        log.warning("Replaying %s of %s failed; they stay failed: %s", stream.name, flow.name, reason)
        missing = [Outcome(key, Action.FAILED, reason) for key in wanted if key not in answered]
    else:
        # Gone from the source since it failed: there is nothing to replay, and it is settled.
        missing = [
            Outcome(
                key,
                Action.SKIPPED,
                f"{stream.name} {key} is no longer in {flow.source_system}: nothing to replay",
            )
            for key in wanted
            if key not in answered
        ]
    if missing:
        run.write_trail(missing)
        session.count(missing)
    return [*answered.values(), *missing]
