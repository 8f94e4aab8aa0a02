"""Refresh Looker after the SAP Business One warehouse is loaded.

Runs whenever any warehouse table group (master data, sales, purchasing, finance) is marked
updated by the load. It triggers the configured datagroups, so dashboards built on them drop
their cache, and optionally rebuilds persistent derived tables, waiting for them in the
triggerer. Connection: ``looker_default`` (type ``looker_api``).

Params:
    ``datagroups``: datagroup ids or ``model::datagroup_name`` references.
    ``pdts``: ``model::view`` references of PDTs to rebuild (empty: none).
"""

from __future__ import annotations

import functools
import operator

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_b1.assets import WAREHOUSE_ASSETS
from airflow_provider_b1.operators.looker import LookerBuildPdtOperator, LookerTriggerDatagroupOperator

LOOKER_CONN_ID = "looker_default"
DEFAULT_DATAGROUPS = ["b1_warehouse::b1_warehouse_datagroup"]
#: PDTs of the starter LookML project (lookml/) that a run may rebuild, as ``model::view``.
KNOWN_PDTS = ["b1_warehouse::gl_account_monthly", "b1_warehouse::revenue_by_profit_center"]


@dag(
    dag_id="looker_refresh",
    description="Trigger Looker datagroups (and rebuild PDTs) after the SAP B1 warehouse load.",
    # Any one warehouse table group being updated is reason enough to refresh.
    schedule=functools.reduce(operator.or_, WAREHOUSE_ASSETS.values()),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    params={
        "datagroups": Param(DEFAULT_DATAGROUPS, type="array", description="Datagroup ids or model::name."),
        "pdts": Param([], type="array", description=f"PDTs to rebuild as model::view, e.g. {KNOWN_PDTS}."),
    },
    tags=["sap_b1", "looker", "warehouse"],
)
def looker_refresh():
    @task
    def pdts_to_rebuild(params=None) -> list[dict[str, str]]:
        """One mapped rebuild per requested PDT; none requested means the rebuild step is skipped."""
        wanted = []
        for ref in (params or {}).get("pdts") or []:
            model, sep, view = str(ref).partition("::")
            if not sep or not model or not view:
                raise ValueError(f"PDT reference {ref!r} must be model::view")
            wanted.append({"model": model, "view": view})
        return wanted

    trigger = LookerTriggerDatagroupOperator(
        task_id="trigger_datagroups",
        datagroups="{{ params.datagroups }}",
        looker_conn_id=LOOKER_CONN_ID,
    )
    rebuild = LookerBuildPdtOperator.partial(
        task_id="rebuild_pdt",
        deferrable=True,
        poll_interval=15,
        timeout=3600,
        looker_conn_id=LOOKER_CONN_ID,
    ).expand_kwargs(pdts_to_rebuild())
    trigger >> rebuild


looker_refresh()
