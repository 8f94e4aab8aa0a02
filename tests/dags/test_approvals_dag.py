"""The ``sap_b1_approvals`` DAG against the SAP and Teams sandboxes (``dag.test()``): purchase
orders over the approval threshold become drafts in SAP, one approval request each in the
approver's Teams chat, and the answer comes back to SAP as the approver's decision.

Answers are given while ``dag.test()`` waits, from a thread, through the function behind the REST
API's ``PATCH .../hitlDetails`` and the scheduler's timeout sweep (see ``hitl_helpers``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import jsonschema
import pytest
import requests
from dag_helpers import DAGS, forget_runs, task_states, xcoms
from hitl_helpers import Responder

APPROVER, APPROVER_PASSWORD = "approver", "approver-secret-1"  # the SAP sandbox's default approver
ADA = "ada@contoso.example"
DAG_ID = "sap_b1_approvals"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "adaptive-card-1.4.json"


def build(**options):
    import importlib.util
    import secrets

    spec = importlib.util.spec_from_file_location(f"approvals_{secrets.token_hex(3)}", DAGS / f"{DAG_ID}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dag = module.build(schedule=None, **options)
    for task in dag.tasks:
        task.retries = 0  # a failure shows at once instead of after the retry delay
    return dag


class Sap:
    """The SAP sandbox as the test sees it: posts of purchase orders, the approver's own decisions."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.root = f"{sandbox.base_url}/b1s/v2/"
        self.session = requests.Session()
        self.session.verify = sandbox.ca_path
        self.session.trust_env = False
        login = {"CompanyDB": "SBODEMOUS", "UserName": "manager", "Password": "manager-secret-1"}
        self.session.post(self.root + "Login", json=login, timeout=30).raise_for_status()

    def purchase_order(self, total: float) -> str:
        ref = f"PO-{uuid.uuid4().hex[:8]}"
        body = {
            "CardCode": "V00001",
            "NumAtCard": ref,
            "DocDueDate": "2026-12-31",
            "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": total}],
        }
        self.session.post(self.root + "PurchaseOrders", json=body, timeout=10)
        return ref

    def one(self, entity: str, flt: str) -> dict | None:
        found = self.session.get(self.root + entity, params={"$filter": flt}, timeout=10).json()["value"]
        assert len(found) <= 1
        return found[0] if found else None

    def request_of(self, ref: str) -> dict:
        draft = self.one("Drafts", f"NumAtCard eq '{ref}'")
        return self.one("ApprovalRequests", f"DraftEntry eq {draft['DocEntry']}")

    def decide(self, code: int, status: str) -> None:
        decision = {"ApproverUserName": APPROVER, "ApproverPassword": APPROVER_PASSWORD, "Status": status}
        reply = self.session.patch(
            self.root + f"ApprovalRequests({code})", json={"ApprovalRequestDecisions": [decision]}, timeout=10
        )
        assert reply.status_code == 204, reply.text


@pytest.fixture
def approvals(flow, teams_sandbox, set_connection, monkeypatch, tmp_path):
    """Approvals on for purchase orders of 10,000 or more; the bot writing to Ada's chat."""
    teams_sandbox.restore()
    flow.sap.control("POST", "approvals", {"entity": "PurchaseOrders", "threshold": 10000})
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "teams-tokens"))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    set_connection("b1_teams_bot_default", teams_sandbox.bot_connection())
    set_connection(
        "sap_b1_approver", {"conn_type": "sap_b1", "login": APPROVER, "password": APPROVER_PASSWORD}
    )
    forget_runs(DAG_ID)
    sap = Sap(flow.sap)
    yield sap
    forget_runs(DAG_ID)
    sap.session.close()


@pytest.fixture(scope="module")
def valid():
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(post: dict) -> dict:
        (attachment,) = post["attachments"]
        validator.validate(attachment["content"])
        return attachment["content"]

    return check


def run(dag, decide, *, expected: int, before=None):
    with Responder(DAG_ID, decide, expected=expected, before=before) as responder:
        dag_run = dag.test(run_conf={"teams_to": ADA})
    return dag_run, responder


def rerun_mapped(dag_run, task_id: str, map_index: int) -> str:
    """Clear one mapped task instance of a finished run and run its next try in process."""
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    dag = build()
    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, map_index=map_index, session=session)
        ti.prepare_db_for_next_try(session)
        ti.try_number += 1
        ti.state = TaskInstanceState.SCHEDULED
        session.merge(ti)
    with create_session() as session:
        ti = dag_run.get_task_instance(task_id, map_index=map_index, session=session)
        session.expunge(ti)
    _run_task(ti=ti, task=dag.task_dict[task_id])
    with create_session() as session:
        return str(dag_run.get_task_instance(task_id, map_index=map_index, session=session).state)


def outcomes(dag_run) -> dict[int, str]:
    values = xcoms(DAG_ID, dag_run.run_id)["values"]
    return {
        int(key.split("[")[1].split("]")[0]): value["outcome"]
        for key, value in values.items()
        if key.startswith("approve[") and key.endswith(":return_value")
    }


def test_an_approved_purchase_order_becomes_its_document_once(approvals, teams_sandbox, valid):
    sap = approvals
    held = sap.purchase_order(12500.0)
    small = sap.purchase_order(900.0)
    assert sap.one("PurchaseOrders", f"NumAtCard eq '{small}'") is not None  # under the threshold
    assert sap.one("PurchaseOrders", f"NumAtCard eq '{held}'") is None  # a draft, waiting
    code = sap.request_of(held)["Code"]

    dag_run, _ = run(build(), lambda ti: ["Approve"], expected=1)

    assert task_states(dag_run) == {"pending_requests": "success", "approve[0]": "success"}
    assert outcomes(dag_run) == {0: "generated"}
    request = sap.one("ApprovalRequests", f"Code eq {code}")
    assert request["Status"] == "arsGenerated"
    assert [
        (d["ApproverUserName"], d["Status"], d["Remarks"]) for d in request["ApprovalRequestDecisions"]
    ] == [(APPROVER, "ardApproved", "Teams: approved by ada")]
    document = sap.one("PurchaseOrders", f"NumAtCard eq '{held}'")
    assert document["DocTotal"] == pytest.approx(12500.0, rel=0.2)  # with tax, as SAP computes it
    # One card in Ada's chat asked; the same card was then replaced by the outcome.
    ask, outcome = teams_sandbox.posts()
    assert (ask["action"], outcome["action"]) == ("post", "update")
    assert outcome["activity_id"] == ask["activity_id"]
    asked = json.dumps(valid(ask)["body"])
    assert "Approve Purchase order" in asked
    assert "V00001" in asked
    assert "Reject is chosen" in asked
    assert "/required\\\\_actions" not in asked  # the link is a button, not text
    assert "required_actions?map_index=0" in json.dumps(valid(ask)["actions"])
    assert "Approved: Purchase order" in json.dumps(valid(outcome)["body"])

    # Cleared and run again, the decided request asks nobody and writes nothing.
    assert rerun_mapped(dag_run, "approve", 0) == "success"
    assert len(teams_sandbox.posts()) == 2

    # The next schedule finds nothing to ask and decides nothing again.
    again = build().test(run_conf={"teams_to": ADA})
    assert task_states(again) == {"pending_requests": "success", "approve": "skipped"}
    assert len(teams_sandbox.posts()) == 2
    assert len(sap.one("ApprovalRequests", f"Code eq {code}")["ApprovalRequestDecisions"]) == 1


def test_a_rejection_and_a_request_nobody_answers_are_both_rejected_in_sap(approvals, teams_sandbox, valid):
    sap = approvals
    refs = [sap.purchase_order(15000.0), sap.purchase_order(22000.0)]
    codes = [sap.request_of(ref)["Code"] for ref in refs]

    dag_run, responder = run(
        build(response_timeout=dt.timedelta(seconds=2)),
        lambda ti: ["Reject"] if ti.map_index == 0 else None,
        expected=2,
    )

    assert sorted(choice or ["timed out"] for _, _, choice in responder.handled) == [
        ["Reject"],
        ["timed out"],
    ]
    assert outcomes(dag_run) == {0: "rejected", 1: "rejected"}
    remarks = []
    for code, ref in zip(codes, refs, strict=True):
        request = sap.one("ApprovalRequests", f"Code eq {code}")
        assert request["Status"] == "arsNotApproved"
        (decision,) = request["ApprovalRequestDecisions"]
        remarks.append(decision["Remarks"])
        assert sap.one("PurchaseOrders", f"NumAtCard eq '{ref}'") is None
    assert remarks == ["Teams: rejected by ada", "Teams: no answer in time, rejected by default"]
    updates = [json.dumps(valid(p)["body"]) for p in teams_sandbox.posts() if p["action"] == "update"]
    assert len(updates) == 2
    assert any("No answer in time: rejected by default." in u for u in updates)


def test_a_request_decided_in_sap_meanwhile_is_withdrawn_and_nothing_is_written(
    approvals, teams_sandbox, valid
):
    sap = approvals
    ref = sap.purchase_order(30000.0)
    code = sap.request_of(ref)["Code"]

    dag_run, _ = run(
        build(),
        lambda ti: ["Approve"],
        expected=1,
        before=lambda ti: sap.decide(code, "ardNotApproved"),  # someone decides in SAP first
    )

    assert outcomes(dag_run) == {0: "withdrawn"}
    request = sap.one("ApprovalRequests", f"Code eq {code}")
    assert request["Status"] == "arsNotApproved"
    assert len(request["ApprovalRequestDecisions"]) == 1  # only SAP's own
    assert sap.one("PurchaseOrders", f"NumAtCard eq '{ref}'") is None
    update = teams_sandbox.posts()[-1]
    assert update["action"] == "update"
    assert "Withdrawn: Purchase order" in json.dumps(valid(update)["body"])
