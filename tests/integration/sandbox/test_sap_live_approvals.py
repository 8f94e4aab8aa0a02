"""Issue 9: approval procedures switched on at run time. A document that reaches the threshold is
held as a draft with an approval request; an approver decides; the approved draft becomes the
document through ``DraftsService_SaveDraftToDocument``.

Over HTTPS to the running sandbox, as a third-party client would call it; every test reseeds the
company afterwards (``sap_control``), which also switches approvals off again.
"""

from __future__ import annotations

import uuid

import pytest
import requests

APPROVER, APPROVER_PASSWORD = "approver", "approver-secret-1"  # the sandbox's default approver
NO_MATCH = "No matching records found (ODBC -2028)"


@pytest.fixture
def held(sap_https_sessions, sap_control):
    """``(root, v2 session, control, invoice(total, ext) -> POST reply)`` with approvals on for
    invoices of 10,000 or more."""
    base, _, v2 = sap_https_sessions
    root = f"{base}/b1s/v2/"
    r = sap_control("POST", "approvals", {"entity": "Invoices", "threshold": 10000})
    assert r.status_code == 200, r.text
    assert r.json()["approvals"]["threshold"] == 10000

    def invoice(total: float, ext: str, **headers):
        body = {
            "CardCode": "C00002",
            "DocType": "dDocument_Service",
            "NumAtCard": ext,
            "DocumentLines": [{"ItemDescription": "Boiler", "AccountCode": "421001", "LineTotal": total}],
        }
        return v2.post(root + "Invoices", json=body, headers=headers, timeout=10)

    return root, v2, sap_control, invoice


def one(session, url: str, flt: str) -> dict:
    (record,) = session.get(url, params={"$filter": flt}, timeout=10).json()["value"]
    return record


def decide(session, root: str, code: int, status: str, **decision):
    body = {"ApproverUserName": APPROVER, "ApproverPassword": APPROVER_PASSWORD, "Status": status, **decision}
    return session.patch(
        root + f"ApprovalRequests({code})", json={"ApprovalRequestDecisions": [body]}, timeout=10
    )


def save(session, root: str, draft: int):
    return session.post(
        root + "DraftsService_SaveDraftToDocument", json={"Document": {"DocEntry": draft}}, timeout=10
    )


def test_a_post_reaching_the_threshold_stores_a_draft_and_a_pending_request_not_the_invoice(held):
    root, v2, _, invoice = held
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    drafts_before = int(v2.get(root + "Drafts/$count", timeout=10).text)
    r = invoice(12000.0, ext)
    # As SAP 10.0 answers it: an error, although the draft was written.
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "-2028"
    assert r.json()["error"]["message"] == NO_MATCH
    assert (
        v2.get(root + "Invoices/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "0"
    )
    draft = one(v2, root + "Drafts", f"NumAtCard eq '{ext}'")
    assert (draft["DocObjectCode"], draft["DocType"], draft["DocTotal"], draft["CardCode"]) == (
        "oInvoices",
        "dDocument_Service",
        12000.0,
        "C00002",
    )
    assert (draft["AuthorizationStatus"], draft["DocumentStatus"]) == ("dasPending", "bost_Open")
    assert draft["DocEntry"] == drafts_before + 1  # the drafts' own series
    assert draft["DocumentLines"][0]["DocEntry"] == draft["DocEntry"]
    request = one(v2, root + "ApprovalRequests", f"DraftEntry eq {draft['DocEntry']}")
    assert {
        k: request[k]
        for k in ("ObjectType", "IsDraft", "ObjectEntry", "Status", "CurrentStage", "OriginatorID")
    } == {
        "ObjectType": "13",
        "IsDraft": "Y",
        "ObjectEntry": None,
        "Status": "arsPending",
        "CurrentStage": 1,
        "OriginatorID": 1,  # manager, the session's user
    }
    assert [(x["StageCode"], x["UserID"], x["Status"]) for x in request["ApprovalRequestLines"]] == [
        (1, 2, "ardPending")
    ]
    assert request["ApprovalRequestDecisions"] == []
    pending = v2.get(
        root + "ApprovalRequests",
        params={"$filter": "Status eq 'arsPending' and ObjectType eq '13'"},
        timeout=10,
    )
    assert request["Code"] in [x["Code"] for x in pending.json()["value"]]
    # Under the threshold nothing changes.
    small = invoice(9999.99, f"ST-{uuid.uuid4().hex[:8]}")
    assert small.status_code == 201, small.text
    assert small.json()["@odata.context"].endswith("$metadata#Invoices/$entity")


def test_an_approved_draft_becomes_the_invoice_once(held):
    root, v2, _, invoice = held
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    assert invoice(25000.0, ext).status_code == 404
    draft = one(v2, root + "Drafts", f"NumAtCard eq '{ext}'")["DocEntry"]
    code = one(v2, root + "ApprovalRequests", f"DraftEntry eq {draft}")["Code"]
    r = save(v2, root, draft)
    assert r.status_code == 400
    assert (
        r.json()["error"]["message"]
        == f"Cannot add the document: approval request {code} is arsPending, not approved"
    )
    r = decide(v2, root, code, "ardApproved", Remarks="Checked against the job")
    assert r.status_code == 204, r.text
    request = v2.get(root + f"ApprovalRequests({code})", timeout=10).json()
    assert request["Status"] == "arsApproved"
    assert [(x["Status"], x["Remarks"]) for x in request["ApprovalRequestLines"]] == [
        ("ardApproved", "Checked against the job")
    ]
    assert [
        (x["ApproverUserName"], x["ApproverPassword"], x["Status"])
        for x in request["ApprovalRequestDecisions"]
    ] == [
        (APPROVER, None, "ardApproved")  # the password is never served back
    ]
    assert v2.get(root + f"Drafts({draft})", timeout=10).json()["AuthorizationStatus"] == "dasApproved"
    r = save(v2, root, draft)
    assert r.status_code == 204, r.text
    assert r.content == b""
    doc = one(v2, root + "Invoices", f"NumAtCard eq '{ext}'")
    assert (doc["DocTotal"], doc["DocType"], doc["DocObjectCode"], doc["DocumentStatus"]) == (
        25000.0,
        "dDocument_Service",
        "oInvoices",
        "bost_Open",
    )
    assert doc["DocEntry"] != draft
    assert v2.get(root + f"ApprovalRequests({code})", timeout=10).json()["Status"] == "arsGenerated"
    after = v2.get(root + f"Drafts({draft})", timeout=10).json()
    assert (after["DocumentStatus"], after["AuthorizationStatus"]) == ("bost_Close", "dasGenerated")
    r = save(v2, root, draft)
    assert (r.status_code, r.json()["error"]["message"]) == (
        400,
        f"Draft {draft} is closed; it was already added as a document",
    )
    assert (
        v2.get(root + "Invoices/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "1"
    )


def test_decisions_need_an_approver_of_the_stage_and_a_rejection_stops_the_draft(held):
    root, v2, _, invoice = held
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    invoice(10000.0, ext)  # the threshold itself is reached
    draft = one(v2, root + "Drafts", f"NumAtCard eq '{ext}'")["DocEntry"]
    code = one(v2, root + "ApprovalRequests", f"DraftEntry eq {draft}")["Code"]
    r = decide(v2, root, code, "ardApproved", ApproverPassword="wrong")
    assert (r.status_code, r.json()["error"]["message"]) == (
        400,
        "User code or password is incorrect [Message 131-93]",
    )
    # Naming nobody decides as the session's user, who is no approver here.
    r = v2.patch(
        root + f"ApprovalRequests({code})",
        json={"ApprovalRequestDecisions": [{"Status": "ardApproved"}]},
        timeout=10,
    )
    assert (r.status_code, r.json()["error"]["message"]) == (
        400,
        f"User 'manager' is not an approver of stage 1 of approval request {code}",
    )
    r = decide(v2, root, code, "ardApproved", Remarks="x" * 201)
    assert r.status_code == 400
    assert (
        v2.get(root + f"ApprovalRequests({code})", timeout=10).json()["Status"] == "arsPending"
    )  # untouched
    assert decide(v2, root, code, "ardNotApproved", Remarks="Price too high").status_code == 204
    assert v2.get(root + f"ApprovalRequests({code})", timeout=10).json()["Status"] == "arsNotApproved"
    assert v2.get(root + f"Drafts({draft})", timeout=10).json()["AuthorizationStatus"] == "dasRejected"
    r = decide(v2, root, code, "ardApproved")
    assert (r.status_code, r.json()["error"]["message"]) == (
        400,
        f"Approval request {code} is not pending (status arsNotApproved)",
    )
    r = save(v2, root, draft)
    assert r.status_code == 400
    assert "arsNotApproved" in r.json()["error"]["message"]
    assert (
        v2.get(root + "Invoices/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "0"
    )


def test_the_draft_reading_answers_201_with_the_draft_and_its_location(held, sap_https_sessions):
    root, v2, control, invoice = held
    base, v1, _ = sap_https_sessions
    assert (
        control(
            "POST",
            "approvals",
            {"entity": ["Invoices", "CreditNotes"], "threshold": 10000, "post_reply": "draft"},
        ).status_code
        == 200
    )
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    r = invoice(15000.0, ext)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["@odata.context"].endswith("/b1s/v2/$metadata#Drafts/$entity")
    assert (body["DocObjectCode"], body["NumAtCard"], body["AuthorizationStatus"]) == (
        "oInvoices",
        ext,
        "dasPending",
    )
    assert r.headers["Location"] == f"{root}Drafts({body['DocEntry']})"
    assert r.headers["ETag"] == body["@odata.etag"]
    r = invoice(15000.0, f"ST-{uuid.uuid4().hex[:8]}", Prefer="return-no-content")
    assert r.status_code == 204
    assert r.headers["Location"].startswith(f"{root}Drafts(")
    # v1 answers in its own shape; a credit memo is held the same way (object type 14).
    memo = {
        "CardCode": "C00002",
        "DocType": "dDocument_Service",
        "NumAtCard": ext,
        "DocumentLines": [{"AccountCode": "421001", "LineTotal": 11000.0}],
    }
    r = v1.post(f"{base}/b1s/v1/CreditNotes", json=memo, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["odata.metadata"].endswith("/b1s/v1/$metadata#Drafts/@Element")
    assert r.json()["DocObjectCode"] == "oCreditNotes"
    request = one(v2, root + "ApprovalRequests", f"DraftEntry eq {r.json()['DocEntry']}")
    assert request["ObjectType"] == "14"


def test_after_generate_deleted_removes_the_request_as_one_installation_does(held):
    root, v2, control, invoice = held
    control("POST", "approvals", {"entity": "Invoices", "threshold": 10000, "after_generate": "deleted"})
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    invoice(20000.0, ext)
    draft = one(v2, root + "Drafts", f"NumAtCard eq '{ext}'")["DocEntry"]
    code = one(v2, root + "ApprovalRequests", f"DraftEntry eq {draft}")["Code"]
    assert decide(v2, root, code, "ardApproved").status_code == 204
    assert save(v2, root, draft).status_code == 204
    r = v2.get(root + f"ApprovalRequests({code})", timeout=10)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "-2028")
    assert v2.get(root + f"Drafts({draft})", timeout=10).json()["AuthorizationStatus"] == "dasWithout"
    assert (
        v2.get(root + "Invoices/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "1"
    )


def test_two_approvals_required_and_approvers_given_with_the_rule(held):
    root, v2, control, invoice = held
    approvers = {"cfo": "cfo-pw", "controller": "ctl-pw"}
    r = control(
        "POST", "approvals", {"entity": "Invoices", "threshold": 1, "required": 2, "approvers": approvers}
    )
    assert r.json()["approvals"]["approvers"] == ["cfo", "controller"]  # names only
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    invoice(50.0, ext)
    draft = one(v2, root + "Drafts", f"NumAtCard eq '{ext}'")["DocEntry"]
    code = one(v2, root + "ApprovalRequests", f"DraftEntry eq {draft}")["Code"]
    for name, status in (("cfo", "arsPending"), ("controller", "arsApproved")):
        decision = {"ApproverUserName": name, "ApproverPassword": approvers[name], "Status": "ardApproved"}
        r = v2.patch(
            root + f"ApprovalRequests({code})", json={"ApprovalRequestDecisions": [decision]}, timeout=10
        )
        assert r.status_code == 204, r.text
        assert v2.get(root + f"ApprovalRequests({code})", timeout=10).json()["Status"] == status
    assert save(v2, root, draft).status_code == 204


def test_approvals_switch_off_and_refuse_bad_settings(held):
    _, _, control, invoice = held
    for bad in (
        {"entity": "Nope"},
        {"entity": "Invoices", "threshold": -1},
        {"entity": "Invoices", "post_reply": "maybe"},
        {"entity": "Invoices", "colour": "red"},
        {"entity": "Invoices", "approvers": {"x": 1}},
    ):
        assert control("POST", "approvals", bad).status_code == 400, bad
    assert control("GET", "approvals").json()["approvals"]["entity"] == ["Invoices"]
    assert control("POST", "approvals", {}).json() == {"approvals": None}
    assert invoice(50000.0, f"ST-{uuid.uuid4().hex[:8]}").status_code == 201


def test_a_plain_draft_is_posted_read_by_filter_and_added_without_approval(held):
    root, v2, _, _ = held
    ext = f"DR-{uuid.uuid4().hex[:8]}"
    body = {
        "DocObjectCode": "oInvoices",
        "CardCode": "C00003",
        "NumAtCard": ext,
        "DocumentLines": [{"ItemCode": "A00001", "Quantity": 2, "UnitPrice": 10.0}],
    }
    r = v2.post(root + "Drafts", json=body, timeout=10)
    assert r.status_code == 201, r.text
    draft = r.json()
    assert (draft["DocObjectCode"], draft["AuthorizationStatus"]) == ("oInvoices", "dasWithout")
    r = v2.post(root + "Drafts", json={**body, "DocObjectCode": None}, timeout=10)
    assert r.status_code == 400
    assert save(v2, root, draft["DocEntry"]).status_code == 204
    doc = one(v2, root + "Invoices", f"NumAtCard eq '{ext}'")
    assert [(x["ItemCode"], x["Quantity"]) for x in doc["DocumentLines"]] == [("A00001", 2.0)]
    r = v2.post(root + "ApprovalRequests", json={"Remarks": "x"}, timeout=10)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "-5006")


def test_a_held_post_in_a_batch_changeset_fails_it_and_takes_the_draft_along(held):
    root, v2, control, _ = held

    def batch(ext: str) -> bytes:
        body = (
            f'{{"CardCode": "C00002", "DocType": "dDocument_Service", "NumAtCard": "{ext}", '
            '"DocumentLines": [{"AccountCode": "421001", "LineTotal": 30000.0}]}'
        )
        part = (
            "--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
            f"POST /b1s/v2/Invoices HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{body}\r\n"
        )
        return f"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n{part}--cs--\r\n--b--\r\n".encode()

    headers = {"Content-Type": "multipart/mixed; boundary=b"}
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    r = v2.post(root + "$batch", data=batch(ext), headers=headers, timeout=10)
    assert "HTTP/1.1 404 Not Found" in r.text
    assert NO_MATCH in r.text
    # A changeset is all or nothing: the draft and its request were rolled back with it.
    assert v2.get(root + "Drafts/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "0"
    assert v2.get(root + "ApprovalRequests/$count", timeout=10).text == "0"
    control("POST", "approvals", {"entity": "Invoices", "threshold": 10000, "post_reply": "draft"})
    r = v2.post(root + "$batch", data=batch(ext), headers=headers, timeout=10)
    assert "HTTP/1.1 201 Created" in r.text
    assert f"Location: {root}Drafts(" in r.text
    assert v2.get(root + "Drafts/$count", params={"$filter": f"NumAtCard eq '{ext}'"}, timeout=10).text == "1"


def test_an_approver_logged_in_decides_without_naming_anyone(held, sap_https):
    root, v2, _, invoice = held
    ext = f"ST-{uuid.uuid4().hex[:8]}"
    invoice(11000.0, ext)
    draft = one(v2, root + "Drafts", f"NumAtCard eq '{ext}'")["DocEntry"]
    code = one(v2, root + "ApprovalRequests", f"DraftEntry eq {draft}")["Code"]
    approver = requests.Session()
    approver.verify, approver.trust_env = sap_https.ca_path, False
    r = approver.post(
        root + "Login",
        json={"CompanyDB": "SBODEMOUS", "UserName": APPROVER, "Password": APPROVER_PASSWORD},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    r = approver.patch(
        root + f"ApprovalRequests({code})",
        json={"ApprovalRequestDecisions": [{"Status": "ardApproved", "Remarks": "Seen"}]},
        timeout=10,
    )
    assert r.status_code == 204, r.text
    request = v2.get(root + f"ApprovalRequests({code})", timeout=10).json()
    assert request["Status"] == "arsApproved"
    assert request["ApprovalRequestDecisions"][0]["ApproverUserName"] == APPROVER
