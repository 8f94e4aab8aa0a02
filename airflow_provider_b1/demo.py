"""``b1-demo``: every example flow end to end against the bundled sandboxes.

1. starts the SAP Business One and Looker sandboxes on loopback (HTTPS, self-signed, trusted
   through their CA bundle like a real on-premises Service Layer);
2. reads every SAP entity through :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`;
3. runs ``sap_b1_to_warehouse`` with ``dag.test()`` into an embedded SQLite warehouse (or the
   PostgreSQL database given with ``--warehouse``), then ``looker_refresh`` and a dry run of
   ``b1_replay_failed``;
4. starts the ServiceTitan sandbox and runs ``servicetitan_to_sap_b1`` twice (the second run
   posts nothing): customers, invoices and payments into SAP's receivables, reconciled partner by
   partner;
5. starts the Salesforce sandbox and runs ``sap_b1_salesforce`` twice: accounts linked to
   partners, won deals made sales orders, SAP's balances shown in Salesforce, both sides
   reconciled; the second run writes nothing on either side;
6. prints what moved and checks that the warehouse equals SAP, entity by entity.

Airflow's home is ``.b1-demo/`` in the current folder unless ``AIRFLOW_HOME`` is set; its
metadata database is SQLite there. Exits non-zero when any flow fails or any figure differs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENTITIES = (
    "BusinessPartners",
    "Items",
    "ChartOfAccounts",
    "ProfitCenters",
    "Dimensions",
    "Orders",
    "Invoices",
    "DeliveryNotes",
    "IncomingPayments",
    "PurchaseOrders",
    "PurchaseInvoices",
    "VendorPayments",
    "JournalEntries",
)
SAP_PASSWORD = "manager-secret-1"  # the sandbox's demo user, not a real credential
LOOKER_ID, LOOKER_SECRET = "looker-client-id", "looker-client-secret-1"
DAGS_FOLDER = Path(__file__).resolve().parents[1] / "dags"


def _prepare_home(warehouse: str | None) -> Path:
    """Point Airflow at the demo home before anything imports it."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(Path.cwd() / ".b1-demo"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("B1_SESSION_CACHE_DIR", str(home / "b1-sessions"))
    if warehouse:
        os.environ["AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT"] = warehouse
        os.environ["AIRFLOW_CONN_B1_AUDIT_DEFAULT"] = warehouse
    else:
        # A fresh embedded warehouse each time, so the figures below are this run's (the cursors
        # of earlier runs stay in Airflow: the flow sees that this warehouse holds nothing yet and
        # reads everything). The audit trail lives in the same file, so every page and its trail
        # commit in one transaction.
        for name in ("warehouse.db", "warehouse.db-wal", "warehouse.db-shm", "audit.db"):
            (home / name).unlink(missing_ok=True)
        embedded = json.dumps({"conn_type": "sqlite", "host": str(home / "warehouse.db")})
        os.environ["AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT"] = embedded
        os.environ["AIRFLOW_CONN_B1_AUDIT_DEFAULT"] = embedded
    return home


def _migrate() -> None:
    print("Preparing Airflow's metadata database (airflow db migrate) ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def read_every_entity(conn_id: str = "sap_b1_default") -> dict[str, int]:
    """Stream every SAP entity through the hook and return the record count per entity."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    return {entity: sum(len(page) for page in hook.iter_pages(entity, select=None)) for entity in ENTITIES}


def _load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / f"{dag_id}.py"))
    if bag.import_errors:
        raise SystemExit(f"{dag_id} does not import: {bag.import_errors}")
    return bag.get_dag(dag_id)


def _run_dag(dag_id: str, **conf: Any) -> Any:
    started = time.perf_counter()
    run = _load_dag(dag_id).test(run_conf=conf or None)
    print(f"  {dag_id}: {run.state} in {time.perf_counter() - started:.1f} s")
    return run


def _control(served: Any, path: str) -> dict:
    import requests

    return requests.get(f"{served.base_url}/_sandbox/{path}", verify=served.ca_path, timeout=30).json()


def _warehouse_report(sap: Any, run: Any) -> bool:
    """Print SAP's figures beside the warehouse's, and the audit trail's actions; True when equal."""
    from airflow_provider_b1.assets import WAREHOUSE_GROUPS
    from airflow_provider_b1.sync import AuditTrail
    from airflow_provider_b1.warehouse.entities import entity_spec
    from airflow_provider_b1.warehouse.loader import open_loader

    equal = True
    print(f"\n  {'entity':<18} {'SAP':>8} {'warehouse':>10} {'SAP DocTotal':>16} {'warehouse DocTotal':>19}")
    with open_loader("b1_warehouse_default") as loader:
        for entity in (e for group in WAREHOUSE_GROUPS.values() for e in group):
            truth = _control(sap, f"truth/{entity}")
            count, total = loader.stats(entity_spec(entity))
            sap_total = truth.get("doc_total_sum")
            wh_total = f"{total:.2f}" if total is not None else None
            same = count == truth["count"] and (sap_total is None or sap_total == wh_total)
            equal &= same
            print(
                f"  {entity:<18} {truth['count']:>8} {count:>10} {sap_total or '':>16} {wh_total or '':>19}"
                f"{'' if same else '   <- differs'}"
            )
    audit = AuditTrail()
    try:
        counts = audit.counts_for_run(run.dag_id, run.run_id)
    finally:
        audit.close()
    print("  audit trail of the run: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return equal


def _forget_earlier_runs(dag_id: str) -> None:
    """Forget a DAG's runs of earlier demos. Needed only with ``--warehouse``: the audit trail (and
    the customer mapping table) then live in that database and outlive the demo, so the checkpoints
    of the earlier demo's reads vouch for its cursors although this demo's sandboxes and SAP are new.
    The embedded audit trail is new with every demo, and the engine reads everything from the
    beginning when an API target's audit trail keeps no checkpoint behind a cursor."""
    from airflow.api.common.delete_dag import delete_dag
    from airflow.exceptions import DagNotFound

    with contextlib.suppress(DagNotFound):  # the first demo in this Airflow home has none
        delete_dag(dag_id)


def _servicetitan_report(run: Any, *, expect_new: bool) -> bool:
    """What each stream of the ServiceTitan flow did, from the audit trail; the reconcile task
    (the DAG's last) already compared SAP with ServiceTitan partner by partner."""
    from airflow_provider_b1.sync.audit import AuditTrail

    with AuditTrail("b1_audit_default") as audit:
        for stream in ("customers", "invoices", "payments"):
            counts = audit.counts_for_run(run.dag_id, run.run_id, task_id=stream)
            shown = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
            print(f"  {stream:<10} {shown or 'nothing read'}")
            if counts["failed"] or (not expect_new and counts["created"]):
                return False
    print("  reconcile: SAP holds ServiceTitan's receivables, partner by partner")
    return True


def _salesforce_report(run: Any, writes: tuple[int, int], *, expect_new: bool) -> bool:
    """What each task of ``sap_b1_salesforce`` did, from the audit trail, and what Salesforce
    counted; the reconcile task (the DAG's last) already compared both sides."""
    from airflow_provider_b1.sync.audit import AuditTrail

    quiet = True
    with AuditTrail("b1_audit_default") as audit:
        for task_id in (
            "accounts.Account",
            "accounts.BusinessPartners",
            "orders.Opportunity",
            "balances.Invoices",
            "balances.IncomingPayments",
        ):
            counts = audit.counts_for_run(run.dag_id, run.run_id, task_id=task_id)
            shown = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
            print(f"  {task_id:<27} {shown or 'nothing read'}")
            if counts["failed"]:
                return False
            quiet &= not (counts["created"] or counts["updated"])
    calls, records = writes
    print(f"  Salesforce written: {records} records in {calls} calls")
    if not expect_new and (not quiet or calls):
        print("  <- the second run wrote something: it should have found nothing to do")
        return False
    print("  reconcile: " + ("accounts, orders and balances agree" if run.state == "success" else "differs"))
    return True


def _salesforce_writes(served: Any) -> tuple[int, int]:
    stats = _control(served, "stats")
    writes = ("collections_update", "collections_upsert", "collections_create", "upsert_one")
    calls = sum(n for kind, n in stats["calls"].items() if kind in writes)
    return calls, sum(stats["records_written"].values())


def _forget_salesforce_links() -> None:
    """With ``--warehouse`` the links and agreed values outlive the demo in that database; the
    new sandboxes must be linked afresh."""
    from airflow_provider_b1.hooks.salesforce import SalesforceHook
    from airflow_provider_b1.sync.pairs import PairLedger
    from airflow_provider_b1.utils.sql import open_database

    hook = SalesforceHook()
    ledger = PairLedger(open_database("b1_audit_default"), "b1_audit", f"salesforce:{hook.org_id}")
    try:
        ledger.forget()
    finally:
        ledger.close()
        hook.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="b1-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000, help="invoices the SAP sandbox generates")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warehouse",
        help="an Airflow connection URI or JSON for a PostgreSQL warehouse (default: embedded SQLite)",
    )
    args = parser.parse_args(argv)

    home = _prepare_home(args.warehouse)
    _migrate()
    from airflow_provider_b1.sandbox.looker import create_app as looker_app
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig
    from airflow_provider_b1.sandbox.sap import create_app as sap_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    sap = serve_in_thread(sap_app(SapSandboxConfig(seed=args.seed, invoices=args.invoices)), tls=True)
    looker = serve_in_thread(looker_app(), tls=True)
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig
    from airflow_provider_b1.sandbox.servicetitan import create_app as servicetitan_app

    st_config = ServiceTitanSandboxConfig(seed=args.seed, customers=150, invoices=800)
    servicetitan = serve_in_thread(servicetitan_app(st_config), tls=True)
    from airflow_provider_b1.sandbox.salesforce import SalesforceSandboxConfig
    from airflow_provider_b1.sandbox.salesforce import create_app as salesforce_app

    sf_config = SalesforceSandboxConfig(seed=args.seed, accounts=60, opportunities=120)
    salesforce = serve_in_thread(salesforce_app(sf_config), tls=True)
    ok = True
    try:
        os.environ["AIRFLOW_CONN_SAP_B1_DEFAULT"] = json.dumps(
            {
                "conn_type": "sap_b1",
                "host": f"{sap.base_url}/b1s/v2",
                "schema": "SBODEMOUS",
                "login": "manager",
                "password": SAP_PASSWORD,
                "extra": {"ca_bundle": str(sap.ca_path), "page_size": 500, "timezone": "America/Chicago"},
            }
        )
        os.environ["AIRFLOW_CONN_LOOKER_DEFAULT"] = json.dumps(
            {
                "conn_type": "looker_api",
                "host": looker.base_url,
                "login": LOOKER_ID,
                "password": LOOKER_SECRET,
                "extra": {"ca_bundle": str(looker.ca_path)},
            }
        )
        print(f"\nSAP Business One sandbox at {sap.base_url}/b1s/v2, Looker sandbox at {looker.base_url}")
        started = time.perf_counter()
        counts = read_every_entity()
        print(f"\n1. Every SAP entity read through SapB1Hook in {time.perf_counter() - started:.1f} s:")
        for entity, n in counts.items():
            print(f"  {entity:<18} {n:>8}")

        print("\n2. SAP Business One -> warehouse -> Looker:")
        run = _run_dag("sap_b1_to_warehouse")
        ok &= run.state == "success"
        ok &= _warehouse_report(sap, run)
        again = _run_dag("sap_b1_to_warehouse")
        ok &= again.state == "success"
        print("  (the second run found nothing new: see its audit trail)")
        ok &= _warehouse_report(sap, again)
        refresh = _run_dag("looker_refresh")
        ok &= refresh.state == "success"
        triggers = _control(looker, "stats").get("datagroup_triggers", [])
        print(
            f"  Looker datagroups triggered: {', '.join(str(t.get('name', t.get('id'))) for t in triggers)}"
        )
        ok &= bool(triggers)
        replay = _run_dag("b1_replay_failed", flow="sap_b1_to_warehouse", dry_run=True)
        ok &= replay.state == "success"

        print(f"\n3. ServiceTitan (sandbox at {servicetitan.base_url}) -> SAP Business One receivables:")
        os.environ["AIRFLOW_CONN_SERVICETITAN_DEFAULT"] = json.dumps(
            {
                "conn_type": "servicetitan",
                "login": st_config.client_id,
                "password": st_config.client_secret,
                "extra": {
                    "environment": "integration",
                    "tenant_id": st_config.tenant_id,
                    "app_key": st_config.app_key,
                    "api_url": servicetitan.base_url,
                    "auth_url": servicetitan.base_url,
                    "ca_bundle": str(servicetitan.ca_path),
                },
            }
        )
        os.environ.setdefault("B1_SERVICETITAN_CACHE_DIR", str(home / "servicetitan-tokens"))
        if args.warehouse:
            _forget_earlier_runs("servicetitan_to_sap_b1")
        for attempt in ("first", "second"):
            posted = _run_dag("servicetitan_to_sap_b1")
            ok &= posted.state == "success"
            ok &= _servicetitan_report(posted, expect_new=attempt == "first")

        print(f"\n4. Salesforce (sandbox at {salesforce.base_url}) <-> SAP Business One:")
        os.environ["AIRFLOW_CONN_B1_SALESFORCE_DEFAULT"] = json.dumps(
            {
                "conn_type": "b1_salesforce",
                "host": salesforce.base_url,
                "login": sf_config.client_id,
                "password": sf_config.client_secret,
                "extra": {"api_version": "62.0", "ca_bundle": str(salesforce.ca_path)},
            }
        )
        os.environ.setdefault("B1_SALESFORCE_CACHE_DIR", str(home / "salesforce-tokens"))
        os.environ.setdefault("B1_SALESFORCE_MAPPING", str(DAGS_FOLDER / "salesforce_mapping.yaml"))
        if args.warehouse:
            _forget_earlier_runs("sap_b1_salesforce")
            _forget_salesforce_links()
        for attempt in ("first", "second"):
            before = _salesforce_writes(salesforce)
            synced = _run_dag("sap_b1_salesforce")
            after = _salesforce_writes(salesforce)
            ok &= synced.state == "success"
            ok &= _salesforce_report(
                synced, (after[0] - before[0], after[1] - before[1]), expect_new=attempt == "first"
            )

        stats = _control(sap, "stats")
        print(f"\nSAP sandbox served {stats['requests_total']} requests with {stats['logins']} login(s).")
        print(f"Airflow home: {home}")
    finally:
        gc.collect()  # lets keep-alive connections close so the servers stop at once
        sap.stop()
        looker.stop()
        servicetitan.stop()
        salesforce.stop()
    print(
        "\nAll flows finished: the warehouse equals SAP, SAP holds ServiceTitan's receivables, and "
        "Salesforce and SAP agree both ways."
        if ok
        else "\nSomething differs: see above."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
