"""sap_b1_to_warehouse under a misbehaving Service Layer: 503s, connection resets, expired sessions, slow logins.

The hook's own retries absorb most faults; one burst is made long enough to exhaust them, so a
task attempt fails mid-read and Airflow retries the task. dag.test() in Airflow 3.3 does run
task retries (its loop schedules ``up_for_retry`` task instances once their retry delay has
passed), so the second attempt here is Airflow's own, with the retry delay set to zero on a
fresh DAG object.
"""

from __future__ import annotations

import datetime as dt
import functools

from dag_helpers import INVOICES, task_states

from airflow_provider_b1.utils.retry import RetryPolicy

DAG_ID = "sap_b1_to_warehouse"
HOOK_ATTEMPTS = RetryPolicy().max_attempts


def test_a_run_under_faults_equals_sap_and_a_task_retried_by_airflow_rereads_its_records_unchanged(
    flow, dag_of, monkeypatch
):
    # The hook's real policy (same attempts), with millisecond backoffs so the test stays fast.
    monkeypatch.setattr(
        "airflow_provider_b1.hooks.sap_b1.hook.RetryPolicy",
        functools.partial(RetryPolicy, initial_wait=0.01, max_wait=0.05),
    )
    flow.sap.faults(
        error_rate=0.1,
        reset_rate=0.05,
        session_expiry_rate=0.05,
        login_delay=0.3,
        seed=11,
        script=[
            # two pages of invoices come through, then a burst longer than the hook's retries
            {"kind": "slow", "match": "GET Invoices", "times": 2},
            {"kind": "error", "match": "GET Invoices", "times": HOOK_ATTEMPTS},
        ],
    )
    # Never split (partitions 1): the planner's own reads of Invoices would take the scripted burst.
    dr = dag_of(DAG_ID, retries=1, retry_delay=dt.timedelta(0)).test(run_conf={"partitions": 1})
    stats = flow.sap.stats()
    flow.sap.faults()
    assert dr.state == "success", task_states(dr)

    # the faults really happened, and the hook logged in again after expired sessions
    injected = stats["faults_injected"]
    assert injected.get("error", 0) > HOOK_ATTEMPTS
    assert injected.get("reset", 0) > 0
    assert injected.get("expire_session", 0) > 0
    assert stats["logins"] > 1

    # target = source, nothing lost, nothing doubled
    assert flow.differences() == {}
    assert flow.figures("Invoices")[0] == INVOICES

    # the audit trail shows the retry: try 1 loaded two pages and failed, try 2 re-read them unchanged
    rows = flow.audit_rows(
        "run_id = %s AND task_id = 'load_sales' AND source_entity = 'Invoices'", (dr.run_id,)
    )
    first = [r for r in rows if r["try_number"] == 1]
    second = [r for r in rows if r["try_number"] == 2]
    assert 0 < len(first) < INVOICES
    assert {r["action"] for r in first} == {"created"}
    assert len(second) == INVOICES
    reread = {r["key"] for r in first}
    assert {(r["action"], r["attempt"]) for r in second if r["key"] in reread} == {("unchanged", 2)}
    assert {(r["action"], r["attempt"]) for r in second if r["key"] not in reread} == {("created", 1)}
    assert [r for r in rows if r["action"] == "failed"] == []
    # the burst cost load_sales its first try; another task may lose one to a rare double session
    # expiry (the hook logs in again once per call, then lets Airflow retry), never more than that
    tries = {r["task_id"]: r["try_number"] for r in flow.audit_rows("run_id = %s", (dr.run_id,))}
    assert tries["load_sales"] == 2
    assert set(tries.values()) <= {1, 2}
