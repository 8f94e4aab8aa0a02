"""Lookups by many dedupe values fit the Service Layer's web server: split by the bytes of their request line.

The web server in front of a real Service Layer (Apache) refuses request lines over 8,190 bytes
with 414, and so does the sandbox. Twenty values of 100 CJK characters make an 18 KB lookup.
"""

from __future__ import annotations

import pytest
from sap_hook_helpers import order_payloads

from airflow_provider_b1.hooks.sap_b1 import MAX_REQUEST_LINE, SapB1Hook, SapB1RequestTooLongError, odata_eq


def _cjk(index: int) -> str:
    return "東京大阪名古屋札幌福岡" * 10 + f"{index:02d}"  # 102 characters, 906 bytes once encoded


def test_lookups_of_many_long_values_are_split_by_the_request_line_not_by_count(sandbox, connect):
    connect()
    hook = SapB1Hook()
    payloads = order_payloads(hook, 20, "unused")
    for index, payload in enumerate(payloads):
        payload["NumAtCard"] = _cjk(index)
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    assert [(r.outcome, r.error) for r in results] == [("created", None)] * 20
    for index in range(20):
        assert hook.count("Orders", odata_eq("NumAtCard", _cjk(index))) == 1
    lookups_before = sandbox.stats()["requests"]["GET Orders"]
    # Again: every value is found by the split lookups, nothing is created twice.
    again = hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    assert [r.outcome for r in again] == ["skipped"] * 20
    lookups = sandbox.stats()["requests"]["GET Orders"] - lookups_before
    assert 3 <= lookups <= 4  # about 8 KB of filter per request: not one request, not twenty
    found = hook.existing_values("Orders", "NumAtCard", [_cjk(i) for i in range(20)])
    assert sorted(found) == sorted(_cjk(i) for i in range(20))


def test_a_dedupe_value_too_long_to_look_up_fails_its_record_alone(sandbox, connect):
    connect()
    hook = SapB1Hook()
    payloads = order_payloads(hook, 3, "LONG")
    payloads[1]["NumAtCard"] = "東" * 1000  # 9,000 bytes once encoded: no URL can carry it
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    assert [r.outcome for r in results] == ["created", "failed", "created"]
    assert "too long to look up" in results[1].error
    assert f"{MAX_REQUEST_LINE:,} bytes" in results[1].error
    assert hook.count("Orders", odata_eq("NumAtCard", "LONG-000")) == 1
    assert hook.count("Orders", odata_eq("NumAtCard", "LONG-002")) == 1
    assert "POST Orders" not in sandbox.stats()["requests"]  # sent in one $batch, the long one not at all


def test_a_lookup_by_one_value_too_long_for_a_url_is_refused_before_anything_is_sent(sandbox, connect):
    connect()
    hook = SapB1Hook()
    hook.login()
    before = sandbox.stats()["requests_total"]
    payload = order_payloads(hook, 1, "x")[0]
    payload["NumAtCard"] = "東" * 1000
    sent = sandbox.stats()["requests_total"]
    with pytest.raises(SapB1RequestTooLongError, match="request line"):
        hook.upsert("Orders", payload)
    with pytest.raises(SapB1RequestTooLongError, match="request line"):
        hook.find_by("Orders", "NumAtCard", payload["NumAtCard"])
    with pytest.raises(SapB1RequestTooLongError, match="too long"):
        hook.existing_values("Orders", "NumAtCard", ["short", payload["NumAtCard"]])
    assert sandbox.stats()["requests_total"] == sent
    assert sent > before
