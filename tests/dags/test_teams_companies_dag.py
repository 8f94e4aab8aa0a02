"""``sap_b1_to_teams`` and ``sap_b1_approvals`` over two SAP companies (``B1_TEAMS_COMPANIES``,
``B1_APPROVALS_COMPANIES``) with dag.test(): the shared SAP sandbox and a second one (another
server, CompanyDB ``SBODEMOEU``) holding the same DocEntries, the Teams sandbox, the audit database
in PostgreSQL.

Each company's documents become cards once, each card naming its company, ``DocEntry`` 17 of both
companies two cards; a rule on the company routes one company's purchase orders elsewhere; with
the second company's SAP unreachable only its own tasks fail. Each company's pending approval
request is asked naming its company, and its decision lands in its own SAP through its own approver.
"""

from __future__ import annotations

import functools
import gc
import importlib.util
import secrets
import uuid
from collections import Counter

import pytest
import yaml
from dag_helpers import (
    AUDIT_SCHEMA,
    DAGS,
    EU_COMPANY_DB,
    eu_connection,
    forget_runs,
    load_dag,
    rerun_task,
    task_states,
)
from hitl_helpers import Responder

HOME, EU = "sap_b1_default", "sap_b1_eu"
HOME_COMPANY_DB = "SBODEMOUS"
TEAMS, APPROVALS = "sap_b1_to_teams", "sap_b1_approvals"
STREAMS = ("PurchaseOrders", "PurchaseInvoices", "IncomingPayments", "VendorPayments")
INVOICES = 40  # 20 purchase orders and 20 purchase invoices in each company
ADA = "ada@contoso.example"
EU_APPROVER = ("eu_approver", "eu-approver-secret-1")


@pytest.fixture
def two_companies(
    airflow_db,
    sap_sandbox,
    eu_sandbox,
    teams_sandbox,
    pg_database,
    pg_airflow_connection,
    set_connection,
    monkeypatch,
    tmp_path,
):
    """Both SAP companies seeded alike in size, an empty audit schema, no earlier runs."""
    import psycopg

    from airflow_provider_b1.utils.retry import RetryPolicy

    # the hook's real policy (same attempts) with millisecond backoffs: a closed port costs nothing
    monkeypatch.setattr(
        "airflow_provider_b1.hooks.sap_b1.hook.RetryPolicy",
        functools.partial(RetryPolicy, initial_wait=0.01, max_wait=0.05),
    )
    sap_sandbox.restore(invoices=INVOICES)
    eu_sandbox.restore(invoices=INVOICES)
    teams_sandbox.restore()
    with psycopg.connect(pg_database["dsn"], autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {AUDIT_SCHEMA} CASCADE")
    forget_runs(TEAMS, APPROVALS)
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "teams-tokens"))
    monkeypatch.setenv("B1_RATE_LIMIT_DIR", str(tmp_path / "limits"))
    set_connection(HOME, sap_sandbox.connection())
    set_connection(EU, eu_connection(eu_sandbox))
    set_connection("b1_audit_default", pg_airflow_connection)
    set_connection("b1_teams_bot_default", teams_sandbox.bot_connection())
    try:
        yield sap_sandbox, eu_sandbox
    finally:
        forget_runs(TEAMS, APPROVALS)
        gc.collect()  # hooks' keep-alive connections to the sandboxes


def _card(post: dict) -> dict:
    (attachment,) = post["attachments"]
    return attachment["content"]


def _facts(post: dict) -> dict[str, str]:
    return {
        fact["title"]: fact["value"]
        for block in _card(post)["body"]
        if block["type"] == "FactSet"
        for fact in block["facts"]
    }


def _title(post: dict) -> str:
    return _card(post)["body"][0]["text"]


def _doc_num(conn_id: str, entity: str, doc_entry: int) -> object:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    try:
        return hook.get(entity, doc_entry, select=["DocNum"])["DocNum"]
    finally:
        hook.close()


def test_each_company_s_documents_become_cards_once_naming_it_and_one_company_down_fails_alone(
    two_companies, teams_sandbox, set_connection, monkeypatch, tmp_path, pg_database
):
    home, eu = two_companies
    teams = teams_sandbox
    set_connection("b1_teams_webhook_default", teams.webhook_connection(0))
    set_connection("b1_teams_webhook_eu", teams.webhook_connection(1))
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        yaml.safe_dump(
            {
                "digest_over": 100,
                "rules": [
                    {"documents": ["PurchaseOrders", "PurchaseInvoices"], "to": [{"webhook": None}]},
                    {
                        "name": "EU purchase orders to the EU channel",
                        "documents": ["PurchaseOrders"],
                        "companies": [EU_COMPANY_DB],  # by CompanyDB
                        "to": [{"webhook": "b1_teams_webhook_eu"}],
                    },
                ],
            }
        )
    )
    monkeypatch.setenv("B1_TEAMS_ROUTING", str(routing))
    monkeypatch.setenv("B1_TEAMS_COMPANIES", f"{HOME},{EU}")
    counts = {
        company: {kind: sap.truth(kind)["count"] for kind in ("PurchaseOrders", "PurchaseInvoices")}
        for company, sap in ((HOME_COMPANY_DB, home), (EU_COMPANY_DB, eu))
    }
    assert min(min(c.values()) for c in counts.values()) >= 17  # DocEntry 17 of each kind in both

    dag = load_dag(TEAMS, retries=0)
    first = dag.test()
    assert task_states(first) == {f"{c}{s}": "success" for c in ("", f"{EU}.") for s in STREAMS}
    posts = teams.posts()
    channel_of = {teams.webhook_connection(i)["host"]: i for i in (0, 1)}
    by_channel = Counter(channel_of[p["channel"]] for p in posts)
    purchases = sum(sum(c.values()) for c in counts.values())
    assert by_channel == {0: purchases, 1: counts[EU_COMPANY_DB]["PurchaseOrders"]}
    # every card names its company: each company's documents once on the shared channel
    shared = Counter(
        (_facts(p)["Company"], _title(p).split(" ")[1]) for p in posts if channel_of[p["channel"]] == 0
    )
    assert shared == {
        (company, word): number
        for company, kinds in counts.items()
        for word, number in zip(("order", "invoice"), kinds.values(), strict=True)
    }
    # ...and only the EU company's purchase orders on the EU channel
    eu_only = {
        (_facts(p)["Company"], _title(p).split(" ")[1]) for p in posts if channel_of[p["channel"]] == 1
    }
    assert eu_only == {(EU_COMPANY_DB, "order")}
    # DocEntry 17 of both companies: two documents, a card each, each naming its company
    for company_db, conn_id in ((HOME_COMPANY_DB, HOME), (EU_COMPANY_DB, EU)):
        title = f"Purchase order {_doc_num(conn_id, 'PurchaseOrders', 17)}"
        found = [p for p in posts if _title(p) == title and _facts(p)["Company"] == company_db]
        assert len(found) == (2 if company_db == EU_COMPANY_DB else 1), (company_db, title)
    import psycopg

    with psycopg.connect(pg_database["dsn"]) as conn:
        ledger = conn.execute(
            f"SELECT DISTINCT company, destination FROM {AUDIT_SCHEMA}.b1_teams_sent "
            "WHERE doc_type = 'PurchaseOrders' AND doc_entry = '17' ORDER BY 1, 2"
        ).fetchall()
        flows = dict(
            conn.execute(
                f"SELECT flow, count(*) FROM {AUDIT_SCHEMA}.audit_record WHERE action = 'created' GROUP BY 1"
            ).fetchall()
        )
    assert ledger == [
        (HOME, "webhook:b1_teams_webhook_default"),
        (EU, "webhook:b1_teams_webhook_default"),
        (EU, "webhook:b1_teams_webhook_eu"),
    ]
    # each company is its own scope of the flow: its own audit rows (and replay by that name)
    assert flows == {
        TEAMS: sum(counts[HOME_COMPANY_DB].values()),
        f"{TEAMS}@{EU}": sum(counts[EU_COMPANY_DB].values()),
    }

    # the second company's SAP unreachable: only its tasks fail; the first sends nothing again
    set_connection(EU, {**eu_connection(eu), "host": "https://127.0.0.1:9/b1s/v2/"})
    dag = load_dag(TEAMS, retries=0)
    second = dag.test()
    states = task_states(second)
    assert second.state == "failed"
    assert {t: s for t, s in states.items() if s != "success"} == {f"{EU}.{s}": "failed" for s in STREAMS}
    assert len(teams.posts()) == len(posts)
    # back up, the second company's task runs again and sends nothing twice either
    set_connection(EU, eu_connection(eu))
    assert rerun_task(dag, second, f"{EU}.PurchaseOrders") == "success"
    assert len(teams.posts()) == len(posts)


def _approvals_dag():
    spec = importlib.util.spec_from_file_location(
        f"approvals_{secrets.token_hex(3)}", DAGS / f"{APPROVALS}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.build(schedule=None)
    for task in dag.tasks:
        task.retries = 0
    return dag


def _held_order(conn_id: str, total: float) -> tuple[str, int]:
    """Post a purchase order the company's approval procedure holds: its ref and request's Code."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.hooks.sap_b1.errors import SapB1NotFoundError

    ref = f"PO-{uuid.uuid4().hex[:8]}"
    body = {
        "CardCode": "V00001",
        "NumAtCard": ref,
        "DocDueDate": "2026-12-31",
        "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": total}],
    }
    hook = SapB1Hook(conn_id)
    try:
        with pytest.raises(SapB1NotFoundError):  # held: SAP answers -2028 although it kept the draft
            hook.request("POST", "PurchaseOrders", json=body)
        (draft,) = hook.iter_records("Drafts", filter=f"NumAtCard eq '{ref}'", select=["DocEntry"])
        (request,) = hook.iter_records("ApprovalRequests", filter=f"DraftEntry eq {draft['DocEntry']}")
        return ref, int(request["Code"])
    finally:
        hook.close()


def _in_sap(conn_id: str, ref: str, code: int) -> tuple[str, list[tuple[str, str]], int]:
    """A request's status and decisions (approver, status), and the documents of its ref."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    try:
        request = hook.get("ApprovalRequests", code)
        decisions = [(d["ApproverUserName"], d["Status"]) for d in request["ApprovalRequestDecisions"]]
        return request["Status"], decisions, hook.count("PurchaseOrders", f"NumAtCard eq '{ref}'")
    finally:
        hook.close()


def test_each_company_s_approval_request_is_asked_naming_it_and_decided_in_its_own_sap(
    two_companies, teams_sandbox, set_connection, monkeypatch, pg_database
):
    home, eu = two_companies
    home.control("POST", "approvals", {"entity": "PurchaseOrders", "threshold": 1})
    # the second company's approver is a SAP user of its own: the first's would be refused there
    eu.control(
        "POST",
        "approvals",
        {"entity": "PurchaseOrders", "threshold": 1, "approvers": dict([EU_APPROVER])},
    )
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    monkeypatch.setenv("B1_APPROVALS_COMPANIES", f"{HOME},{EU}=sap_b1_eu_approver")
    set_connection(
        "sap_b1_approver", {"conn_type": "sap_b1", "login": "approver", "password": "approver-secret-1"}
    )
    set_connection(
        "sap_b1_eu_approver", {"conn_type": "sap_b1", "login": EU_APPROVER[0], "password": EU_APPROVER[1]}
    )
    home_ref, home_code = _held_order(HOME, 12500.0)
    eu_ref, eu_code = _held_order(EU, 13500.0)

    with Responder(APPROVALS, lambda ti: ["Approve"], expected=2) as responder:
        dag_run = _approvals_dag().test(run_conf={"teams_to": ADA})

    assert sorted(task for task, _, _ in responder.handled) == ["approve", f"{EU}.approve"]
    assert task_states(dag_run) == {
        f"{c}{t}": "success" for c in ("", f"{EU}.") for t in ("pending_requests", "approve[0]")
    }
    # each request, in Airflow and on its card in Ada's chat, says which company it is in
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        asked_in_airflow = dict(
            session.query(TaskInstance.task_id, HITLDetail.subject)
            .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
            .filter(TaskInstance.dag_id == APPROVALS, TaskInstance.run_id == dag_run.run_id)
        )
    assert {task: subject.rsplit(" in ", 1)[1] for task, subject in asked_in_airflow.items()} == {
        "approve": f"{HOME_COMPANY_DB}?",
        f"{EU}.approve": f"{EU_COMPANY_DB}?",
    }
    asks = [p for p in teams_sandbox.posts() if p["action"] == "post"]
    assert sorted(_title(p).replace("\\", "") for p in asks) == sorted(asked_in_airflow.values())
    outcomes = [p for p in teams_sandbox.posts() if p["action"] == "update"]
    assert sorted(_facts(p)["Company"] for p in outcomes) == [EU_COMPANY_DB, HOME_COMPANY_DB]

    # each decision is in its own SAP, written by its own approver, and its draft is its document
    assert _in_sap(HOME, home_ref, home_code) == ("arsGenerated", [("approver", "ardApproved")], 1)
    assert _in_sap(EU, eu_ref, eu_code) == ("arsGenerated", [(EU_APPROVER[0], "ardApproved")], 1)
    assert _in_sap(HOME, eu_ref, home_code)[2] == 0  # nothing of the other company's
    import psycopg

    with psycopg.connect(pg_database["dsn"]) as conn:
        rows = conn.execute(
            f"SELECT sap_conn_id, code, state FROM {AUDIT_SCHEMA}.teams_approval ORDER BY 1"
        ).fetchall()
    assert rows == [(HOME, home_code, "generated"), (EU, eu_code, "generated")]
