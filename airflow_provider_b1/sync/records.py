"""How a record is made comparable and idempotent: stable hashes, batches, and dedupe by key.

Nothing here knows any one system. A flow turns each source record into a payload (the shape it
writes to the target), hashes it with :func:`payload_hash` and keys it by its natural key; the
audit trail stores the hash, never the payload.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def _json_default(value: Any) -> Any:
    # datetime before date: a datetime is also a date.
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        # normalize() makes 1.10 and 1.1 hash alike, as they are the same amount.
        return format(value.normalize(), "f")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda item: json.dumps(item, sort_keys=True, default=_json_default))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"Cannot hash a value of type {type(value).__name__}")


def canonical_json(payload: Any, *, exclude: Iterable[str] = ()) -> str:
    """Serialize ``payload`` the same way every time: sorted keys, no whitespace, UTC datetimes.

    :param payload: JSON-like data (dicts, lists, str, numbers, bool, None) plus datetimes,
        dates, ``Decimal``, ``UUID``, enums, bytes, sets and dataclasses.
    :param exclude: top-level keys left out (volatile fields such as a sync timestamp).
    """
    excluded = frozenset(exclude)
    if excluded and isinstance(payload, Mapping):
        payload = {k: v for k, v in payload.items() if k not in excluded}
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def payload_hash(payload: Any, *, exclude: Iterable[str] = ()) -> str:
    """Return the SHA-256 (64 hex characters) of the canonical JSON of ``payload``.

    Equal payloads give equal hashes across processes, Python versions and key order, so a
    flow can tell "unchanged" from "updated" and the audit trail can prove what was sent
    without keeping it.

    :param payload: see :func:`canonical_json`.
    :param exclude: top-level keys left out of the hash.
    """
    return hashlib.sha256(canonical_json(payload, exclude=exclude).encode("utf-8")).hexdigest()


def chunked(iterable: Iterable[T], size: int) -> Iterator[list[T]]:
    """Yield lists of at most ``size`` items, streaming: only one chunk is held at a time.

    :param iterable: any iterable, possibly endless.
    :param size: the chunk size, at least 1.
    """
    if size < 1:
        raise ValueError(f"chunk size must be at least 1, got {size}")
    chunk: list[T] = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def dedupe_latest(records: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """Keep the last occurrence of each key, in the order those last occurrences came.

    For one batch about to be written: when the source served the same record twice (a page
    boundary moved, or two overlapping windows were read), the later copy is the newer one.

    :param records: the batch.
    :param key: returns a record's natural key.
    """
    latest: dict[Hashable, T] = {}
    for record in records:
        k = key(record)
        latest.pop(k, None)  # re-insert so dict order follows the last occurrence
        latest[k] = record
    return list(latest.values())


class SeenFilter:
    """Drop records already handled in this run with the same content.

    Overlapping re-reads (a window that starts at the previous cursor, a page served twice)
    bring back records the run has already written. ``filter(key, hash)`` answers ``True`` the
    first time a key is seen and again whenever its content hash changed (a newer version that
    must be written); ``False`` for an exact repeat, which is counted in :attr:`repeats`.
    Memory grows with the number of distinct keys in one run (about 100 bytes each).
    """

    def __init__(self) -> None:
        self._seen: dict[Hashable, str | None] = {}
        self.repeats = 0

    def __call__(self, key: Hashable, content_hash: str | None = None) -> bool:
        """Return whether the record should be processed.

        :param key: the record's natural key (for several entities, include the entity).
        :param content_hash: the record's :func:`payload_hash`; ``None`` treats any repeat of
            the key as a duplicate.
        """
        if key in self._seen and self._seen[key] == content_hash:
            self.repeats += 1
            return False
        self._seen[key] = content_hash
        return True

    def __len__(self) -> int:
        return len(self._seen)
