"""Values a person typed (trigger-form params, connection extras), read the same way everywhere."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from airflow_provider_b1.exceptions import PermanentError

_TRUE = frozenset({"true", "1", "yes", "on", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "off", "n", "f"})


class ParamError(PermanentError, ValueError):
    """A value someone typed cannot be understood; the message names the field."""


def blank_to_none(value: Any) -> Any:
    """``None`` for ``None`` and for a string holding only whitespace; anything else as given.

    A form field left empty arrives as ``""``: it means "not set", like a missing field.
    """
    if isinstance(value, str) and not value.strip():
        return None
    return value


def parse_bool(value: Any, *, default: bool, name: str) -> bool:
    """Read a yes/no value from a form, an extra or a param.

    ``True``/``False``, ``1``/``0`` and the words ``true yes on y t`` / ``false no off n f`` (any
    case) are understood; ``None`` and a blank string give ``default``. Anything else is refused
    with the field's name instead of being guessed at (``"flase"`` is not "true").

    :param value: what was given.
    :param default: the value when nothing was given.
    :param name: the field's name, for the error message.
    :raises ParamError: for a value that is neither (a :class:`ValueError`).
    """
    value = blank_to_none(value)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ParamError(f"{name} must be true or false, not {value!r}.")


_PLAIN_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2}(?:\.(\d+))?)?)([Zz]|[+-]\d{2}:\d{2})?"
)
#: The dates SAP Business One can filter on (its SQL date types), and so a window's bounds.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc)
_FORMATS = "Use RFC 3339 with an offset (2024-03-01T00:00:00Z, 2024-03-01T08:00:00-06:00) or a plain date (2024-03-01, midnight UTC)."


def parse_datetime(value: Any, *, name: str, error: type[ParamError] = ParamError) -> dt.datetime | None:
    """Read a moment someone gave (a form, a call): an aware UTC datetime, or ``None`` when empty.

    Strict, so that a window is never guessed at: an RFC 3339 date-time **with its offset**
    (``2024-03-01T08:00:00-06:00``, ``...Z``), a plain date (midnight UTC), an aware
    :class:`~datetime.datetime` or a :class:`~datetime.date`. A date-time without an offset, a
    naive datetime, a zone name, a vague word or an impossible date is refused with the field's
    name, as is a moment outside 1900-01-01 .. 9999-12-31 (what SAP can filter).

    :param value: what was given.
    :param name: the field's name, for the message (``'since'``).
    :param error: the :class:`ParamError` subclass to raise.
    :raises ParamError: (or ``error``) naming the field and the accepted forms.
    """
    value = blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise error(
                f"{name} {value.isoformat()} has no time zone, so it could be any of 24 hours: pass an aware "
                "datetime (e.g. with tzinfo=datetime.timezone.utc)."
            )
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    elif isinstance(value, str):
        moment = _parse_text(value.strip(), name, error)
    else:
        raise error(f"{name} must be a date or date-time, not {type(value).__name__} {value!r}. {_FORMATS}")
    try:
        moment = moment.astimezone(dt.timezone.utc)
        inside = EARLIEST <= moment <= LATEST
    except OverflowError:  # beyond year 9999 or before year 1 in UTC
        inside = False
    if not inside:
        raise error(
            f"{name} {value!s} is outside the dates SAP Business One can filter "
            f"({EARLIEST.date()} .. {LATEST.date()})."
        )
    return moment


def _parse_text(text: str, name: str, error: type[ParamError]) -> dt.datetime:
    if _PLAIN_DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise error(f"{name} {text!r} is not a real date. {_FORMATS}") from None
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise error(f"{name} {text!r} is not a date or date-time. {_FORMATS}")
    day, clock, fraction, offset = match.groups()
    if offset is None:
        raise error(
            f"{name} {text!r} has no offset, so it could be any of 24 hours: add Z for UTC "
            f"({text}Z) or the offset you mean ({text}-06:00)."
        )
    if fraction is not None and len(fraction) > 6:  # Python keeps microseconds: cut, never round up
        clock = clock[: len(clock) - len(fraction) + 6]
    try:
        return dt.datetime.fromisoformat(f"{day}T{clock}{'+00:00' if offset in 'Zz' else offset}")
    except ValueError:
        raise error(f"{name} {text!r} is not a real date and time. {_FORMATS}") from None
