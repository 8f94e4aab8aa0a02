"""SAP Business One -> warehouse, daily: master data, then sales, purchasing and finance, then a reconciliation.

Each table group is one task that reads what changed in SAP since its last successful run and
loads it into the warehouse's star schema (schema ``sap_b1`` of the ``b1_warehouse_default``
connection, PostgreSQL; a ``sqlite`` connection gives the embedded demo). Every record read is
in the audit trail (``b1_audit_default``); failed ones can be replayed with ``b1_replay_failed``.
Each group marks its Asset updated, which refreshes Looker (``looker_refresh``).

Reload a period: trigger with **Since**/**Until**, or run a backfill over the dates from the UI
(each backfill run reads exactly its day). **Full refresh** re-reads everything; unchanged
records are recognised by their hash and left alone.

A first run, a **Full refresh** or a window (**Since**/**Until**, a backfill day) of a large entity
is split into ranges: documents by ``DocEntry``, business partners and items by ``UpdateDate``.
**plan_<group>** counts the entity (its window) and returns the ranges, **load_<group>_ranges** is
mapped over them (each range its own task on its own SAP session, spread over the workers), and
**load_<group>** then reads only what changed since the plan, moves the cursor (a window run
leaves it where it was) and deletes the ranges' checkpoints. A failed range is retried alone and
resumes after its last committed page. **Partitions** sets the number of ranges (0: one per
session once the entity holds **Partition threshold** records; 1: never split). An incremental
run plans nothing: the range task is skipped.

Settings a deployer changes without editing this file:

* the SAP connection's **Sessions for partitioned loads** (extra ``max_sessions``, default 4): the
  session slots a split load's ranges read on (range ``i`` on slot ``1 + i % max_sessions``; each
  session holds a licence). Sessions are cached per worker, so on one worker a load's ranges never
  hold more than that many, however many range tasks run;
* the environment variable ``B1_WAREHOUSE_RANGE_TASKS`` (default 4), read when the DAG is parsed:
  how many range tasks of one run may run at once (``max_active_tis_per_dagrun`` is fixed at parse
  time). Keep it equal to ``max_sessions``: more only makes tasks wait on a busy session; fewer
  leaves sessions idle. (``B1_SAP_SESSIONS`` is another setting: the ServiceTitan flow's writers.)
* ``B1_SAP_POOL``, read when the DAG is parsed: an Airflow pool the range tasks run in. Create it
  with as many slots as the licences loads may take: unlike the two settings above it holds across
  workers, groups and runs, and its size changes in the UI without a new parse;
* ``B1_PARTITION_THRESHOLD`` (default 50,000), read when the DAG is parsed: the default of the
  **Partition threshold** param, which a run can override from the trigger form.

After the master data is loaded, **check_deletions** compares SAP's keys of business partners,
items, G/L accounts and profit centres with the warehouse's (keys only) and marks the rows of
records deleted in SAP with ``deleted_at``; rows are never removed, and a record re-created with
the same key is restored by the next load. If SAP returns far fewer keys than the warehouse holds
(more than **Deletion max share** of an entity would be marked: a wrong company, a missing
permission), it marks nothing and fails. Documents are never deleted in SAP, only cancelled.

The last task compares SAP and the warehouse (counts, and DocTotal sums for documents; rows
marked deleted left out) and fails with a report on any difference.

**Several SAP companies.** Set ``B1_SAP_COMPANIES`` to their SAP connection ids, separated by
commas (``sap_b1_us,sap_b1_eu``); unset, the DAG loads ``sap_b1_default`` alone, with the tasks
above. With several, each company but ``sap_b1_default`` (whose tasks stay where they were, so
adding a company changes none of its task ids) gets the same tasks in a task group named after its
connection:
its own dependencies (a company whose SAP is down fails only its own tasks; the others load and
reconcile), its own cursors (each task's own XCom, so reordering the list hands no company
another's cursor), its own audit rows, checkpoints and replay (flow
``sap_b1_to_warehouse@<conn id>``), and its own rows: every warehouse table has a ``company``
column holding the connection id, and ``dim_company`` names its CompanyDB. The list is read when
the file is parsed, so the UI shows every company. The groups are built from the list rather than
mapped over it at run time: Airflow does not map a task (the key ranges of a split load) inside a
mapped task group, and ranges shared by every company would let one company's failure stop the
others' loads.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronDataIntervalTimetable, Param, dag

from airflow_provider_b1.assets import WAREHOUSE_GROUPS
from airflow_provider_b1.companies import Company, declared_companies, per_company
from airflow_provider_b1.sync import sync_params
from airflow_provider_b1.sync.partitions import DEFAULT_SESSIONS, DEFAULT_THRESHOLD
from airflow_provider_b1.transfers.sap_b1_to_warehouse import (
    DEFAULT_MAX_SHARE,
    SapB1ToWarehouseOperator,
    SapB1WarehouseDeletionCheckOperator,
    SapB1WarehousePlanOperator,
    SapB1WarehouseRangeOperator,
    SapB1WarehouseReconcileOperator,
    partitionable,
)
from airflow_provider_b1.webhooks.assets import sap_b1_asset

#: Range tasks of one run that may run at once (fixed at parse time); match the SAP connection's
#: ``max_sessions``, which caps the sessions (licences) the ranges hold.
SAP_SESSIONS = int(os.environ.get("B1_WAREHOUSE_RANGE_TASKS") or DEFAULT_SESSIONS)
#: The Airflow pool of the range tasks, when the deployment caps SAP sessions across workers.
SAP_POOL = os.environ.get("B1_SAP_POOL") or None
#: Default of the ``partition_threshold`` param: records from which a load is split into ranges.
PARTITION_THRESHOLD = int(os.environ.get("B1_PARTITION_THRESHOLD") or DEFAULT_THRESHOLD)


@dag(
    dag_id="sap_b1_to_warehouse",
    description="Load SAP Business One into the Postgres warehouse, then reconcile.",
    # Daily with data intervals (not trigger times): a backfill run then reads exactly its day.
    # Also within seconds of a SAP webhook about any of its entities, where b1-webhooks receives them.
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable("0 2 * * *", timezone="UTC"),
        assets=AssetAny(*(sap_b1_asset(entity) for group in WAREHOUSE_GROUPS.values() for entity in group)),
    ),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={
        **sync_params(),
        "deletion_max_share": Param(
            DEFAULT_MAX_SHARE,
            type="number",
            minimum=0.01,
            maximum=1,
            title="Deletion max share",
            description="The deletion check marks nothing and fails when more than this share of an "
            "entity's rows would be marked deleted. Raise it for one run when SAP really deleted that many.",
        ),
        "partitions": Param(
            0,
            type="integer",
            minimum=0,
            maximum=64,
            title="Partitions",
            description="Ranges a load that reads much of an entity (a first run, a full refresh, a window) is "
            "split into, each a task on its own SAP session. 0: one per session when the entity (its window) "
            "holds Partition threshold records or more; 1: never split.",
        ),
        "partition_threshold": Param(
            PARTITION_THRESHOLD,
            type="integer",
            minimum=1,
            title="Partition threshold",
            description="Records from which a load that reads much of an entity is split into one range per "
            "SAP session (when Partitions is 0).",
        ),
    },
    default_args={"retries": 2, "retry_delay": pendulum.duration(minutes=2)},
    tags=["sap_b1", "warehouse"],
    doc_md=__doc__,
)
def sap_b1_to_warehouse():
    per_company(declared_companies("B1_SAP_COMPANIES"), load_company)


def load_company(sap: Company, prefix: str) -> None:
    """One SAP company's tasks (``prefix``: its task group's, for the ids tasks name each other by)."""
    company = sap.sap_b1_conn_id
    # Each group's task marks its Asset updated (the operator's outlet), which refreshes Looker. A
    # group holding stamped entities may have a large load split: plan, ranges (mapped), then the
    # load, which also runs when the plan is empty and the ranges are skipped.
    loads = {}
    plans = {}
    for group, entities in WAREHOUSE_GROUPS.items():
        if not any(partitionable(entity) for entity in entities):
            loads[group] = SapB1ToWarehouseOperator(
                task_id=f"load_{group}", group=group, sap_b1_conn_id=company
            )
            continue
        plan = SapB1WarehousePlanOperator(
            task_id=f"plan_{group}",
            group=group,
            sap_b1_conn_id=company,
            load_task_id=f"{prefix}load_{group}",
            partitions="{{ params.partitions }}",
            threshold="{{ params.partition_threshold }}",
        )
        pool = {"pool": SAP_POOL} if SAP_POOL else {}
        ranges = SapB1WarehouseRangeOperator.partial(
            task_id=f"load_{group}_ranges",
            sap_b1_conn_id=company,
            max_active_tis_per_dagrun=SAP_SESSIONS,
            **pool,
        ).expand(key_range=plan.output)
        loads[group] = SapB1ToWarehouseOperator(
            task_id=f"load_{group}",
            group=group,
            sap_b1_conn_id=company,
            plan_task_id=plan.task_id,
            trigger_rule="none_failed",
        )
        plans[group] = plan
        ranges >> loads[group]
    check_deletions = SapB1WarehouseDeletionCheckOperator(
        task_id="check_deletions", sap_b1_conn_id=company, max_share="{{ params.deletion_max_share }}"
    )
    reconcile = SapB1WarehouseReconcileOperator(task_id="reconcile", sap_b1_conn_id=company)
    # Partners and items first, so documents rarely meet a partner the warehouse does not know.
    for group, load in loads.items():
        if group != "master":
            loads["master"] >> plans.get(group, load)
            load >> reconcile
    # Master data deleted in SAP is marked before reconciliation counts the warehouse's live rows.
    loads["master"] >> check_deletions >> reconcile


sap_b1_to_warehouse()
