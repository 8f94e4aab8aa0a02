"""Salesforce record ids: 15 case-sensitive characters, or 18 with a case-safe suffix.

An id is the object's 3-character key prefix (``001`` Account, ``006`` Opportunity...), a
2-character instance code, a reserved ``0`` and a 9-character base-62 counter. The 18-character
form appends three characters that encode, five letters at a time, which of the 15 are upper
case; so an 18-character id survives case-insensitive handling, and the API accepts it in any
case. Both forms are accepted wherever the API reads an id; replies always carry 18.
"""

from __future__ import annotations

import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
SUFFIX = string.ascii_uppercase + "012345"
INSTANCE = "Dn"
_ID_CHARS = set(BASE62)


def suffix(id15: str) -> str:
    """The 3-character case-safe suffix of a 15-character id, computed as Salesforce does."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(SUFFIX[bits])
    return "".join(out)


def to18(id15: str) -> str:
    return id15 + suffix(id15)


def make_id(prefix: str, counter: int) -> str:
    """The 18-character id number ``counter`` of the object with this key prefix."""
    digits = []
    n = counter
    for _ in range(9):
        n, d = divmod(n, 62)
        digits.append(BASE62[d])
    if n:
        raise ValueError("id counter out of range")
    return to18(prefix + INSTANCE + "0" + "".join(reversed(digits)))


def normalize(value: object) -> str | None:
    """The canonical 18-character form of a 15- or 18-character id, or None when ``value`` is
    not shaped like an id. An 18-character id may come in any case: the suffix restores it."""
    if not isinstance(value, str):
        return None
    if len(value) == 15:
        if not set(value) <= _ID_CHARS:
            return None
        return to18(value)
    if len(value) != 18 or not set(value) <= _ID_CHARS:
        return None
    tail = value[15:].upper()
    if any(ch not in SUFFIX for ch in tail):
        return None
    chars = list(value[:15].lower())
    for chunk, code in enumerate(tail):
        bits = SUFFIX.index(code)
        for i in range(5):
            if bits & (1 << i):
                pos = chunk * 5 + i
                if not chars[pos].isalpha():
                    return None
                chars[pos] = chars[pos].upper()
    id15 = "".join(chars)
    return id15 + suffix(id15)


def prefix_of(record_id: str) -> str:
    return record_id[:3]
