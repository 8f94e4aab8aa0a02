"""A warehouse load run with ``dag.test()`` and OpenLineage enabled: the task succeeds and its
OpenLineage events carry the SAP entity set it read and the SQLite tables it wrote.

The OpenLineage provider decides once per process, when Airflow loads its plugin, whether lineage
is enabled (it is only when a transport is configured), so the run happens in a process of its own
with the file transport set; the events are read back from that file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

DAG = """
import datetime as dt

from airflow.sdk import dag

from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1ToWarehouseOperator


@dag(dag_id="b1_lineage", schedule=None, start_date=dt.datetime(2024, 1, 1))
def b1_lineage():
    SapB1ToWarehouseOperator(
        task_id="load_invoices",
        entities=["Invoices"],
        sap_b1_conn_id="lineage_sap",
        warehouse_conn_id="lineage_warehouse",
        audit_conn_id="lineage_warehouse",
        writers=1,
        retries=0,
    )


DAG = b1_lineage()
"""

RUN = """
import importlib.util
import sys

spec = importlib.util.spec_from_file_location("b1_lineage_dag", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
run = module.DAG.test()
print("RUN STATE", run.state)
"""


def test_a_load_with_openlineage_enabled_succeeds_and_its_events_name_sap_and_the_warehouse_tables(
    sap_sandbox, airflow_db, tmp_path
):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "b1_lineage.py").write_text(DAG)
    events_file = tmp_path / "openlineage.jsonl"
    warehouse = tmp_path / "warehouse.db"
    bundles = [
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {},
        },
        {
            "name": "b1-lineage",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(folder), "refresh_interval": 0},
        },
    ]
    env = {
        **os.environ,
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "b1_tests",
        "AIRFLOW_CONN_LINEAGE_SAP": json.dumps(sap_sandbox.connection()),
        "AIRFLOW_CONN_LINEAGE_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
    }
    env.pop("OPENLINEAGE_DISABLED", None)

    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RUN), str(folder / "b1_lineage.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "RUN STATE success" in done.stdout, output[-4000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    task_events = {e["eventType"]: e for e in events if e["job"]["name"] == "b1_lineage.load_invoices"}
    assert set(task_events) >= {"START", "COMPLETE"}, [(e["eventType"], e["job"]["name"]) for e in events]

    sap = f"sap-b1://{sap_sandbox.base_url.split('://')[1]}/SBODEMOUS"
    sqlite = f"sqlite://{os.path.realpath(warehouse)}"
    for kind in ("START", "COMPLETE"):
        event = task_events[kind]
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [(sap, "Invoices")], kind
        assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [
            (sqlite, "fact_sales_invoice"),
            (sqlite, "fact_sales_invoice_line"),
            (sqlite, "dim_business_partner"),
        ], kind
