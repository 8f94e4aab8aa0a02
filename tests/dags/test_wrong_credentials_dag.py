"""Wrong SAP credentials never lock the SAP user: every task that logs in to SAP fails at once.

SAP locks a user after a few refused logins in a row, so a task whose login is refused for its
credentials must not try again, neither through Airflow's retries nor inside the hook: it fails
its first try after exactly one login attempt, and says that a retry would count towards the
lock-out. Each test gives the task retries, so a retry would show.

The tasks that log in to SAP: the warehouse plans, loads and the reconciliation of ``sap_b1_to_warehouse``
and the replay of ``b1_replay_failed`` (the Looker tasks do not talk to SAP; no ``@task`` of the
DAG files uses the SAP hook).
"""

from __future__ import annotations

import datetime as dt

import pytest
from dag_helpers import AUDIT_SCHEMA, task_states

from airflow_provider_b1.sync import Action, AuditRecord, AuditTrail

RETRIES = {"retries": 3, "retry_delay": dt.timedelta(0)}


def _tries(dag_run) -> dict[str, int]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances(session=session)}


@pytest.fixture
def wrong_password(flow, set_connection):
    """The flow's SAP connection with a wrong password; returns the sandbox's login counts before the run."""
    set_connection("sap_b1_default", flow.sap.connection(password="not-the-password"))
    stats = flow.sap.stats()
    return stats["logins"], stats["failed_logins"]


def _assert_one_refused_login_and_no_retry(flow, run, task_id, before, output):
    logins, failed = before
    stats = flow.sap.stats()
    assert task_states(run)[task_id] == "failed"
    assert _tries(run)[task_id] == 1  # no Airflow retry
    assert stats["failed_logins"] - failed == 1  # one login attempt, not retried inside the hook
    assert stats["logins"] - logins == 0
    assert stats["locked_users"] == []
    assert "Not retried: retrying would count towards SAP's lock-out of the user" in output


def test_wrong_sap_credentials_fail_a_warehouse_load_once_after_a_single_login_attempt(
    flow, dag_of, wrong_password, capsys
):
    # A first run plans the master data's ranges first: the plan is the task that logs in first.
    run = dag_of("sap_b1_to_warehouse", **RETRIES).test()
    _assert_one_refused_login_and_no_retry(flow, run, "plan_master", wrong_password, capsys.readouterr().out)
    states = task_states(run)
    downstream = ("load_master", "load_sales", "load_purchasing", "load_finance", "reconcile")
    assert {states[t] for t in downstream} == {"upstream_failed"}


def test_wrong_sap_credentials_fail_the_reconciliation_once_after_a_single_login_attempt(
    flow, dag_of, wrong_password, capsys
):
    dag = dag_of("sap_b1_to_warehouse", **RETRIES).partial_subset("reconcile", include_upstream=False)
    run = dag.test()
    _assert_one_refused_login_and_no_retry(flow, run, "reconcile", wrong_password, capsys.readouterr().out)


def test_wrong_sap_credentials_fail_a_replay_once_after_a_single_login_attempt(
    flow, dag_of, wrong_password, capsys
):
    # A failed invoice in the audit trail gives the replay something to read from SAP.
    with AuditTrail("b1_audit_default", schema=AUDIT_SCHEMA) as audit:
        audit.ensure_schema()
        with audit.session("sap_b1_to_warehouse", "sap_b1_to_warehouse", "run-1", "load_sales", 1) as session:
            session.record(AuditRecord("sap_b1", "Invoices", "12", Action.FAILED, error="bad amount"))
    run = dag_of("b1_replay_failed", **RETRIES).test(
        run_conf={"flow": "sap_b1_to_warehouse", "dry_run": False}
    )
    _assert_one_refused_login_and_no_retry(flow, run, "replay", wrong_password, capsys.readouterr().out)
