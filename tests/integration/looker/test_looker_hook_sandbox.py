"""LookerHook against the Looker sandbox over real HTTP."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from airflow_provider_b1.hooks.looker import (
    LookerAuthError,
    LookerDatagroupNotFoundError,
    LookerHook,
    LookerNotFoundError,
    LookerPdtBuildError,
    LookerRateLimitedError,
    LookerTimeoutError,
    LookerUnreachableError,
)
from airflow_provider_b1.utils.auth import RenewingAuth
from airflow_provider_b1.utils.retry import RetryPolicy

CLIENT_SECRET = "looker-client-secret-1"

FAST = RetryPolicy(max_attempts=4, max_elapsed=10, initial_wait=0.01, max_wait=0.2)


def _hook(**kwargs) -> LookerHook:
    kwargs.setdefault("retry_policy", FAST)
    return LookerHook("looker_default", **kwargs)


def test_many_calls_share_one_login(sandbox, looker_conn):
    hook = _hook()
    for _ in range(5):
        hook.get_datagroups()
    hook.trigger_datagroup("1")
    stats = sandbox.stats()
    assert stats["logins"] == 1
    assert stats["auth_schemes"] == {"token": 6}
    assert hook.auth.login_count == 1


def test_token_is_renewed_before_it_expires(sandbox, looker_conn):
    sandbox.control("config", {"token_expiry_seconds": 2})
    hook = _hook(token_margin=1.0)
    hook.get_datagroups()
    assert sandbox.stats()["logins"] == 1
    time.sleep(1.1)  # inside the margin, still valid on the server
    hook.get_datagroups()
    stats = sandbox.stats()
    assert stats["logins"] == 2
    assert stats["unauthorized"] == 0


def test_one_retry_after_401_when_the_server_dropped_the_token(sandbox, looker_conn):
    hook = _hook()
    hook.get_datagroups()
    sandbox.control("expire-tokens")
    groups = hook.get_datagroups()
    assert {g["name"] for g in groups} >= {"b1_warehouse_datagroup"}
    stats = sandbox.stats()
    assert stats["logins"] == 2
    assert stats["unauthorized"] == 1


def _together(count: int, call) -> list:
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_cold_start_of_one_hook_performs_a_single_login(sandbox, looker_conn):
    hook = _hook()
    results = _together(8, hook.get_datagroups)
    assert len(results) == 8
    assert sandbox.stats()["logins"] == 1
    assert hook.auth.login_count == 1


def test_callers_refused_with_the_same_dropped_token_log_in_again_only_once(sandbox, looker_conn):
    hook = _hook()
    hook.get_datagroups()
    sandbox.control("expire-tokens")
    results = _together(6, lambda: hook.get_datagroup("1")["id"])
    assert results == ["1"] * 6
    stats = sandbox.stats()
    assert stats["logins"] == 2
    assert 1 <= stats["unauthorized"] <= 6
    assert isinstance(hook.auth, RenewingAuth)


def test_wrong_secret_is_one_clear_error(sandbox, looker_conn, monkeypatch):
    hook = _hook()
    hook.connection.password = "wrong-secret"
    with pytest.raises(LookerAuthError) as excinfo:
        hook.get_datagroups()
    message = str(excinfo.value)
    assert "client id/secret" in message
    assert "wrong-secret" not in message
    assert sandbox.stats()["failed_logins"] == 1


def test_429_is_retried_after_retry_after(sandbox, looker_conn):
    hook = _hook(retry_policy=RetryPolicy(max_attempts=30, max_elapsed=20, initial_wait=0.01, max_wait=0.3))
    hook.login()
    sandbox.control("faults", {"rate_limit_rate": 0.5, "retry_after": 0.3, "seed": 3})
    started = time.monotonic()
    for _ in range(6):
        hook.get_datagroup("1")
    elapsed = time.monotonic() - started
    stats = sandbox.stats()
    assert stats["rate_limited"] >= 1
    assert elapsed >= 0.3 * stats["rate_limited"] * 0.9


def test_429_gives_up_within_the_policy(sandbox, looker_conn):
    hook = _hook(retry_policy=RetryPolicy(max_attempts=3, max_elapsed=5, initial_wait=0.01, max_wait=0.05))
    hook.login()
    sandbox.control("faults", {"rate_limit_rate": 1.0, "retry_after": 0.05})
    with pytest.raises(LookerRateLimitedError) as excinfo:
        hook.get_datagroups()
    assert excinfo.value.retry_after == pytest.approx(0.05)
    assert sandbox.stats()["rate_limited"] == 3


def test_5xx_is_retried(sandbox, looker_conn):
    hook = _hook(retry_policy=RetryPolicy(max_attempts=20, max_elapsed=10, initial_wait=0.01, max_wait=0.02))
    sandbox.control("faults", {"error_rate": 0.4, "seed": 2})
    for _ in range(5):
        assert hook.get_datagroup("2")["name"] == "b1_finance_datagroup"
    assert sandbox.stats()["errors_injected"] >= 1


def test_unreachable_host_is_one_clear_error(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOKER_DEFAULT",
        '{"conn_type": "looker_api", "host": "http://127.0.0.1:9", "login": "a", "password": "b"}',
    )
    hook = _hook(retry_policy=RetryPolicy(max_attempts=2, max_elapsed=2, initial_wait=0.01, max_wait=0.01))
    with pytest.raises(LookerUnreachableError) as excinfo:
        hook.get_datagroups()
    assert "127.0.0.1:9" in str(excinfo.value)
    ok, message = hook.test_connection()
    assert not ok
    assert "did not answer" in message


def test_test_connection_names_the_api_user(sandbox, looker_conn):
    ok, message = _hook().test_connection()
    assert ok, message
    assert "looker-client-id" in message


def test_trigger_datagroup_sends_now_and_is_recorded(sandbox, looker_conn):
    before = int(time.time())
    group = _hook().trigger_datagroup("1")
    after = int(time.time())
    assert before <= group["triggered_at"] <= after
    (trigger,) = sandbox.stats()["datagroup_triggers"]
    assert trigger["id"] == "1"
    assert trigger["field"] == "triggered_at"


def test_trigger_datagroup_never_sends_a_future_time(sandbox, looker_conn):
    group = _hook().trigger_datagroup("1", when=time.time() + 3600)
    assert group["triggered_at"] <= time.time()


def test_trigger_datagroup_survives_looker_clock_running_behind(sandbox, looker_conn):
    sandbox.control("config", {"clock_offset_seconds": -2})
    group = _hook().trigger_datagroup("1")
    assert group["triggered_at"] <= time.time() - 2


def test_stale_before_and_lookup_by_model_and_name(sandbox, looker_conn):
    hook = _hook()
    datagroup_id = hook.resolve_datagroup_id("b1_warehouse::b1_finance_datagroup")
    assert datagroup_id == "2"
    cut = int(time.time()) - 60
    assert hook.set_datagroup_stale_before(datagroup_id, cut)["stale_before"] == cut


def test_unknown_datagroup_is_a_typed_error(sandbox, looker_conn):
    hook = _hook()
    with pytest.raises(LookerDatagroupNotFoundError, match="no datagroup with id '999'"):
        hook.trigger_datagroup("999")
    with pytest.raises(LookerDatagroupNotFoundError):
        hook.resolve_datagroup_id("b1_warehouse::nope")


def test_pdt_build_starts_and_completes(sandbox, looker_conn):
    sandbox.control("config", {"pdt_build_polls": 3})
    hook = _hook()
    materialization_id = hook.start_pdt_build("b1_warehouse", "gl_account_monthly")
    assert hook.pdt_build_status(materialization_id)["status"] == "running"
    status = hook.wait_for_pdt_build(materialization_id, poll_interval=0.01)
    assert status["status"] == "complete"
    (build,) = sandbox.stats()["pdt_builds"]
    assert build["force_rebuild"] is True


def test_failed_pdt_build_raises_with_lookers_message(sandbox, looker_conn):
    sandbox.control("config", {"failing_pdts": ["revenue_by_profit_center"]})
    hook = _hook()
    materialization_id = hook.start_pdt_build("b1_warehouse", "revenue_by_profit_center")
    with pytest.raises(LookerPdtBuildError, match="ended 'error'") as excinfo:
        hook.wait_for_pdt_build(materialization_id, poll_interval=0.01)
    assert excinfo.value.pdt_status == "error"


def test_pdt_wait_times_out_and_stops_the_build(sandbox, looker_conn):
    sandbox.control("config", {"pdt_build_polls": 1000})
    hook = _hook()
    materialization_id = hook.start_pdt_build("b1_warehouse", "gl_account_monthly")
    with pytest.raises(LookerTimeoutError):
        hook.wait_for_pdt_build(materialization_id, poll_interval=0.05, timeout=0.2)
    assert sandbox.stats()["pdt_builds"][0]["status"] == "killed"


def test_unknown_pdt_is_a_typed_error(sandbox, looker_conn):
    with pytest.raises(LookerNotFoundError, match="no persistent derived table"):
        _hook().start_pdt_build("b1_warehouse", "nope")


def test_inline_query_returns_rows(sandbox, looker_conn):
    rows = _hook().run_inline_query(
        "b1_warehouse",
        "sales_invoice_lines",
        ["dim_profit_center.center_name", "fact_sales_invoice_line.total_revenue"],
        limit=2,
    )
    assert len(rows) == 2
    assert rows[0]["fact_sales_invoice_line.total_revenue"] == 1000.0


def test_logout_revokes_the_token(sandbox, looker_conn):
    hook = _hook()
    hook.login()
    hook.logout()
    stats = sandbox.stats()
    assert stats["logouts"] == 1
    assert stats["live_tokens"] == 0


def test_no_secret_or_token_in_logs(sandbox, looker_conn, caplog):
    caplog.set_level(logging.DEBUG)
    hook = _hook(retry_policy=RetryPolicy(max_attempts=10, max_elapsed=10, initial_wait=0.01, max_wait=0.02))
    hook.get_datagroups()
    sandbox.control("expire-tokens")
    sandbox.control("faults", {"rate_limit_rate": 0.3, "error_rate": 0.2, "retry_after": 0.01, "seed": 5})
    hook.trigger_datagroup("1")
    hook.wait_for_pdt_build(hook.start_pdt_build("b1_warehouse", "gl_account_monthly"), poll_interval=0.01)
    sandbox.control("faults", {})
    hook.connection.password = "another-secret-value"
    hook.auth.invalidate()
    hook.__dict__.pop("auth")
    with pytest.raises(LookerAuthError):
        hook.get_datagroups()
    text = caplog.text + repr(caplog.records)
    assert CLIENT_SECRET not in text
    assert "another-secret-value" not in text
    assert "access_token" not in text
    assert caplog.records, "expected some log lines to check"
