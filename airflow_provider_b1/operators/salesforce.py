"""The check and reconciliation tasks of ``sap_b1_salesforce``."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.operators.sync import PermanentFailures
from airflow_provider_b1.salesforce.flow import SALESFORCE_TO_SAP_FLOW, mapping_of, salesforce_conn_id
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID as DEFAULT_AUDIT_CONN_ID
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as DEFAULT_AUDIT_SCHEMA

if TYPE_CHECKING:
    from airflow.sdk import Context


class SalesforceMappingMismatch(PermanentError):
    """The org lacks fields the mapping names, or types them otherwise."""


class SalesforceDifference(PermanentError):
    """Salesforce and SAP differ after the flow ran; the message names every difference."""


class SalesforceMappingCheckOperator(PermanentFailures, BaseOperator):
    """Check the mapping against the org before anything is written: every Salesforce object and
    field it names exists, with a type that takes what the mapping puts in it (describe calls).
    With the mapping's ``invoices`` section, the invoice object too: an org without it (no Revenue
    Cloud, no custom object) is named, as are its missing or mistyped fields, an external id field
    not marked External ID and fields the API user cannot write.

    With several SAP companies (``companies``), each org they use is checked once; an org several
    companies share needs the mapping's ``accounts.company_field``, and an ``account_number`` field
    that is not unique (each company has its own C00001, for another account). The accounts of a
    shared org that name no declared company (field empty or another value) are synced nowhere:
    they are counted and logged, once a run, and returned as ``unrouted``; they fail nothing.

    Fails at once, without retries, naming every missing or mistyped field.

    :param options: the flow's options where they differ from its defaults (``mapping``,
        connection ids), as its sync tasks are given them.
    :param companies: ``[[SAP connection id, Salesforce connection id], ...]`` of every company the
        DAG runs for; ``None``: the one company of ``options``.
    """

    template_fields: Sequence[str] = ("options",)
    ui_color = "#e3f0fb"

    def __init__(
        self,
        *,
        options: Mapping[str, Any] | None = None,
        companies: Sequence[Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.options = dict(options or {})
        self.companies = [list(pair) for pair in companies] if companies else None

    def run(self, context: Context) -> Mapping[str, Any]:
        options = SALESFORCE_TO_SAP_FLOW.merged_options(self.options)
        mapping = mapping_of(options)
        orgs: dict[str, list[str]] = {}
        for sap_conn_id, org in self.companies or [[options["sap_b1_conn_id"], salesforce_conn_id(options)]]:
            orgs.setdefault(org, []).append(sap_conn_id)
        problems: list[str] = []
        unrouted: dict[str, int] = {}
        for org, sap_conn_ids in orgs.items():
            named, count = self._check_org(mapping, org, sap_conn_ids)
            where = f" (org of {org})" if len(orgs) > 1 else ""
            problems += [problem + where for problem in named]
            if count is not None:
                unrouted[org] = count
        if problems:
            raise SalesforceMappingMismatch(
                "The mapping does not fit the org: "
                + "; ".join(problems)
                + ". Fix the mapping or add the fields."
            )
        self.log.info(
            "The mapping fits the org: %s",
            ", ".join(f"{o} ({len(f)} fields)" for o, f in mapping.salesforce_fields().items()),
        )
        found: dict[str, Any] = {"checked": {o: sorted(f) for o, f in mapping.salesforce_fields().items()}}
        if unrouted:
            found["unrouted"] = unrouted
        return found

    def _check_org(self, mapping: Any, org: str, sap_conn_ids: Sequence[str]) -> tuple[list[str], int | None]:
        """The problems of one org; and, when several companies share it, how many of its accounts
        name none of them."""
        from airflow_provider_b1.hooks.salesforce import SalesforceHook

        hook = SalesforceHook(org)
        try:
            described = {}
            for sobject in mapping.salesforce_fields():
                try:
                    described[sobject] = {f["name"]: f for f in hook.describe(sobject)["fields"]}
                except Exception as exc:  # an object the org lacks: named below
                    if getattr(exc, "status", None) not in (404,) and "NOT_FOUND" not in str(exc):
                        raise
            problems = mapping.check_against(described)
            problems += _external_id_room(mapping, described, sap_conn_ids)
            if len(sap_conn_ids) >= 2:
                shared = f"{len(sap_conn_ids)} SAP companies ({', '.join(sap_conn_ids)}) share this org"
                if not mapping.company_field:
                    problems.append(
                        f"{shared}: name in accounts.company_field the account field that says each "
                        "account's company (its SAP connection id or CompanyDB)"
                    )
                    return problems, None
                number = described.get("Account", {}).get(mapping.account_number) or {}
                if number.get("unique"):
                    problems.append(
                        f"{shared}, whose CardCodes repeat (each has its own C00001), but Account."
                        f"{mapping.account_number} (accounts.account_number) is unique: use a field that is not"
                    )
                problems += self._ambiguous_company_dbs(hook, mapping, sap_conn_ids)
            if problems or not mapping.company_field:
                return problems, None
            return problems, self._unrouted(hook, mapping, sap_conn_ids)
        finally:
            hook.close()

    @staticmethod
    def _names(sap_conn_ids: Sequence[str]) -> dict[str, list[str]]:
        """``{value: [SAP conn ids it names]}``: each company by its connection id and its CompanyDB."""
        from airflow_provider_b1.companies import company_db

        names: dict[str, list[str]] = {}
        for conn_id in sap_conn_ids:
            for value in dict.fromkeys((conn_id, company_db(conn_id))):
                if value:
                    names.setdefault(value, []).append(conn_id)
        return names

    def _ambiguous_company_dbs(self, hook: Any, mapping: Any, sap_conn_ids: Sequence[str]) -> list[str]:
        """Accounts naming a CompanyDB that two companies sharing the org log into (two servers may
        both hold a ``SBODEMOUS``) would be synced into both: named as a problem."""
        from airflow_provider_b1.salesforce.mapping import soql_list

        problems = []
        for value, conn_ids in self._names(sap_conn_ids).items():
            if len(conn_ids) < 2:
                continue
            field = mapping.company_field
            found = hook.count(f"SELECT COUNT() FROM Account WHERE {field} = {soql_list([value])}")
            if found:
                problems.append(
                    f"{found} account(s) name {value!r} in {field}, the CompanyDB of {', '.join(conn_ids)}: "
                    "they would be synced into each; name those accounts' company by its SAP connection id"
                )
        return problems

    def _unrouted(self, hook: Any, mapping: Any, sap_conn_ids: Sequence[str]) -> int:
        """Count and log the accounts (of the mapping's ``where``) naming none of the org's companies."""
        from airflow_provider_b1.salesforce.mapping import soql_list

        values = list(self._names(sap_conn_ids))
        field = mapping.company_field
        where = f"({field} = null OR {field} NOT IN ({soql_list(values)}))"
        if mapping.account_where:
            where = f"({mapping.account_where}) AND {where}"
        unrouted = hook.count(f"SELECT COUNT() FROM Account WHERE {where}")
        if unrouted:
            first = [
                record["Id"]
                for page in hook.query_pages(f"SELECT Id FROM Account WHERE {where} LIMIT 10", max_pages=1)
                for record in page
            ]
            self.log.warning(
                "%d Salesforce account(s) name no declared SAP company in %s (empty, or not one of %s): "
                "synced into no company until the field names one. First: %s",
                unrouted,
                field,
                ", ".join(values),
                ", ".join(first),
            )
        return unrouted


def _external_id_room(
    mapping: Any, described: Mapping[str, Mapping[str, Any]], sap_conn_ids: Sequence[str]
) -> list[str]:
    """A company other than the default writes ``<conn id>:<DocEntry>`` into the invoice object's
    external id: a field too short for it is named now, not refused invoice by invoice."""
    from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID

    invoices = mapping.invoices
    if invoices is None:
        return []
    length = (described.get(invoices.sobject, {}).get(invoices.external_id) or {}).get("length")
    longest = max((len(c) for c in sap_conn_ids if c != DEFAULT_SAP_CONN_ID), default=0)
    # DocEntry: up to 10 digits
    if not length or not longest or length >= longest + 11:
        return []
    return [
        f"{invoices.sobject}.{invoices.external_id} holds {length} characters, and the invoices of "
        f"{', '.join(c for c in sap_conn_ids if c != DEFAULT_SAP_CONN_ID)} need up to {longest + 11} "
        "(<SAP conn id>:<DocEntry>): lengthen it"
    ]


class SalesforceReconcileOperator(PermanentFailures, BaseOperator):
    """Compare Salesforce with SAP both ways (:func:`~airflow_provider_b1.salesforce.reconcile.reconcile`):
    accounts linked once with equal fields, one sales order per won opportunity, balances shown,
    and (with the mapping's ``invoices`` section) one invoice record per SAP invoice of a linked
    partner, with equal values.

    Fails at once, without retries, with a report naming every difference.

    :param options: as the flow's sync tasks are given them.
    """

    template_fields: Sequence[str] = ("options",)
    ui_color = "#fdf2d0"

    def __init__(self, *, options: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.options = dict(options or {})

    def run(self, context: Context) -> Mapping[str, Any]:
        from airflow_provider_b1.hooks.salesforce import SalesforceHook
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.salesforce.flow import company_of, company_values
        from airflow_provider_b1.salesforce.reconcile import reconcile

        options = SALESFORCE_TO_SAP_FLOW.merged_options(self.options)
        mapping = mapping_of(options)
        with contextlib.ExitStack() as stack:
            salesforce = SalesforceHook(salesforce_conn_id(options))
            stack.callback(salesforce.close)
            sap = SapB1Hook(options["sap_b1_conn_id"])
            stack.callback(sap.close)
            report = reconcile(
                salesforce,
                sap,
                mapping,
                companies=company_values(options, mapping),
                company=company_of(options),
            )
        if not report.ok:
            raise SalesforceDifference(report.summary())
        self.log.info(report.summary())
        found = {
            "accounts": report.accounts,
            "opportunities": report.opportunities,
            "orders": report.orders,
            "drafts": report.drafts,
        }
        if report.invoices is not None:
            found["invoices"] = report.invoices
        return found


class SalesforceOverdueOperator(PermanentFailures, BaseOperator):
    """Invoices fall due without SAP changing them, so no incremental read sees an account's
    overdue balance grow. Once a run, the open invoices whose due date passed since the last
    successful run of this task (the first time: in the last ``lookback_days``) go through the
    ``Invoices`` stream of ``sap_b1_to_salesforce`` again by key, audited like any write: their
    accounts' overdue balances move the day they fall due, and only values that changed are sent.

    :param options: as the flow's sync tasks are given them.
    :param lookback_days: how far back the first run looks for invoices fallen due.
    """

    template_fields: Sequence[str] = ("options",)
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        options: Mapping[str, Any] | None = None,
        lookback_days: int = 30,
        audit_conn_id: str = DEFAULT_AUDIT_CONN_ID,
        audit_schema: str = DEFAULT_AUDIT_SCHEMA,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.options = dict(options or {})
        self.lookback_days = lookback_days
        self.audit_conn_id = audit_conn_id
        self.audit_schema = audit_schema

    def run(self, context: Context) -> Mapping[str, Any]:
        import datetime as dt

        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
        from airflow_provider_b1.hooks.sap_b1.literals import odata_literal
        from airflow_provider_b1.salesforce import values
        from airflow_provider_b1.salesforce.flow import SAP_TO_SALESFORCE_FLOW
        from airflow_provider_b1.sync import AuditTrail, previous_summary
        from airflow_provider_b1.sync.engine import replay_keys

        today = values.utc_today()
        previous = previous_summary(context)
        since = None
        if isinstance(previous, Mapping) and previous.get("through"):
            since = dt.date.fromisoformat(str(previous["through"]))
        since = since or today - dt.timedelta(days=self.lookback_days)
        flow = SAP_TO_SALESFORCE_FLOW.scoped(self.options)  # a company's own audit rows
        options = flow.merged_options(self.options)
        sap = SapB1Hook(options["sap_b1_conn_id"])
        try:
            due = [
                str(record["DocEntry"])
                for page in sap.iter_pages(
                    "Invoices",
                    filter=(
                        f"DocumentStatus eq 'bost_Open' and DocDueDate ge {odata_literal(since)} "
                        f"and DocDueDate lt {odata_literal(today)}"
                    ),
                    select=["DocEntry"],
                )
                for record in page
            ]
        finally:
            sap.close()
        self.log.info(
            "%d open invoice(s) fell due from %s to %s: their accounts' balances are computed again.",
            len(due),
            since,
            today - dt.timedelta(days=1),
        )
        counts: dict[str, int] = {}
        if due:
            with AuditTrail(self.audit_conn_id, schema=self.audit_schema) as audit:
                audit.ensure_schema()
                with (
                    flow.open(self.options) as (source, sink),
                    audit.session_for(flow.name, context) as session,
                ):
                    stream = flow.stream("Invoices")
                    for start in range(0, len(due), 200):
                        for outcome in replay_keys(
                            flow, stream, source, sink, session, due[start : start + 200]
                        ):
                            counts[outcome.action.value] = counts.get(outcome.action.value, 0) + 1
        self.log.info(
            "Overdue refresh: %s.",
            ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) or "nothing to do",
        )
        return {"through": today.isoformat(), "invoices": len(due), "counts": counts}
