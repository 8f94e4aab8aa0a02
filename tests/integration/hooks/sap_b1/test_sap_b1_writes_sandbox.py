"""The SAP hook's writes against the sandbox over real HTTPS: nothing created twice under faults, upserts, document actions."""

from __future__ import annotations

import pytest
from sap_hook_helpers import FAST_RETRIES, order_payloads

from airflow_provider_b1.hooks.sap_b1 import (
    SapB1AmbiguousWriteError,
    SapB1BusinessError,
    SapB1Hook,
    entity_path,
    odata_eq,
)


def test_batch_creates_under_faults_make_exactly_one_document_per_input(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = order_payloads(hook, 50, "BATCH")
    before = sandbox.truth("Orders")["count"]
    sandbox.faults(
        error_rate=0.1, reset_rate=0.05, reset_after_write_rate=0.1, error_after_write_rate=0.05, seed=11
    )
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard", chunk_size=10)
    # Again: everything is already there, so nothing is created twice.
    again = hook.create_many("Orders", payloads, dedupe_field="NumAtCard", chunk_size=10)
    sandbox.faults()
    assert [r.outcome for r in results] == ["created"] * 50
    assert [r.outcome for r in again] == ["skipped"] * 50
    assert sandbox.truth("Orders")["count"] == before + 50
    for payload in payloads[::7]:
        assert hook.count("Orders", odata_eq("NumAtCard", payload["NumAtCard"])) == 1


def test_batch_creates_the_caller_looked_up_skip_the_first_look_up_and_still_never_duplicate(
    sandbox, connect
):
    """``looked_up=True``: one GET fewer per chunk (the caller has just checked), yet a batch whose
    outcome is unknown is still looked up before anything is sent again."""
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = order_payloads(hook, 30, "CHECKED")
    before = sandbox.truth("Orders")["count"]
    requests_before = sandbox.stats()["requests_total"]
    results = hook.create_many("Orders", payloads[:10], dedupe_field="NumAtCard", looked_up=True)
    assert [r.outcome for r in results] == ["created"] * 10
    assert sandbox.stats()["requests_total"] - requests_before == 1  # the $batch alone
    sandbox.faults(reset_after_write_rate=0.3, error_after_write_rate=0.1, seed=5)
    results = hook.create_many(
        "Orders", payloads[10:], dedupe_field="NumAtCard", chunk_size=5, looked_up=True
    )
    sandbox.faults()
    assert [r.outcome for r in results] == ["created"] * 20
    assert sandbox.truth("Orders")["count"] == before + 30
    assert hook.count("Orders", "startswith(NumAtCard, 'CHECKED-')") == 30


def test_single_creates_under_faults_are_never_duplicated(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = order_payloads(hook, 20, "ONE")
    before = sandbox.truth("Orders")["count"]
    sandbox.faults(
        error_rate=0.1, reset_rate=0.05, reset_after_write_rate=0.15, error_after_write_rate=0.05, seed=3
    )
    created = [hook.create_if_absent("Orders", p, dedupe_field="NumAtCard")[1] for p in payloads]
    sandbox.faults()
    assert all(created)
    assert sandbox.truth("Orders")["count"] == before + 20
    assert hook.count("Orders", "startswith(NumAtCard, 'ONE-')") == 20


def test_one_bad_record_fails_alone_in_its_batch(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = order_payloads(hook, 6, "MIX")
    payloads[2]["CardCode"] = "NO-SUCH-PARTNER"
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    assert [r.outcome for r in results] == ["created", "created", "failed", "created", "created", "created"]
    assert results[2].error.startswith("SAP refused POST Orders in $batch (HTTP 400")  # the verb that failed
    assert results[2].code is not None


# -- upsert -----------------------------------------------------------------------------------------


def test_upsert_of_a_document_creates_it_once_then_updates_it_by_num_at_card(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    (payload,) = order_payloads(hook, 1, "UPSERT")
    record, outcome = hook.upsert("Orders", payload)
    assert outcome == "created"
    assert record["NumAtCard"] == "UPSERT-000"
    key, outcome = hook.upsert("Orders", {"NumAtCard": "UPSERT-000", "Comments": "changed by upsert"})
    assert (key, outcome) == (record["DocEntry"], "updated")
    assert hook.get("Orders", key, select="Comments")["Comments"] == "changed by upsert"
    assert hook.count("Orders", odata_eq("NumAtCard", "UPSERT-000")) == 1


def test_upsert_of_a_business_partner_goes_by_its_own_key(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    record, outcome = hook.upsert(
        "BusinessPartners", {"CardCode": "UPS-1", "CardName": "Upsert One", "CardType": "cCustomer"}
    )
    assert (record["CardCode"], outcome) == ("UPS-1", "created")
    assert hook.upsert("BusinessPartners", {"CardCode": "UPS-1", "CardName": "Upsert Renamed"}) == (
        "UPS-1",
        "updated",
    )
    assert hook.get("BusinessPartners", "UPS-1", select="CardName")["CardName"] == "Upsert Renamed"


def test_upsert_without_a_dedupe_value_is_refused_before_anything_is_sent(sandbox, connect):
    connect()
    hook = SapB1Hook()
    with pytest.raises(ValueError, match="NumAtCard"):
        hook.upsert("Orders", {"Comments": "no reference"})
    with pytest.raises(ValueError, match="dedupe_field="):
        hook.upsert("ChartOfAccounts", {"Name": "no key"})
    assert sandbox.stats()["requests_total"] == 0


# -- request(): what the typed methods do not cover ---------------------------------------------


def _open_order(hook: SapB1Hook, prefix: str) -> int:
    (payload,) = order_payloads(hook, 1, prefix)
    return hook.create("Orders", payload, dedupe_field="NumAtCard")["DocEntry"]


def test_request_closes_and_cancels_orders_with_document_actions(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    to_close, to_cancel = _open_order(hook, "CLOSE"), _open_order(hook, "CANCEL")
    assert hook.request("POST", entity_path("Orders", to_close) + "/Close").status_code == 204
    assert hook.request("POST", entity_path("Orders", to_cancel) + "/Cancel").status_code == 204
    closed = hook.get("Orders", to_close, select="DocumentStatus,Cancelled")
    cancelled = hook.get("Orders", to_cancel, select="DocumentStatus,Cancelled")
    assert (closed["DocumentStatus"], closed["Cancelled"]) == ("bost_Close", "tNO")
    assert (cancelled["DocumentStatus"], cancelled["Cancelled"]) == ("bost_Close", "tYES")
    with pytest.raises(SapB1BusinessError, match="already closed"):
        hook.request("POST", entity_path("Orders", to_close) + "/Close")


def test_request_reads_with_query_options_like_the_typed_calls(sandbox, connect):
    connect()
    hook = SapB1Hook()
    response = hook.request("GET", "Orders/$count", params={"$filter": "DocumentStatus eq 'bost_Open'"})
    assert int(response.text) == hook.count("Orders", "DocumentStatus eq 'bost_Open'")


def test_request_never_sends_an_action_again_when_its_outcome_is_unknown(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    key = _open_order(hook, "AMBIGUOUS")
    before = sandbox.stats()["requests"].get("POST Orders", 0)
    sandbox.faults(script=[{"kind": "reset_after_write", "match": "POST Orders", "times": 1}])
    with pytest.raises(SapB1AmbiguousWriteError):
        hook.request("POST", entity_path("Orders", key) + "/Close")
    assert sandbox.stats()["requests"]["POST Orders"] == before + 1
    # it did happen: a caller that looks before sending again finds it closed
    assert hook.get("Orders", key, select="DocumentStatus")["DocumentStatus"] == "bost_Close"
