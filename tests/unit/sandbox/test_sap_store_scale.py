"""Look-ups that need not scan the store: key ranges by bisection, NumAtCard/CounterReference by
index, ``$orderby`` on the key without a sort. Each answer must equal a plain scan's."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_b1.sandbox.sap.odata import exact, narrowing
from airflow_provider_b1.sandbox.sap.store import Store


@pytest.fixture(scope="module")
def store() -> Store:
    return Store(seed=5, invoices=20000, timezone="America/Chicago", anchor=dt.date(2025, 6, 1))


def scan(store: Store, entity: str, text: str) -> list:
    """The rows matching ``text`` found the slow way: every row, in key order."""
    ent = store.entities[entity]
    pred = store.compiler(ent).compile(text)
    return [row for row in ent.ordered() if pred(row)]


def keys(rows: list) -> list:
    return [row[0] for row in rows]


@pytest.mark.parametrize(
    "text",
    [
        "DocEntry ge 5000 and DocEntry lt 5500",
        "DocEntry gt 5000 and DocEntry le 5500",
        "DocEntry ge 19990",
        "DocEntry lt 3",
        "5500 gt DocEntry and DocEntry ge 5490",
        "DocEntry ge 100 and DocEntry lt 900 and DocEntry ge 400 and DocEntry lt 2000",
        "DocEntry ge 100.5 and DocEntry lt 110",
        "DocEntry ge 100 and DocEntry lt 200 and DocTotal gt 1000",
        "(DocEntry ge 100 and DocEntry lt 200) or DocEntry eq 7",
        "not (DocEntry ge 10)",
        "DocEntry eq 42 or DocEntry eq 41 or DocEntry eq 99999",
        "DocEntry eq 42.0 or DocEntry eq true or DocEntry eq 7.5 or DocEntry eq '9'",
        "DocEntry ge 'x'",
        "DocEntry ge 10 and DocEntry lt 5",
        "DocEntry ne 5 and DocEntry lt 8",
        "DocEntry ge 7 and DocEntry lt 9 or DocEntry ge 30 and DocEntry le 31",
        "DocEntry eq 5 or DocEntry eq 6 or DocEntry eq 6.0",
        "(DocEntry ge 3 and DocEntry lt 9) and DocEntry gt 4",
        "UpdateDate ge '2025-05-01' and DocEntry ge 1000 and DocEntry lt 3000",
    ],
)
def test_key_ranges_answer_as_a_scan_does(store, text):
    assert keys(store.query(store.entities["Invoices"], text, None)) == keys(scan(store, "Invoices", text))


def test_a_key_range_looks_only_at_its_rows(store):
    ent = store.entities["Invoices"]
    pred = store.compiler(ent).compile("DocEntry ge 5000 and DocEntry lt 5500 and DocTotal gt 0")
    assert ("DocEntry", "ge", 5000) in narrowing(pred)
    candidates, complete = store._candidates(ent, narrowing(pred))
    assert keys(candidates) == list(range(5000, 5500))
    assert not complete  # DocTotal is still to be checked row by row
    pred = store.compiler(ent).compile("DocEntry ge 5000 and DocEntry lt 5500")
    assert exact(pred)
    assert store._candidates(ent, narrowing(pred))[1]  # the range is the answer: no row is checked
    assert not exact(store.compiler(ent).compile("DocEntry ge 5000 and DocTotal gt 0 or DocEntry eq 3"))


def test_ordering_by_the_key_needs_no_sort_and_matches_one(store):
    ent = store.entities["Invoices"]
    text = "DocEntry ge 100 and DocEntry lt 400"
    assert keys(store.query(ent, text, "DocEntry")) == list(range(100, 400))
    assert keys(store.query(ent, text, "DocEntry desc")) == list(range(399, 99, -1))
    by_total = keys(store.query(ent, text, "DocTotal desc, DocEntry"))
    assert sorted(by_total) == list(range(100, 400))
    assert by_total != list(range(100, 400))


def test_num_at_card_look_ups_use_the_index_and_follow_writes(store):
    ent = store.entities["Invoices"]
    held = [row for row in ent.ordered() if ent.value(row, "NumAtCard")]
    assert len(held) > 1000
    wanted = [ent.value(row, "NumAtCard") for row in (held[3], held[500], held[-3])]
    moved = held[500][0]
    one = f"NumAtCard eq '{wanted[1]}'"
    several = " or ".join(f"NumAtCard eq '{v}'" for v in [*wanted, "nobody"])
    for text in (one, several, f"{one} and DocEntry ge 400"):
        assert keys(store.query(ent, text, None)) == keys(scan(store, "Invoices", text))
    assert len(store._candidates(ent, narrowing(store.compiler(ent).compile(several)))[0]) < 10

    with store.lock:
        store.update("Invoices", moved, {"NumAtCard": "REF-MOVED"}, user="manager")
    assert keys(store.query(ent, one, None)) == keys(scan(store, "Invoices", one))
    assert keys(store.query(ent, "NumAtCard eq 'REF-MOVED'", None)) == [moved]
    with store.lock:
        _, row = store.create(
            "Invoices",
            {
                "CardCode": "C00002",
                "NumAtCard": "REF-NEW",
                "DocType": "dDocument_Service",
                "DocumentLines": [{"AccountCode": "421001", "LineTotal": 10.0}],
            },
            user="manager",
        )
    assert keys(store.query(ent, "NumAtCard eq 'REF-NEW'", None)) == [row[0]]
    with store.lock:  # more writes than the index keeps track of: it is built again
        for key in range(1, 1200):
            store.update("Invoices", key, {"NumAtCard": f"BULK-{key}"}, user="manager")
    assert keys(store.query(ent, "NumAtCard eq 'BULK-1199' or NumAtCard eq 'REF-NEW'", None)) == [
        1199,
        row[0],
    ]
    assert keys(store.query(ent, f"NumAtCard eq '{wanted[0]}'", None)) == keys(
        scan(store, "Invoices", f"NumAtCard eq '{wanted[0]}'")
    )


def test_counter_reference_look_ups_answer_as_a_scan_does(store):
    ent = store.entities["IncomingPayments"]
    refs = [ent.value(row, "CounterReference") for row in ent.ordered()[:50]]
    value = next((r for r in refs if r), None)
    texts = ["CounterReference eq 'none-such'"]
    if value is not None:
        texts.append(f"CounterReference eq '{value}'")
    for text in texts:
        assert keys(store.query(ent, text, None)) == keys(scan(store, "IncomingPayments", text))
