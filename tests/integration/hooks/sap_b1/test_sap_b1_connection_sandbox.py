"""The SAP hook's connection against the sandbox over real HTTPS: TLS trust, login errors, the connection test, secrets."""

from __future__ import annotations

import logging

import pytest
from sap_hook_helpers import COMPANY, FAST_RETRIES, PASSWORD, USER, order_payloads

from airflow_provider_b1.hooks.sap_b1 import (
    SapB1Hook,
    SapB1LoginError,
    SapB1TLSError,
    SapB1UnreachableError,
    SapB1UserLockedError,
    SessionCache,
)
from airflow_provider_b1.utils.retry import RetryPolicy


def test_self_signed_server_is_refused_without_ca_bundle_or_pin(sandbox, connect):
    connect(extra={"timezone": "America/Chicago"})
    with pytest.raises(SapB1TLSError) as caught:
        SapB1Hook().count("Invoices")
    message = str(caught.value)
    assert "CA bundle" in message
    assert "fingerprint" in message
    assert "urllib3" not in message
    assert sandbox.stats()["logins"] == 0


def test_pinned_fingerprint_accepts_the_server_and_a_wrong_pin_is_refused(sandbox, connect):
    connect(extra={"cert_fingerprint": sandbox.cert_sha256})
    assert SapB1Hook().count("Invoices") == sandbox.truth("Invoices")["count"]
    wrong = "00" * 32
    connect(extra={"cert_fingerprint": wrong})
    with pytest.raises(SapB1TLSError):
        SapB1Hook().count("Invoices")


def test_verification_off_works_and_warns(sandbox, connect, caplog):
    connect(extra={"verify_tls": False})
    caplog.set_level(logging.WARNING)
    assert SapB1Hook().count("Invoices") == sandbox.truth("Invoices")["count"]
    assert "verification is switched off" in caplog.text


def test_wrong_password_is_a_login_error(sandbox, connect):
    connect(password="not-the-password")
    with pytest.raises(SapB1LoginError) as caught:
        SapB1Hook().count("Invoices")
    assert "password" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_wrong_company_says_names_are_case_sensitive(sandbox, connect):
    connect(schema=COMPANY.lower())
    with pytest.raises(SapB1LoginError) as caught:
        SapB1Hook().count("Invoices")
    assert "case-sensitive" in str(caught.value)


def test_locked_user_is_told_an_administrator_must_unlock_it(sandbox, connect):
    sandbox.config(lock_after_failures=2)
    connect(password="wrong-password-x")
    for _ in range(2):
        with pytest.raises(SapB1LoginError):
            SapB1Hook().count("Invoices")
    connect()
    with pytest.raises(SapB1UserLockedError) as caught:
        SapB1Hook().count("Invoices")
    assert "an administrator must unlock the user in SAP" in str(caught.value)
    assert caught.value.code == 10000962


def test_unreachable_service_layer_names_the_service_manager_and_port(connect):
    connect(host="https://127.0.0.1:9/b1s/v2/")
    with pytest.raises(SapB1UnreachableError) as caught:
        SapB1Hook(retry_policy=RetryPolicy(max_attempts=2, initial_wait=0, max_wait=0)).count("Invoices")
    assert "Service Manager" in str(caught.value)
    assert "port 50000" in str(caught.value)


def test_connection_test_reports_readable_areas(sandbox, connect):
    connect()
    ok, message = SapB1Hook().test_connection()
    assert ok, message
    assert "invoices" in message
    assert "business partners" in message
    assert PASSWORD not in message


def test_connection_test_explains_a_failed_login(sandbox, connect):
    connect(password="wrong-password-x")
    ok, message = SapB1Hook().test_connection()
    assert not ok
    assert "wrong-password-x" not in message


def test_no_password_or_session_id_in_any_log_line_or_error_of_a_full_run(sandbox, connect, caplog, capfd):
    connect()
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_b1", "filelock"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors: list[str] = []
    session_ids: set[str] = set()

    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    cache = SessionCache(connect.cache_dir, hook.base_url, COMPANY, USER, PASSWORD)
    hook.count("Invoices")
    session_ids.update(cache.load().cookies.values())
    sandbox.expire_sessions()
    list(hook.iter_pages("Invoices", select="DocEntry", page_size=500))
    session_ids.update(cache.load().cookies.values())
    sandbox.faults(error_rate=0.1, reset_rate=0.05, reset_after_write_rate=0.1, seed=5)
    payloads = order_payloads(hook, 10, "LOG")
    hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    sandbox.faults()
    for bad in ({"password": "wrong-password-x"}, {"schema": "nope"}):
        connect(**bad)
        try:
            SapB1Hook().count("Invoices")
        except Exception as exc:
            errors.append(str(exc))
            errors.append(repr(exc))
    connect(extra={})
    try:
        SapB1Hook().count("Invoices")
    except Exception as exc:
        errors.append(str(exc))
    captured = capfd.readouterr()
    everything = "\n".join([caplog.text, captured.out, captured.err, *errors])
    assert len(session_ids) >= 2
    assert PASSWORD not in everything
    assert "wrong-password-x" not in everything
    for session_id in session_ids:
        if len(session_id) >= 5:
            assert session_id not in everything
