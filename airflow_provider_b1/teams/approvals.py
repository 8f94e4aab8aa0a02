"""SAP Business One approval requests decided from Microsoft Teams.

A document that an approval procedure holds waits in SAP as a draft with an ``ApprovalRequests``
row (``Status: arsPending``). The ``sap_b1_approvals`` DAG turns each such request into one
human-in-the-loop approval (:class:`SapApprovalOperator`, mapped over the requests), whose
:class:`~airflow_provider_b1.notifications.teams.TeamsNotifier` posts the card to the approver's
chat or a channel. The answer (or, when nobody answers in time, the configured default) is
written back to SAP as that approver's decision, and an approved draft is added as its document.

Exactly once, across schedules, re-runs and decisions taken in SAP itself:

- **The ledger** (table ``teams_approval`` in the audit database) holds one row per request
  (SAP connection, ``Code``), claimed by the run that asks; a later schedule never asks again
  while the first request is open, and a re-run of a decided request asks nobody.
- **SAP's state is read before every write.** A request no longer pending that this flow did not
  decide was decided in SAP meanwhile: it is *withdrawn* (the card says so; nothing is written).
  A decision this flow wrote but did not record (a crash in between) is recognised by its
  approver and remarks, so it is never written twice and its draft is still added.

The approver's SAP credentials come from an Airflow connection (login and password) and travel
only in the decision's body to SAP; they are registered with the log masker.

**Several SAP companies** (:func:`approval_companies`, ``B1_APPROVALS_COMPANIES``): each company's
requests are read, claimed, decided and added through its own connections, its SAP connection and
its approver's; the ledger's rows are already per company (its key is the SAP connection and the
request's ``Code``, so request 1 of two companies is two rows), and a request described with its
``company`` (a CompanyDB) says so in its subject, its body and its cards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID, Company, declared_companies
from airflow_provider_b1.hooks.sap_b1.errors import (
    SapB1AmbiguousWriteError,
    SapB1Error,
    SapB1NotFoundError,
)
from airflow_provider_b1.hooks.sap_b1.literals import odata_eq
from airflow_provider_b1.notifications.teams import TeamsNotifier
from airflow_provider_b1.teams.cards import document_total, format_amount, notice_card
from airflow_provider_b1.utils.migrations import Migration, MigrationSet
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.sql import Database, dialect_of, mark_of, query, transaction

log = logging.getLogger(__name__)

TABLE = "teams_approval"
PENDING = "arsPending"
GENERATED_STATUSES = frozenset(("arsGenerated", "arsGeneratedByAuthorizer"))
APPROVE, REJECT = ApprovalOperator.APPROVE, ApprovalOperator.REJECT
SAVE_DRAFT = "DraftsService_SaveDraftToDocument"
REMARKS_PREFIX = "Teams: "
"""Starts the remarks of every decision this flow writes: how a decision found in SAP is known
as this flow's own after a crash between writing it and recording it."""

KINDS = {
    "oPurchaseOrders": ("PurchaseOrders", "Purchase order"),
    "oPurchaseInvoices": ("PurchaseInvoices", "Purchase invoice"),
    "oOrders": ("Orders", "Sales order"),
    "oInvoices": ("Invoices", "A/R invoice"),
    "oCreditNotes": ("CreditNotes", "A/R credit memo"),
    "oDeliveryNotes": ("DeliveryNotes", "Delivery"),
}
"""A draft's ``DocObjectCode`` → (the document's entity set, its name on a card)."""

MIGRATIONS = MigrationSet(
    "teams_approvals",
    "teams_approval_version",
    (
        Migration(
            1,
            "SAP approval requests asked in Teams",
            (
                f"""CREATE TABLE IF NOT EXISTS {{s}}{TABLE} (
                sap_conn_id {{text}} NOT NULL,
                code {{bigint}} NOT NULL,
                draft_entry {{bigint}},
                state {{text}} NOT NULL,
                dag_id {{text}} NOT NULL,
                run_id {{text}} NOT NULL,
                conversation_id {{text}},
                activity_id {{text}},
                decision {{text}},
                decided_by {{text}},
                asked_at {{ts}} NOT NULL,
                updated_at {{ts}} NOT NULL,
                PRIMARY KEY (sap_conn_id, code)
            )""",
                f"CREATE INDEX IF NOT EXISTS {TABLE}_state ON {{s}}{TABLE} (sap_conn_id, state)",
            ),
        ),
    ),
)

#: The SAP companies whose requests are asked, each ``<SAP conn id>=<SAP approver conn id>``.
COMPANIES_ENV = "B1_APPROVALS_COMPANIES"
#: The approver connection of the default company, and of a deployment's only company.
DEFAULT_APPROVER_CONN_ID = "sap_b1_approver"


def approval_companies(value: str | None = None) -> list[Company]:
    """The SAP companies whose approval requests are asked, each with its approver's connection
    (:attr:`Company.peer_conn_id`): ``B1_APPROVALS_COMPANIES`` (``value``, when given, instead),
    entries ``<SAP conn id>=<SAP approver conn id>`` separated by commas; unset, ``sap_b1_default``
    with ``sap_b1_approver``, as before companies.

    ``sap_b1_default``, or a company declared alone, may leave its approver out: ``sap_b1_approver``.

    :raises ValueError: for another company without its approver (each of several companies'
        approver is its own SAP user, in its own company), an approver connection given to two
        companies, or what :func:`~airflow_provider_b1.companies.declared_companies` refuses.
    """
    declared = declared_companies(COMPANIES_ENV, value, peer="SAP approver connection")
    companies = []
    for company in declared:
        approver = company.peer_conn_id
        if approver is None:
            if not company.is_default and len(declared) > 1:
                raise ValueError(
                    f"{COMPANIES_ENV} names {company.sap_b1_conn_id!r} without its approver; write "
                    f"{company.sap_b1_conn_id}=<its SAP approver connection id>."
                )
            approver = DEFAULT_APPROVER_CONN_ID
        companies.append(Company(company.sap_b1_conn_id, approver))
    approvers = [company.peer_conn_id for company in companies]
    if len(set(approvers)) != len(approvers):
        raise ValueError(
            f"{COMPANIES_ENV} gives {DEFAULT_APPROVER_CONN_ID!r} to two companies (one of them by "
            "leaving its approver out); name each company's own approver connection."
        )
    return companies


ASKED, APPROVED, REJECTED, GENERATED, WITHDRAWN = "asked", "approved", "rejected", "generated", "withdrawn"
FINAL = frozenset((REJECTED, GENERATED, WITHDRAWN))
"""Ledger states after which nothing is asked or written for the request again."""


@dataclass
class LedgerRow:
    code: int
    draft_entry: int | None
    state: str
    run_id: str
    conversation_id: str | None
    activity_id: str | None
    decision: str | None


class ApprovalLedger:
    """Which approval requests were asked in Teams, and what became of them.

    :param database: the audit trail's database.
    :param schema: its PostgreSQL schema (ignored by SQLite).
    :param sap_conn_id: the SAP connection the requests belong to (one company's codes).
    """

    def __init__(self, database: Database, schema: str | None, sap_conn_id: str) -> None:
        self.database = database
        self.schema = schema if database.dialect == "postgres" else None
        self.sap_conn_id = sap_conn_id
        self._conn: Any = None

    @property
    def table(self) -> str:
        return f"{self.schema}.{TABLE}" if self.schema else TABLE

    def connection(self) -> Any:
        if self._conn is None:
            self._conn = self.database.connect()
            MIGRATIONS.apply(self._conn, self.schema)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _now(self) -> str:
        return "now()" if dialect_of(self.connection()) == "postgres" else "CURRENT_TIMESTAMP"

    def claim(self, requests: Iterable[tuple[int, int | None]], *, dag_id: str, run_id: str) -> list[int]:
        """Claim ``(code, draft entry)`` for this run; returns the codes this run asks: those it
        claimed now and those it claimed on an earlier try (still only asked). A code claimed by
        another run is left to it."""
        conn = self.connection()
        mark = mark_of(conn)
        wanted = list(requests)
        with transaction(conn) as cursor:
            cursor.executemany(
                f"INSERT INTO {self.table} (sap_conn_id, code, draft_entry, state, dag_id, run_id, asked_at, "
                f"updated_at) VALUES ({mark}, {mark}, {mark}, {mark}, {mark}, {mark}, {self._now()}, {self._now()}) "
                "ON CONFLICT (sap_conn_id, code) DO NOTHING",
                [(self.sap_conn_id, code, draft, ASKED, dag_id, run_id) for code, draft in wanted],
            )
        mine = {
            row[0]
            for row in query(
                conn,
                f"SELECT code FROM {self.table} WHERE sap_conn_id = {{p}} AND run_id = {{p}} AND state = {{p}}",
                [self.sap_conn_id, run_id, ASKED],
            )
        }
        return [code for code, _ in wanted if code in mine]

    def get(self, code: int) -> LedgerRow | None:
        rows = query(
            self.connection(),
            "SELECT code, draft_entry, state, run_id, conversation_id, activity_id, decision "
            f"FROM {self.table} WHERE sap_conn_id = {{p}} AND code = {{p}}",
            [self.sap_conn_id, code],
        )
        return LedgerRow(*rows[0]) if rows else None

    def open_requests(self) -> list[LedgerRow]:
        """Requests asked and not decided yet, by any run."""
        rows = query(
            self.connection(),
            "SELECT code, draft_entry, state, run_id, conversation_id, activity_id, decision "
            f"FROM {self.table} WHERE sap_conn_id = {{p}} AND state = {{p}} ORDER BY code",
            [self.sap_conn_id, ASKED],
        )
        return [LedgerRow(*row) for row in rows]

    def set_card(self, code: int, conversation_id: str | None, activity_id: str | None) -> None:
        self._update(code, conversation_id=conversation_id, activity_id=activity_id)

    def set_state(
        self, code: int, state: str, *, decision: str | None = None, decided_by: str | None = None
    ) -> None:
        self._update(code, state=state, decision=decision, decided_by=decided_by)

    def _update(self, code: int, **values: Any) -> None:
        values = {k: v for k, v in values.items() if v is not None or k in ("conversation_id", "activity_id")}
        conn = self.connection()
        mark = mark_of(conn)
        sets = ", ".join(f"{name} = {mark}" for name in values)
        with transaction(conn) as cursor:
            cursor.execute(
                f"UPDATE {self.table} SET {sets}, updated_at = {self._now()} "
                f"WHERE sap_conn_id = {mark} AND code = {mark}",
                [*values.values(), self.sap_conn_id, code],
            )


# -- SAP ----------------------------------------------------------------------------------------


def pending_requests(hook: Any, *, limit: int = 100) -> list[dict[str, Any]]:
    """SAP's pending approval requests of drafts (oldest first, at most ``limit``)."""
    found = []
    for record in hook.iter_records(
        "ApprovalRequests",
        filter=odata_eq("Status", PENDING),
        select=["Code", "ObjectType", "DraftEntry", "Status", "Remarks"],
        orderby="Code",
    ):
        if record.get("DraftEntry") is None:
            continue  # a request about a document itself: nothing to add once approved
        found.append(record)
        if len(found) >= limit:
            break
    return found


def describe(hook: Any, request: Mapping[str, Any], company: str | None = None) -> dict[str, Any]:
    """What an approver needs to decide, from the request's draft: primitives only (XCom).

    :param company: the SAP company to name (its CompanyDB), where several companies ask.
    """
    draft = hook.get(
        "Drafts",
        int(request["DraftEntry"]),
        select=[
            "DocEntry",
            "DocNum",
            "DocObjectCode",
            "CardCode",
            "CardName",
            "DocTotal",
            "DocTotalFc",
            "DocCurrency",
            "DocDate",
            "DocDueDate",
            "Comments",
            "DocumentLines",
        ],
    )
    entity, label = KINDS.get(str(draft.get("DocObjectCode")), (None, "Document"))
    lines = draft.get("DocumentLines") or []
    return {
        "code": int(request["Code"]),
        "draft_entry": int(draft["DocEntry"]),
        "entity": entity,
        "kind": label,
        "doc_num": draft.get("DocNum"),
        "partner": " ".join(str(x) for x in (draft.get("CardName"), f"({draft.get('CardCode')})") if x),
        # DocTotal is in the company's currency; the document's own is DocTotalFc (see the cards).
        "amount": format_amount(document_total(draft), draft.get("DocCurrency")).replace("\\", ""),
        "doc_date": str(draft.get("DocDate") or "")[:10],
        "due_date": str(draft.get("DocDueDate") or "")[:10],
        "lines": len(lines),
        "comments": draft.get("Comments"),
        "remarks": request.get("Remarks"),
        **({"company": company} if company else {}),
    }


def read_request(hook: Any, code: int) -> dict[str, Any] | None:
    """The request as SAP holds it now; ``None`` once SAP deleted it (some installations do,
    after the draft became its document)."""
    try:
        return hook.get("ApprovalRequests", int(code))
    except SapB1NotFoundError:
        return None


def decided_by_us(request: Mapping[str, Any] | None, approver: str) -> str | None:
    """``ardApproved``/``ardNotApproved`` when this flow's decision is in SAP already, else None."""
    for decision in (request or {}).get("ApprovalRequestDecisions") or []:
        if decision.get("ApproverUserName") == approver and str(decision.get("Remarks") or "").startswith(
            REMARKS_PREFIX
        ):
            return decision.get("Status")
    return None


def write_decision(hook: Any, code: int, *, approve: bool, approver: tuple[str, str], remarks: str) -> None:
    """``PATCH ApprovalRequests(<Code>)`` adding the approver's decision (taken as that SAP user).

    The PATCH adds a row, so it is never repeated blindly: when its outcome is unknown, the
    request is read back and the decision counts as written if SAP holds it.
    """
    user, password = approver
    mask(password)
    decision = {
        "ApproverUserName": user,
        "ApproverPassword": password,
        "Status": "ardApproved" if approve else "ardNotApproved",
        "Remarks": (REMARKS_PREFIX + remarks)[:200],
    }
    try:
        hook.update("ApprovalRequests", int(code), {"ApprovalRequestDecisions": [decision]})
    except SapB1AmbiguousWriteError:
        if decided_by_us(read_request(hook, code), user) is None:
            raise


def add_document(hook: Any, draft_entry: int, entity: str | None) -> str:
    """Add an approved draft as its document: ``DraftsService_SaveDraftToDocument``, else (a
    Service Layer that does not serve it) a POST of the document naming the draft's key,
    ``{"DocEntry": <draft>}`` (PROTOCOLS.md leaves which one a version expects unconfirmed).

    :returns: which way was taken (``service`` or ``post``).
    """
    try:
        hook.request("POST", SAVE_DRAFT, json={"Document": {"DocEntry": int(draft_entry)}})
        return "service"
    except SapB1Error as exc:
        # -2028 names a missing draft; another 404, a 405 or a 501 names a missing service.
        unknown_service = exc.status in (404, 405, 501) and str(exc.code) != "-2028"
        if not unknown_service or entity is None:
            raise
        log.info("The Service Layer does not serve %s (%s); posting the document instead.", SAVE_DRAFT, exc)
    hook.request("POST", entity, json={"DocEntry": int(draft_entry)})
    return "post"


# -- the card after the decision ----------------------------------------------------------------


def outcome_card(
    request: Mapping[str, Any], outcome: str, *, by: str | None, note: str | None
) -> dict[str, Any]:
    """The card replacing (bot) or following (webhook) an approval request once it is settled."""
    title = f"{request.get('kind')} {request.get('doc_num')}"
    heading, color = {
        GENERATED: (f"Approved: {title}", "Good"),
        APPROVED: (f"Approved: {title}", "Good"),
        REJECTED: (f"Rejected: {title}", "Attention"),
        WITHDRAWN: (f"Withdrawn: {title}", "Warning"),
    }[outcome]
    facts = [
        ("Partner", request.get("partner")),
        ("Amount", request.get("amount")),
        ("Approval request", request.get("code")),
        ("Decided by", by),
    ]
    if request.get("company"):
        facts.insert(0, ("Company", request["company"]))
    return notice_card(heading, facts, text=note, color=color)


# -- the operator -------------------------------------------------------------------------------


def subject_of(request: Mapping[str, Any]) -> str:
    where = f" in {request['company']}" if request.get("company") else ""
    return f"Approve {request.get('kind')} {request.get('doc_num')} ({request.get('amount')}){where}?"


def body_of(request: Mapping[str, Any]) -> str:
    rows = [f"Company: {request['company']}"] if request.get("company") else []
    rows += [
        f"Partner: {request.get('partner')}",
        f"Amount: {request.get('amount')}",
        f"Date: {request.get('doc_date')}, due {request.get('due_date')}",
        f"Lines: {request.get('lines')}",
        f"SAP approval request {request.get('code')}, draft {request.get('draft_entry')}",
    ]
    if request.get("comments"):
        rows.append(f"Comments: {request.get('comments')}")
    return "\n".join(rows)


class SapApprovalOperator(ApprovalOperator):
    """One SAP approval request as a human-in-the-loop approval; the answer is written to SAP.

    :param request: what :func:`describe` returned for the request (mapped over).
    :param sap_conn_id: the SAP connection (reads, the draft's document).
    :param approver_conn_id: a connection whose login and password are the SAP approver's.
    :param audit_conn_id: the audit database holding the ledger; ``audit_schema`` its schema.
    Other arguments are :class:`ApprovalOperator`'s (``notifiers``, ``response_timeout``,
    ``defaults``: the option taken when nobody answers in time).

    Posted through a Teams bot, the card carries Approve and Reject buttons; pressed, the
    receiver's bot endpoint answers the request and names the Teams user in ``params_input``
    (``teams_responder``), who is then the decision's author in SAP.
    """

    teams_card_buttons = True

    def __init__(
        self,
        *,
        request: Mapping[str, Any],
        sap_conn_id: str = DEFAULT_SAP_CONN_ID,
        approver_conn_id: str = DEFAULT_APPROVER_CONN_ID,
        audit_conn_id: str = "b1_audit_default",
        audit_schema: str = "b1_audit",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", subject_of(request))
        kwargs.setdefault("body", body_of(request))
        super().__init__(**kwargs)
        self.request = dict(request)
        self.sap_conn_id = sap_conn_id
        self.approver_conn_id = approver_conn_id
        self.audit_conn_id = audit_conn_id
        self.audit_schema = audit_schema

    def _ledger(self) -> ApprovalLedger:
        from airflow_provider_b1.utils.sql import open_database

        return ApprovalLedger(
            open_database(self.audit_conn_id, purpose="the approvals ledger"),
            self.audit_schema,
            self.sap_conn_id,
        )

    def _teams(self) -> TeamsNotifier | None:
        """The Teams notifier, its templated fields rendered (a resumed task has not called it)."""
        teams = next((n for n in self.notifiers if isinstance(n, TeamsNotifier)), None)
        if teams is not None and self._context is not None:
            teams.render_template_fields(teams._update_context(self._context))
        return teams

    _context: Any = None

    def execute(self, context: Any) -> Any:
        self._context = context
        ledger = self._ledger()
        try:
            row = ledger.get(self.request["code"])
            if row is not None and row.state in FINAL | {APPROVED}:
                # Decided already (a cleared task, a re-run): ask nobody, settle what is left.
                self.log.info(
                    "Approval request %s is %s already; nobody is asked again.", row.code, row.state
                )
                outcome = self.settle(ledger, approve=row.decision == APPROVE, by=None, timed_out=False)
                return {"chosen_options": [row.decision] if row.decision else [], "outcome": outcome}
            try:
                return super().execute(context)
            finally:
                teams = self._teams()
                if teams is not None and teams.last_post is not None:
                    ledger.set_card(
                        self.request["code"],
                        teams.last_post.get("conversation_id"),
                        teams.last_post.get("activity_id"),
                    )
        finally:
            ledger.close()

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        self._context = context
        answer = super().execute_complete(context=context, event=event)
        timed_out = bool(event.get("timedout")) or answer.get("responded_by_user") is None
        user = answer.get("responded_by_user") or {}
        # A button pressed in Teams is answered by the receiver's Airflow user on someone's behalf.
        pressed = (answer.get("params_input") or {}).get("teams_responder")
        if isinstance(pressed, Mapping) and (pressed.get("name") or pressed.get("id")):
            user = pressed
        by = None if timed_out else str(user.get("name") or user.get("id") or "someone")
        approve = answer["chosen_options"] == [APPROVE]
        ledger = self._ledger()
        try:
            outcome = self.settle(ledger, approve=approve, by=by, timed_out=timed_out)
        finally:
            ledger.close()
        return {**answer, "outcome": outcome}

    def settle(self, ledger: ApprovalLedger, *, approve: bool, by: str | None, timed_out: bool) -> str:
        """Write the answer to SAP unless SAP or the ledger says it is settled; update the card.

        :returns: ``generated``, ``rejected``, ``withdrawn`` or, while SAP waits for other
            approvers, ``approved``.
        """
        from airflow.sdk import BaseHook

        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

        code = int(self.request["code"])
        row = ledger.get(code)
        if row is not None and row.state in FINAL:
            self.log.info("Approval request %s is %s already; nothing is written.", code, row.state)
            return row.state
        approver = BaseHook.get_connection(self.approver_conn_id)
        user, password = str(approver.login or ""), str(approver.password or "")
        mask(password)
        hook = SapB1Hook(self.sap_conn_id)
        try:
            sap = read_request(hook, code)
            status = (sap or {}).get("Status")
            ours = decided_by_us(sap, user)
            state = row.state if row is not None else ASKED
            note = None
            if state == ASKED and ours is None:
                if status != PENDING:
                    ledger.set_state(code, WITHDRAWN, decided_by="SAP")
                    note = f"Decided in SAP meanwhile ({status or 'request removed'}); nothing was written from Teams."
                    self._update_card(ledger, WITHDRAWN, by="SAP", note=note)
                    return WITHDRAWN
                if timed_out:
                    remarks = f"no answer in time, {'approved' if approve else 'rejected'} by default"
                else:
                    remarks = f"{'approved' if approve else 'rejected'} by {by}"
                write_decision(hook, code, approve=approve, approver=(user, password), remarks=remarks)
                ours = "ardApproved" if approve else "ardNotApproved"
                sap = read_request(hook, code)
                status = (sap or {}).get("Status")
            decision = APPROVE if ours == "ardApproved" else REJECT
            decider = "Airflow (timeout default)" if timed_out else by
            if ours == "ardNotApproved":
                ledger.set_state(code, REJECTED, decision=decision, decided_by=decider)
                note = "No answer in time: rejected by default." if timed_out else None
                self._update_card(ledger, REJECTED, by=decider, note=note)
                return REJECTED
            ledger.set_state(code, APPROVED, decision=decision, decided_by=decider)
            prefix = "No answer in time: approved by default. " if timed_out else ""
            if status == "arsApproved":
                way = add_document(hook, self.request["draft_entry"], self.request.get("entity"))
                self.log.info("Draft %s was added as its document (%s).", self.request["draft_entry"], way)
                outcome, note = GENERATED, prefix + "The document was added to SAP."
            elif status in GENERATED_STATUSES or sap is None:
                outcome, note = GENERATED, prefix + "The document is in SAP."
            elif status == PENDING:
                # More approvals are required: this approver's part is done, SAP waits for the others.
                outcome, note = APPROVED, prefix + "Approved here; SAP waits for the other approvers."
            else:
                # Another approver rejected it, or it was cancelled, after this approval.
                outcome, note = (
                    WITHDRAWN,
                    f"{prefix}Approved here, then {status} in SAP: no document was added.",
                )
            ledger.set_state(code, outcome)
            self._update_card(ledger, outcome, by=decider, note=note)
            return outcome
        finally:
            hook.close()

    def _update_card(self, ledger: ApprovalLedger, outcome: str, *, by: str | None, note: str | None) -> None:
        """Replace the request's card (bot) or post a follow-up (webhook); a failure is logged."""
        teams = self._teams()
        if teams is None:
            return
        card = outcome_card(self.request, outcome, by=by, note=note)
        row = ledger.get(int(self.request["code"]))
        try:
            hook = teams.hook()
            try:
                if row is not None and row.activity_id and row.conversation_id and hasattr(hook, "update"):
                    hook.update(row.conversation_id, row.activity_id, card)
                elif hasattr(hook, "send") and teams.to:
                    hook.post_card(card, to=teams.to)
                else:
                    hook.post_card(card)
            finally:
                hook.close()
        except Exception as exc:
            self.log.warning(
                "The Teams card of approval request %s was not updated: %s", row and row.code, exc
            )


def withdraw_decided_in_sap(
    hook: Any,
    ledger: ApprovalLedger,
    notifier: TeamsNotifier | None,
    *,
    approver: str,
    company: str | None = None,
) -> list[int]:
    """Withdraw open requests that SAP no longer holds as pending and this flow did not decide:
    their cards say so (naming ``company``, a CompanyDB, when given), the ledger marks them
    withdrawn, and their still-open approvals in Airflow write nothing when answered. Returns
    the codes withdrawn."""
    withdrawn = []
    for row in ledger.open_requests():
        sap = read_request(hook, row.code)
        if sap is not None and sap.get("Status") == PENDING:
            continue
        if decided_by_us(sap, approver) is not None:
            continue  # this flow's own decision, recorded when its task resumes
        ledger.set_state(row.code, WITHDRAWN, decided_by="SAP")
        withdrawn.append(row.code)
        if notifier is None:
            continue
        status = (sap or {}).get("Status") or "request removed"
        facts = [("Approval request", row.code), ("Draft", row.draft_entry), ("Status in SAP", status)]
        if company:
            facts.insert(0, ("Company", company))
        card = notice_card(
            f"Withdrawn: SAP approval request {row.code}",
            facts,
            text="Decided in SAP meanwhile; the request in Airflow writes nothing when answered.",
            color="Warning",
        )
        try:
            teams = notifier.hook()
            try:
                if row.activity_id and row.conversation_id and hasattr(teams, "update"):
                    teams.update(row.conversation_id, row.activity_id, card)
                elif hasattr(teams, "send") and notifier.to:
                    teams.post_card(card, to=notifier.to)
                else:
                    teams.post_card(card)
            finally:
                teams.close()
        except Exception as exc:
            log.warning("The Teams card of approval request %s was not updated: %s", row.code, exc)
    return withdrawn


__all__ = [
    "ApprovalLedger",
    "SapApprovalOperator",
    "add_document",
    "approval_companies",
    "describe",
    "pending_requests",
    "withdraw_decided_in_sap",
    "write_decision",
]
