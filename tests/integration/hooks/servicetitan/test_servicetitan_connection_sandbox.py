"""The Test button against the sandbox, and no secret in any log line or error."""

from __future__ import annotations

import logging

from st_sandbox_helpers import APP_KEY, CLIENT_SECRET, FAST_RETRIES, TENANT

from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook
from airflow_provider_b1.sync.audit import scrub_error
from airflow_provider_b1.utils.retry import RetryPolicy


def test_connection_test_gets_a_token_and_reads_a_page_of_customers(sandbox, connect):
    connect()
    ok, message = ServiceTitanHook().test_connection()
    assert ok, message
    assert f"tenant {TENANT}: customers are readable" in message
    stats = sandbox.stats()
    assert stats["tokens_issued"] == 1
    assert stats["requests"]["GET crm/customers"] == 1


def test_connection_test_names_a_refused_client_secret(sandbox, connect):
    connect(password="not-the-secret-x")
    ok, message = ServiceTitanHook().test_connection()
    assert not ok
    assert "refused the client id and secret" in message
    assert "not-the-secret-x" not in message
    assert sandbox.stats()["token_requests_refused"] == 1  # a refused secret is not retried


def test_connection_test_names_a_refused_app_key(sandbox, connect):
    connect(app_key="ak1.not-the-app-key-x")
    ok, message = ServiceTitanHook().test_connection()
    assert not ok
    assert "refused the application key" in message
    assert "App key field" in message
    assert "ak1.not-the-app-key-x" not in message


def test_connection_test_names_a_tenant_the_application_may_not_reach(sandbox, connect):
    connect(tenant_id="999")
    ok, message = ServiceTitanHook().test_connection()
    assert not ok
    assert "refused tenant 999" in message


def test_connection_test_names_an_unreachable_server(sandbox, connect):
    connect(api_url="https://127.0.0.1:1", auth_url="https://127.0.0.1:1")
    ok, message = ServiceTitanHook(retry_policy=RetryPolicy(max_attempts=1)).test_connection()
    assert not ok
    assert "did not answer the token request" in message


def test_no_secret_or_token_in_any_log_line_or_error(sandbox, connect, caplog, capfd, task_processes):
    connect()
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_b1", "filelock"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    hook = ServiceTitanHook(retry_policy=FAST_RETRIES)
    list(hook.iter_export("customers"))
    sandbox.expire_tokens()  # a renewal after a 401
    sandbox.faults(error_rate=0.2, rate_limit_rate=0.1, seed=7)
    list(hook.iter_list("crm/customers", page_size=100))
    sandbox.faults()
    task_processes.run("read", [connect.env, connect.env])
    errors: list[str] = []
    for bad in ({"password": "wrong-secret-xyz"}, {"app_key": "ak1.wrong-key-xyz"}, {"tenant_id": "5"}):
        connect(**bad)
        errors.append(ServiceTitanHook().test_connection()[1])
        try:
            ServiceTitanHook().get_json("crm/customers")
        except Exception as exc:
            errors.extend([str(exc), repr(exc)])
    captured = capfd.readouterr()
    everything = "\n".join([caplog.text, captured.out, captured.err, task_processes.logs(), *errors])
    tokens = sandbox.issued_tokens()
    assert len(tokens) >= 2
    assert caplog.records, "expected some log lines to check"
    for secret in (CLIENT_SECRET, APP_KEY, "wrong-secret-xyz", "ak1.wrong-key-xyz", *tokens):
        assert secret not in everything
    # And each was registered with Airflow's masker, so a task log would show *** for it.
    for secret in (CLIENT_SECRET, APP_KEY, *tokens):
        assert secret not in scrub_error(f"upstream said {secret}")
