"""The two-way flows' ledger: links, agreed values, and which side wins a field."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sync.pairs import PairLedger, Winner, decide, value_hash
from airflow_provider_b1.utils.sql import Database


@pytest.fixture
def ledger(tmp_path):
    path = str(tmp_path / "audit.db")
    ledger = PairLedger(Database("audit", "sqlite", (path,), path), None, "salesforce:00D1")
    yield ledger
    ledger.close()


def test_links_are_found_from_either_side_and_replaced_by_a_new_link(ledger):
    ledger.link("Account", {"001A": "C00001", "001B": "C00002"})
    assert ledger.linked("Account", ["001A", "001Z"]) == {"001A": "C00001"}
    assert ledger.linked_to("Account", ["C00002"]) == {"C00002": "001B"}
    ledger.link("Account", {"001A": "C00009"})
    assert ledger.linked("Account", ["001A"]) == {"001A": "C00009"}
    # Another namespace (another org) sees none of them.
    other = PairLedger(ledger.database, None, "salesforce:00D2")
    assert other.linked("Account", ["001A"]) == {}
    other.close()


def test_agreed_values_are_kept_per_pair_and_field(ledger):
    ledger.agree({"001A": {"Name": value_hash("Acme"), "Phone": value_hash("555")}})
    ledger.agree({"001A": {"Phone": value_hash("556")}})
    assert ledger.agreed(["001A", "001B"]) == {
        "001A": {"Name": value_hash("Acme"), "Phone": value_hash("556")}
    }


def test_forgetting_a_namespace_drops_its_links_and_values_and_no_others(ledger):
    ledger.link("Account", {"001A": "C00001"})
    ledger.agree({"001A": {"Name": value_hash("Acme")}})
    other = PairLedger(ledger.database, None, "salesforce:00D2")
    other.link("Account", {"001A": "C00007"})
    assert ledger.forget() == 2
    assert (ledger.linked("Account", ["001A"]), ledger.agreed(["001A"])) == ({}, {})
    assert other.linked("Account", ["001A"]) == {"001A": "C00007"}
    other.close()


def test_values_that_mean_the_same_hash_the_same():
    assert value_hash(" Acme ") == value_hash("Acme")
    assert value_hash("") == value_hash(None)
    assert value_hash(10) == value_hash(10.0) == value_hash(10.00)
    assert value_hash(12.5) == value_hash("12.5")  # one side may send a number as text


def test_an_echo_of_the_flows_own_write_changes_nothing():
    agreed = value_hash("Acme")
    assert decide("Acme", "Acme", agreed, "left").winner is Winner.NOTHING


def test_a_change_on_one_side_wins_whoever_owns_the_field():
    agreed = value_hash("old")
    assert decide("new", "old", agreed, "right") == decide("new", "old", agreed, "left")
    decision = decide("new", "old", agreed, "right")
    assert (decision.winner, decision.conflict, decision.agreed) == (Winner.LEFT, False, value_hash("new"))
    assert decide("old", "new", agreed, "left").winner is Winner.RIGHT


def test_both_sides_changed_the_system_of_record_wins_and_it_is_a_conflict():
    agreed = value_hash("old")
    left_owns = decide("mine", "theirs", agreed, "left")
    right_owns = decide("mine", "theirs", agreed, "right")
    assert (left_owns.winner, left_owns.conflict) == (Winner.LEFT, True)
    assert (right_owns.winner, right_owns.conflict, right_owns.agreed) == (
        Winner.RIGHT,
        True,
        value_hash("theirs"),
    )
    # Both changed to the same value: agreed, no conflict.
    assert decide("same", "same", agreed, "left").winner is Winner.NOTHING


def test_a_first_sync_of_different_values_takes_the_owners_value_without_calling_it_a_conflict():
    decision = decide("sf", "sap", None, "right")
    assert (decision.winner, decision.conflict) == (Winner.RIGHT, False)


def test_a_first_sync_fills_an_empty_side_and_never_blanks_the_other():
    assert decide(None, "555", None, "left").winner is Winner.RIGHT
    assert decide("555", "", None, "right").winner is Winner.LEFT
    # Once agreed, emptying a field is a change like any other.
    assert decide(None, "555", value_hash("555"), "right").winner is Winner.LEFT
