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
6. starts the Microsoft Teams sandbox and runs ``sap_b1_to_teams`` twice: purchase orders,
   purchase invoices and payments as Adaptive Cards to the channels and people
   ``dags/teams_routing.yaml`` names (webhook and bot); the second run sends nothing;
7. switches on an approval procedure for purchase orders of 10,000 or more, posts three such
   orders (SAP keeps them as drafts) and runs ``sap_b1_approvals``: one approval request each in
   the approver's Teams chat, answered in process as the Airflow UI would (approve, approve,
   reject), each decision written to SAP by its approver and the approved drafts added as
   documents; a second run asks nobody;
8. prints what moved and checks that the warehouse equals SAP, entity by entity.

Airflow's home is ``.b1-demo/`` in the current folder unless ``AIRFLOW_HOME`` is set; its
metadata database is SQLite there. The console shows what the demo does and its figures;
Airflow's own logs and the tasks' logs go to ``demo.log`` in that home (``--verbose`` shows
them instead). Every demo starts afresh: a new metadata database (a copy of the one migrated
the first time; in an ``AIRFLOW_HOME`` of your own, the demo's DAG runs are deleted instead),
new session and token caches, and an empty warehouse (with ``--warehouse``, its schemas
``sap_b1`` and ``b1_audit`` are dropped); ``--resume`` keeps all of it.

The DAGs run with retries switched off, so the first failed task ends the demo at once, naming
the task and its error. The demo's work runs in a child process that Ctrl-C and SIGTERM end
outright (sandboxes included): exit status 130 or 143. Exits 1 when any flow fails or any
figure differs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

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
DEMO_DAGS = (
    "sap_b1_to_warehouse",
    "looker_refresh",
    "b1_replay_failed",
    "servicetitan_to_sap_b1",
    "sap_b1_salesforce",
    "sap_b1_to_teams",
    "sap_b1_approvals",
)
WAREHOUSE_SCHEMAS = ("sap_b1", "b1_audit")  # the warehouse's and the audit trail's (with ledgers)
CACHES = ("b1-sessions", "servicetitan-tokens", "salesforce-tokens", "teams-tokens", "b1_rate_limits")
LOG_NAME = "demo.log"

# Between the supervising process and the one doing the work (see main()).
_WORKER = "B1_DEMO_WORKER"  # the supervisor's pid
_CONSOLE_FD = "B1_DEMO_CONSOLE_FD"  # where the worker writes what the user reads

_console: TextIO = sys.stdout
_failures: list[tuple[str, BaseException | None]] = []  # (task_id, error) of the DAG run under way


def say(*parts: Any) -> None:
    """Print to the console (Airflow's and the tasks' logs go to the log file instead)."""
    print(*parts, file=_console, flush=True)


class RunFailed(Exception):
    """A DAG run of the demo did not succeed."""

    def __init__(self, dag_id: str, tasks: list[tuple[str, str]]) -> None:
        super().__init__(f"{dag_id} failed")
        self.dag_id = dag_id
        self.tasks = tasks  # (task_id, last line of its error)


def _last_line(error: BaseException | None) -> str:
    if error is None:
        return "no error recorded"
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1]}" if lines else type(error).__name__


def _home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or Path.cwd() / ".b1-demo").resolve()


def _prepare_home(warehouse: str | None, *, resume: bool) -> tuple[Path, bool]:
    """Point Airflow at the demo home before anything imports it, starting afresh unless
    ``resume``. Returns the home and whether the metadata database is the demo's own (a SQLite
    file it may replace) rather than one the user configured."""
    own_home = not os.environ.get("AIRFLOW_HOME")
    home = _home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AIRFLOW_HOME"] = str(home)
    own_db = own_home and not os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("B1_SESSION_CACHE_DIR", str(home / "b1-sessions"))
    os.environ.setdefault("B1_SERVICETITAN_CACHE_DIR", str(home / "servicetitan-tokens"))
    os.environ.setdefault("B1_SALESFORCE_CACHE_DIR", str(home / "salesforce-tokens"))
    os.environ.setdefault("B1_TEAMS_CACHE_DIR", str(home / "teams-tokens"))
    if not resume:
        for cache in CACHES:
            shutil.rmtree(home / cache, ignore_errors=True)
    if warehouse:
        os.environ["AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT"] = warehouse
        os.environ["AIRFLOW_CONN_B1_AUDIT_DEFAULT"] = warehouse
    else:
        # The audit trail lives in the warehouse's file, so every page and its trail commit in
        # one transaction.
        if not resume:
            for name in ("warehouse.db", "warehouse.db-wal", "warehouse.db-shm", "audit.db"):
                (home / name).unlink(missing_ok=True)
        embedded = json.dumps({"conn_type": "sqlite", "host": str(home / "warehouse.db")})
        os.environ["AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT"] = embedded
        os.environ["AIRFLOW_CONN_B1_AUDIT_DEFAULT"] = embedded
    return home, own_db


def _migrated_copy(home: Path) -> Path:
    from importlib.metadata import version

    return home / f"airflow-{version('apache-airflow-core')}-migrated.db"


def _prepare_metadata_db(home: Path, *, own_db: bool, resume: bool) -> None:
    """A fresh metadata database: a copy of the one migrated by the first demo in this home (a
    copy takes milliseconds, ``airflow db migrate`` seconds). A database the user configured is
    migrated and keeps its contents; the demo's runs are deleted from it later (_forget_runs)."""
    database, migrated = home / "airflow.db", _migrated_copy(home)
    if own_db and migrated.exists() and not (resume and database.exists()):
        say("Airflow's metadata database: a fresh copy of the migrated one")
        shutil.copyfile(migrated, database)
        return
    if own_db and not resume:
        database.unlink(missing_ok=True)
    say("Preparing Airflow's metadata database (airflow db migrate) ...")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, env=os.environ.copy())
    if own_db and not resume:
        shutil.copyfile(database, migrated)


def _forget_runs(*dag_ids: str) -> None:
    """Delete every run of these DAGs (task instances, their history and XComs included), so that
    their cursors start again. Needed where the metadata database outlives the demo: an
    ``AIRFLOW_HOME`` of your own, or ``--resume``, whose sandboxes are new although the earlier
    runs' checkpoints would vouch for their cursors."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for model in (XComModel, TaskInstanceHistory, TaskInstance, DagRun):
            session.query(model).filter(model.dag_id.in_(dag_ids)).delete(synchronize_session=False)


def _clear_warehouse() -> str:
    """Empty the warehouse given with ``--warehouse``: the demo's schemas in PostgreSQL, the
    file of a SQLite one. Returns what it did."""
    from airflow_provider_b1.utils.sql import open_database

    database = open_database("b1_warehouse_default", purpose="the warehouse")
    if database.dialect == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database.path}{suffix}").unlink(missing_ok=True)
        return f"file {database.path} removed"
    conn = database.connect()
    try:
        with conn.cursor() as cursor:
            for schema in WAREHOUSE_SCHEMAS:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.commit()
    finally:
        conn.close()
    return f"schemas {' and '.join(WAREHOUSE_SCHEMAS)} dropped"


def read_every_entity(conn_id: str = "sap_b1_default") -> dict[str, int]:
    """Stream every SAP entity through the hook and return the record count per entity."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    return {entity: sum(len(page) for page in hook.iter_pages(entity, select=None)) for entity in ENTITIES}


def _note_failure(context: Any) -> None:
    _failures.append((context["ti"].task_id, context.get("exception")))


def _load_dag(dag_id: str):
    """The DAG from its file, with retries off (a failure ends the demo at once instead of waiting
    out the retry delays) and its failures noted for the report."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS_FOLDER / f"{dag_id}.py"))
    if bag.import_errors:
        raise SystemExit(f"{dag_id} does not import: {bag.import_errors}")
    dag = bag.get_dag(dag_id)
    for task in dag.tasks:
        task.retries = 0
        task.on_failure_callback = [*(task.on_failure_callback or ()), _note_failure]
    return dag


def _run_dag(dag_id: str, **conf: Any) -> Any:
    """Run a DAG with ``dag.test()``; :class:`RunFailed` unless it succeeds."""
    _failures.clear()
    started = time.perf_counter()
    run = _load_dag(dag_id).test(run_conf=conf or None)
    say(f"  {dag_id}: {run.state} in {time.perf_counter() - started:.1f} s")
    if run.state != "success":
        tasks = [(task_id, _last_line(error)) for task_id, error in _failures]
        if not tasks:
            from airflow.utils.session import create_session

            with create_session() as session:
                tasks = [
                    (ti.task_id, f"ended {ti.state}")
                    for ti in run.get_task_instances(session=session)
                    if ti.state not in ("success", "skipped")
                ]
        raise RunFailed(dag_id, tasks)
    return run


def _control(served: Any, path: str, body: dict | None = None) -> dict:
    """A sandbox's control plane: GET ``path``, or POST ``body`` to it."""
    import requests

    url = f"{served.base_url}/_sandbox/{path}"
    if body is None:
        return requests.get(url, verify=served.ca_path, timeout=30).json()
    reply = requests.post(url, json=body, verify=served.ca_path, timeout=30)
    reply.raise_for_status()
    return reply.json()


def _warehouse_report(sap: Any, run: Any) -> bool:
    """Print SAP's figures beside the warehouse's, and the audit trail's actions; True when equal."""
    from airflow_provider_b1.assets import WAREHOUSE_GROUPS
    from airflow_provider_b1.sync import AuditTrail
    from airflow_provider_b1.warehouse.entities import entity_spec
    from airflow_provider_b1.warehouse.loader import open_loader

    equal = True
    say(f"\n  {'entity':<18} {'SAP':>8} {'warehouse':>10} {'SAP DocTotal':>16} {'warehouse DocTotal':>19}")
    with open_loader("b1_warehouse_default") as loader:
        for entity in (e for group in WAREHOUSE_GROUPS.values() for e in group):
            truth = _control(sap, f"truth/{entity}")
            count, total = loader.stats(entity_spec(entity))
            sap_total = truth.get("doc_total_sum")
            wh_total = f"{total:.2f}" if total is not None else None
            same = count == truth["count"] and (sap_total is None or sap_total == wh_total)
            equal &= same
            say(
                f"  {entity:<18} {truth['count']:>8} {count:>10} {sap_total or '':>16} {wh_total or '':>19}"
                f"{'' if same else '   <- differs'}"
            )
    audit = AuditTrail()
    try:
        counts = audit.counts_for_run(run.dag_id, run.run_id)
    finally:
        audit.close()
    say("  audit trail of the run: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return equal


def _servicetitan_report(run: Any, *, expect_new: bool) -> bool:
    """What each stream of the ServiceTitan flow did, from the audit trail; the reconcile task
    (the DAG's last) already compared SAP with ServiceTitan partner by partner."""
    from airflow_provider_b1.sync.audit import AuditTrail

    with AuditTrail("b1_audit_default") as audit:
        for stream in ("customers", "invoices", "payments"):
            counts = audit.counts_for_run(run.dag_id, run.run_id, task_id=stream)
            shown = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
            say(f"  {stream:<10} {shown or 'nothing read'}")
            if counts["failed"] or (not expect_new and counts["created"]):
                return False
    say("  reconcile: SAP holds ServiceTitan's receivables, partner by partner")
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
            say(f"  {task_id:<27} {shown or 'nothing read'}")
            if counts["failed"]:
                return False
            quiet &= not (counts["created"] or counts["updated"])
    calls, records = writes
    say(f"  Salesforce written: {records} records in {calls} calls")
    if not expect_new and (not quiet or calls):
        say("  <- the second run wrote something: it should have found nothing to do")
        return False
    say("  reconcile: " + ("accounts, orders and balances agree" if run.state == "success" else "differs"))
    return True


def _teams_report(run: Any, posts: list[dict], *, expect_new: bool) -> bool:
    """What each task of ``sap_b1_to_teams`` did, from the audit trail, and what the Teams sandbox
    received (webhook posts, bot activities and updates)."""
    from collections import Counter

    from airflow_provider_b1.sync.audit import AuditTrail
    from airflow_provider_b1.teams.flow import STREAMS

    with AuditTrail("b1_audit_default") as audit:
        for stream in STREAMS:
            counts = audit.counts_for_run(run.dag_id, run.run_id, task_id=stream)
            shown = ", ".join(f"{n} {action}" for action, n in counts.items() if n)
            say(f"  {stream:<17} {shown or 'nothing read'}")
            if counts["failed"]:
                return False
    kinds = Counter(f"{post['via']} {post.get('action', 'post')}" for post in posts)
    destinations = len({post.get("conversation_id") for post in posts})
    shown = ", ".join(f"{n} {kind}s" for kind, n in sorted(kinds.items()))
    say(f"  Teams received: {shown or 'nothing'}" + (f" in {destinations} conversations" if posts else ""))
    if expect_new != bool(posts):
        say("  <- " + ("no card was sent" if expect_new else "the second run sent cards again"))
        return False
    return True


APPROVER, APPROVER_PASSWORD = "approver", "approver-secret-1"  # the sandbox's approver, not real
APPROVAL_ANSWERS = ("Approve", "Approve", "Reject")


def _approvals(sap: Any, teams: Any) -> bool:
    """Purchase orders held for approval in SAP, asked in Teams, answered, decided in SAP."""
    import threading

    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.hooks.sap_b1.errors import SapB1NotFoundError
    from airflow_provider_b1.utils.hitl import answer, waiting

    _control(sap, "approvals", {"entity": "PurchaseOrders", "threshold": 10000})
    os.environ["AIRFLOW_CONN_SAP_B1_APPROVER"] = json.dumps(
        {"conn_type": "sap_b1", "login": APPROVER, "password": APPROVER_PASSWORD}
    )
    refs = [f"DEMO-PO-{n}" for n in range(1, len(APPROVAL_ANSWERS) + 1)]
    hook = SapB1Hook()
    try:
        for n, ref in enumerate(refs):
            order = {
                "CardCode": "V00002",  # a vendor in the local currency: the threshold is in it
                "NumAtCard": ref,
                "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": 12000 + 1000 * n}],
            }
            # SAP answers 404 (-2028) when it keeps the document as a draft for approval.
            with contextlib.suppress(SapB1NotFoundError):
                hook.request("POST", "PurchaseOrders", json=order, repeatable=False)
        drafts = {d["NumAtCard"]: d["DocEntry"] for d in _all(hook, "Drafts", "NumAtCard", refs)}
    finally:
        hook.close()
    say(f"  {len(drafts)} purchase orders over 10,000 posted: SAP holds them as drafts for approval")
    answered: list[str] = []

    def approver_answers() -> None:  # what the approvers do in the Airflow UI, from the card's link
        deadline = time.monotonic() + 120
        while len(answered) < len(drafts) and time.monotonic() < deadline:
            for ti in waiting("sap_b1_approvals"):
                choice = APPROVAL_ANSWERS[ti.map_index % len(APPROVAL_ANSWERS)]
                answer(ti, [choice], user="ada")
                answered.append(choice)
            time.sleep(0.5)

    before = len(_control(teams, "posts")["posts"])
    responder = threading.Thread(target=approver_answers, daemon=True)
    responder.start()
    _run_dag("sap_b1_approvals", teams_to="ada@contoso.example")
    responder.join(timeout=5)
    cards = _control(teams, "posts")["posts"][before:]
    hook = SapB1Hook()
    try:
        found = _all(hook, "ApprovalRequests", "DraftEntry", list(drafts.values()))
        requests = {int(r["DraftEntry"]): r["Status"] for r in found}
        documents = {d["NumAtCard"] for d in _all(hook, "PurchaseOrders", "NumAtCard", refs)}
    finally:
        hook.close()
    statuses = ", ".join(f"{ref} {requests.get(entry, 'no request')}" for ref, entry in drafts.items())
    say(f"  answered in Teams: {', '.join(answered) or 'nothing'}; cards posted or updated: {len(cards)}")
    say(f"  SAP approval requests: {statuses}")
    say(f"  approved drafts added as purchase orders: {len(documents)}")
    again_before = len(_control(teams, "posts")["posts"])
    _run_dag("sap_b1_approvals", teams_to="ada@contoso.example")
    quiet = len(_control(teams, "posts")["posts"]) == again_before
    say("  (the second run asked nobody)" if quiet else "  <- the second run asked again")
    approved = [ref for ref, entry in drafts.items() if requests.get(entry) == "arsGenerated"]
    return (
        quiet
        and sorted(answered) == sorted(APPROVAL_ANSWERS)
        and len(approved) == APPROVAL_ANSWERS.count("Approve")
        and documents == set(approved)
    )


def _all(hook: Any, entity: str, field_name: str, values: list) -> list[dict]:
    return [record for page in hook.iter_any_of(entity, field_name, values) for record in page]


def _salesforce_writes(served: Any) -> tuple[int, int]:
    stats = _control(served, "stats")
    return stats["write_calls"], sum(stats["records_written"].values())


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


def _demo(args: argparse.Namespace, log: Path | None) -> int:
    home, own_db = _prepare_home(args.warehouse, resume=args.resume)
    say(
        f"b1-demo: Airflow's and the tasks' logs go to {log} (--verbose shows them here)"
        if log
        else "b1-demo: Airflow's and the tasks' logs are shown as they come (--verbose)"
    )
    _prepare_metadata_db(home, own_db=own_db, resume=args.resume)
    if args.resume:
        say("Resuming: Airflow's runs and cursors, the caches and the warehouse of the earlier demo are kept")
        # The sandboxes are new: what the earlier runs wrote to SAP and Salesforce is not there.
        _forget_runs("servicetitan_to_sap_b1", "sap_b1_salesforce", "sap_b1_to_teams", "sap_b1_approvals")
    elif not own_db:
        _forget_runs(*DEMO_DAGS)
    if args.warehouse and not args.resume:
        say(f"Warehouse emptied: {_clear_warehouse()}")

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
    from airflow_provider_b1.sandbox.teams import TeamsSandboxConfig
    from airflow_provider_b1.sandbox.teams import create_app as teams_app

    teams_asgi = teams_app(TeamsSandboxConfig())
    teams = serve_in_thread(teams_asgi, tls=True)
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
        say(f"\nSAP Business One sandbox at {sap.base_url}/b1s/v2, Looker sandbox at {looker.base_url}")
        started = time.perf_counter()
        counts = read_every_entity()
        say(f"\n1. Every SAP entity read through SapB1Hook in {time.perf_counter() - started:.1f} s:")
        for entity, n in counts.items():
            say(f"  {entity:<18} {n:>8}")

        say("\n2. SAP Business One -> warehouse -> Looker:")
        run = _run_dag("sap_b1_to_warehouse")
        ok &= _warehouse_report(sap, run)
        again = _run_dag("sap_b1_to_warehouse")
        say("  (the second run found nothing new: see its audit trail)")
        ok &= _warehouse_report(sap, again)
        _run_dag("looker_refresh")
        triggers = _control(looker, "stats").get("datagroup_triggers", [])
        say(f"  Looker datagroups triggered: {', '.join(str(t.get('name', t.get('id'))) for t in triggers)}")
        ok &= bool(triggers)
        _run_dag("b1_replay_failed", flow="sap_b1_to_warehouse", dry_run=True)

        say(f"\n3. ServiceTitan (sandbox at {servicetitan.base_url}) -> SAP Business One receivables:")
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
        for attempt in ("first", "second"):
            posted = _run_dag("servicetitan_to_sap_b1")
            ok &= _servicetitan_report(posted, expect_new=attempt == "first")

        say(f"\n4. Salesforce (sandbox at {salesforce.base_url}) <-> SAP Business One:")
        os.environ["AIRFLOW_CONN_B1_SALESFORCE_DEFAULT"] = json.dumps(
            {
                "conn_type": "b1_salesforce",
                "host": salesforce.base_url,
                "login": sf_config.client_id,
                "password": sf_config.client_secret,
                "extra": {"api_version": "62.0", "ca_bundle": str(salesforce.ca_path)},
            }
        )
        os.environ.setdefault("B1_SALESFORCE_MAPPING", str(DAGS_FOLDER / "salesforce_mapping.yaml"))
        if args.resume:
            _forget_salesforce_links()
        for attempt in ("first", "second"):
            before = _salesforce_writes(salesforce)
            synced = _run_dag("sap_b1_salesforce")
            after = _salesforce_writes(salesforce)
            ok &= _salesforce_report(
                synced, (after[0] - before[0], after[1] - before[1]), expect_new=attempt == "first"
            )

        say(f"\n5. SAP Business One -> Microsoft Teams (sandbox at {teams.base_url}):")
        from airflow_provider_b1.sandbox.__main__ import teams_connections

        for conn_id, conn in teams_connections(teams_asgi, teams).items():
            os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
        for attempt in ("first", "second"):
            before = len(_control(teams, "posts")["posts"])
            announced = _run_dag("sap_b1_to_teams")
            posts = _control(teams, "posts")["posts"][before:]
            ok &= _teams_report(announced, posts, expect_new=attempt == "first")

        say("\n6. SAP approvals decided from Teams:")
        ok &= _approvals(sap, teams)

        stats = _control(sap, "stats")
        say(f"\nSAP sandbox served {stats['requests_total']} requests with {stats['logins']} login(s).")
        say(f"Airflow home: {home}")
    finally:
        gc.collect()  # lets keep-alive connections close so the servers stop at once
        sap.stop()
        looker.stop()
        servicetitan.stop()
        salesforce.stop()
        teams.stop()
    say(
        "\nAll flows finished: the warehouse equals SAP, SAP holds ServiceTitan's receivables, "
        "Salesforce and SAP agree both ways, Teams got each document's card once, and SAP "
        "approvals were decided from Teams."
        if ok
        else "\nSomething differs: see above."
    )
    return 0 if ok else 1


def _watch_supervisor(pid: int) -> None:
    """End the worker should its supervisor vanish without killing it (SIGKILL)."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="b1-demo-supervisor-watch", daemon=True).start()


def _work(args: argparse.Namespace) -> int:
    """The demo itself, in the worker process."""
    global _console
    _watch_supervisor(int(os.environ.pop(_WORKER)))
    console_fd = os.environ.pop(_CONSOLE_FD, None)
    log = None
    if console_fd is not None:
        _console = os.fdopen(int(console_fd), "w", buffering=1)
        log = _home() / LOG_NAME
    where = f"The full log (Airflow's and the tasks'): {log}" if log else "The full log is above."
    try:
        return _demo(args, log)
    except RunFailed as failed:
        say(f"\nThe demo stopped: {failed.dag_id} failed.")
        for task_id, reason in failed.tasks:
            say(f"  task {task_id}: {reason}")
        say(where)
    except Exception as error:  # anything else the demo's own steps raise
        traceback.print_exc()  # into the log
        say(f"\nThe demo stopped: {_last_line(error)}")
        say(where)
    return 1


class _Stop(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _supervise(argv: list[str], *, verbose: bool) -> int:
    """Run the demo in a worker process of its own session and wait for it. Ctrl-C and SIGTERM
    kill the worker's whole process group at once (sandboxes and ``airflow db migrate`` included):
    inside ``dag.test()`` the worker would take them for a task's failure, and Airflow's task
    runner replaces the SIGTERM handler of the process running a task."""
    home = _home()
    home.mkdir(parents=True, exist_ok=True)
    log = home / LOG_NAME

    def stop(signum: int, frame: Any) -> None:
        raise _Stop(signum)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    worker = None
    # Unbuffered, so that the log holds everything up to the moment the worker is killed.
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{_WORKER: str(os.getpid())})
    command = [sys.executable, "-m", "airflow_provider_b1.demo", *argv]
    try:
        if verbose:
            worker = subprocess.Popen(command, env=env, start_new_session=True)
            return _exit_status(worker.wait())
        console = os.dup(sys.stdout.fileno())
        try:
            with open(log, "wb") as sink:
                env[_CONSOLE_FD] = str(console)
                worker = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    pass_fds=(console,),
                    start_new_session=True,
                )
            return _exit_status(worker.wait())
        finally:
            os.close(console)
    except _Stop as stopped:
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        name = signal.Signals(stopped.signum).name
        print(
            f"\nInterrupted ({name}): the demo and its sandboxes are stopped."
            + ("" if verbose else f" The log so far: {log}"),
            flush=True,
        )
        return 128 + stopped.signum


def _exit_status(code: int) -> int:
    if code < 0:  # killed by a signal from outside
        print(f"\nThe demo's worker was killed ({signal.Signals(-code).name}).", file=sys.stderr)
        return 128 - code
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="b1-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--invoices", type=int, default=2000, help="invoices the SAP sandbox generates")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--warehouse",
        help="an Airflow connection URI or JSON for a PostgreSQL warehouse (default: embedded SQLite); "
        f"its schemas {' and '.join(WAREHOUSE_SCHEMAS)} are dropped first unless --resume",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the earlier demo's Airflow runs (cursors), caches and warehouse instead of starting afresh",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show Airflow's and the tasks' logs instead of writing demo.log",
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if _WORKER in os.environ:
        return _work(args)
    return _supervise(argv, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
