"""The Salesforce sandbox's store without HTTP: the org's checks and derived fields,
transactions and rollback, stamps, cascades, and the change log with its retention."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from airflow_provider_b1.sandbox.salesforce.data import seed_org
from airflow_provider_b1.sandbox.salesforce.schema import build_schema, format_datetime
from airflow_provider_b1.sandbox.salesforce.store import RecordError, Store, ValidationRule


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock) -> Store:
    s = Store(build_schema(), clock=clock)
    seed_org(
        s, seed=5, accounts=20, opportunities=30, products=10, anchor=dt.date(2025, 6, 1), custom_fields=True
    )
    return s


def write(store: Store, fn):
    with store.lock:
        txn = store.transaction()
        try:
            result = fn(txn)
        except RecordError:
            txn.rollback()
            raise
        txn.commit()
        return result


def refused(store: Store, fn) -> RecordError:
    with pytest.raises(RecordError) as caught:
        write(store, fn)
    return caught.value


def test_stamps_strictly_increase_even_when_the_clock_stands_still(store, clock):
    first = write(store, lambda t: t.insert("Account", {"Name": "A"}))
    second = write(store, lambda t: t.insert("Account", {"Name": "B"}))
    a, b = store.get("Account", first), store.get("Account", second)
    assert b["SystemModstamp"] == a["SystemModstamp"] + 1
    assert format_datetime(a["SystemModstamp"]) == "2025-06-01T12:00:00.000+0000"


def test_one_transaction_one_stamp(store):
    def two(txn):
        return txn.insert("Account", {"Name": "A"}), txn.insert("Account", {"Name": "B"})

    a, b = write(store, two)
    assert store.get("Account", a)["SystemModstamp"] == store.get("Account", b)["SystemModstamp"]


@pytest.mark.parametrize(
    ("values", "code", "fields"),
    [
        ({}, "REQUIRED_FIELD_MISSING", ["Name"]),
        ({"Name": "x" * 256}, "STRING_TOO_LONG", ["Name"]),
        ({"Name": "A", "Phone": "123"}, "FIELD_CUSTOM_VALIDATION_EXCEPTION", ["Phone"]),
        ({"Name": "A", "IsDeleted": True}, "INVALID_FIELD_FOR_INSERT_UPDATE", ["IsDeleted"]),
        ({"Name": "A", "SAP_Credit_Limit__c": 1e20}, "NUMBER_OUTSIDE_VALID_RANGE", ["SAP_Credit_Limit__c"]),
    ],
)
def test_account_checks(store, values, code, fields):
    error = refused(store, lambda t: t.insert("Account", values))
    assert error.code == code
    assert error.fields == fields


def test_reference_checks(store):
    account = next(iter(store.tables["Account"].values()))
    base = {"Name": "O", "StageName": "Prospecting", "CloseDate": "2025-07-01"}
    assert (
        refused(store, lambda t: t.insert("Opportunity", {**base, "AccountId": "nope"})).code
        == "MALFORMED_ID"
    )
    product_id = next(iter(store.tables["Product2"]))
    wrong = refused(store, lambda t: t.insert("Opportunity", {**base, "AccountId": product_id}))
    assert wrong.code == "FIELD_INTEGRITY_EXCEPTION"
    ghost = refused(store, lambda t: t.insert("Opportunity", {**base, "AccountId": "001Dn0000000000AAA"}))
    assert ghost.code == "INVALID_CROSS_REFERENCE_KEY"
    write(store, lambda t: t.delete("Account", account["Id"]))
    gone = refused(store, lambda t: t.insert("Opportunity", {**base, "AccountId": account["Id"]}))
    assert gone.code == "ENTITY_IS_DELETED"


def test_unique_external_ids_and_case_insensitive_upsert(store):
    created, was_created = write(
        store, lambda t: t.upsert("Account", "SAP_Card_Code__c", "C55555", {"Name": "U"})
    )
    assert was_created is True
    again, was_created = write(
        store, lambda t: t.upsert("Account", "SAP_Card_Code__c", "c55555", {"Phone": "5125550000"})
    )
    assert (again, was_created) == (created, False)
    other = write(store, lambda t: t.insert("Account", {"Name": "Other"}))
    clash = refused(store, lambda t: t.update("Account", other, {"SAP_Card_Code__c": "C55555"}))
    assert clash.code == "DUPLICATE_VALUE"
    assert created in clash.message


def test_rollback_restores_records_indexes_and_counters(store):
    before = {k: dict(v) for k, v in store.tables["Account"].items()}
    counter = store.counters["Account"]
    with store.lock:
        txn = store.transaction()
        new_id = txn.insert("Account", {"Name": "Temp", "SAP_Card_Code__c": "C66666"})
        txn.update("Account", next(iter(before)), {"Name": "Renamed"})
        txn.delete("Account", next(iter(before)))
        txn.rollback()
    assert store.tables["Account"] == before
    assert store.counters["Account"] == counter
    assert store.find("Account", "SAP_Card_Code__c", "C66666") == []
    assert store.get("Account", new_id) is None
    assert store.changes_after(0) == []


def test_derived_fields(store):
    opp = write(
        store,
        lambda t: t.insert(
            "Opportunity", {"Name": "D", "StageName": "Closed Lost", "CloseDate": "2025-05-01"}
        ),
    )
    record = store.get("Opportunity", opp)
    assert (record["IsClosed"], record["IsWon"], record["Probability"]) == (True, False, 0.0)
    write(
        store, lambda t: t.update("Opportunity", opp, {"StageName": "Negotiation/Review", "Probability": 42})
    )
    assert store.get("Opportunity", opp)["Probability"] == 42
    product = next(p for p in store.tables["Product2"].values())
    line = write(
        store,
        lambda t: t.insert(
            "OpportunityLineItem",
            {"OpportunityId": opp, "Product2Id": product["Id"], "Quantity": 2, "UnitPrice": 3.333},
        ),
    )
    item = store.get("OpportunityLineItem", line)
    assert item["TotalPrice"] == 6.66  # of the stored price, 3.33
    assert item["UnitPrice"] == 3.33
    assert item["Name"] == f"D {product['Name']}"
    assert store.get("Opportunity", opp)["Amount"] == 6.66


def test_custom_validation_rules_and_duplicate_rule(clock):
    store = Store(
        build_schema(),
        clock=clock,
        validation_rules=[
            ValidationRule(
                "Account",
                "Needs_Number",
                "Customers need an account number",
                "AccountNumber",
                error_when="Type = 'Customer - Direct' AND AccountNumber = null",
            ),
            {
                "object": "Account",
                "name": "Flag",
                "message": "no flags",
                "check": lambda r: r["Name"] == "FLAG",
            },
        ],
        duplicate_rule_account_name=True,
    )
    seed_org(
        store, seed=1, accounts=5, opportunities=0, products=1, anchor=dt.date(2025, 6, 1), custom_fields=True
    )
    assert refused(
        store, lambda t: t.insert("Account", {"Name": "N", "Type": "Customer - Direct"})
    ).fields == ["AccountNumber"]
    assert refused(store, lambda t: t.insert("Account", {"Name": "FLAG"})).message == "no flags"
    taken = next(iter(store.tables["Account"].values()))["Name"]
    assert (
        refused(store, lambda t: t.insert("Account", {"Name": f" {taken.lower()} "})).code
        == "DUPLICATES_DETECTED"
    )
    assert write(store, lambda t: t.insert("Account", {"Name": taken}, allow_save=True))


def test_change_log_entries(store):
    account = next(iter(store.tables["Account"].values()))
    write(
        store, lambda t: t.update("Account", account["Id"], {"Industry": "Energy", "Name": account["Name"]})
    )
    (change,) = store.changes_after(0)
    assert change.seq == 1
    assert change.change_type == "UPDATE"
    assert change.changed_fields == ["Industry", "LastModifiedDate"]
    assert change.record["Industry"] == "Energy"
    assert change.commit_user == store.integration_user
    assert change.origin == "api"
    with store.lock:
        txn = store.transaction(store.ui_user, origin="ui")
        new = txn.insert("Account", {"Name": "Created Then Changed"})
        txn.update("Account", new, {"Phone": "5125550000"})
        txn.commit()
    latest = store.changes_after(1)
    assert len(latest) == 1  # folded into one CREATE
    assert latest[0].change_type == "CREATE"
    assert latest[0].record["Phone"] == "5125550000"
    assert latest[0].commit_user == store.ui_user
    assert "Phone" in latest[0].changed_fields


def test_objects_outside_the_log_are_not_logged(store):
    write(store, lambda t: t.insert("Product2", {"Name": "Unlogged"}))
    assert store.changes_after(0) == []


def test_retention_drops_old_changes(store, clock):
    store.change_retention_seconds = 60
    write(store, lambda t: t.insert("Account", {"Name": "Old"}))
    clock.now += 30
    write(store, lambda t: t.insert("Account", {"Name": "Newer"}))
    clock.now += 45
    assert [c.record["Name"] for c in store.changes_after(0)] == ["Newer"]
    assert store.first_retained_seq() == 2
    clock.now += 3600
    assert store.changes_after(0) == []
    assert store.first_retained_seq() == 3


def test_wait_for_change_returns_when_a_commit_lands(store):
    seq = store.last_seq
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(store.wait_for_change(seq, 5)))
    waiter.start()
    write(store, lambda t: t.insert("Account", {"Name": "Signal"}))
    waiter.join(5)
    assert result == [True]
    assert store.wait_for_change(store.last_seq, 0.01) is False


def test_cascading_delete_and_undelete(store):
    opp = next(o for o in store.tables["Opportunity"].values() if o["AccountId"])
    account_id = opp["AccountId"]
    children = [o["Id"] for o in store.tables["Opportunity"].values() if o["AccountId"] == account_id]
    write(store, lambda t: t.delete("Account", account_id))
    assert all(store.get("Opportunity", c)["IsDeleted"] for c in children)
    assert refused(store, lambda t: t.delete("Account", account_id)).code == "ENTITY_IS_DELETED"
    write(store, lambda t: t.undelete("Account", account_id))
    assert not any(store.get("Opportunity", c)["IsDeleted"] for c in children)
    kinds = [c.change_type for c in store.changes_after(0)]
    assert kinds.count("DELETE") == kinds.count("UNDELETE") == 1 + len(children)
