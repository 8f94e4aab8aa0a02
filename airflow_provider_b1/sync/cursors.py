"""Cursors: where an incremental read stopped, small enough for XCom, and how one moves on.

Every kind the flows need is one of these, without special cases in the engine:

================================  ========================================================
source                            cursor
================================  ========================================================
SAP ``UpdateDate`` + ``UpdateTime`` :class:`StampCursor` ``(date, time)`` with the keys seen at
(server's zone), day filters      exactly that stamp (a re-read of the day drops them)
SAP date-only stamps              :class:`StampCursor` ``(date,)``
Salesforce ``SystemModstamp``+``Id`` :class:`KeysetCursor` ``(modstamp, id)``: strictly after it
ServiceTitan export               :class:`TokenCursor`: the last ``continueFrom``
Salesforce Change Data Capture    :class:`ReplayIdCursor`: the last replay id
a full read every time            no cursor (``None``)
================================  ========================================================

A cursor is immutable. The engine starts a read from one, receives with each page the position
the read reached with that page's records, and moves on with :meth:`Cursor.advance` once the page
is committed: the cursor never passes a record that is not in the target. :meth:`Cursor.compare`
tells whether one position is behind another, which is how a cursor is checked against the
target's own checkpoint; opaque positions (server tokens) cannot be ordered and say so.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, ClassVar, TypeVar

C = TypeVar("C", bound="Cursor")


def _sortable(keys: Iterable[Any]) -> tuple[Any, ...]:
    """Keys in a stable order whatever their types (ints and strings may mix)."""
    return tuple(sorted(set(keys), key=lambda k: (type(k).__name__, k)))


class Cursor(ABC):
    """Where a read stopped; see the module documentation for the kinds."""

    #: Stored in the XCom form, so that a summary says what kind of position it holds.
    kind: ClassVar[str]

    @abstractmethod
    def to_xcom(self) -> dict[str, Any]:
        """Primitives only: the task's summary carries this to the next run."""

    @classmethod
    @abstractmethod
    def from_xcom(cls: type[C], data: Mapping[str, Any]) -> C:
        """Rebuild a cursor from :meth:`to_xcom` output.

        :raises ValueError: when ``data`` is not this kind's form.
        """

    @abstractmethod
    def advance(self: C, reached: C) -> C:
        """The cursor after a committed page that reached ``reached``."""

    @abstractmethod
    def compare(self: C, other: C) -> int | None:
        """``-1`` when this position is behind ``other``, ``0`` the same, ``1`` ahead; ``None``
        when the two cannot be ordered (different opaque tokens)."""

    @abstractmethod
    def describe(self) -> str:
        """A short phrase for a log line, never a dict or a repr: ``UpdateDate 2024-05-01 12:00:00``,
        ``SystemModstamp 2024-05-01T12:00:00.000Z, Id 001...``. Every log line that names a
        cursor prints it through this (``f"{cursor}"`` and ``%s`` do)."""

    def __str__(self) -> str:
        return self.describe()


@dataclasses.dataclass(frozen=True)
class StampCursor(Cursor):
    """A watermark on an update stamp, with the keys already read at exactly that stamp.

    For sources that can only filter coarsely (SAP filters ``UpdateDate`` by day): a read
    re-reads from the stamp and drops what the cursor covers: records stamped before it, and
    those stamped exactly at it whose key is in :attr:`seen_keys`. Stamps are tuples of text
    that sort as the stamps do (ISO dates, ``HH:MM:SS``).

    :param stamp: e.g. ``("2024-05-01", "13:14:45")``, or ``("2024-05-01",)`` for day stamps.
    :param seen_keys: keys already read at exactly :attr:`stamp`.
    """

    kind: ClassVar[str] = "stamp"

    stamp: tuple[str, ...]
    seen_keys: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "stamp", tuple(str(part) for part in self.stamp))
        object.__setattr__(self, "seen_keys", _sortable(self.seen_keys))

    @cached_property
    def _seen(self) -> frozenset[Any]:
        return frozenset(self.seen_keys)

    def is_new(self, stamp: tuple[str, ...], key: Any) -> bool:
        """Whether a record stamped ``stamp`` with ``key`` is not covered by this cursor yet."""
        if stamp != self.stamp:
            return stamp > self.stamp
        return key not in self._seen

    def advance(self, reached: StampCursor) -> StampCursor:
        if reached.stamp > self.stamp:
            return reached
        if reached.stamp < self.stamp:
            return self
        if self._seen.issuperset(reached.seen_keys):
            return self
        return dataclasses.replace(self, seen_keys=(*self.seen_keys, *reached.seen_keys))

    def compare(self, other: StampCursor) -> int | None:
        if self.stamp != other.stamp:
            return -1 if self.stamp < other.stamp else 1
        if self._seen == other._seen:
            return 0
        if self._seen < other._seen:
            return -1
        if self._seen > other._seen:
            return 1
        return None

    def to_xcom(self) -> dict[str, Any]:
        return {"kind": self.kind, "stamp": list(self.stamp), "seen_keys": list(self.seen_keys)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> StampCursor:
        stamp = data.get("stamp")
        if not isinstance(stamp, (list, tuple)) or not stamp:
            raise ValueError(f"not a stamp cursor: {dict(data)!r}")
        return cls(tuple(stamp), tuple(data.get("seen_keys") or ()))

    def describe(self) -> str:
        return " ".join(self.stamp) + self._seen_note()

    def _seen_note(self) -> str:
        count = len(self.seen_keys)
        if not count:
            return ""
        return f" ({count} record{'' if count == 1 else 's'} at that stamp already read)"


@dataclasses.dataclass(frozen=True)
class KeysetCursor(Cursor):
    """A position in a total order, read strictly after: ``(SystemModstamp, Id) > (t, i)``.

    For sources that can filter and order on the stamp and a unique tie-breaker.

    :param position: e.g. ``("2024-05-01T13:14:45.000Z", "001xx0000001")``.
    """

    kind: ClassVar[str] = "keyset"
    #: What each part of the position is, in log lines (a position of another length prints bare).
    names: ClassVar[tuple[str, ...]] = ("SystemModstamp", "Id")

    position: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", tuple(self.position))

    def is_new(self, position: tuple[Any, ...]) -> bool:
        """Whether a record at ``position`` lies after this cursor."""
        return tuple(position) > self.position

    def advance(self, reached: KeysetCursor) -> KeysetCursor:
        return reached if reached.position > self.position else self

    def compare(self, other: KeysetCursor) -> int | None:
        if self.position == other.position:
            return 0
        return -1 if self.position < other.position else 1

    def to_xcom(self) -> dict[str, Any]:
        return {"kind": self.kind, "position": list(self.position)}

    @classmethod
    def from_xcom(cls, data: Mapping[str, Any]) -> KeysetCursor:
        position = data.get("position")
        if not isinstance(position, (list, tuple)) or not position:
            raise ValueError(f"not a keyset cursor: {dict(data)!r}")
        return cls(tuple(position))

    def describe(self) -> str:
        if len(self.names) == len(self.position):
            return ", ".join(f"{name} {part}" for name, part in zip(self.names, self.position))
        return ", ".join(str(part) for part in self.position)


@dataclasses.dataclass(frozen=True)
class TokenCursor(Cursor):
    """An opaque position the server hands out with each page (a continuation token).

    The server orders the feed, so the position after a committed page is that page's token, and
    a read can resume right after any committed page. Two different tokens cannot be ordered.

    :param token: the server's token, e.g. ServiceTitan's ``continueFrom``.
    """

    kind: ClassVar[str] = "token"

    token: str

    def advance(self: C, reached: C) -> C:
        return reached

    def compare(self, other: TokenCursor) -> int | None:
        return 0 if self.token == other.token else None

    def to_xcom(self) -> dict[str, Any]:
        return {"kind": self.kind, "token": self.token}

    @classmethod
    def from_xcom(cls: type[C], data: Mapping[str, Any]) -> C:
        token = data.get("token")
        if not isinstance(token, str) or not token or data.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"not a {cls.kind} cursor: {dict(data)!r}")
        return cls(token)

    def describe(self) -> str:
        shown = self.token if len(self.token) <= 24 else self.token[:21] + "..."
        return f"{self.kind} {shown}"


@dataclasses.dataclass(frozen=True)
class ReplayIdCursor(TokenCursor):
    """The replay id of the last event handled in an event stream (Salesforce Change Data Capture):
    opaque and server-ordered like a token, kept as text (base64 of the id's bytes)."""

    kind: ClassVar[str] = "replay_id"


def cursor_from_xcom(cursor_type: type[C] | None, data: Any) -> C | None:
    """Rebuild a stream's cursor from a summary; ``None`` when there is none or it does not parse.

    :param cursor_type: the stream's cursor class (``None``: the stream reads in full).
    :param data: the ``cursor`` value of a previous summary.
    """
    if cursor_type is None or not isinstance(data, Mapping):
        return None
    return cursor_type.from_xcom(data)
