"""Salesforce writes against the sandbox over HTTPS: 200 records a call, a result per record, refusals returned."""

from __future__ import annotations

import pytest

from airflow_provider_b1.hooks.salesforce import (
    RecordError,
    SalesforceAmbiguousWriteError,
    SalesforceApiLimitReached,
    UpsertResult,
)


def _accounts(count: int, prefix: str = "W") -> list[dict]:
    return [{"SAP_Card_Code__c": f"{prefix}{i:04d}", "Name": f"Written {i}"} for i in range(count)]


def test_upsert_many_makes_one_call_per_200_records_and_answers_in_input_order(sandbox, make_hook):
    hook = make_hook()
    results = hook.upsert_many("Account", "SAP_Card_Code__c", _accounts(450))
    assert [r.index for r in results] == list(range(450))
    assert all(r.success and r.created and r.id for r in results)
    stats = sandbox.stats()
    assert stats["calls"]["collections_upsert"] == 3
    assert stats["records_written"]["collections_upsert"] == 450
    held = {r["SAP_Card_Code__c"]: r["Id"] for r in sandbox.truth("Account")}
    assert [held[f"W{i:04d}"] for i in range(450)] == [r.id for r in results]


def test_upserting_the_same_records_again_updates_them(sandbox, make_hook):
    hook = make_hook()
    first = hook.upsert_many("Account", "SAP_Card_Code__c", _accounts(3))
    again = hook.upsert_many("Account", "SAP_Card_Code__c", _accounts(3))
    assert [r.id for r in again] == [r.id for r in first]
    assert [r.created for r in again] == [False, False, False]


def test_a_refused_record_is_returned_as_its_result_and_the_others_are_written(sandbox, make_hook):
    hook = make_hook()
    records = _accounts(5)
    records[1]["Phone"] = "12"  # the org's validation rule wants 7 digits
    del records[3]["Name"]  # required on create
    results = hook.upsert_many("Account", "SAP_Card_Code__c", records)
    assert [r.success for r in results] == [True, False, True, False, True]
    assert results[1].errors == (
        RecordError("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Phone must have at least 7 digits", ("Phone",)),
    )
    assert results[3].error_codes == ("REQUIRED_FIELD_MISSING",)
    assert results[3].errors[0].fields == ("Name",)
    codes = {r["SAP_Card_Code__c"] for r in sandbox.truth("Account")}
    assert {"W0000", "W0002", "W0004"} <= codes
    assert not {"W0001", "W0003"} & codes


def test_all_or_none_rolls_back_the_whole_call(sandbox, make_hook):
    hook = make_hook()
    records = _accounts(3)
    records[2]["Phone"] = "12"
    results = hook.upsert_many("Account", "SAP_Card_Code__c", records, all_or_none=True)
    assert [r.success for r in results] == [False, False, False]
    assert results[0].error_codes == ("ALL_OR_NONE_OPERATION_ROLLED_BACK",)
    assert not {"W0000", "W0001", "W0002"} & {r["SAP_Card_Code__c"] for r in sandbox.truth("Account")}


def test_update_many_and_upsert_by_id_update_by_id(sandbox, make_hook):
    hook = make_hook()
    ids = [r["Id"] for r in sandbox.truth("Account")[:2]]
    updated = hook.update_many(
        "Account", [{"Id": ids[0], "Phone": "555-123-4567"}, {"Id": "001bad", "Name": "x"}]
    )
    assert updated[0] == UpsertResult(0, ids[0], True, False, ())
    assert updated[1].error_codes == ("MALFORMED_ID",)
    by_id = hook.upsert_many("Account", "Id", [{"Id": ids[1], "Phone": "555-765-4321"}])
    assert by_id[0].success
    assert by_id[0].id == ids[1]
    phones = {r["Id"]: r["Phone"] for r in sandbox.truth("Account")}
    assert (phones[ids[0]], phones[ids[1]]) == ("555-123-4567", "555-765-4321")
    assert sandbox.stats()["calls"]["collections_update"] == 2


def test_bulk_upsert_returns_each_records_result_in_input_order(sandbox, make_hook):
    hook = make_hook()
    existing = sandbox.truth("Account")[0]
    records = [
        {"SAP_Card_Code__c": "BULK1", "Name": "Bulk one", "Phone": "555-000-1111"},
        {"SAP_Card_Code__c": existing["SAP_Card_Code__c"], "Phone": None},  # None empties the field
        {"SAP_Card_Code__c": "BULK2", "Name": "Bulk two", "Phone": "12"},
        {"SAP_Card_Code__c": "BULK3", "Name": "Bulk three"},
    ]
    results = hook.bulk_upsert("Account", "SAP_Card_Code__c", records)
    assert [(r.index, r.success, r.created) for r in results] == [
        (0, True, True),
        (1, True, False),
        (2, False, None),
        (3, True, True),
    ]
    assert results[1].id == existing["Id"]
    assert results[2].errors[0].error_code == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    held = {r["SAP_Card_Code__c"]: r for r in sandbox.truth("Account")}
    assert held["BULK1"]["Id"] == results[0].id
    assert held[existing["SAP_Card_Code__c"]]["Phone"] is None
    assert held[existing["SAP_Card_Code__c"]]["Name"] == existing["Name"]  # left alone
    assert "BULK2" not in held
    assert sandbox.stats()["calls"]["bulk_ingest_create"] == 1


def test_an_upsert_is_sent_again_after_a_5xx_but_a_create_is_not(sandbox, make_hook):
    hook = make_hook()
    sandbox.faults(script=[{"kind": "error", "match": "PATCH collections_upsert", "times": 1}])
    results = hook.upsert_many("Account", "SAP_Card_Code__c", _accounts(2))
    assert all(r.success for r in results)
    assert sandbox.stats()["calls"]["collections_upsert"] == 2

    sandbox.faults(script=[{"kind": "error", "match": "POST collections_create", "times": 1}])
    with pytest.raises(SalesforceAmbiguousWriteError) as raised:
        hook.create_many("Account", [{"Name": "Created once"}])
    assert "not repeated" in str(raised.value)
    assert sandbox.stats()["calls"]["collections_create"] == 1


def test_a_create_after_a_reset_is_not_sent_again(sandbox, make_hook):
    hook = make_hook()
    hook.describe("Account")
    sandbox.faults(script=[{"kind": "reset", "match": "POST collections_create", "times": 1}])
    with pytest.raises(SalesforceAmbiguousWriteError):
        hook.create_many("Account", [{"Name": "Created once"}])
    assert sandbox.stats()["calls"]["collections_create"] == 1


def test_a_failed_call_carries_the_results_of_the_calls_before_it(sandbox, make_hook):
    hook = make_hook()
    hook.describe("Account")
    sandbox.faults(api_usage=79_998, api_limit=100_000)
    with pytest.raises(SalesforceApiLimitReached) as raised:
        hook.upsert_many("Account", "SAP_Card_Code__c", _accounts(1000))
    done = raised.value.results
    # The first call takes the org to 79,999, the second to 80,000: the third would pass 80 %.
    assert len(done) == 400
    assert all(r.success for r in done)
    assert sandbox.stats()["calls"]["collections_upsert"] == 2


def test_a_failed_bulk_upload_is_abandoned_and_made_again_with_a_new_job(sandbox, make_hook):
    hook = make_hook()
    sandbox.faults(script=[{"kind": "reset", "match": "PUT bulk_ingest_upload", "times": 1}])
    results = hook.bulk_upsert("Account", "SAP_Card_Code__c", _accounts(3, "U"))
    assert [r.success for r in results] == [True, True, True]
    stats = sandbox.stats()
    assert stats["calls"]["bulk_ingest_create"] == 2
    assert sorted(stats["jobs"].values()) == ["Aborted", "JobComplete"]
    assert stats["records_written"]["bulk_ingest"] == 3


def test_a_lost_answer_to_closing_a_bulk_job_is_checked_before_asking_again(sandbox, make_hook):
    hook = make_hook()
    sandbox.faults(script=[{"kind": "error", "match": "PATCH bulk_ingest_state", "times": 1}])
    results = hook.bulk_upsert("Account", "SAP_Card_Code__c", _accounts(2, "V"))
    assert [r.success for r in results] == [True, True]
    stats = sandbox.stats()
    assert stats["calls"]["bulk_ingest_create"] == 1
    assert stats["calls"]["bulk_ingest_state"] == 2
