"""Partitioned loads: a load that reads much of an entity, split into ranges that run side by side.

A first load, a full refresh or a large window (since/until, a backfill) of a large entity read one
page at a time on one session takes hours. Split into ranges, it runs as one task per range
(Airflow's dynamic task mapping: a planner returns the ranges, a load task is expanded over them),
spread over the workers, each range on its own session of the source.

* **Planning** (:func:`plan_ranges`). Entities whose keys are integers handed out in order
  (documents: ``DocEntry``) split by key: the source counts the entity and finds its lowest and
  highest key (:meth:`RangeReader.key_bounds`), and the key space is cut into ``parts`` ranges of
  equal width. Entities whose keys are codes in no useful order (business partners ``CardCode``,
  items ``ItemCode``) split by update day: the source counts them and finds the earliest and latest
  ``UpdateDate`` (:meth:`RangeReader.stamp_bounds`), and each cut is the first day before which its
  share of the records was updated, found by bisecting the days with filtered counts
  (:meth:`RangeReader.count_before`, :func:`split_days`). Either way the first range has no lower
  bound and the last no upper bound, so the ranges cover every record whatever was created or
  renumbered meanwhile (the first range of days also takes records that carry no update day).
  Below ``threshold`` records nothing is split. A window run counts and splits only its window,
  and each of its ranges reads only the window.
* **Each range** (:func:`sync_range`) is read in key order (``key ge low and key lt high``, or
  ``UpdateDate ge low and UpdateDate lt high`` ordered by key) through the engine's one run loop
  (:func:`~airflow_provider_b1.sync.engine.sync_stream`): pages, writers, the audit trail with each
  page. Its position (the last key committed, a :class:`RangeCursor`) is checkpointed with every
  page under the range's own name (``Invoices@[1000,2000)``, ``Items@UpdateDate[2024-03-01,)``), so
  a failed or killed range's next try resumes after its last committed page, alone; the other
  ranges are untouched. The sink upserts by key with a payload hash, so re-reading a range rewrites
  nothing: its records come back ``unchanged``. When the load ends, its ranges' checkpoints are
  deleted (:func:`prune_checkpoints`), with the entity's cursor where the target allows.
* **The cursor.** When every range has finished, the entity's incremental cursor is the source's
  position *at planning time* (:attr:`KeyRange.cursor`), observed before the first range started
  reading. Ranges run at different speeds and read each record in whatever state it has when its
  page is fetched; a record changed after planning is newer than that cursor whichever range
  read it (or missed it), so the next incremental read, starting there, finds it. A cursor taken
  at the end (the newest stamp any range saw) could lie ahead of a record another, slower range
  had already passed; the planning-time position is behind every range, never ahead of any. The
  cost is re-reading what changed during the load once, and upserts make that harmless.

  Ranges of update days need that guarantee most: a record changed during the load moves to
  today's day, out of the range that was to read it (which may not have reached it) and perhaps
  into the last range after that one has passed its key. It is then read by no range, or by two,
  but it is changed after planning, so the read that ends the load finds it. A record not changed
  after planning keeps its day and is read by exactly the one range holding that day.
* **Window runs** keep their rule: they never move the incremental cursor (see
  :mod:`~airflow_provider_b1.sync.window`), so what changed during a split window run is read
  by the next incremental run, from the older cursor it still starts at.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from airflow_provider_b1.sync.checkpoints import Checkpoint
from airflow_provider_b1.sync.cursors import Cursor, KeysetCursor
from airflow_provider_b1.sync.engine import Item, Page, PageCommit, Sink, Source, sync_stream
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Outcome
from airflow_provider_b1.sync.window import SyncWindow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_b1.sync.audit import AuditSession
    from airflow_provider_b1.sync.flows import Flow
    from airflow_provider_b1.sync.summary import SyncSummary

log = logging.getLogger(__name__)

#: Below this many records an entity is loaded by one task, unsplit.
DEFAULT_THRESHOLD = 50_000
#: Source sessions the ranges of one load use at once (each holds a licence on SAP).
DEFAULT_SESSIONS = 4
#: The most ranges one load is split into.
MAX_PARTS = 64


#: A split by key: ranges of ordered (integer) keys.
KEY = "key"
#: A split by update stamp: ranges of update days, for keys in no useful order (codes).
STAMP = "stamp"
#: The source field a split by stamp bounds, as range names show it.
STAMP_FIELD = "UpdateDate"


class RangeCursor(KeysetCursor):
    """The last key a range's read committed: the read resumes strictly after it."""

    kind: ClassVar[str] = "key_range"
    names: ClassVar[tuple[str, ...]] = ("last key",)


@dataclasses.dataclass(frozen=True)
class KeyBounds:
    """What a planner learns of an entity before splitting it.

    :param count: records the source holds.
    :param low: the lowest key (``None`` when there is none).
    :param high: the highest key.
    :param observed_at: the source's clock when it was asked (aware).
    """

    count: int
    low: Any
    high: Any
    observed_at: dt.datetime


@runtime_checkable
class RangeReader(Protocol):
    """What a source offers to be read in ranges.

    ``since``/``until`` (aware datetimes, ``None``: open) restrict every answer to a run's window.
    """

    def splits_by(self, stream: Stream) -> str | None:
        """How the stream splits: :data:`KEY` (ordered integer keys), :data:`STAMP` (update days) or
        ``None`` (it does not)."""

    def key_bounds(
        self, stream: Stream, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> KeyBounds:
        """Count the stream's records and find its lowest and highest key."""

    def stamp_bounds(
        self, stream: Stream, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> KeyBounds:
        """Count the stream's records and find its earliest and latest update day (``YYYY-MM-DD``)."""

    def count_before(
        self, stream: Stream, day: str, *, since: dt.datetime | None = None, until: dt.datetime | None = None
    ) -> int:
        """Count the records updated before ``day`` (``YYYY-MM-DD``)."""

    def read_range(self, stream: Stream, key_range: KeyRange, *, after: Any = None) -> Iterable[Page]:
        """Pages of the records in ``key_range`` (and its window), in key order, strictly after key
        ``after`` when given; each page resumable at its last key (:class:`RangeCursor`)."""


@dataclasses.dataclass(frozen=True)
class KeyRange:
    """One range of a partitioned load, as a mapped task receives it (its XCom form: :meth:`to_xcom`).

    :param entity: the stream.
    :param index: its number, from 0.
    :param parts: how many ranges the load has.
    :param low: inclusive lower key bound (``None``: none).
    :param high: exclusive upper key bound (``None``: none).
    :param slot: the source session it reads on (1 and up; 0 is the worker's shared one).
    :param cursor: the entity's cursor at planning time (XCom form), for the task that ends the load.
    :param planned: records the source held when the load was planned (in the window, if any).
    :param by: what the bounds bound: ``"key"`` (ordered integer keys) or ``"stamp"`` (update
        days, ``YYYY-MM-DD``, for entities whose keys say nothing of their age).
    :param since: the run's window start (RFC 3339), when the plan split a window run.
    :param until: the run's window end (RFC 3339; ``None``: up to the time each page is read).
    """

    entity: str
    index: int
    parts: int
    low: Any = None
    high: Any = None
    slot: int = 1
    cursor: dict[str, Any] | None = None
    planned: int = 0
    by: str = KEY
    since: str | None = None
    until: str | None = None

    @property
    def windowed(self) -> bool:
        """Whether the range belongs to a window run (since/until, a backfill)."""
        return self.since is not None or self.until is not None

    @property
    def name(self) -> str:
        """The range's own name, under which its checkpoint is kept: ``Invoices@[1000,2000)``,
        ``Items@UpdateDate[2024-03-01,2024-06-01)``, with the window after a second ``@`` in a window run."""
        low = "" if self.low is None else self.low
        high = "" if self.high is None else self.high
        what = "" if self.by == KEY else STAMP_FIELD
        name = f"{self.entity}@{what}[{low},{high})"
        if self.windowed:
            name += f"@{self.since or ''}..{self.until or ''}"
        return name

    def describe(self, key: str = "key") -> str:
        field = key if self.by == KEY else STAMP_FIELD
        bounds = []
        if self.low is not None:
            bounds.append(f"{field} >= {self.low}")
        if self.high is not None:
            bounds.append(f"{field} < {self.high}")
        text = f"range {self.index + 1} of {self.parts} ({' and '.join(bounds) or 'every record'})"
        if self.windowed:
            text += f" of the window {self.since or 'the beginning'} .. {self.until or 'now'}"
        return text

    def to_xcom(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any] | KeyRange) -> KeyRange:
        if isinstance(data, KeyRange):
            return data
        if not isinstance(data, Mapping) or not isinstance(data.get("entity"), str):
            raise ValueError(f"not a key range: {data!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def split_keys(low: int, high: int, parts: int) -> list[tuple[int | None, int | None]]:
    """``parts`` ranges ``[low, high)`` of equal width covering ``low..high`` (inclusive), the first
    open below and the last open above."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, not {parts}")
    width = high - low + 1
    parts = max(1, min(parts, width))
    cuts = [low + (width * i + parts - 1) // parts for i in range(1, parts)]
    bounds = [None, *cuts, None]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def split_days(
    first: str, last: str, count: int, parts: int, before: Callable[[str], int]
) -> list[tuple[str | None, str | None]]:
    """Ranges of update days ``[low, high)`` holding about ``count / parts`` records each, the first
    open below (it also takes records with no update day) and the last open above.

    Each cut is the first day before which at least its share of the records was updated, or the day
    before that one when it comes nearer the share, found by bisecting the days between ``first``
    and ``last`` (both ``YYYY-MM-DD``) with ``before(day)`` (records updated before ``day``; asked
    at most once per day). Records of one day stay in one range, so a day holding more than a
    share gives fewer, larger ranges.
    """
    if parts < 1:
        raise ValueError(f"parts must be at least 1, not {parts}")
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    span = (end - start).days
    known: dict[int, int] = {0: 0}

    def counted(offset: int) -> int:
        if offset not in known:
            known[offset] = before((start + dt.timedelta(days=offset)).isoformat())
        return known[offset]

    cuts: list[int] = []
    for share in range(1, parts):
        target = math.ceil(count * share / parts)
        lo, hi = max(cuts[-1] if cuts else 0, 1), span  # a cut on the first day would leave a range empty
        if lo > hi:
            break
        floor = lo
        while lo < hi:  # the first offset with at least `target` records before it
            middle = (lo + hi) // 2
            if counted(middle) >= target:
                hi = middle
            else:
                lo = middle + 1
        # or the day before it, when that leaves the share nearer its size (a crowded day)
        if lo > floor and target - counted(lo - 1) < counted(lo) - target:
            lo -= 1
        if not cuts or lo > cuts[-1]:
            cuts.append(lo)
    days: list[str | None] = [None, *((start + dt.timedelta(days=c)).isoformat() for c in cuts), None]
    return [(days[i], days[i + 1]) for i in range(len(days) - 1)]


def plan_ranges(
    source: Source,
    stream: Stream,
    *,
    parts: int | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    sessions: int = DEFAULT_SESSIONS,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[KeyRange]:
    """Split a stream's load into ranges, or into none when it is small.

    :param source: an open source that reads ranges (:class:`RangeReader`).
    :param stream: the stream.
    :param parts: ranges wanted; ``None``: one per session when the stream (its window) holds at
        least ``threshold`` records, none below. ``1`` (or fewer): none.
    :param threshold: the size from which an automatic plan splits.
    :param sessions: source sessions the ranges share (range ``i`` reads on session
        ``1 + i % sessions``).
    :param since: a window run's start (aware; ``None``: none): only its records are counted and
        split, and each range reads within it.
    :param until: a window run's end, likewise.
    :return: the ranges (empty: load the stream unsplit), each carrying the stream's cursor at
        planning time (see the module documentation for why that one).
    """
    if not isinstance(source, RangeReader):
        raise TypeError(f"{type(source).__name__} cannot read {stream.name} in ranges")
    if sessions < 1:
        raise ValueError(f"sessions must be at least 1, not {sessions}")
    if parts is not None and parts <= 1:
        return []
    by = source.splits_by(stream)
    if by not in (KEY, STAMP):
        log.info("%s: its reads cannot be split into ranges", stream.name)
        return []
    window = {"since": since, "until": until}
    bounds = (source.key_bounds if by == KEY else source.stamp_bounds)(stream, **window)
    where = " in the window" if since is not None or until is not None else ""
    if bounds.count == 0 or bounds.low is None or bounds.high is None:
        log.info("%s: nothing to split (%d records%s)", stream.name, bounds.count, where)
        return []
    if parts is None:
        if bounds.count < threshold:
            log.info(
                "%s: %s records%s, fewer than the %s that split a load: one task reads them",
                stream.name,
                f"{bounds.count:,}",
                where,
                f"{threshold:,}",
            )
            return []
        parts = sessions
    parts = min(parts, MAX_PARTS)
    start = source.cursor_at(stream, bounds.observed_at)
    cursor = start.to_xcom() if start is not None else None
    if by == KEY:
        cuts = split_keys(int(bounds.low), int(bounds.high), parts)
    else:
        cuts = split_days(
            str(bounds.low),
            str(bounds.high),
            bounds.count,
            parts,
            lambda day: source.count_before(stream, day, **window),
        )
    if len(cuts) < 2:
        log.info(
            "%s: %s records%s, all in one range: one task reads them", stream.name, f"{bounds.count:,}", where
        )
        return []
    iso = {name: None if moment is None else moment.isoformat() for name, moment in window.items()}
    ranges = [
        KeyRange(
            stream.name,
            index,
            len(cuts),
            low,
            high,
            slot=1 + index % sessions,
            cursor=cursor,
            planned=bounds.count,
            by=by,
            **iso,
        )
        for index, (low, high) in enumerate(cuts)
    ]
    log.info(
        "%s: %s records%s, %s %s..%s: %d ranges of about %s on %d sessions; the cursor after them: %s",
        stream.name,
        f"{bounds.count:,}",
        where,
        "keys" if by == KEY else "updated",
        bounds.low,
        bounds.high,
        len(ranges),
        f"{math.ceil(bounds.count / len(ranges)):,}",
        min(sessions, len(ranges)),
        start,
    )
    return ranges


# --- one range through the engine ---------------------------------------------------------------


class _RangeSource(Source):
    """The source restricted to one key range; reads resume after a :class:`RangeCursor`."""

    def __init__(self, source: Source, key_range: KeyRange) -> None:
        if not isinstance(source, RangeReader):
            raise TypeError(f"{type(source).__name__} cannot read key ranges")
        self.inner = source
        self.range = key_range
        self.system = source.system

    def read(self, stream: Stream, start: Cursor | None, *, until: dt.datetime | None) -> Iterable[Page]:
        after = start.position[0] if isinstance(start, KeysetCursor) else None
        return self.inner.read_range(stream, self.range, after=after)

    def read_keys(self, stream: Stream, keys: Sequence[str]) -> Iterable[Page]:
        return self.inner.read_keys(stream, keys)

    def key_of(self, stream: Stream, record: Any) -> Any:
        return self.inner.key_of(stream, record)


class _SinkProxy(Sink):
    """A database sink seen through a wrapper that changes how its checkpoints are kept."""

    def __init__(self, sink: Sink) -> None:
        if sink.database is None or not hasattr(sink, "checkpoints"):
            raise TypeError(
                f"{type(sink).__name__} keeps no checkpoints of its own: it cannot load key ranges"
            )
        self.inner = sink
        self.system = sink.system
        self.database = sink.database
        self.page_limit = sink.page_limit

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        return self.inner.prepare(stream, records)

    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> Mapping[Hashable, Outcome]:
        return self.inner.write(stream, items, page)

    def target_entity(self, stream: Stream) -> str:
        return self.inner.target_entity(stream)

    def fork(self) -> Sink | None:
        return self.inner.fork()

    def read_checkpoint(self, flow: str, stream: Stream) -> Checkpoint | None:
        return self.inner.read_checkpoint(flow, stream)

    def save_checkpoint(
        self, flow: str, stream: Stream, position: Mapping[str, Any], run: Mapping, *, complete: bool = True
    ) -> None:
        self.inner.save_checkpoint(flow, stream, position, run, complete=complete)

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
        self.inner.write_checkpoint(cursor, flow, stream, position, run, complete=complete)

    def hold(self, flow: str, stream: Stream) -> contextlib.AbstractContextManager[None]:
        return self.inner.hold(flow, stream)

    def finish(self, stream: Stream) -> str | None:
        return self.inner.finish(stream)

    def close(self) -> None:
        self.inner.close()


class _RangeSink(_SinkProxy):
    """A database sink whose checkpoint and load lock are the range's own, not the stream's."""

    def __init__(self, sink: Sink, key_range: KeyRange) -> None:
        super().__init__(sink)
        self.range = key_range

    def _own(self, stream: Stream) -> Stream:
        return dataclasses.replace(stream, name=self.range.name)

    def fork(self) -> Sink | None:
        another = self.inner.fork()
        return None if another is None else _RangeSink(another, self.range)

    def read_checkpoint(self, flow: str, stream: Stream) -> Checkpoint | None:
        sink: Any = self.inner
        if not sink.holds_data(stream):
            return Checkpoint({}, empty=True)
        return sink.checkpoints.read(sink.conn, flow, self.range.name)

    def save_checkpoint(
        self, flow: str, stream: Stream, position: Mapping[str, Any], run: Mapping, *, complete: bool = True
    ) -> None:
        self.inner.save_checkpoint(flow, self._own(stream), position, run, complete=complete)

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
        self.inner.write_checkpoint(cursor, flow, self._own(stream), position, run, complete=complete)

    def hold(self, flow: str, stream: Stream) -> contextlib.AbstractContextManager[None]:
        return self.inner.hold(flow, self._own(stream))


class PruningSink(_SinkProxy):
    """The sink of the read that ends a partitioned load: the entity's checkpoint, when the read
    moves it, is written in one transaction with the deletion of the plan's range checkpoints.

    :param sink: an open database sink.
    :param names: the range checkpoints to delete (:attr:`KeyRange.name`).
    """

    def __init__(self, sink: Sink, names: Sequence[str]) -> None:
        super().__init__(sink)
        self.names = list(names)
        #: Whether the range checkpoints are gone (the read moved the checkpoint).
        self.pruned = False

    def save_checkpoint(
        self, flow: str, stream: Stream, position: Mapping[str, Any], run: Mapping, *, complete: bool = True
    ) -> None:
        from airflow_provider_b1.utils.sql import transaction

        sink: Any = self.inner
        with transaction(sink.conn) as cursor:
            sink.checkpoints.write(cursor, flow, stream.name, position, run, complete=complete)
            deleted = sink.checkpoints.delete(cursor, flow, self.names)
        self.pruned = True
        log.info(
            "%s: the checkpoints of its %d ranges deleted with its own (%d found)",
            stream.name,
            len(self.names),
            deleted,
        )


def prune_checkpoints(sink: Sink, flow: str, names: Sequence[str]) -> int:
    """Delete range checkpoints in a transaction of their own (a load that ended without moving the
    entity's checkpoint: a window run, a target already further on); returns how many there were."""
    from airflow_provider_b1.utils.sql import transaction

    target: Any = sink.inner if isinstance(sink, _SinkProxy) else sink
    if target.database is None or not hasattr(target, "checkpoints"):
        return 0
    with transaction(target.conn) as cursor:
        return target.checkpoints.delete(cursor, flow, names)


def sync_range(
    flow: Flow,
    stream: Stream,
    source: Source,
    sink: Sink,
    session: AuditSession,
    key_range: KeyRange | Mapping[str, Any],
    *,
    writers: int = 1,
    progress_every: int | None = None,
) -> SyncSummary:
    """Load one key range of a stream: every record in it, in key order, with the audit trail and a
    checkpoint of the range's own in each page's transaction.

    An unfinished earlier try of the same run resumes after the last page it committed; any other
    read covers the whole range (its records that are already loaded come back ``unchanged``). The
    summary's cursor is the range's last key, not the stream's cursor: the task that ends the load
    sets that (see the module documentation).

    :param flow: the flow.
    :param stream: the stream (its records are audited and written as the stream's own).
    :param source: an open source that reads key ranges (:class:`RangeReader`).
    :param sink: an open database sink.
    :param session: the task try's audit session.
    :param key_range: the range (a :class:`KeyRange` or its XCom form).
    :param writers: pages written side by side.
    :param progress_every: pages between progress lines.
    """
    key_range = KeyRange.from_xcom(key_range)
    if key_range.entity != stream.name:
        raise ValueError(f"The range {key_range.name} is not a range of {stream.name}")
    own = dataclasses.replace(stream, cursor=RangeCursor, retry_waiting=0)
    log.info("%s: %s", stream.name, key_range.describe())
    window = SyncWindow("incremental", reason=key_range.describe())
    extra = {} if progress_every is None else {"progress_every": progress_every}
    return sync_stream(
        flow,
        own,
        _RangeSource(source, key_range),
        _RangeSink(sink, key_range),
        session,
        window,
        writers=writers,
        retry_waiting=0,
        **extra,
    )


def plan_cursors(ranges: Iterable[Mapping[str, Any] | KeyRange]) -> dict[str, dict[str, Any] | None]:
    """``{entity: cursor at planning time}`` of the entities a plan split (the cursor each range carries)."""
    found: dict[str, dict[str, Any] | None] = {}
    for item in ranges or ():
        key_range = KeyRange.from_xcom(item)
        found.setdefault(key_range.entity, key_range.cursor)
    return found


def ranges_of(value: Any) -> Iterator[KeyRange]:
    """The key ranges in a planner's XCom (a list of :meth:`KeyRange.to_xcom` dicts)."""
    for item in value or ():
        yield KeyRange.from_xcom(item)
