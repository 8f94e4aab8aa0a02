from __future__ import annotations

import datetime as dt
import decimal

import pytest

from airflow_provider_b1.sync import payload_hash


def test_payload_hash_ignores_key_order_and_is_hex_sha256():
    a = payload_hash({"CardCode": "C1", "Lines": [{"a": 1, "b": 2}], "Total": 10.5})
    b = payload_hash({"Total": 10.5, "Lines": [{"b": 2, "a": 1}], "CardCode": "C1"})
    assert a == b
    assert len(a) == 64
    assert int(a, 16) >= 0


def test_payload_hash_changes_with_content_and_list_order():
    base = {"k": [1, 2]}
    assert payload_hash(base) != payload_hash({"k": [2, 1]})
    assert payload_hash(base) != payload_hash({"k": [1, 2], "x": None})


def test_payload_hash_is_stable_for_the_same_instant_and_amount():
    chicago = dt.timezone(dt.timedelta(hours=-5))
    utc_time = dt.datetime(2024, 5, 1, 18, 0, tzinfo=dt.timezone.utc)
    assert payload_hash({"t": utc_time}) == payload_hash({"t": utc_time.astimezone(chicago)})
    assert payload_hash({"m": decimal.Decimal("1.10")}) == payload_hash({"m": decimal.Decimal("1.1")})
    assert payload_hash({"d": dt.date(2024, 5, 1)}) == payload_hash({"d": "2024-05-01"})


def test_payload_hash_can_exclude_volatile_fields():
    assert payload_hash({"a": 1, "synced_at": 1}, exclude=["synced_at"]) == payload_hash({"a": 1})


def test_payload_hash_rejects_unknown_types():
    with pytest.raises(TypeError):
        payload_hash({"x": object()})
