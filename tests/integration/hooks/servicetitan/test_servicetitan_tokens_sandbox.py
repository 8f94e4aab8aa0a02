"""ServiceTitan tokens against the sandbox over real HTTPS: shared by processes, renewed before expiry and once on 401."""

from __future__ import annotations

import threading
import time

from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook


def test_two_task_processes_starting_together_make_one_token_request(sandbox, connect, task_processes):
    connect()
    # A slow token endpoint keeps the second process waiting inside the first one's request.
    sandbox.faults(script=[{"kind": "slow", "match": "POST connect/token", "times": 1}], slow_seconds=0.5)
    results = task_processes.run("read", [connect.env, connect.env])
    assert [r["calls"] for r in results] == [1, 1]
    assert sorted(r["token_requests"] for r in results) == [0, 1]
    stats = sandbox.stats()
    assert stats["token_requests"] == 1
    assert stats["tokens_issued"] == 1


def test_task_processes_one_after_another_reuse_the_cached_token(sandbox, connect, task_processes):
    connect()
    for _ in range(3):
        task_processes.run("read", [connect.env])
    assert sandbox.stats()["tokens_issued"] == 1


def test_threads_of_one_hook_starting_cold_share_one_token(sandbox, connect):
    connect()
    sandbox.faults(script=[{"kind": "slow", "match": "POST connect/token", "times": 1}], slow_seconds=0.3)
    hook = ServiceTitanHook()
    pages: list[dict] = []
    threads = [
        threading.Thread(target=lambda: pages.append(hook.get_json("crm/customers", {"pageSize": 1})))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pages) == 5
    assert sandbox.stats()["tokens_issued"] == 1
    assert hook.auth.token_requests == 1


def test_a_token_expired_on_the_server_is_renewed_once_and_the_call_repeated(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    first = hook.get_json("crm/customers", {"pageSize": 1})
    sandbox.expire_tokens()
    again = hook.get_json("crm/customers", {"pageSize": 1})
    assert again["data"] == first["data"]
    stats = sandbox.stats()
    assert stats["tokens_issued"] == 2
    assert stats["responses"].get("401") == 1
    # The other task processes of the worker take the renewed token from the cache.
    other = ServiceTitanHook()
    other.get_json("crm/customers", {"pageSize": 1})
    assert other.auth.token_requests == 0
    assert sandbox.stats()["tokens_issued"] == 2


def test_a_token_is_renewed_shortly_before_it_expires_without_a_refusal(sandbox, connect):
    connect()
    sandbox.config(token_lifetime_seconds=2)  # renewed 0.2 s before its end
    hook = ServiceTitanHook()
    hook.get_json("crm/customers", {"pageSize": 1})
    time.sleep(1.85)
    hook.get_json("crm/customers", {"pageSize": 1})
    stats = sandbox.stats()
    assert stats["tokens_issued"] == 2
    assert "401" not in stats["responses"]


def test_the_app_key_and_a_bearer_token_go_on_every_call_the_repeated_one_included(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    pages = list(hook.iter_list("crm/customers", {"active": "Any"}, page_size=100))
    sandbox.expire_tokens()
    pages += list(hook.iter_list("crm/customers", {"active": "Any"}, page_size=100))
    stats = sandbox.stats()
    api_calls = stats["requests"]["GET crm/customers"]
    # The sandbox answers a call without the app key 401 (wrong one 403): every call carried it,
    # the one repeated after the expired token included (its first try got the only 401).
    assert stats["responses"] == {"200": api_calls - 1 + stats["token_requests"], "401": 1}
    assert stats["auth_schemes"] == {"Bearer": api_calls}
    assert len(pages) == 2 * 3
