"""sap_b1_to_warehouse over two SAP companies (``B1_SAP_COMPANIES``) into one PostgreSQL warehouse.

The second company is a second SAP sandbox (another server, another CompanyDB, other data). One
run loads both, each equal to its own SAP; with the second company's Service Layer unreachable,
only its tasks fail, and the first company's next run continues from its own cursors. A record
the second company failed is replayed through its own connection into its own rows.
"""

from __future__ import annotations

import functools
from typing import Any

from dag_helpers import (
    EU,
    EU_COMPANY_DB,
    WAREHOUSE_SCHEMA,
    eu_connection,
    sap_differences,
    task_states,
    xcoms,
)

from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.warehouse.entities import ENTITIES, entity_spec

DAG_ID = "sap_b1_to_warehouse"
HOME = "sap_b1_default"
HOME_INVOICES, EU_INVOICES = 200, 100


def _differences(flow: Any, sap: Any, company: str) -> dict[str, Any]:
    """Entities whose warehouse count or DocTotal sum for ``company`` differs from its SAP's truth."""
    import psycopg

    from airflow_provider_b1.warehouse.loader import PostgresLoader

    loader = PostgresLoader(psycopg.connect(flow.pg["dsn"]), WAREHOUSE_SCHEMA, company=company)
    try:
        return sap_differences(sap, lambda entity: loader.stats(entity_spec(entity)))
    finally:
        loader.close()


def test_two_companies_load_side_by_side_and_one_company_down_fails_only_its_own_tasks(
    flow, dag_of, eu_sandbox, set_connection, monkeypatch
):
    # The hook's real policy (same attempts), with millisecond backoffs: the closed port of the
    # second run costs no waiting.
    monkeypatch.setattr(
        "airflow_provider_b1.hooks.sap_b1.hook.RetryPolicy",
        functools.partial(RetryPolicy, initial_wait=0.01, max_wait=0.05),
    )
    flow.sap.restore(invoices=HOME_INVOICES)
    eu_sandbox.restore(invoices=EU_INVOICES)
    set_connection(EU, eu_connection(eu_sandbox))
    monkeypatch.setenv("B1_SAP_COMPANIES", f"{HOME},{EU}")
    # one record the second company cannot load yet (no DocTotal): its own failure, replayed later
    eu_sandbox.control("POST", "corrupt", {"entity": "Invoices", "keys": [3], "kind": "null_amount"})

    dag = dag_of(DAG_ID, retries=0)
    assert {t.task_id.split(".")[0] for t in dag.tasks if "." in t.task_id} == {EU}  # the default: no group
    first = dag.test()
    states = task_states(first)
    # only the second company's reconciliation fails, on the record it recorded as failed
    assert {t: s for t, s in states.items() if s != "success" and "_ranges" not in t} == {
        f"{EU}.reconcile": "failed"
    }
    assert _differences(flow, flow.sap, HOME) == {}
    assert set(_differences(flow, eu_sandbox, EU)) == {"Invoices"}
    failed = flow.query("SELECT flow, source_key FROM b1_audit.audit_record WHERE action = 'failed'")
    assert failed == [(f"sap_b1_to_warehouse@{EU}", "3")]

    # fixed in SAP, replayed by the company's scoped flow name: its own connection, its own rows
    eu_sandbox.control("POST", "repair", {"entity": "Invoices", "keys": [3]})
    from airflow_provider_b1.sync import replay_failed

    replayed = replay_failed(flow.audit(), f"sap_b1_to_warehouse@{EU}").to_xcom()
    assert replayed["created"] == 1, replayed

    # one warehouse, two companies, each equal to its own SAP (counts and DocTotal sums)
    assert _differences(flow, flow.sap, HOME) == {}
    assert _differences(flow, eu_sandbox, EU) == {}
    invoices = dict(
        flow.query(f"SELECT company, count(*) FROM {WAREHOUSE_SCHEMA}.fact_sales_invoice GROUP BY 1")
    )
    assert invoices == {HOME: HOME_INVOICES, EU: EU_INVOICES}
    assert dict(flow.query(f"SELECT company, company_db FROM {WAREHOUSE_SCHEMA}.dim_company")) == {
        HOME: "SBODEMOUS",
        EU: EU_COMPANY_DB,
    }
    # a key both companies use is two rows, one per company
    shared = flow.query(
        f"SELECT count(*) FROM {WAREHOUSE_SCHEMA}.fact_sales_invoice a "
        f"JOIN {WAREHOUSE_SCHEMA}.fact_sales_invoice b ON a.doc_entry = b.doc_entry AND a.company < b.company"
    )[0][0]
    assert shared == EU_INVOICES

    # audit rows and checkpoints per company: the second company is its own scope of the flow
    created = dict(
        flow.query(
            "SELECT flow, count(*) FROM b1_audit.audit_record WHERE run_id = %s AND action = 'created' GROUP BY 1",
            (first.run_id,),
        )
    )
    assert created == {
        "sap_b1_to_warehouse": sum(flow.sap.truth(e)["count"] for e in ENTITIES),
        f"sap_b1_to_warehouse@{EU}": sum(eu_sandbox.truth(e)["count"] for e in ENTITIES) - 1,
    }
    scopes = {row[0] for row in flow.query(f"SELECT flow FROM {WAREHOUSE_SCHEMA}.sync_checkpoint")}
    assert scopes == {"sap_b1_to_warehouse", f"sap_b1_to_warehouse@{EU}"}
    assert all(r["ok"] for r in xcoms(DAG_ID, first.run_id)["values"]["reconcile:return_value"])

    # the second company's Service Layer down: only its tasks fail, the first company loads on
    set_connection(EU, {**eu_connection(eu_sandbox), "host": "https://127.0.0.1:9/b1s/v2/"})
    flow.sap.control("POST", "mutate", {"entity": "Invoices", "keys": [1]})
    second = dag_of(DAG_ID, retries=0).test()
    states = task_states(second)
    assert second.state == "failed"
    failed = {t for t, s in states.items() if s in ("failed", "upstream_failed")}
    assert failed, states
    assert all(t.startswith(f"{EU}.") for t in failed), states
    assert {s for t, s in states.items() if not t.startswith(f"{EU}.") and "_ranges" not in t} == {"success"}

    # ...reading incrementally from its own cursors: only the record changed since its first run
    sales = xcoms(DAG_ID, second.run_id)["values"]["load_sales:return_value"]
    invoices = sales["entities"]["Invoices"]
    assert invoices["mode"] == "incremental", invoices
    assert invoices["read"] == 1, invoices
    assert _differences(flow, flow.sap, HOME) == {}
    assert _differences(flow, eu_sandbox, EU) == {}  # the second company's rows untouched


def test_each_other_company_is_a_task_group_of_its_own_whatever_the_list(dag_of, monkeypatch):
    def companies_of(order: str | None) -> dict[str, set[str]]:
        if order is None:
            monkeypatch.delenv("B1_SAP_COMPANIES", raising=False)
        else:
            monkeypatch.setenv("B1_SAP_COMPANIES", order)
        found: dict[str, set[str]] = {}
        for task in dag_of(DAG_ID).tasks:
            conn_id = getattr(task, "sap_b1_conn_id", None) or task.partial_kwargs.get("sap_b1_conn_id")
            found.setdefault(task.task_id, set()).add(conn_id)
        return found

    # a task's cursor is its own XCom: the same task ids, on the same connection, whatever the list
    # holds and in whatever order; the default company's tasks sit in the DAG as they always did
    alone = companies_of(None)
    both = companies_of(f"{HOME},{EU}")
    assert both == companies_of(f"{EU},{HOME}")
    assert {task: ids for task, ids in both.items() if not task.startswith(f"{EU}.")} == alone
    assert set(alone) == {task.removeprefix(f"{EU}.") for task in both if task.startswith(f"{EU}.")}
    assert alone["load_master"] == {HOME}
    assert both[f"{EU}.load_master"] == {EU}
    assert companies_of(EU) == {task: ids for task, ids in both.items() if task.startswith(f"{EU}.")}
