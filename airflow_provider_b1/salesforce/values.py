"""One value as Salesforce holds it and as SAP Business One holds it, and back.

Both sides are compared in Salesforce's form (SAP's ``tYES``/``tNO`` as booleans, its dates as
``YYYY-MM-DD``), so an echo of the flow's own write hashes the same on both sides.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from airflow_provider_b1.salesforce.mapping import FieldMap

#: A Salesforce record id (15 characters, or 18 with its case-safe suffix) of an opportunity.
OPPORTUNITY_ID = re.compile(r"^006[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?$")


def salesforce_form(field: FieldMap, value: Any) -> Any:
    """A value of ``field`` (from either side) in Salesforce's form."""
    if value is None or value == "":
        return None
    if field.kind == "boolean":
        if isinstance(value, str):
            return value in ("tYES", "true", "True", "1")
        return bool(value)
    if field.kind == "number":
        return number(value)
    if field.kind == "date":
        return str(value)[:10]
    return str(value).strip() or None


def sap_form(field: FieldMap, value: Any) -> Any:
    """A Salesforce value of ``field`` as SAP takes it.

    :raises ValueError: the value does not fit SAP's field (text too long), naming both fields.
    """
    value = salesforce_form(field, value)
    if value is None:
        return "" if field.kind == "text" else None
    if field.kind == "boolean":
        return "tYES" if value else "tNO"
    if field.kind == "number":
        return float(value)
    if field.length is not None and len(value) > field.length:
        raise ValueError(
            f"{field.salesforce} is {len(value)} characters long; SAP's {field.sap} takes at most {field.length}"
        )
    return value


def number(value: Any) -> Decimal | None:
    """A number from JSON or text, exactly; ``None`` for nothing.

    :raises ValueError: not a number.
    """
    if value is None or value == "":
        return None
    try:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None


def day(value: Any) -> dt.date | None:
    """A date from Salesforce or SAP (``2024-05-01``, ``2024-05-01T00:00:00Z``)."""
    if not value:
        return None
    return dt.date.fromisoformat(str(value)[:10])


def failures(results: Sequence[Any]) -> dict[int, str]:
    """``{index: message}`` of the records a Salesforce write refused (Collections or Bulk
    results, in input order)."""
    refused = {}
    for index, result in enumerate(results):
        if _get(result, "success"):
            continue
        errors = _get(result, "errors") or []
        messages = [
            f"{_get(e, 'error_code') or _get(e, 'errorCode') or _get(e, 'status_code') or 'ERROR'}: {_get(e, 'message')}"
            + (f" ({', '.join(_get(e, 'fields'))})" if _get(e, "fields") else "")
            for e in errors
        ]
        refused[index] = "; ".join(messages) or "Salesforce refused it without saying why"
    return refused


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def utc_today() -> dt.date:
    """The date balances are judged on ("overdue" is due before it): today in UTC."""
    return dt.datetime.now(dt.timezone.utc).date()
