"""Values a person typed (trigger-form params, connection extras), read the same way everywhere."""

from __future__ import annotations

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
