"""ServiceTitan's 60 calls/s against the sandbox: kept by four processes together, used to at least 80%, 429 honoured.

The sandbox counts the calls it admits in sliding one-second windows per (app key, tenant) and
refuses any call beyond 60 with 429; its ``peak_calls_per_second`` is the most it admitted in
any one second.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook, ServiceTitanRateLimitedError
from airflow_provider_b1.utils.retry import RetryPolicy

SECONDS = 2.5
LIMIT = 60


def _hammer(sandbox, task_processes, envs):
    results = task_processes.run("hammer", envs, seconds=SECONDS, lead=1.5)
    stats = sandbox.stats()
    calls = sum(r["calls"] for r in results)
    elapsed = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return calls, elapsed, stats


def test_four_task_processes_of_a_worker_keep_to_60_calls_a_second_and_use_most_of_it(
    sandbox, connect, task_processes
):
    connect()
    calls, elapsed, stats = _hammer(sandbox, task_processes, [connect.env] * 4)
    rate = calls / elapsed
    print(
        f"4 processes, one worker: {calls} calls in {elapsed:.2f} s = {rate:.1f}/s, peak {stats['peak_calls_per_second']}"
    )
    assert stats["calls_throttled"] == 0
    assert stats["rate_limited"] == 0
    assert stats["peak_calls_per_second"] <= LIMIT
    assert rate >= 0.8 * LIMIT


def test_four_workers_sharing_a_redis_keep_to_60_calls_a_second_together(
    sandbox, connect, task_processes, redis_url
):
    connect(redis_url=redis_url)
    # Each process has a counter directory of its own, as on four different workers: only the
    # Redis count is shared.
    envs = [
        {
            **connect.env,
            "B1_RATE_LIMIT_DIR": str(connect.tmp_path / f"worker-{i}" / "limits"),
            "B1_SERVICETITAN_CACHE_DIR": str(connect.tmp_path / f"worker-{i}" / "tokens"),
        }
        for i in range(4)
    ]
    try:
        calls, elapsed, stats = _hammer(sandbox, task_processes, envs)
    finally:
        import redis

        redis.Redis.from_url(redis_url).delete(f"b1:ratelimit:{ServiceTitanHook().limiter.name}")
    rate = calls / elapsed
    print(
        f"4 workers, Redis: {calls} calls in {elapsed:.2f} s = {rate:.1f}/s, peak {stats['peak_calls_per_second']}"
    )
    assert stats["calls_throttled"] == 0
    assert stats["peak_calls_per_second"] <= LIMIT
    assert rate >= 0.8 * LIMIT
    assert stats["tokens_issued"] == 4  # four workers: four token caches


def test_a_429_is_waited_out_for_its_retry_after_and_the_call_succeeds(sandbox, connect):
    connect()
    # As when another integration of the same app spends the tenant's budget.
    sandbox.faults(script=[{"kind": "rate_limit", "match": "GET crm/customers", "times": 2}], retry_after=1)
    hook = ServiceTitanHook()
    started = time.monotonic()
    page = hook.get_json("crm/customers", {"pageSize": 1})
    waited = time.monotonic() - started
    assert len(page["data"]) == 1
    stats = sandbox.stats()
    assert stats["responses"]["429"] == 2
    assert stats["faults_injected"] == {"rate_limit": 2}
    assert waited >= 2.0  # one second each, as Retry-After and the problem's "1 seconds" said


def test_a_429_that_outlasts_the_retry_policy_fails_with_the_wait_it_asked_for(sandbox, connect):
    connect()
    hook = ServiceTitanHook(retry_policy=RetryPolicy(max_attempts=2, max_elapsed=10, max_wait=1))
    hook.get_token()
    sandbox.faults(script=[{"kind": "rate_limit", "match": "GET crm/customers", "times": 5}], retry_after=1)
    with pytest.raises(ServiceTitanRateLimitedError, match="rate-limited reading customers") as caught:
        hook.get_json("crm/customers", {"pageSize": 1}, what="reading customers")
    assert caught.value.retry_after == 1
    assert caught.value.trace_id
    assert sandbox.stats()["responses"]["429"] == 2
