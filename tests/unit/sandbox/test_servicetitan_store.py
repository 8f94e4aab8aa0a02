"""Issue 9: the ServiceTitan sandbox's store: export positions, the lag, tokens, lists, seeds."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from airflow_provider_b1.sandbox.servicetitan.data import Dataset, fmt_ts, generate, parse_ts, to_us
from airflow_provider_b1.sandbox.servicetitan.store import Store, StoreError, make_token, read_token

NOW = to_us(dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc))
MINUTE = 60_000_000
LAG = 15 * MINUTE


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock) -> Store:
    return Store(generate(3, customers=40, invoices=120, anchor=dt.date(2025, 6, 1)), clock, seed=3)


def _export(store: Store, entity: str, position: int = 0, recent: bool = False, size: int = 1000):
    body, more, new = store.export(entity, position, include_recent=recent, page_size=size, lag_us=LAG)
    return [r["id"] for r in json.loads(body)], more, new


def test_export_pages_follow_change_order_and_end_with_has_more_false(store):
    seen, position, pages = [], 0, 0
    while True:
        ids, more, position = _export(store, "invoices", position, size=50)
        seen += ids
        pages += 1
        if not more:
            break
    assert pages == 3
    assert seen == list(store.tables["invoices"].order)
    assert _export(store, "invoices", position) == ([], False, position)


def test_a_page_that_ends_exactly_at_the_last_record_says_no_more(store):
    ids, more, _ = _export(store, "invoices", size=120)
    assert (len(ids), more) == (120, False)


def test_recent_changes_wait_for_the_lag(store, clock):
    _, _, end = _export(store, "invoices")
    touched, _ = store.mutate({"edit_invoices": 2})
    assert _export(store, "invoices", end) == ([], False, end)
    clock.now += LAG - 1
    assert _export(store, "invoices", end)[0] == []  # changed just under 15 minutes ago: not yet
    clock.now += 1
    ids, more, _ = _export(store, "invoices", end)
    assert (sorted(ids), more) == (sorted(touched["invoices"]), False)


def test_a_recent_change_holds_back_later_settled_ones(store, clock):
    _, _, end = _export(store, "customers")
    store.mutate({"deactivate_customers": 1})
    clock.now += 1
    store.seed_records("customers", [{"id": 7, "name": "old", "modifiedOn": "2020-01-01T00:00:00Z"}])
    # The seeded record changed long ago but comes after the recent one in change order: the
    # lagged feed stops at the first recent record instead of skipping past it.
    assert _export(store, "customers", end)[0] == []
    assert len(_export(store, "customers", end, recent=True)[0]) == 2


def test_include_recent_changes_rewinds_the_last_token_to_before_the_recent_records(store, clock):
    _, _, end = _export(store, "payments")
    touched, _ = store.mutate({"add_payments": 1})
    ids, more, after = _export(store, "payments", end, recent=True)
    assert touched["payments"][0] in ids
    assert not more
    assert after < store.tables["payments"].seq_of[touched["payments"][0]]
    assert _export(store, "payments", after, recent=True)[0] == ids  # repeated
    clock.now += LAG + 1
    ids_again, _, settled = _export(store, "payments", after, recent=True)
    assert ids_again == ids
    assert _export(store, "payments", settled, recent=True)[0] == []  # settled: no more repeats


def test_include_recent_changes_pages_through_many_recent_records(store):
    _, _, end = _export(store, "invoices")
    touched, _ = store.mutate({"edit_invoices": 30})
    seen, position = [], end
    while True:
        ids, more, position = _export(store, "invoices", position, recent=True, size=7)
        seen += ids
        if not more:
            break
    assert sorted(set(seen)) == sorted(touched["invoices"])


def test_a_date_starts_the_export_at_records_changed_since(store):
    table = store.tables["invoices"]
    moment = table.changed[60]
    ids, _, _ = _export(store, "invoices", store.position_at("invoices", moment))
    assert ids == table.order[60:]
    assert _export(store, "invoices", store.position_at("invoices", NOW))[0] == []


def test_tokens_round_trip_and_refuse_edits_and_other_feeds():
    token = make_token("invoices", 12345)
    assert read_token("invoices", token) == 12345
    assert read_token("payments", token) is None
    assert read_token("invoices", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert read_token("invoices", "2024-01-01") is None
    assert read_token("invoices", "") is None


def test_lists_filter_by_ids_active_customer_and_modified_window(store):
    def ids_of(body: bytes) -> list:
        return [r["id"] for r in json.loads(body)["data"]]

    customers = store.tables["customers"]
    some = customers.by_id()[:5]
    body = store.list_page("customers", page=1, page_size=50, include_total=True, ids=set(some))
    assert ids_of(body) == some
    assert json.loads(body)["totalCount"] == 5
    inactive = ids_of(store.list_page("customers", page=1, page_size=500, include_total=False, active=False))
    assert all(customers.rows[k]["active"] is False for k in inactive)
    invoice = store.tables["invoices"].rows[store.tables["invoices"].by_id()[0]]
    cid = invoice["customer"]["id"]
    mine = ids_of(store.list_page("invoices", page=1, page_size=500, include_total=False, customer_id=cid))
    assert invoice["id"] in mine
    stamp = parse_ts(invoice["modifiedOn"])
    window = ids_of(
        store.list_page(
            "invoices",
            page=1,
            page_size=500,
            include_total=False,
            modified_from=stamp,
            modified_before=stamp + 1,
        )
    )
    assert invoice["id"] in window


def test_seeded_records_keep_their_modified_on_as_change_moment_unless_unreadable_or_future(store, clock):
    past = "2024-01-02T03:04:05Z"
    store.seed_records(
        "invoices",
        [
            {"id": 1, "modifiedOn": past},
            {"id": 2, "modifiedOn": "garbage"},
            {"id": 3, "modifiedOn": fmt_ts(NOW + 10 * MINUTE)},
            {"id": "X-1"},
        ],
    )
    table = store.tables["invoices"]
    changed = dict(zip(table.order, table.changed))
    assert changed[1] == parse_ts(past)
    assert changed[2] == changed[3] == changed["X-1"] == NOW
    assert table.by_id()[-1] == "X-1"  # ids that are not numbers sort last


@pytest.mark.parametrize(
    "records",
    [[{"name": "no id"}], [{"id": True}], [{"id": None}], ["not an object"], "not a list"],
)
def test_seed_refuses_records_without_a_usable_id(store, records):
    with pytest.raises(StoreError):
        store.seed_records("invoices", records)


def test_replace_drops_the_entity_first(store):
    store.seed_records("business-units", [{"id": 1, "name": "Only"}], replace=True)
    assert list(store.tables["business-units"].rows) == [1]


def test_mutations_are_seeded_and_repeatable(clock):
    def run() -> dict:
        dataset: Dataset = generate(3, customers=40, invoices=120, anchor=dt.date(2025, 6, 1))
        return Store(dataset, clock, seed=3).mutate(
            {"edit_invoices": 3, "merge_customers": 1, "add_payments": 2}
        )[0]

    assert run() == run()


def test_merging_moves_invoices_and_payments_to_the_survivor(store):
    invoices = store.tables["invoices"].rows
    source = next(iter(invoices.values()))["customer"]["id"]
    target = next(k for k, c in store.tables["customers"].rows.items() if k != source and c["active"])
    touched, events = store.mutate({"merge_customers": [[source, target]]})
    assert touched["customers"] == [source]
    assert all(invoices[k]["customer"]["id"] == target for k in touched["invoices"])
    assert not [i for i in invoices.values() if i["customer"]["id"] == source]
    assert ("customer.merged", store.tables["customers"].rows[source]) in events
    assert store.truth()["customers"][str(source)]["invoice_count"] == 0


def test_truth_totals_balance_after_every_kind_of_mutation(store):
    store.mutate({"edit_invoices": 5, "merge_customers": 2, "add_payments": 3, "deactivate_customers": 2})
    totals = store.truth()["totals"]
    assert Decimal(totals["invoice_total"]) - Decimal(totals["payments_applied"]) == Decimal(
        totals["open_balance"]
    )
