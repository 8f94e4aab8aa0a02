"""Over real HTTPS, an error names the verb that failed, and a refused login is never tried twice."""

from __future__ import annotations

import pytest
from sap_hook_helpers import FAST_RETRIES, USER

from airflow_provider_b1.hooks.sap_b1 import (
    SapB1BusinessError,
    SapB1Hook,
    SapB1LoginError,
    SapB1NotFoundError,
    SapB1UnreachableError,
)
from airflow_provider_b1.utils.retry import RetryPolicy

ONCE = RetryPolicy(max_attempts=1, initial_wait=0, max_wait=0)


def _customer(hook: SapB1Hook) -> str:
    return hook.find_by("BusinessPartners", "CardType", "cCustomer", select="CardCode")["CardCode"]


# -- the verb that failed (issue 8, defect 10) -----------------------------------------------------------


def test_a_failed_patch_is_reported_as_a_patch(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    code = _customer(hook)
    with pytest.raises(SapB1BusinessError) as refused:
        hook.update("BusinessPartners", code, {"NoSuchProperty": 1})
    assert str(refused.value).startswith(f"SAP rejected PATCH BusinessPartners('{code}')")
    with pytest.raises(SapB1NotFoundError) as missing:
        hook.update("BusinessPartners", "NO-SUCH-CODE", {"Notes": "x"})
    assert "PATCH BusinessPartners('NO-SUCH-CODE')" in str(missing.value)
    for error in (refused.value, missing.value):
        assert "GET" not in str(error)


def test_a_patch_whose_connection_broke_is_reported_as_a_patch(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=ONCE)
    code = _customer(hook)
    sandbox.faults(script=[{"kind": "reset", "match": "PATCH BusinessPartners", "times": 1}])
    with pytest.raises(SapB1UnreachableError) as broke:
        hook.update("BusinessPartners", code, {"Notes": "x"})
    assert f"during PATCH BusinessPartners('{code}')" in str(broke.value)
    assert "GET" not in str(broke.value)


def test_a_refused_login_is_attempted_once_whatever_the_retry_policy(sandbox, connect):
    connect(password="not-the-password")
    with pytest.raises(SapB1LoginError, match="count towards SAP's lock-out"):
        SapB1Hook(retry_policy=FAST_RETRIES).count("Invoices")
    assert sandbox.stats()["failed_logins"] == 1


def test_a_login_refused_while_renewing_an_expired_session_is_not_retried(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    hook.login()
    users = sandbox.app.state.sandbox.config.users
    password = users[USER]
    users[USER] = "changed-by-an-administrator"  # the connection's password is wrong from now on
    try:
        sandbox.expire_sessions()
        with pytest.raises(SapB1LoginError, match="count towards SAP's lock-out"):
            hook.count("Invoices")
    finally:
        users[USER] = password
    stats = sandbox.stats()
    assert stats["failed_logins"] == 1
    assert stats["requests"]["GET Invoices"] == 1
