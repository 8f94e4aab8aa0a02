"""Salesforce tokens against the sandbox over HTTPS: renewed once on 401 for every kind of call, shared by processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_b1.hooks.salesforce import SalesforceHook, SalesforceSessionError

ACCOUNTS = "SELECT Id, Name FROM Account"


def _records(pages):
    return [r for page in pages for r in page]


# Each case: the call that meets an expired token (the sandbox's kind), and what makes it.
CALLS = {
    "GET query": lambda hook: _records(hook.query_pages(ACCOUNTS)),
    "GET query_more": lambda hook: _records(hook.query_pages(ACCOUNTS)),
    "GET query_all": lambda hook: _records(hook.query_all_pages(ACCOUNTS)),
    "GET describe": lambda hook: hook.describe("Opportunity")["name"],
    "GET limits": lambda hook: hook.limits()["DailyApiRequests"]["Max"],
    "GET collections_retrieve": lambda hook: len(hook.get_many("Account", hook._ids, ["Name"])),
    "PATCH collections_upsert": lambda hook: [
        r.success
        for r in hook.upsert_many("Account", "SAP_Card_Code__c", [{"SAP_Card_Code__c": "T1", "Name": "T"}])
    ],
    "PATCH collections_update": lambda hook: [
        r.success for r in hook.update_many("Account", [{"Id": hook._ids[0], "Name": "Renamed"}])
    ],
    "POST bulk_query_create": lambda hook: _records(hook.bulk_query_pages(ACCOUNTS)),
    "GET bulk_query_get": lambda hook: _records(hook.bulk_query_pages(ACCOUNTS)),
    "GET bulk_query_results": lambda hook: _records(hook.bulk_query_pages(ACCOUNTS)),
    "POST bulk_ingest_create": lambda hook: _bulk(hook),
    "PUT bulk_ingest_upload": lambda hook: _bulk(hook),
    "PATCH bulk_ingest_state": lambda hook: _bulk(hook),
    "GET bulk_ingest_get": lambda hook: _bulk(hook),
    "GET bulk_ingest_results": lambda hook: _bulk(hook),
}


def _bulk(hook):
    records = [{"SAP_Card_Code__c": f"B{i}", "Name": f"Bulk {i}"} for i in range(3)]
    return [(r.success, r.created) for r in hook.bulk_upsert("Account", "SAP_Card_Code__c", records)]


@pytest.mark.parametrize("kind", list(CALLS))
def test_an_expired_token_is_renewed_once_and_the_call_sent_again(sandbox, make_hook, kind):
    hook = make_hook()
    hook._ids = [r["Id"] for r in sandbox.truth("Account")[:3]]
    expected = CALLS[kind](hook)
    sandbox.restore()
    hook = make_hook()  # takes the first hook's token from the cache
    hook._ids = [r["Id"] for r in sandbox.truth("Account")[:3]]
    hook.describe("Account")  # a token first, so that the expiry hits the call under test
    sandbox.faults(script=[{"kind": "expire_token", "match": kind, "times": 1}])
    assert CALLS[kind](hook) == expected
    stats = sandbox.stats()
    assert stats["faults_injected"] == {"expire_token": 1}
    assert stats["sessions_refused"] == 1
    assert stats["tokens_issued"] == 1  # the renewal (the first token came before the reset)
    assert hook.auth.token_requests == 1
    assert stats["calls"][kind.split()[1]] >= 2  # the refused call and its re-send


def test_a_token_refused_again_right_after_renewal_is_a_session_error(sandbox, make_hook):
    hook = make_hook()
    hook.describe("Account")
    sandbox.faults(script=[{"kind": "expire_token", "match": "GET query", "times": 2}])
    with pytest.raises(SalesforceSessionError) as raised:
        hook.count("SELECT COUNT() FROM Account")
    assert raised.value.status == 401
    assert raised.value.error_code == "INVALID_SESSION_ID"
    stats = sandbox.stats()
    assert stats["sessions_refused"] == 2  # one renewal, one re-send, no retry loop
    assert stats["tokens_issued"] == 2


def test_two_hooks_share_one_token(sandbox, make_hook):
    first, second = make_hook(), make_hook()
    first.count("SELECT COUNT() FROM Account")
    second.count("SELECT COUNT() FROM Account")
    assert sandbox.stats()["tokens_issued"] == 1
    assert (first.auth.token_requests, second.auth.token_requests) == (1, 0)


def test_a_renewed_token_is_what_the_other_hooks_take(sandbox, make_hook):
    first, second = make_hook(), make_hook()
    first.count("SELECT COUNT() FROM Account")
    sandbox.control("POST", "expire-tokens")
    first.count("SELECT COUNT() FROM Account")  # renewed once
    second.count("SELECT COUNT() FROM Account")  # takes the renewed token from the cache
    stats = sandbox.stats()
    assert stats["tokens_issued"] == 2
    assert stats["sessions_refused"] == 1
    assert second.auth.token_requests == 0


def test_another_task_process_takes_the_cached_token(sandbox, make_hook, connect):
    make_hook().count("SELECT COUNT() FROM Account")
    script = textwrap.dedent(
        """
        import json
        from airflow_provider_b1.hooks.salesforce import SalesforceHook
        hook = SalesforceHook()
        print(json.dumps({"count": hook.count("SELECT COUNT() FROM Account"), "requests": hook.auth.token_requests}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **connect.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    assert reply == {"count": 40, "requests": 0}
    assert sandbox.stats()["tokens_issued"] == 1


def test_the_token_and_instance_come_from_the_token_reply(sandbox, make_hook):
    hook = make_hook()
    token = hook.token()
    assert hook.instance_url == sandbox.base_url
    assert hook.org_id == token.org_id
    assert hook.org_id.startswith("00D")
    assert hook.get_conn().session_id == token.value
    assert hook.get_token() == token.value
    assert isinstance(hook, SalesforceHook)
