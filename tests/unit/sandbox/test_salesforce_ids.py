"""Salesforce-shaped record ids: key prefixes, the case-safe suffix, 15/18-character forms."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sandbox.salesforce import ids


@pytest.mark.parametrize(
    ("id15", "id18"),
    [
        # Published examples of the 15 -> 18 conversion.
        ("001A0000006Vm9r", "001A0000006Vm9rIAC"),
        ("003A0000005QB3A", "003A0000005QB3AIAW"),
        ("0015000000Gv7qJ", "0015000000Gv7qJAAR"),
    ],
)
def test_suffix_as_salesforce_computes_it(id15, id18):
    assert ids.to18(id15) == id18
    assert ids.normalize(id15) == id18
    assert ids.normalize(id18) == id18


def test_an_18_character_id_in_any_case_is_restored():
    canonical = ids.make_id("006", 123_456_789)
    assert ids.normalize(canonical.lower()) == canonical
    assert ids.normalize(canonical.upper()) == canonical


def test_make_id_uses_the_prefix_and_differs_per_counter():
    made = {ids.make_id("001", n) for n in range(1, 500)}
    assert len(made) == 499
    assert all(len(i) == 18 and i.startswith("001Dn0") for i in made)
    assert all(ids.normalize(i) == i for i in made)


@pytest.mark.parametrize(
    "bad", ["", "abc", "001A0000006Vm9r!", "001A0000006Vm9rIA9", None, 12, "001A0000006Vm9rI"]
)
def test_malformed_ids_are_refused(bad):
    assert ids.normalize(bad) is None


def test_a_suffix_that_does_not_match_letters_is_refused():
    # The suffix claims an upper-case letter where the id has a digit.
    assert ids.normalize("0010000000000000BA") is None
