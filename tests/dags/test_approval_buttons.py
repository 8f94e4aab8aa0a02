"""A SAP approval decided by pressing Approve on the Teams card, end to end.

``sap_b1_approvals`` runs under ``dag.test()`` against the SAP and Teams sandboxes, the approval
card going to Ada's chat through the bot. The Teams sandbox then presses the card's Approve button
as Ada: it POSTs the activity, with a JWT it signs, to the webhook receiver's bot endpoint, served
over HTTP in a thread. The receiver checks the token against the sandbox's published keys and
answers the request through Airflow's REST API, here a stand-in serving the one HITL endpoint
(``GET``/``PATCH .../hitlDetails``) by calling the api-server's own route functions on the test's
metadata database: no api-server runs under ``dag.test()``, and the shared live Airflow would
cost a DAG deployment and its scheduling for this one test.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from dag_helpers import task_states, xcoms
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from hitl_helpers import fail_waiting
from test_approvals_dag import ADA, APPROVER, DAG_ID, approvals, build, outcomes, valid  # noqa: F401

from airflow_provider_b1.sandbox.server import serve_in_thread
from airflow_provider_b1.utils.hitl import respond
from airflow_provider_b1.webhooks.assets_client import AirflowAssetsClient, HitlRefusedError
from airflow_provider_b1.webhooks.receiver import create_app
from airflow_provider_b1.webhooks.settings import WebhookSettings

RECEIVER_USER = "b1-webhooks"
TOKEN = "stand-in-airflow-token"
HITL = "/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"


def airflow_hitl_endpoint(calls: list) -> FastAPI:
    """Airflow's token and HITL endpoints as the api-server answers them, for the receiver's user."""
    from airflow.api_fastapi.core_api.routes.public.hitl import get_hitl_detail
    from airflow.utils.session import create_session
    from fastapi import HTTPException

    app = FastAPI()

    @app.get("/auth/token")
    async def token() -> JSONResponse:
        return JSONResponse({"access_token": TOKEN}, 201)

    @app.api_route(HITL, methods=["GET", "PATCH"])
    async def hitl(dag_id: str, run_id: str, task_id: str, map_index: int, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"detail": "Not authenticated"}, 401)
        body = await request.json() if request.method == "PATCH" else None
        calls.append((request.method, dag_id, run_id, task_id, map_index, body))
        try:
            with create_session() as session:
                if body is None:
                    found = get_hitl_detail(dag_id, run_id, task_id, session=session, map_index=map_index)
                else:
                    found = respond(
                        dag_id, run_id, task_id, map_index, body, user=RECEIVER_USER, session=session
                    )
                return JSONResponse(found.model_dump(mode="json"))
        except HTTPException as exc:
            return JSONResponse({"detail": exc.detail}, exc.status_code)

    return app


@pytest.fixture
def bot_endpoint(teams_sandbox):
    """The receiver with its bot endpoint, talking to the stand-in; yields (its URL, the
    stand-in's calls, the stand-in's URL)."""
    calls: list = []
    airflow = serve_in_thread(airflow_hitl_endpoint(calls), tls=False)
    settings = WebhookSettings(
        airflow_url=airflow.base_url,
        teams_bot_app_id=teams_sandbox.config.bot_app_id,
        teams_bot_openid_url=teams_sandbox.base_url + "/v1/.well-known/openidconfiguration",
        teams_bot_verify=teams_sandbox.ca_path,
    )
    receiver = serve_in_thread(create_app(settings), tls=False)
    try:
        yield f"{receiver.base_url}/webhooks/teams/bot", calls, airflow.base_url
    finally:
        receiver.stop()
        airflow.stop()


class Presser:
    """A thread that waits for the approval card in the Teams sandbox and presses a button as Ada."""

    def __init__(self, teams_sandbox, endpoint: str, button: str, deadline: float = 45.0) -> None:
        self.teams, self.endpoint, self.button, self.deadline = teams_sandbox, endpoint, button, deadline
        self.pressed: dict | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="teams-press")

    def __enter__(self) -> Presser:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._thread.join(timeout=self.deadline)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        end = time.monotonic() + self.deadline
        try:
            while time.monotonic() < end:
                asked = [p for p in self.teams.posts() if p["via"] == "bot" and p["action"] == "post"]
                if asked:
                    order = {
                        "activity_id": asked[0]["activity_id"],
                        "button": self.button,
                        "user": ADA,
                        "endpoint": self.endpoint,
                    }
                    self.pressed = self.teams.control("POST", "press", order)
                    return
                time.sleep(0.2)
            raise AssertionError(f"no approval card within {self.deadline} s")
        except BaseException as exc:  # reported when the block ends
            self.error = exc
            fail_waiting(DAG_ID)  # dag.test() would wait for the answer for ever


def test_pressing_approve_in_teams_decides_the_sap_request_and_adds_the_document(
    approvals,  # noqa: F811
    teams_sandbox,
    bot_endpoint,
    valid,  # noqa: F811
):
    sap = approvals
    endpoint, calls, airflow_url = bot_endpoint
    held = sap.purchase_order(12500.0)
    code = sap.request_of(held)["Code"]

    with Presser(teams_sandbox, endpoint, "Approve") as presser:
        dag_run = build().test(run_conf={"teams_to": ADA})

    # The sandbox's signed call was admitted and answered the request.
    assert presser.pressed["status"] == 200
    assert presser.pressed["body"] == {
        "status": 200,
        "text": "Approve: recorded. The card shows the outcome shortly.",
    }
    patches = [c for c in calls if c[0] == "PATCH"]
    assert len(patches) == 1
    _, dag_id, run_id, task_id, map_index, body = patches[0]
    assert (dag_id, run_id, task_id, map_index) == (DAG_ID, dag_run.run_id, "approve", 0)
    ada = next(u for u in teams_sandbox.tenant()["users"] if u["userPrincipalName"] == ADA)
    assert body == {
        "chosen_options": ["Approve"],
        "params_input": {"teams_responder": {"id": ada["id"], "name": "Ada Lovelace", "via": "teams"}},
    }

    # SAP holds Ada's decision, written by the approver, and the draft became its document.
    assert task_states(dag_run) == {"pending_requests": "success", "approve[0]": "success"}
    assert outcomes(dag_run) == {0: "generated"}
    request = sap.one("ApprovalRequests", f"Code eq {code}")
    assert request["Status"] == "arsGenerated"
    assert [
        (d["ApproverUserName"], d["Status"], d["Remarks"]) for d in request["ApprovalRequestDecisions"]
    ] == [(APPROVER, "ardApproved", "Teams: approved by Ada Lovelace")]
    assert sap.one("PurchaseOrders", f"NumAtCard eq '{held}'") is not None
    answer = xcoms(DAG_ID, dag_run.run_id)["values"]["approve[0]:return_value"]
    assert answer["responded_by_user"]["name"] == RECEIVER_USER  # who called Airflow's API

    # The card asked with Approve/Reject buttons naming the request, then showed the outcome.
    ask, outcome = teams_sandbox.posts()
    assert (ask["action"], outcome["action"]) == ("post", "update")
    submits = [a for a in valid(ask)["actions"] if a["type"] == "Action.Submit"]
    assert [(a["title"], a["data"]["option"]) for a in submits] == [
        ("Approve", "Approve"),
        ("Reject", "Reject"),
    ]
    assert submits[0]["data"] == {
        "dag_id": DAG_ID,
        "run_id": dag_run.run_id,
        "task_id": "approve",
        "map_index": 0,
        "option": "Approve",
    }
    shown = json.dumps(valid(outcome))
    assert "Approved: Purchase order" in shown
    assert "Ada Lovelace" in shown
    assert "Action.Submit" not in shown

    # The same press again (a second click, a retry): told it is decided; nothing is written.
    token = teams_sandbox.app.state.sandbox.bot_token(teams_sandbox.base_url)
    again = requests.post(
        endpoint, json=presser.pressed["activity"], headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert again.json() == {"status": 200, "text": "This request was already decided."}
    assert len([c for c in calls if c[0] == "PATCH"]) == 1
    # Had the answer raced another one, Airflow's 409 is "already decided" too.
    client = AirflowAssetsClient(airflow_url)
    assert client.answer_hitl(DAG_ID, dag_run.run_id, "approve", 0, chosen_options=["Reject"]) is False
    with pytest.raises(HitlRefusedError):
        client.hitl_request(DAG_ID, dag_run.run_id, "approve", 7)
    assert len(sap.one("ApprovalRequests", f"Code eq {code}")["ApprovalRequestDecisions"]) == 1
