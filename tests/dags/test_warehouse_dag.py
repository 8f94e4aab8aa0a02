"""sap_b1_to_warehouse end to end with dag.test(): the real DAG file, the HTTPS SAP sandbox, a real PostgreSQL.

The warehouse must equal SAP after a run (the reconcile task says so, and the sandbox's truth
agrees), and running again in every way an operator can (a next run, a re-run of the same run,
a cleared task, a since/until reload, a backfill run of an already loaded day) must change no
row, with the audit trail calling those records unchanged.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import pytest
from dag_helpers import INVOICES, backfill_test, rerun_task, task_states, xcoms

from airflow_provider_b1.assets import WAREHOUSE_GROUPS
from airflow_provider_b1.warehouse.entities import ENTITIES

DAG_ID = "sap_b1_to_warehouse"
LOADS = [f"load_{group}" for group in WAREHOUSE_GROUPS]
# Every group holding stamped entities plans ranges for a large load; small ones split nothing.
PLANS = [f"plan_{group}" for group in WAREHOUSE_GROUPS]
RANGES = [f"load_{group}_ranges" for group in WAREHOUSE_GROUPS]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def test_a_run_loads_every_entity_equal_to_sap_reconciles_and_logs_no_secret(
    flow, dag_of, caplog, capsys, recorded_secrets
):
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    dr = dag_of(DAG_ID, retries=0).test()
    assert dr.state == "success", task_states(dr)
    assert task_states(dr) == {
        **dict.fromkeys([*LOADS, *PLANS, "check_deletions", "reconcile"], "success"),
        **dict.fromkeys(RANGES, "skipped"),
    }

    assert flow.differences() == {}
    assert flow.figures("Invoices")[0] == INVOICES

    # the reconcile task's own verdict, entity by entity
    results = xcoms(DAG_ID, dr.run_id)["values"]["reconcile:return_value"]
    assert {r["entity"] for r in results} == set(ENTITIES)
    assert all(r["ok"] for r in results), results
    invoices = next(r for r in results if r["entity"] == "Invoices")
    assert invoices["sap_count"] == invoices["warehouse_count"] == INVOICES

    # every record read has its trail: created, once
    counts = flow.audit_counts(dr.run_id)
    assert counts["failed"] == 0
    assert counts["created"] == sum(flow.sap.truth(e)["count"] for e in ENTITIES)
    elapsed = time.monotonic() - started

    # no password or session id in any log line (caplog, stdout/stderr, task log files)
    sessions = recorded_secrets.sap_session_ids
    assert sessions, "the run never logged in to SAP"
    searched = recorded_secrets.assert_absent(
        caplog=caplog, capsys=capsys, secrets=[flow.sap.connection()["password"], *sessions]
    )
    assert searched > 10_000  # the run's logs really were captured

    # XComs carry small summaries (cursors, counts), never records
    payloads = xcoms(DAG_ID, dr.run_id)
    assert set(payloads["sizes"]) == {
        f"{t}:return_value" for t in [*LOADS, *PLANS, "check_deletions", "reconcile"]
    }
    assert max(payloads["sizes"].values()) < 4096, payloads["sizes"]
    text = repr(payloads["values"])
    for field in ("CardName", "CardCode", "DocumentLines", "ItemDescription", "raw"):
        assert field not in text
    recorded_secrets.assert_absent(texts=[text], secrets=sessions)
    print(f"whole run: {elapsed:.1f} s")


def test_running_again_rerunning_a_task_reloading_a_window_and_backfilling_change_nothing(flow, dag_of):
    first = dag_of(DAG_ID, retries=0).test(logical_date=_now() - dt.timedelta(minutes=5))
    assert first.state == "success", task_states(first)
    before = flow.digest()
    assert before["fact_sales_invoice"][0] == INVOICES
    total = sum(flow.sap.truth(e)["count"] for e in ENTITIES)

    def assert_nothing_changed(run_id: str, task_id: str | None = None, *, at_least: int = 1) -> dict:
        assert flow.digest() == before
        assert flow.differences() == {}
        counts = flow.audit_counts(run_id, task_id)
        assert (counts["created"], counts["updated"], counts["failed"]) == (0, 0, 0), counts
        assert counts["unchanged"] >= at_least, counts
        return counts

    # 1. the next run continues from the cursors and finds nothing new
    dag = dag_of(DAG_ID, retries=0)
    second = dag.test(logical_date=_now())
    assert second.state == "success", task_states(second)
    assert_nothing_changed(second.run_id)

    # 2. clear one task of the first run and run it again: its next try reads every record again
    #    (no run before it, so no cursor) and merges them onto themselves
    assert rerun_task(dag, first, "load_sales") == "success"
    sales = sum(flow.sap.truth(e)["count"] for e in WAREHOUSE_GROUPS["sales"])
    retried = flow.audit_rows("run_id = %s AND task_id = 'load_sales'", (first.run_id,))
    assert [r["try_number"] for r in retried] == [1] * sales + [2] * sales
    assert {r["action"] for r in retried if r["try_number"] == 2} == {"unchanged"}
    assert flow.digest() == before

    # 3. the same run again (dag.test of the same logical date replaces the run and runs every task)
    again = dag_of(DAG_ID, retries=0).test(logical_date=second.logical_date)
    assert again.state == "success", task_states(again)
    assert_nothing_changed(again.run_id)

    # 4. a reload of a window covering every loaded day (since/until): every record read again, unchanged
    reload = dag_of(DAG_ID, retries=0).test(
        run_conf={"since": (_now() - dt.timedelta(days=800)).isoformat(), "until": _now().isoformat()}
    )
    assert reload.state == "success", task_states(reload)
    assert_nothing_changed(reload.run_id, at_least=total)
    assert flow.audit_counts(reload.run_id)["unchanged"] == total

    # 5. a backfill run of an already loaded day reads exactly that day, and changes nothing
    day = dt.datetime.combine(dt.date.today() - dt.timedelta(days=20), dt.time(3), tzinfo=dt.timezone.utc)
    backfill = backfill_test(dag_of(DAG_ID, retries=0), day)
    assert backfill.state == "success", task_states(backfill)
    assert str(backfill.run_type) in ("backfill", "DagRunType.BACKFILL_JOB")
    counts = assert_nothing_changed(backfill.run_id)
    assert counts["unchanged"] < total  # a day, not everything
    windows = xcoms(DAG_ID, backfill.run_id)["values"]["load_sales:return_value"]
    assert windows["entities"]["Invoices"]["mode"] == "window"


def test_a_partner_and_an_item_deleted_in_sap_are_marked_by_the_next_run_and_restored_when_recreated(
    flow, dag_of
):
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.hooks.sap_b1.literals import entity_path

    sap = SapB1Hook("sap_b1_default")
    partner = {"CardCode": "CGONE-1", "CardName": "Gone Partner", "CardType": "cCustomer"}
    item = {"ItemCode": "IGONE-1", "ItemName": "Gone item"}
    sap.create("BusinessPartners", dict(partner))
    sap.create("Items", dict(item))
    first = dag_of(DAG_ID, retries=0).test(logical_date=_now() - dt.timedelta(minutes=5))
    assert first.state == "success", task_states(first)

    def marks() -> dict[str, bool]:
        rows = flow.query(
            "SELECT card_code, deleted_at IS NOT NULL FROM sap_b1.dim_business_partner WHERE card_code = 'CGONE-1' "
            "UNION ALL SELECT item_code, deleted_at IS NOT NULL FROM sap_b1.dim_item WHERE item_code = 'IGONE-1'"
        )
        return dict(rows)

    assert marks() == {"CGONE-1": False, "IGONE-1": False}

    # deleted in SAP through the Service Layer: the next run marks both, and still reconciles
    sap.request("DELETE", entity_path("BusinessPartners", "CGONE-1"))
    sap.request("DELETE", entity_path("Items", "IGONE-1"))
    second = dag_of(DAG_ID, retries=0).test(logical_date=_now() - dt.timedelta(minutes=2))
    assert second.state == "success", task_states(second)
    assert marks() == {"CGONE-1": True, "IGONE-1": True}
    assert flow.differences() == {}
    checked = {c["entity"]: c for c in xcoms(DAG_ID, second.run_id)["values"]["check_deletions:return_value"]}
    assert checked["BusinessPartners"]["first_marked"] == ["CGONE-1"]
    assert checked["Items"]["first_marked"] == ["IGONE-1"]
    log = flow.query("SELECT record_key, action, run_id FROM sap_b1.deletion_log ORDER BY id")
    assert log == [("CGONE-1", "deleted", second.run_id), ("IGONE-1", "deleted", second.run_id)]
    # and in the audit trail (the warehouse's own database: in the marking's transaction)
    deleted = flow.audit_rows("run_id = %s AND action = 'deleted'", (second.run_id,))
    assert {(r["entity"], r["key"], r["task_id"]) for r in deleted} == {
        ("BusinessPartners", "CGONE-1", "check_deletions"),
        ("Items", "IGONE-1", "check_deletions"),
    }
    assert all(r["error"].startswith("not among SAP's ") for r in deleted), deleted

    # re-created with the same keys: the next run's incremental load restores them
    sap.create("BusinessPartners", dict(partner))
    sap.create("Items", dict(item))
    third = dag_of(DAG_ID, retries=0).test(logical_date=_now())
    assert third.state == "success", task_states(third)
    assert marks() == {"CGONE-1": False, "IGONE-1": False}
    assert [
        r[:2] for r in flow.query("SELECT record_key, action FROM sap_b1.deletion_log ORDER BY id")[2:]
    ] == [
        ("CGONE-1", "restored"),
        ("IGONE-1", "restored"),
    ]
    restored = flow.audit_rows("run_id = %s AND source_key IN ('CGONE-1', 'IGONE-1')", (third.run_id,))
    assert {(r["key"], r["action"]) for r in restored} == {("CGONE-1", "restored"), ("IGONE-1", "restored")}
    history = flow.audit_rows("source_key = 'IGONE-1'")
    assert [r["action"] for r in history] == ["created", "deleted", "restored"]
    master = xcoms(DAG_ID, third.run_id)["values"]["load_master:return_value"]
    assert (master["restored"], master["entities"]["Items"]["restored"]) == (2, 1)
    assert flow.differences() == {}


def test_check_deletions_follows_the_master_load_precedes_reconcile_and_covers_what_sap_deletes(dag_of):
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1WarehouseDeletionCheckOperator
    from airflow_provider_b1.warehouse.entities import DELETABLE

    dag = dag_of(DAG_ID)
    check = dag.get_task("check_deletions")
    assert check.upstream_task_ids == {"load_master"}
    assert check.downstream_task_ids == {"reconcile"}
    assert (
        check.entities == list(DELETABLE) == ["BusinessPartners", "Items", "ChartOfAccounts", "ProfitCenters"]
    )
    assert dag.params["deletion_max_share"] == 0.5
    # documents are cancelled in SAP, never deleted: the check refuses them when the DAG is parsed
    with pytest.raises(ValueError, match="SAP does not delete Invoices"):
        SapB1WarehouseDeletionCheckOperator(task_id="x", entities=["Invoices"])
