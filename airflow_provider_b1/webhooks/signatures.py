"""HMAC-SHA256 webhook signatures: of the raw body, compared in constant time.

ServiceTitan (v2 webhooks) and SAP Business One (10.0 FP 2602+) both sign the raw request body
with HMAC-SHA256 and a shared key. How the digest is written in the header is not settled for
ServiceTitan (hex or base64, PROTOCOLS.md): each sender's encoding is a setting, and ``auto``
accepts either. A ``sha256=`` prefix, as some senders write it, is accepted too.

The comparison is :func:`hmac.compare_digest` on the digest bytes, never ``==`` on strings, and
the body is the bytes as received, never JSON re-serialised (which would reorder or reformat it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

_HEX = re.compile(r"[0-9a-fA-F]{64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]{43}={0,1}")
_DIGEST_SIZE = hashlib.sha256().digest_size


def digest(body: bytes, key: str | bytes) -> bytes:
    """HMAC-SHA256 of ``body`` under ``key`` (a string key is taken as its UTF-8 bytes)."""
    secret = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(secret, body, hashlib.sha256).digest()


def sign(body: bytes, key: str | bytes, encoding: str = "hex") -> str:
    """The signature a sender puts in its header: ``hex`` (lower case) or ``base64`` (standard, padded).

    :param body: the raw body.
    :param key: the shared key.
    :param encoding: ``hex`` or ``base64``.
    """
    mac = digest(body, key)
    if encoding == "hex":
        return mac.hex()
    if encoding == "base64":
        return base64.b64encode(mac).decode("ascii")
    raise ValueError(f"encoding must be hex or base64, not {encoding!r}")


def _candidates(presented: str, encoding: str) -> list[bytes]:
    """The digest bytes ``presented`` may stand for under ``encoding`` (none when malformed)."""
    text = presented.strip()
    if text[:7].lower() == "sha256=":
        text = text[7:].strip()
    found: list[bytes] = []
    if encoding in ("hex", "auto") and _HEX.fullmatch(text):
        found.append(bytes.fromhex(text))
    if encoding in ("base64", "auto") and _BASE64.fullmatch(text):
        try:
            decoded = base64.b64decode(
                text.replace("-", "+").replace("_", "/").rstrip("=") + "=", validate=True
            )
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) == _DIGEST_SIZE:
            found.append(decoded)
    return found


def signature_matches(body: bytes, key: str | bytes, presented: str | None, encoding: str = "auto") -> bool:
    """Whether ``presented`` is the HMAC-SHA256 of ``body`` under ``key``.

    :param body: the raw body as received.
    :param key: the shared key.
    :param presented: the header's value (``None`` when the header is missing).
    :param encoding: ``hex``, ``base64`` or ``auto`` (either).
    :return: ``False`` for a missing, malformed or wrong signature; the reason is not told apart,
        so an answer reveals nothing about how close a forgery came.
    """
    if encoding not in ("hex", "base64", "auto"):
        raise ValueError(f"encoding must be hex, base64 or auto, not {encoding!r}")
    if not presented or len(presented) > 200:
        return False
    expected = digest(body, key)
    matched = False
    for candidate in _candidates(presented, encoding):
        # Every candidate is compared, in constant time, whatever an earlier one gave.
        matched |= hmac.compare_digest(candidate, expected)
    return matched
