from __future__ import annotations

import datetime as dt
import decimal

import pytest

from airflow_provider_b1.sync import SeenFilter, chunked, dedupe_latest, payload_hash


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


def test_chunked_streams_fixed_size_lists():
    assert list(chunked(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunked([], 3)) == []
    endless = chunked(iter(int, 1), 2)  # never exhausts: chunked must not read ahead
    assert next(endless) == [0, 0]
    with pytest.raises(ValueError):
        list(chunked([1], 0))


def test_dedupe_latest_keeps_the_last_copy_of_each_key():
    records = [{"k": 1, "v": "old"}, {"k": 2, "v": "x"}, {"k": 1, "v": "new"}]
    assert dedupe_latest(records, key=lambda r: r["k"]) == [{"k": 2, "v": "x"}, {"k": 1, "v": "new"}]


def test_seen_filter_drops_exact_repeats_but_passes_newer_versions():
    seen = SeenFilter()
    assert seen(("Invoices", 1), "h1")
    assert not seen(("Invoices", 1), "h1")
    assert seen(("Invoices", 1), "h2")
    assert seen(("Orders", 1), "h1")
    assert seen.repeats == 1
    assert len(seen) == 2
