"""Failures no retry can fix fail their task at once, whatever its retries: a reconciliation
difference (a retry would compare the same data). Refused SAP credentials: see
tests/dags/test_wrong_credentials_dag.py. Transient failures keep their retries
(tests/dags/test_faults_dag.py)."""

from __future__ import annotations

import datetime as dt

from dag_helpers import task_states

DAG_ID = "sap_b1_to_warehouse"


def _tries(dag_run) -> dict[str, int]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances(session=session)}


def test_a_reconciliation_difference_fails_the_task_once(flow, dag_of):
    flow.sap.control("POST", "corrupt", {"entity": "Invoices", "keys": [12], "kind": "null_amount"})
    run = dag_of(DAG_ID, retries=2, retry_delay=dt.timedelta(0)).test()
    states = task_states(run)
    assert states["reconcile"] == "failed"
    assert states["load_sales"] == "success"  # the bad record failed alone
    assert _tries(run)["reconcile"] == 1
