"""Replay ids as text: what travels in trigger arguments and XComs.

A replay id is opaque bytes (Salesforce's are 8 today). Clients must not compute with them, only
store one and hand it back; so they are written as lowercase hex, and read back from hex or from
base64 (standard or URL-safe, as other tools print them). Hex wins when a text is both.
"""

from __future__ import annotations

import base64
import binascii
import string

from airflow_provider_b1.utils.params import ParamError

_HEX = frozenset(string.hexdigits)


def replay_id_to_text(replay_id: bytes | None) -> str | None:
    """Lowercase hex of a replay id; ``None`` stays ``None`` (and so does an empty one)."""
    if not replay_id:
        return None
    return bytes(replay_id).hex()


def replay_id_from_text(text: str | bytes | None, *, name: str = "replay_id") -> bytes | None:
    """The replay id written as hex or base64; ``None`` or blank gives ``None``.

    :param text: the text (bytes pass through unchanged).
    :param name: how to call the value in the error message.
    :raises ParamError: when it is neither hex nor base64.
    """
    if text is None:
        return None
    if isinstance(text, (bytes, bytearray)):
        return bytes(text) or None
    value = str(text).strip()
    if not value:
        return None
    if len(value) % 2 == 0 and set(value) <= _HEX:
        return bytes.fromhex(value)
    standard = value.replace("-", "+").replace("_", "/")
    standard += "=" * (-len(standard) % 4)
    try:
        decoded = base64.b64decode(standard.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        decoded = b""
    if decoded:
        return decoded
    raise ParamError(
        f"{name} {value!r} is neither hex nor base64; pass a replay id as this provider wrote it."
    )
