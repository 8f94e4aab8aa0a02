"""HMAC-SHA256 of the raw body, hex or base64, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from airflow_provider_b1.webhooks import signatures
from airflow_provider_b1.webhooks.signatures import sign, signature_matches

KEY = "k" * 40
BODY = b'{"eventId": "1",  "total": "120.00"}'


def test_the_signature_is_the_hmac_sha256_of_the_raw_body():
    expected = hmac.new(KEY.encode(), BODY, hashlib.sha256).digest()
    assert sign(BODY, KEY, "hex") == expected.hex()
    assert base64.b64decode(sign(BODY, KEY, "base64")) == expected


@pytest.mark.parametrize(
    "presented",
    [
        sign(BODY, KEY, "hex"),
        sign(BODY, KEY, "hex").upper(),
        "sha256=" + sign(BODY, KEY, "hex"),
        sign(BODY, KEY, "base64"),
        sign(BODY, KEY, "base64").rstrip("="),
        base64.urlsafe_b64encode(signatures.digest(BODY, KEY)).decode(),
        f"  {sign(BODY, KEY, 'hex')} ",
    ],
    ids=["hex", "HEX", "prefixed", "base64", "unpadded", "urlsafe", "spaces"],
)
def test_auto_accepts_every_way_of_writing_the_right_digest(presented):
    assert signature_matches(BODY, KEY, presented, "auto")


def test_a_fixed_encoding_refuses_the_other():
    assert signature_matches(BODY, KEY, sign(BODY, KEY, "hex"), "hex")
    assert not signature_matches(BODY, KEY, sign(BODY, KEY, "base64"), "hex")
    assert signature_matches(BODY, KEY, sign(BODY, KEY, "base64"), "base64")
    assert not signature_matches(BODY, KEY, sign(BODY, KEY, "hex"), "base64")


@pytest.mark.parametrize(
    "presented",
    [None, "", "zz", sign(BODY + b" ", KEY), sign(BODY, KEY + "x"), "a" * 5000, sign(BODY, KEY)[:-2]],
    ids=["missing", "empty", "short", "other-body", "other-key", "huge", "truncated"],
)
def test_anything_else_is_refused(presented):
    assert not signature_matches(BODY, KEY, presented, "auto")


def test_the_comparison_is_constant_time(monkeypatch):
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signatures.hmac, "compare_digest", spy)
    assert signature_matches(BODY, KEY, sign(BODY, KEY), "auto")
    assert compared
    assert all(isinstance(a, bytes) and len(a) == 32 for a, _ in compared)


def test_an_unknown_encoding_is_a_programming_error():
    with pytest.raises(ValueError, match="encoding"):
        signature_matches(BODY, KEY, "x", "base32")
