"""OData literals: the ONE place values enter a Service Layer URL.

A filter value, a key or a day reaches a URL only through :func:`odata_literal` (which quotes
and escapes it) and the query-string and path quoting below (which percent-encode what would
change the URL's meaning). Nothing else in the provider builds filters from values by hand.

A key is a value, never a path: :func:`entity_path` percent-encodes everything inside the key
literal but its quotes, so a ``/``, ``?``, ``#``, ``%``, space, newline or non-ASCII character in
a key stays inside its entity set. Every URL is also measured: the web server in front of a real
Service Layer (Apache) refuses request lines over :data:`MAX_REQUEST_LINE` bytes.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from airflow_provider_b1.hooks.sap_b1.entities import ENTITIES, EntitySpec, entity_spec

MAX_REQUEST_LINE = 8190
"""Longest request line (``METHOD path?query HTTP/1.1``) the Service Layer's web server accepts:
Apache's ``LimitRequestLine`` default. A longer one is refused with 414 before SAP sees it."""

NEXT_LINK_HEADROOM = 190
"""Bytes a lookup leaves free under :data:`MAX_REQUEST_LINE`: the server's next link repeats the
query and adds ``$skip`` (and may encode it differently), and must fit too."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _kind(value: Any) -> str:
    return type(value).__name__


def _number(value: float | Decimal) -> str:
    """A finite float or Decimal in full, in plain notation (no exponent, nothing rounded away)."""
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("A float NaN has no OData literal; filter on a real number or on null.")
        if math.isinf(value):
            raise ValueError(f"A float infinity ({value}) has no OData literal; filter on a real number.")
        # repr is the shortest text that reads back as the same float: exact, never rounded.
        value = Decimal(repr(value))
    elif not value.is_finite():
        raise ValueError(
            f"A Decimal {'NaN' if value.is_nan() else 'infinity'} ({value}) has no OData literal; "
            "filter on a real number or on null."
        )
    return format(value, "f")


def _datetime(value: dt.datetime) -> str:
    """ISO 8601 with four-digit year, fractional seconds when there are any, and the offset when aware."""
    offset = value.utcoffset()
    if offset is not None and offset % dt.timedelta(minutes=1):
        raise ValueError(
            f"The datetime {value.isoformat()} has a UTC offset with seconds, which OData cannot express "
            "(offsets are +hh:mm); convert it to another time zone first."
        )
    # isoformat pads the year to four digits (strftime's %Y does not: year 999 became '999')
    # and keeps microseconds and the offset.
    return value.isoformat()


def odata_literal(value: Any) -> str:
    """Render a Python value as an OData literal for ``$filter`` or a key.

    Strings are quoted with single quotes doubled inside (``O'Hara`` -> ``'O''Hara'``): the only
    escape OData knows, and the only thing between a value and filter injection. Integers are
    bare; floats and Decimals bare and in full (``0.30000000000000004``, ``100`` for
    ``Decimal('1E+2')``: never in exponent form, never rounded); booleans ``true``/``false``;
    ``None`` is ``null``; dates ``'YYYY-MM-DD'``. Datetimes are ISO 8601 with a four-digit year and
    their fractional seconds: an aware one keeps its UTC offset (``'2024-05-01T13:14:45+02:00'``),
    a naive one is taken as the SAP server's local wall time, which is how SAP stamps records
    (``UpdateDate``/``UpdateTime`` carry no offset), and rendered without one.

    :param value: the value.
    :raises TypeError: for a value that has no OData literal (the message names its type).
    :raises ValueError: for NaN and infinities (float or Decimal), and an offset OData cannot express.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)  # an IntEnum member renders as its number
    if isinstance(value, (float, Decimal)):
        return _number(value)
    if isinstance(value, dt.datetime):
        return "'" + _datetime(value) + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + str.replace(value, "'", "''") + "'"
    raise TypeError(
        f"A {_kind(value)} value has no OData literal; pass a str, int, float, Decimal, bool, date, datetime or None."
    )


def entity_set(entity: str) -> str:
    """Check that ``entity`` names an entity set (an OData identifier), not a path.

    :param entity: e.g. ``"Orders"``.
    :raises ValueError: for anything else (``"Orders/../Invoices"``, ``"Orders(5)"``, ``""``).
    """
    if not isinstance(entity, str) or not _IDENTIFIER.fullmatch(entity):
        raise ValueError(f"{entity!r} is not an entity set name (letters, digits and '_' only).")
    return entity


def _integer_key(entity: str, key: Any) -> int:
    """An integer key exactly: ``5``, ``"5"``, ``5.0``; never ``5.7`` cut down to ``5``."""
    if isinstance(key, bool) or key is None:
        raise ValueError(f"{entity} keys are integers; got {key!r}.")
    if isinstance(key, int):
        return int(key)
    if isinstance(key, (float, Decimal)):
        finite = math.isfinite(key) if isinstance(key, float) else key.is_finite()
        if finite and key == int(key):
            return int(key)
        raise ValueError(
            f"{entity} keys are integers; got {key} (a {_kind(key)}), which is not a whole number: it is "
            "refused rather than cut down to another record's key."
        )
    if isinstance(key, str) and re.fullmatch(r"\s*[+-]?\d+\s*", key):
        return int(key)
    raise ValueError(f"{entity} keys are integers; got {key!r} (a {_kind(key)}).")


# Everything inside a key literal but its quotes and the unreserved characters is
# percent-encoded: the server decodes the path before it reads the key, so the key arrives
# whole, while no character of it can end the path segment, start a query or climb a level.
_KEY_SAFE = "'"


def key_literal(entity: str, key: Any) -> str:
    """The key of one record as it goes between the parentheses, percent-encoded: ``22``, ``'C%2F1'``.

    :param entity: entity set (its declared key type decides how the key is read).
    :param key: key value.
    :raises ValueError: for a key that is not an integer where the entity's keys are, or ``None``.
    :raises TypeError: for a key that has no OData literal.
    """
    spec = ENTITIES.get(entity)
    if key is None:
        raise ValueError(f"{entity} keys cannot be None.")
    if spec is not None and spec.key_type is int:
        key = _integer_key(entity, key)
    elif spec is not None and spec.key_type is str:
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"{entity} keys are strings; got {key!r} (a {_kind(key)}).")
        key = str(key)
    return quote(odata_literal(key), safe=_KEY_SAFE)


def entity_path(entity: str, key: Any) -> str:
    """Address one record: ``Orders(22)``, ``BusinessPartners('C''1')``, ``Items('A%2FB')``.

    The key type comes from :data:`~airflow_provider_b1.hooks.sap_b1.entities.ENTITIES` when
    declared, so ``"22"`` for ``Orders`` is rendered bare; undeclared entities use the Python
    type of ``key``. The key is percent-encoded inside its literal (a key is a value, never a
    path), so the result goes into a URL as it is.

    :param entity: entity set.
    :param key: key value.
    :raises ValueError: for an entity that is not an entity set name, or a key that is not an
        integer where the entity's keys are (``5.7`` is refused, never cut down to ``5``).
    """
    return f"{entity_set(entity)}({key_literal(entity, key)})"


def odata_eq(field_name: str, value: Any) -> str:
    """``field eq <literal>`` with the value escaped by :func:`odata_literal`.

    :param field_name: property name.
    :param value: value to compare with.
    """
    return f"{field_name} eq {odata_literal(value)}"


def odata_any_of(field_name: str, values: Iterable[Any]) -> str:
    """``field eq a or field eq b ...`` (OData v3 has no ``in``), values escaped.

    :param field_name: property name.
    :param values: values, any of which matches.
    """
    return " or ".join(odata_eq(field_name, value) for value in values)


def update_stamp_filter(
    entity_or_spec: str | EntitySpec,
    since_day: str | dt.date | None,
    until_day: str | dt.date | None,
) -> str | None:
    """The ``$filter`` of records updated between two days, both included.

    ``UpdateDate ge '<since_day>' and UpdateDate le '<until_day>'``: the Service Layer compares
    ``UpdateDate`` at day granularity only (the time part of a date literal is ignored), so a
    window that starts or ends within a day asks for that whole day and the caller drops what
    lies outside by ``(UpdateDate, UpdateTime)``.

    :param entity_or_spec: the entity set, or its :class:`EntitySpec`.
    :param since_day: first day (``YYYY-MM-DD`` or a date), in the server's time zone; ``None``
        for no lower bound.
    :param until_day: last day, likewise; ``None`` for no upper bound.
    :return: the filter, or ``None`` when there is no bound or the entity has no update stamp
        (it is then read in full).
    :raises TypeError: for a ``datetime``: which day it falls on depends on the server's time
        zone, so the caller converts it (``moment.astimezone(hook.server_tz).date()``).
    """
    spec = entity_spec(entity_or_spec) if isinstance(entity_or_spec, str) else entity_or_spec
    if not spec.cursor:
        return None
    clauses = []
    for operator, day in (("ge", since_day), ("le", until_day)):
        if day is None:
            continue
        if isinstance(day, dt.datetime):
            raise TypeError(
                "update_stamp_filter takes days (a date or 'YYYY-MM-DD'), not a datetime: convert it to the "
                "SAP server's time zone first."
            )
        clauses.append(f"UpdateDate {operator} {odata_literal(day)}")
    return " and ".join(clauses) or None


# Characters kept verbatim in a query value. Everything else (space, &, +, #, =, ?) is
# percent-encoded: a raw "+" would read as a space and a raw "&" would end the value.
_QUERY_SAFE = "'(),:/$*@"
_PATH_SAFE = "'(),=/$"
# A "%" that does not start an escape is a literal percent sign and is encoded itself.
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def query_string(params: dict[str, Any]) -> str:
    """``name=value&...`` with each value percent-encoded except OData's own punctuation.

    :param params: query options, e.g. ``{"$filter": "CardCode eq 'C 1'"}``.
    """
    return "&".join(f"{name}={quote_query_value(value)}" for name, value in params.items())


def quote_query_value(value: Any) -> str:
    """One query value percent-encoded as :func:`query_string` sends it.

    :param value: e.g. a ``$filter``.
    """
    return quote(str(value), safe=_QUERY_SAFE)


def quote_path(path: str) -> str:
    """A path below the service root with everything but OData's key and action syntax percent-encoded.

    Escapes already in the path (the keys of :func:`entity_path`) are kept as they are, never
    encoded twice.

    :param path: e.g. ``Orders(22)/Close`` or ``BusinessPartners('C%2F1')``.
    """
    return quote(_STRAY_PERCENT.sub("%25", path), safe=_PATH_SAFE + "%")


def quote_target(target: str) -> str:
    """A request target below the service root, ``path[?query]``, percent-encoded for a request line.

    The path as :func:`quote_path` encodes it, the query (after the first raw ``?``; a ``?``
    inside a key from :func:`entity_path` is already ``%3F``) with everything but OData's
    punctuation and the ``=``/``&`` between options encoded. Escapes already there are kept.

    :param target: e.g. ``BusinessPartners('C%2F1')`` or ``Orders?$select=DocEntry``.
    """
    path, mark, query = target.partition("?")
    if not mark:
        return quote_path(path)
    return quote_path(path) + "?" + quote(_STRAY_PERCENT.sub("%25", query), safe=_QUERY_SAFE + "=&%")


def request_line_length(method: str, url: str) -> int:
    """Bytes of the request line that sends ``url``: ``METHOD /path?query HTTP/1.1`` (no CRLF).

    :param method: HTTP verb.
    :param url: the full, already encoded URL.
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return len(method) + 1 + len(target.encode("utf-8")) + len(" HTTP/1.1")


def any_of_chunks(
    field_name: str, values: Iterable[Any], *, room: int, max_values: int | None = None
) -> tuple[list[tuple[list[Any], str]], list[Any]]:
    """Split a lookup by many values into ``$filter`` clauses that each fit in ``room`` bytes once encoded.

    Each filter is ``field eq a or field eq b ...`` (:func:`odata_any_of`) and its percent-encoded
    length (as :func:`query_string` sends it) is at most ``room``: a lookup is split by the bytes
    its request line takes, not by a count of values (100 characters of CJK text take 900 bytes
    encoded, 100 ASCII digits 100).

    :param field_name: property name.
    :param values: values, in order.
    :param room: bytes the encoded filter may take.
    :param max_values: at most this many values per filter (``None``: no limit but ``room``).
    :return: ``([(values, filter), ...], too_long)``: the filters in order, and the values whose
        clause alone is longer than ``room`` (they cannot be looked up in a URL at all).
    """
    separator = len(quote_query_value(" or "))
    chunks: list[tuple[list[Any], str]] = []
    too_long: list[Any] = []
    chunk: list[Any] = []
    clauses: list[str] = []
    size = 0
    for value in values:
        clause = odata_eq(field_name, value)
        length = len(quote_query_value(clause))
        if length > room:
            too_long.append(value)
            continue
        full = max_values is not None and len(chunk) >= max_values
        if chunk and (full or size + separator + length > room):
            chunks.append((chunk, " or ".join(clauses)))
            chunk, clauses, size = [], [], 0
        size += length + (separator if chunk else 0)
        chunk.append(value)
        clauses.append(clause)
    if chunk:
        chunks.append((chunk, " or ".join(clauses)))
    return chunks, too_long
