"""Salesforce failures against the sandbox over HTTPS: retried reads, the API limit guard, typed errors."""

from __future__ import annotations

import pytest

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.hooks.salesforce import (
    SalesforceApiLimitReached,
    SalesforceBulkJobError,
    SalesforceQueryError,
    SalesforceRequestLimitExceeded,
    SalesforceServerError,
    SalesforceUnreachableError,
)

ACCOUNTS = "SELECT Id, Name FROM Account"


def test_query_pages_are_retried_after_5xx_and_resets(sandbox, make_hook):
    hook = make_hook()
    expected = [r for p in hook.query_pages(ACCOUNTS) for r in p]
    sandbox.faults(
        script=[
            {"kind": "error", "match": "GET query", "times": 1},
            {"kind": "reset", "match": "GET query_more", "times": 1},
            {"kind": "error", "match": "GET query_more", "times": 1},
        ]
    )
    assert [r for p in hook.query_pages(ACCOUNTS) for r in p] == expected
    stats = sandbox.stats()
    assert stats["faults_injected"] == {"error": 2, "reset": 1}


def test_describe_get_many_and_bulk_reads_are_retried_too(sandbox, make_hook):
    hook = make_hook()
    ids = [r["Id"] for r in sandbox.truth("Account")[:2]]
    sandbox.faults(
        script=[
            {"kind": "error", "match": "GET describe", "times": 1},
            {"kind": "reset", "match": "GET collections_retrieve", "times": 1},
            {"kind": "error", "match": "GET bulk_query_get", "times": 1},
            {"kind": "reset", "match": "GET bulk_query_results", "times": 1},
        ]
    )
    assert hook.describe("Account")["name"] == "Account"
    assert set(hook.get_many("Account", ids, ["Name"])) == set(ids)
    assert len([r for p in hook.bulk_query_pages(ACCOUNTS) for r in p]) == 40
    assert sandbox.stats()["faults_injected"] == {"error": 2, "reset": 2}


def test_a_read_that_keeps_failing_ends_with_the_typed_error(sandbox, make_hook):
    hook = make_hook()
    sandbox.faults(error_rate=1.0, target="GET query")
    with pytest.raises(SalesforceServerError) as raised:
        hook.count("SELECT COUNT() FROM Account")
    assert raised.value.status == 503
    assert raised.value.error_code == "SERVER_UNAVAILABLE"
    assert sandbox.stats()["calls"]["query"] == 4  # the policy's attempts, then the error
    sandbox.faults(reset_rate=1.0, target="GET query")
    with pytest.raises(SalesforceUnreachableError):
        hook.count("SELECT COUNT() FROM Account")


def test_the_limit_guard_stops_before_the_connections_share(sandbox, make_hook):
    hook = make_hook()
    sandbox.faults(api_usage=79_998, api_limit=100_000)
    hook.count("SELECT COUNT() FROM Account")  # the org now at 79,999
    assert hook.api_usage == (79_999, 100_000)
    hook.count("SELECT COUNT() FROM Account")  # the 80,000th request is within 80 %
    with pytest.raises(SalesforceApiLimitReached) as raised:
        hook.count("SELECT COUNT() FROM Account")
    assert str(raised.value).startswith(
        "Salesforce org at 80.0% of its daily API requests (80000/100000); GET /services/data/v62.0/query/ would "
        "take it past the 80% this connection allows (api_limit_share); stopping before the org's own users are "
        "starved"
    )
    assert isinstance(raised.value, PermanentError)
    assert sandbox.stats()["calls"]["query"] == 2  # the third was never sent


def test_a_smaller_share_stops_earlier_and_says_so(sandbox, make_hook, connect):
    connect(api_limit_share=0.5)
    hook = make_hook()
    sandbox.faults(api_usage=50_100, api_limit=100_000)
    hook.count("SELECT COUNT() FROM Account")
    with pytest.raises(SalesforceApiLimitReached) as raised:
        list(hook.query_pages(ACCOUNTS))
    assert (
        "Salesforce org at 50.1% of its daily API requests (50101/100000), over the 50% this connection"
        in str(raised.value)
    )


def test_a_spent_org_is_a_request_limit_error_and_not_retried(sandbox, make_hook):
    hook = make_hook(api_limit_share=1.0)
    sandbox.faults(api_usage=100_000, api_limit=100_000)
    with pytest.raises(SalesforceRequestLimitExceeded) as raised:
        hook.count("SELECT COUNT() FROM Account")
    assert raised.value.status == 403
    assert raised.value.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert sandbox.stats()["limit_refusals"] == 1


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FORM Account", "MALFORMED_QUERY"),
        ("SELECT Id, NoSuchField__c FROM Account", "INVALID_FIELD"),
        ("SELECT Id FROM NoSuchObject__c", "INVALID_TYPE"),
    ],
)
def test_a_query_salesforce_cannot_run_is_a_query_error_with_its_code(sandbox, make_hook, soql, code):
    hook = make_hook()
    with pytest.raises(SalesforceQueryError) as raised:
        list(hook.query_pages(soql))
    assert raised.value.error_code == code
    assert raised.value.status == 400
    assert sandbox.stats()["calls"]["query"] == 1  # not retried


def test_a_bulk_job_that_fails_as_a_whole_is_a_job_error(sandbox, make_hook):
    hook = make_hook()
    with pytest.raises(SalesforceBulkJobError) as raised:
        hook.bulk_upsert("Account", "SAP_Card_Code__c", [{"SAP_Card_Code__c": "X1", "NoSuchField__c": "x"}])
    assert raised.value.job_id
    assert "NoSuchField__c" in str(raised.value)
