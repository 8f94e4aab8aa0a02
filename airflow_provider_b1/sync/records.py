"""How a record is made comparable: a stable hash of what is written.

Nothing here knows any one system. A sink turns each source record into a payload (the shape it
writes to the target) and hashes it with :func:`payload_hash`: equal payloads tell "unchanged"
from "updated", and the audit trail stores the hash, never the payload. Records are kept apart by
their natural key (one copy per key and page) in :mod:`.engine`.
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
from collections.abc import Iterable, Mapping
from typing import Any


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
