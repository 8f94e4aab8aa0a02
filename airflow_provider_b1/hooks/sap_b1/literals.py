"""OData literals: the ONE place values enter a Service Layer URL.

A filter value, a key or a day reaches a URL only through :func:`odata_literal` (which quotes
and escapes it) and the query-string and path quoting below (which percent-encode what would
change the URL's meaning). Nothing else in the provider builds filters from values by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from airflow_provider_b1.hooks.sap_b1.entities import ENTITIES, EntitySpec, entity_spec


def odata_literal(value: Any) -> str:
    """Render a Python value as an OData literal for ``$filter`` or a key.

    Strings are quoted with single quotes doubled inside (``O'Hara`` -> ``'O''Hara'``): the only
    escape OData knows, and the only thing between a value and filter injection. Numbers are
    bare, booleans ``true``/``false``, ``None`` is ``null``, dates ``'YYYY-MM-DD'``.

    :param value: the value.
    :raises TypeError: for a value that has no OData literal.
    :raises ValueError: for NaN.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (float, Decimal)):
        if isinstance(value, float) and value != value:  # NaN has no OData literal
            raise ValueError("NaN cannot be used in an OData filter.")
        return str(value)
    if isinstance(value, dt.datetime):
        return "'" + value.strftime("%Y-%m-%dT%H:%M:%S") + "'"
    if isinstance(value, dt.date):
        return "'" + value.isoformat() + "'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"Cannot render a {type(value).__name__} as an OData literal.")


def entity_path(entity: str, key: Any) -> str:
    """Address one record: ``Orders(22)``, ``BusinessPartners('C''1')``.

    The key type comes from :data:`~airflow_provider_b1.hooks.sap_b1.entities.ENTITIES` when
    declared, so ``"22"`` for ``Orders`` is rendered bare; undeclared entities use the Python
    type of ``key``.

    :param entity: entity set.
    :param key: key value.
    :raises ValueError: for a key that is not an integer where the entity's keys are.
    """
    spec = ENTITIES.get(entity)
    if spec is not None and spec.key_type is int and not isinstance(key, bool):
        try:
            key = int(key)
        except (TypeError, ValueError):
            raise ValueError(f"{entity} keys are integers; got {key!r}.") from None
    elif spec is not None and spec.key_type is str:
        key = str(key)
    return f"{entity}({odata_literal(key)})"


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


def query_string(params: dict[str, Any]) -> str:
    """``name=value&...`` with each value percent-encoded except OData's own punctuation.

    :param params: query options, e.g. ``{"$filter": "CardCode eq 'C 1'"}``.
    """
    return "&".join(f"{name}={quote(str(value), safe=_QUERY_SAFE)}" for name, value in params.items())


def quote_path(path: str) -> str:
    """A path below the service root with everything but OData's key and action syntax percent-encoded.

    :param path: e.g. ``Orders(22)/Close`` or ``BusinessPartners('C 1')``.
    """
    return quote(path, safe=_PATH_SAFE)
