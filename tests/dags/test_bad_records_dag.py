"""Bad records in SAP: sap_b1_to_warehouse loads the rest, names them, fails its reconciliation; b1_replay_failed fixes it.

Both DAGs run from their files with dag.test() against the HTTPS SAP sandbox and PostgreSQL.
"""

from __future__ import annotations

from dag_helpers import INVOICES, task_states

DAG_ID = "sap_b1_to_warehouse"
CORRUPT = {"11": "missing_partner", "12": "null_amount", "13": "bad_date"}


def test_bad_invoices_are_named_the_rest_loads_reconcile_fails_and_a_replay_after_repair_loads_them(
    flow, dag_of, capsys
):
    for key, kind in CORRUPT.items():
        assert flow.sap.control("POST", "corrupt", {"entity": "Invoices", "keys": [int(key)], "kind": kind})[
            "keys"
        ] == [int(key)]

    dr = dag_of(DAG_ID, retries=0).test()
    states = task_states(dr)
    assert dr.state == "failed"
    # one bad record never sinks its batch: every load succeeded, only the reconciliation fails
    # (a company this small is not split into key ranges: every plan is empty, its ranges skipped)
    split = {
        task: state for task, state in states.items() if task.startswith("plan_") or task.endswith("_ranges")
    }
    assert split
    assert all(
        state == ("success" if task.startswith("plan_") else "skipped") for task, state in split.items()
    )
    assert {task: state for task, state in states.items() if task not in split} == {
        "load_master": "success",
        "load_sales": "success",
        "load_purchasing": "success",
        "load_finance": "success",
        "check_deletions": "success",
        "reconcile": "failed",
    }

    # the audit trail names each failed record with a clear reason
    failed = {r["key"]: r["error"] for r in flow.audit_rows("action = 'failed'")}
    assert failed.keys() == {"12", "13"}
    assert failed["12"] == "DocTotal is null"
    assert failed["13"].startswith("DocDate '2024-13-45")
    assert failed["13"].endswith("is not a date")
    # an invoice whose partner is unknown is still loaded (against an inferred partner)
    assert [r["action"] for r in flow.audit_rows("source_key = '11' AND source_entity = 'Invoices'")] == [
        "created"
    ]

    # the rest of their page (and of every page) is in the warehouse
    keys = {k for (k,) in flow.query("SELECT doc_entry FROM sap_b1.fact_sales_invoice")}
    assert len(keys) == INVOICES - 2
    assert keys == set(range(1, INVOICES + 1)) - {12, 13}

    # the reconciliation says which entity differs, by how much, and which keys are missing
    out = capsys.readouterr().out
    assert "The warehouse differs from SAP for 1 of 11 entities" in out
    assert f"Invoices (all records): SAP {INVOICES} records, warehouse {INVOICES - 2}" in out
    assert "2 recorded as failed" in out
    assert "12: recorded as failed: DocTotal is null" in out
    assert "13: recorded as failed: DocDate" in out
    assert flow.differences().keys() == {"Invoices"}

    # fix the cause in SAP, then replay the failed records through the flow's own write path
    assert sorted(flow.sap.control("POST", "repair", {"entity": "Invoices"})["keys"]) == [11, 12, 13]
    replay = dag_of("b1_replay_failed").test(run_conf={"flow": DAG_ID, "dry_run": False})
    assert replay.state == "success", task_states(replay)

    assert flow.differences() == {}
    assert flow.audit_rows("action = 'failed' AND dag_id = 'b1_replay_failed'") == []
    for key in ("12", "13"):
        history = flow.audit_rows("source_entity = 'Invoices' AND source_key = %s", (key,))
        assert [(h["dag_id"], h["action"], h["attempt"]) for h in history] == [
            (DAG_ID, "failed", 1),
            ("b1_replay_failed", "created", 2),
        ]
    audit = flow.audit()
    assert audit.records_for_replay(DAG_ID) == []
