"""The approvals ledger and the withdrawal of requests SAP decided meanwhile, against the SAP and
Teams sandboxes and a SQLite ledger: a request claimed by one run is never claimed by another, a
request SAP decided while its approval was still open gets its card replaced and is marked
withdrawn, and this flow's own decision (written, not yet recorded) is never taken for SAP's."""

from __future__ import annotations

import json
import uuid

import pytest

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
from airflow_provider_b1.hooks.sap_b1.errors import SapB1Error, SapB1NotFoundError
from airflow_provider_b1.notifications.teams import TeamsNotifier
from airflow_provider_b1.teams import approvals
from airflow_provider_b1.utils.sql import open_database

APPROVER = ("approver", "approver-secret-1")


@pytest.fixture
def world(sap_sandbox, teams_sandbox, set_connection, tmp_path, monkeypatch):
    sap_sandbox.restore(invoices=1500)  # the size the DAG tests restore to: its seed is cached
    teams_sandbox.restore()
    sap_sandbox.control("POST", "approvals", {"entity": "PurchaseOrders", "threshold": 1})
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("B1_TEAMS_CACHE_DIR", str(tmp_path / "teams"))
    set_connection("sap_b1_default", sap_sandbox.connection())
    set_connection("b1_teams_bot_default", teams_sandbox.bot_connection())
    set_connection("ledger_db", {"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")})
    hook = SapB1Hook()
    ledger = approvals.ApprovalLedger(open_database("ledger_db"), None, "sap_b1_default")
    yield hook, ledger
    ledger.close()
    hook.close()
    sap_sandbox.control("POST", "approvals", {})


def held_order(hook, total: float) -> dict:
    body = {
        "CardCode": "V00001",
        "NumAtCard": f"PO-{uuid.uuid4().hex[:8]}",
        "DocumentLines": [{"ItemCode": "A00001", "Quantity": 1, "UnitPrice": total}],
    }
    with pytest.raises(SapB1NotFoundError):  # held: SAP answers -2028 although it kept the draft
        hook.request("POST", "PurchaseOrders", json=body)
    (request,) = [
        r for r in approvals.pending_requests(hook) if r["DraftEntry"] == _draft(hook, body["NumAtCard"])
    ]
    return request


def _draft(hook, ref: str) -> int:
    (draft,) = hook.iter_records("Drafts", filter=f"NumAtCard eq '{ref}'", select=["DocEntry"])
    return draft["DocEntry"]


def test_a_request_is_claimed_by_one_run_only(world):
    hook, ledger = world
    request = held_order(hook, 12000.0)
    code = int(request["Code"])
    key = (code, request["DraftEntry"])

    assert ledger.claim([key], dag_id="d", run_id="run-1") == [code]
    assert ledger.claim([key], dag_id="d", run_id="run-2") == []  # still open: not asked again
    assert ledger.claim([key], dag_id="d", run_id="run-1") == [code]  # the same run's retry
    described = approvals.describe(hook, request)
    assert (described["kind"], described["entity"], described["draft_entry"]) == (
        "Purchase order",
        "PurchaseOrders",
        request["DraftEntry"],
    )


def test_a_request_decided_in_sap_while_open_is_withdrawn_and_its_card_replaced(world, teams_sandbox):
    hook, ledger = world
    decided, ours, still_open = (held_order(hook, total) for total in (11000.0, 13000.0, 14000.0))
    notifier = TeamsNotifier(teams_conn_id="b1_teams_bot_default", to="grace.hopper@contoso.example")
    for request in (decided, ours, still_open):
        code = int(request["Code"])
        ledger.claim([(code, request["DraftEntry"])], dag_id="d", run_id="run-1")
        notifier.post({"type": "AdaptiveCard", "version": "1.4", "body": []}, {})
        ledger.set_card(code, notifier.last_post["conversation_id"], notifier.last_post["activity_id"])
    # Someone decides one in SAP itself; this flow decides another but has not recorded it yet.
    at_the_desk = {
        "ApproverUserName": APPROVER[0],
        "ApproverPassword": APPROVER[1],
        "Status": "ardNotApproved",
    }
    hook.update("ApprovalRequests", int(decided["Code"]), {"ApprovalRequestDecisions": [at_the_desk]})
    approvals.write_decision(
        hook, int(ours["Code"]), approve=True, approver=APPROVER, remarks="approved by ada"
    )

    withdrawn = approvals.withdraw_decided_in_sap(hook, ledger, notifier, approver=APPROVER[0])

    assert withdrawn == [int(decided["Code"])]
    assert ledger.get(int(decided["Code"])).state == approvals.WITHDRAWN
    assert ledger.get(int(ours["Code"])).state == approvals.ASKED  # settled when its task resumes
    assert ledger.get(int(still_open["Code"])).state == approvals.ASKED
    (update,) = [p for p in teams_sandbox.posts() if p["action"] == "update"]
    assert update["activity_id"] == ledger.get(int(decided["Code"])).activity_id
    card = json.dumps(update["attachments"][0]["content"])
    assert "Withdrawn: SAP approval request" in card
    assert "arsNotApproved" in card


def test_this_flows_own_decision_is_never_taken_for_sap_s(world, teams_sandbox):
    hook, ledger = world
    request = held_order(hook, 16000.0)
    code = int(request["Code"])
    ledger.claim([(code, request["DraftEntry"])], dag_id="d", run_id="run-1")
    approvals.write_decision(hook, code, approve=True, approver=APPROVER, remarks="approved by ada")

    assert approvals.withdraw_decided_in_sap(hook, ledger, None, approver=APPROVER[0]) == []
    assert ledger.get(code).state == approvals.ASKED
    assert approvals.add_document(hook, request["DraftEntry"], "PurchaseOrders") == "service"
    assert approvals.read_request(hook, code)["Status"] == "arsGenerated"


def test_a_service_layer_without_the_draft_service_gets_the_document_posted_with_the_draft_s_key(
    world, sap_sandbox
):
    hook, _ = world
    sap_sandbox.control(
        "POST", "approvals", {"entity": "PurchaseOrders", "threshold": 1, "save_draft": "post"}
    )
    request = held_order(hook, 17000.0)
    code, draft = int(request["Code"]), int(request["DraftEntry"])
    approvals.write_decision(hook, code, approve=True, approver=APPROVER, remarks="approved by ada")

    assert approvals.add_document(hook, draft, "PurchaseOrders") == "post"

    assert approvals.read_request(hook, code)["Status"] == "arsGenerated"
    ref = hook.get("Drafts", draft, select=["NumAtCard"])["NumAtCard"]
    assert hook.count("PurchaseOrders", f"NumAtCard eq '{ref}'") == 1
    with pytest.raises(SapB1Error, match="already added as a document"):
        approvals.add_document(hook, draft, "PurchaseOrders")
    assert hook.count("PurchaseOrders", f"NumAtCard eq '{ref}'") == 1
