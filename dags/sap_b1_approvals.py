"""SAP Business One approval requests, decided from Microsoft Teams.

Every schedule reads SAP's pending approval requests (``ApprovalRequests``, ``Status eq
'arsPending'``) and asks each one not asked before as a human-in-the-loop approval (one mapped
task per request): its card goes to the approver's chat (bot connection, ``teams_to`` a user) or
to a channel (a webhook connection, or a bot with a channel's conversation id) with the document's
partner, amount and lines, the link to the request in Airflow, and what happens when nobody
answers in time (``ON_TIMEOUT``, by default Reject). The answer is written to SAP as the decision
of the approver whose SAP credentials are in ``sap_b1_approver``, and an approved draft is added
as its document. A request decided in SAP meanwhile is withdrawn: its card says so and nothing is
written. See :mod:`airflow_provider_b1.teams.approvals` for the ledger that makes each request
asked once and decided once.

Runs stay open while their approvals wait, so several may run at once; the ledger, not
``max_active_runs``, keeps a request from being asked twice.

Connections: ``sap_b1_default`` (reads, adding documents), ``sap_b1_approver`` (login and
password of the SAP approver), ``b1_audit_default`` (the ledger), and the Teams connection named
by the ``teams_conn_id`` param.

**Several SAP companies.** List them in ``B1_APPROVALS_COMPANIES`` (read when the DAG is parsed),
each with the connection of its own SAP approver: ``sap_b1_us=sap_b1_us_approver,
sap_b1_eu=sap_b1_eu_approver`` (``sap_b1_default`` may leave its approver out: ``sap_b1_approver``;
every other company of several must name its own). Each company but ``sap_b1_default`` (whose tasks stay
where they were) gets a task group named after its SAP connection, with its own ``pending_requests`` and ``approve`` tasks: its requests are read
through its SAP connection, its ledger rows are its own, each request and its card name the
company (its CompanyDB), and the answer is written as that company's approver and the approved
draft added through that company's SAP connection. A company whose SAP is down fails only its own
tasks. Unset, the DAG runs ``sap_b1_default`` with ``sap_b1_approver``, with the tasks it always had.
"""

from __future__ import annotations

import datetime as dt
import logging

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from airflow_provider_b1.companies import Company, company_db, per_company
from airflow_provider_b1.notifications.teams import TeamsNotifier
from airflow_provider_b1.teams.approvals import SapApprovalOperator, approval_companies

log = logging.getLogger(__name__)

AUDIT_CONN_ID = "b1_audit_default"
AUDIT_SCHEMA = "b1_audit"
RESPONSE_TIMEOUT = dt.timedelta(hours=48)
"""How long an approver has to answer before ``ON_TIMEOUT`` is taken."""
ON_TIMEOUT = "Reject"
"""What a request nobody answered in time becomes: ``Reject`` or ``Approve``."""


def build(
    *,
    response_timeout: dt.timedelta = RESPONSE_TIMEOUT,
    on_timeout: str = ON_TIMEOUT,
    schedule: str | None = "*/15 * * * *",
):
    """The DAG, with its timeout and default decision (tests shorten the timeout)."""

    @dag(
        dag_id="sap_b1_approvals",
        description="SAP Business One approval requests decided from Microsoft Teams.",
        schedule=schedule,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=16,
        default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=1)},
        params={
            "teams_conn_id": Param("b1_teams_bot_default", type="string", description="Teams connection."),
            "teams_to": Param(
                "",
                type="string",
                description="Bot connection: the approver's UPN or e-mail, or a channel's conversation id.",
            ),
            "max_requests": Param(
                50, type="integer", minimum=1, description="Requests asked per run, at most."
            ),
        },
        tags=["sap_b1", "teams", "approvals"],
        doc_md=__doc__,
    )
    def sap_b1_approvals():
        companies = approval_companies()
        several = len(companies) > 1

        def ask_company(company: Company, prefix: str) -> None:
            """One company's tasks: its pending requests, then one approval per request."""
            sap_conn_id, approver_conn_id = company.sap_b1_conn_id, company.peer_conn_id

            @task(task_id="pending_requests")
            def pending_requests(params=None) -> list[dict]:
                """Withdraw what SAP decided meanwhile, then claim the pending requests never asked."""
                from airflow.sdk import BaseHook

                from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
                from airflow_provider_b1.teams import approvals
                from airflow_provider_b1.utils.sql import open_database

                context = get_current_context()
                params = params or {}
                ledger = approvals.ApprovalLedger(
                    open_database(AUDIT_CONN_ID, purpose="the approvals ledger"), AUDIT_SCHEMA, sap_conn_id
                )
                hook = SapB1Hook(sap_conn_id)
                # where several companies ask, every request and card names its company's CompanyDB
                named = (company_db(sap_conn_id) or sap_conn_id) if several else None
                try:
                    notifier = TeamsNotifier(
                        teams_conn_id=params["teams_conn_id"], to=params.get("teams_to") or None
                    )
                    approver = BaseHook.get_connection(approver_conn_id).login or ""
                    withdrawn = approvals.withdraw_decided_in_sap(
                        hook, ledger, notifier, approver=approver, company=named
                    )
                    if withdrawn:
                        log.info("Withdrawn, decided in SAP meanwhile: %s", withdrawn)
                    pending = approvals.pending_requests(hook, limit=int(params.get("max_requests") or 50))
                    asked = set(
                        ledger.claim(
                            [(int(r["Code"]), r.get("DraftEntry")) for r in pending],
                            dag_id=context["dag"].dag_id,
                            run_id=context["run_id"],
                        )
                    )
                    requests = [
                        approvals.describe(hook, r, named) for r in pending if int(r["Code"]) in asked
                    ]
                    log.info("%d requests pending in SAP, %d asked by this run.", len(pending), len(requests))
                    return requests
                finally:
                    hook.close()
                    ledger.close()

            SapApprovalOperator.partial(
                task_id="approve",
                sap_conn_id=sap_conn_id,
                approver_conn_id=approver_conn_id,
                audit_conn_id=AUDIT_CONN_ID,
                audit_schema=AUDIT_SCHEMA,
                response_timeout=response_timeout,
                defaults=on_timeout,
                notifiers=[
                    TeamsNotifier(teams_conn_id="{{ params.teams_conn_id }}", to="{{ params.teams_to }}")
                ],
                map_index_template="{{ task.request.kind }} {{ task.request.doc_num }}",
                retries=0,
            ).expand(request=pending_requests())

        per_company(companies, ask_company)

    return sap_b1_approvals()


sap_b1_approvals = build
build()
