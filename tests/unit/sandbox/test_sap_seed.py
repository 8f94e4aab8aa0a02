"""Hostile records seeded past every write rule never break a read; truth names non-numeric totals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_b1.sandbox.sap.data import truth
from airflow_provider_b1.sandbox.sap.store import SapError, Store


@pytest.fixture(scope="module")
def store() -> Store:
    return Store(seed=11, invoices=300, timezone="America/Chicago", anchor=dt.date(2025, 6, 1))


def test_truth_counts_and_names_string_doc_totals(store: Store):
    before = truth(store.entities["Orders"])
    assert before["doc_total_counts"] == {"number": before["count"], "null": 0, "non_numeric": 0}
    assert store.seed_records(
        "Orders", [{"DocEntry": 2, "DocTotal": "12,50"}, {"DocEntry": 3, "DocTotal": None}]
    )
    after = truth(store.entities["Orders"])
    assert after["count"] == before["count"]
    assert after["doc_total_non_numeric"] == [{"key": 2, "value": "12,50"}]
    assert after["doc_total_counts"] == {"number": before["count"] - 2, "null": 1, "non_numeric": 1}
    assert truth(store.entities["Items"])["doc_total_counts"] is None


def test_hostile_seeded_values_never_break_a_read(store: Store):
    hostile: list[Any] = ["abc", "", "\x00", {"a": 1}, [1, "x"], True, -1, 1.5]
    for name, ent in store.entities.items():
        key = "hostile\x00key" if not ent.int_keys else 999_999
        records = []
        for value in hostile:
            record = {prop: value for prop in ent.columns if prop != ent.key}
            records.append({ent.key: key, **record})
        for record in records:
            store.seed_records(name, [record])
            row = ent.rows[key]
            for v2 in (False, True):
                ent.serialize(row, v2)
                ent.serialize(row, v2, list(ent.template))
        assert store.query(ent, f"{ent.key} ne null", f"{ent.key} desc")


def test_seeding_refuses_keys_of_the_wrong_type(store: Store):
    with pytest.raises(SapError):
        store.seed_records("Invoices", [{"DocEntry": "1"}])
    with pytest.raises(SapError):
        store.seed_records("Items", [{"ItemCode": 1}])
    assert store.seed_records("Invoices", [{"DocTotal": "x"}]) == [store.entities["Invoices"].next_entry - 1]
