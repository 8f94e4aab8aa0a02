"""Planning partitioned loads: cutting update days by share of records, and how ranges are named."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.sync.partitions import KeyRange, split_days, split_keys


def _counter(days: list[dt.date]):
    asked: list[str] = []

    def before(day: str) -> int:
        asked.append(day)
        return sum(1 for d in days if d.isoformat() < day)

    return before, asked


def test_update_days_are_cut_into_equal_shares_of_records_with_few_counts():
    first = dt.date(2024, 1, 1)
    # 1,000 records over 100 days, ten a day
    days = [first + dt.timedelta(days=i % 100) for i in range(1000)]
    before, asked = _counter(days)
    ranges = split_days("2024-01-01", "2024-04-09", len(days), 4, before)
    assert ranges == [
        (None, "2024-01-26"),
        ("2024-01-26", "2024-02-20"),
        ("2024-02-20", "2024-03-16"),
        ("2024-03-16", None),
    ]
    assert len(asked) == len(set(asked)) < 3 * 8  # bisection, each day counted once


def test_a_crowded_day_stays_in_one_range_and_gives_fewer_ranges():
    first = dt.date(2024, 1, 1)
    days = [first] * 5 + [first + dt.timedelta(days=1)] * 90 + [first + dt.timedelta(days=2)] * 5
    before, _ = _counter(days)
    assert split_days("2024-01-01", "2024-01-03", len(days), 4, before) == [
        (None, "2024-01-02"),
        ("2024-01-02", "2024-01-03"),
        ("2024-01-03", None),
    ]


def test_records_of_a_single_day_make_a_single_range():
    assert split_days("2024-01-01", "2024-01-01", 100, 4, lambda day: 0) == [(None, None)]


def test_key_ranges_cover_every_key_open_at_both_ends():
    assert split_keys(1, 100, 4) == [(None, 26), (26, 51), (51, 76), (76, None)]
    with pytest.raises(ValueError, match="at least 1"):
        split_days("2024-01-01", "2024-01-02", 1, 0, lambda day: 0)


def test_a_range_is_named_by_what_bounds_it_and_by_its_window():
    assert KeyRange("Invoices", 0, 2, None, 500).name == "Invoices@[,500)"
    assert KeyRange("Items", 1, 2, "2024-03-01", None, by="stamp").name == "Items@UpdateDate[2024-03-01,)"
    windowed = KeyRange("Invoices", 0, 2, 1, 500, since="2024-03-01T00:00:00+00:00", until=None)
    assert windowed.windowed
    assert windowed.name == "Invoices@[1,500)@2024-03-01T00:00:00+00:00.."
    assert "UpdateDate >= 2024-03-01" in KeyRange("Items", 1, 2, "2024-03-01", by="stamp").describe(
        "ItemCode"
    )


def test_a_plan_written_before_stamp_ranges_existed_still_reads_as_key_ranges():
    old = {"entity": "Invoices", "index": 0, "parts": 2, "low": None, "high": 500, "slot": 1, "planned": 900}
    key_range = KeyRange.from_xcom(old)
    assert (key_range.by, key_range.windowed) == ("key", False)
    assert KeyRange.from_xcom(key_range.to_xcom()) == key_range


def test_the_checkpoints_of_a_finished_plan_are_deleted_and_no_other(tmp_path):
    import sqlite3

    from airflow_provider_b1.sync.checkpoints import CHECKPOINT_TABLE, CheckpointStore
    from airflow_provider_b1.utils.migrations import render
    from airflow_provider_b1.utils.sql import transaction

    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    conn.execute(render(CHECKPOINT_TABLE, "sqlite", None))
    store = CheckpointStore()
    plan = [KeyRange("Invoices", i, 3, low, high).name for i, (low, high) in enumerate(split_keys(1, 300, 3))]
    with transaction(conn) as cursor:
        for stream in [*plan, "Invoices", "Items@UpdateDate[,2024-03-01)"]:
            store.write(cursor, "wh", stream, {"position": [1]})
        store.write(cursor, "other flow", plan[0], {"position": [1]})
    with transaction(conn) as cursor:
        assert store.delete(cursor, "wh", [*plan, "Invoices@[999,)"]) == 3
    left = sorted(conn.execute("SELECT flow, stream FROM sync_checkpoint").fetchall())
    assert left == [("other flow", plan[0]), ("wh", "Invoices"), ("wh", "Items@UpdateDate[,2024-03-01)")]
