"""looker_refresh end to end with dag.test() against the HTTPS Looker sandbox, and its schedule on the warehouse Assets."""

from __future__ import annotations

import logging

from dag_helpers import task_states, xcoms

from airflow_provider_b1.assets import WAREHOUSE_ASSETS

DAG_ID = "looker_refresh"


def _assets(condition) -> list:
    """The Assets of an Asset condition (``a | b | ...``), flattened."""
    if hasattr(condition, "objects"):
        return [asset for part in condition.objects for asset in _assets(part)]
    return [condition]


def test_looker_refresh_is_scheduled_on_any_of_the_four_warehouse_assets(dag_of):
    from airflow.sdk.definitions.asset import AssetAny

    refresh = dag_of(DAG_ID)
    condition = refresh.timetable.asset_condition
    assert isinstance(condition, AssetAny)  # any one group's load is reason enough
    scheduled = {(a.name, a.uri) for a in _assets(condition)}
    assert scheduled == {(a.name, a.uri) for a in WAREHOUSE_ASSETS.values()}
    assert len(scheduled) == 4

    # and those are exactly what the warehouse DAG's load tasks produce
    load = dag_of("sap_b1_to_warehouse")
    produced = {(o.name, o.uri) for task in load.tasks for o in task.outlets}
    assert produced == scheduled


def test_looker_refresh_triggers_the_datagroup_and_logs_no_secret_or_token(
    flow, dag_of, caplog, capsys, recorded_secrets
):
    caplog.set_level(logging.DEBUG)
    assert flow.looker.stats()["datagroup_triggers"] == []

    dr = dag_of(DAG_ID, retries=0).test()
    assert dr.state == "success", task_states(dr)
    states = task_states(dr)
    assert states["trigger_datagroups"] == "success"
    assert states["pdts_to_rebuild"] == "success"  # none requested: the rebuild is skipped

    triggers = flow.looker.stats()["datagroup_triggers"]
    assert {(t["id"], t["name"], t["field"]) for t in triggers} == {
        ("1", "b1_warehouse_datagroup", "triggered_at")
    }

    tokens = recorded_secrets.looker_tokens
    assert tokens, "the run never logged in to Looker"
    searched = recorded_secrets.assert_absent(
        caplog=caplog, capsys=capsys, secrets=[flow.looker.connection()["password"], *tokens]
    )
    assert searched > 10_000  # the run's logs really were captured
    payloads = xcoms(DAG_ID, dr.run_id)
    assert max(payloads["sizes"].values()) < 2048
    recorded_secrets.assert_absent(texts=[repr(payloads["values"])], secrets=tokens)
