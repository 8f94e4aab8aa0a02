"""Reconciliation: does SAP Business One hold ServiceTitan's receivables, customer by customer?

For every ServiceTitan customer with invoices, the partner it maps to (a merged customer counts
towards the partner of the customer it was merged into) must hold the same number of invoices,
the same invoice total, the same payments applied and the same open balance in SAP. Read from
ServiceTitan's list endpoints (active and inactive records) and from SAP's ``Invoices`` and
``CreditNotes`` of the mapped partners (``CardCode``, ``NumAtCard``, ``DocTotal``, ``PaidToDate``).
A credit memo takes its total off the partner's invoiced total and, with the part of it settled
against invoices, off the payments applied; the rest of it off the open balance. One carrying a
ServiceTitan invoice id cancels one posted version of that invoice (an invoice changed after
posting and posted again, see :mod:`.sink`): SAP holds the invoice while a version of it is live.

A difference names the customer, its partner and the figures on both sides, and, for invoices
missing in SAP, each invoice id with the flow's recorded reason (from the audit trail) or "no
recorded reason"; the partner's payments whose latest attempt failed are named with theirs. A
record that waits for another (an invoice for its customer, a payment for its invoice) is
reported as failed, "waiting for ...": the next run posts it once that record is in SAP.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.servicetitan.customers import CustomerMap
from airflow_provider_b1.servicetitan.flow import NAME as FLOW_NAME
from airflow_provider_b1.servicetitan.sink import money, split_revision

log = logging.getLogger(__name__)

FIGURES = ("invoices", "invoice_total", "payments_applied", "open_balance")
_CENT = Decimal("0.01")
#: Differing invoices named per partner in the report.
SAMPLE = 20


class ReceivablesDifference(PermanentError):
    """SAP's receivables differ from ServiceTitan's; the message is the report."""


@dataclass
class PartnerFigures:
    """One partner's receivables on one side."""

    invoices: int = 0
    invoice_total: Decimal = Decimal(0)
    payments_applied: Decimal = Decimal(0)
    open_balance: Decimal = Decimal(0)
    ids: set[str] = field(default_factory=set)

    def figures(self) -> tuple:
        return (
            self.invoices,
            self.invoice_total.quantize(_CENT),
            self.payments_applied.quantize(_CENT),
            self.open_balance.quantize(_CENT),
        )


@dataclass
class PartnerDifference:
    """A partner whose receivables differ, with the invoices behind it."""

    card_code: str
    customers: list[str]
    servicetitan: PartnerFigures
    sap: PartnerFigures
    missing: dict[str, str] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    payments: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        names = dict(zip(FIGURES, self.servicetitan.figures()))
        theirs = dict(zip(FIGURES, self.sap.figures()))
        parts = [
            f"{name} ServiceTitan {names[name]}, SAP {theirs[name]}"
            for name in FIGURES
            if names[name] != theirs[name]
        ]
        text = f"partner {self.card_code} (customer {', '.join(self.customers)}): " + "; ".join(parts)
        for invoice, reason in list(self.missing.items())[:SAMPLE]:
            text += f"\n      invoice {invoice} not in SAP: {reason}"
        for payment, reason in list(self.payments.items())[:SAMPLE]:
            text += f"\n      payment {payment} not in SAP: {reason}"
        if self.extra:
            text += f"\n      in SAP, not in ServiceTitan: {', '.join(self.extra[:SAMPLE])}"
        return text


@dataclass
class ReceivablesReport:
    partners: int
    differences: list[PartnerDifference]
    unlinked: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.differences and not self.unlinked

    def describe(self) -> str:
        if self.ok:
            return f"SAP holds ServiceTitan's receivables for all {self.partners} partners."
        lines = [f"SAP differs from ServiceTitan for {len(self.differences)} of {self.partners} partners:"]
        lines += [f"  - {d.describe()}" for d in self.differences]
        lines += [
            f"  - customer {customer}: {n} invoices, but no partner in SAP yet (its invoices wait for it: the "
            "next run posts them once the customer is loaded)"
            for customer, n in self.unlinked.items()
        ]
        return "\n".join(lines)

    def to_xcom(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "partners": self.partners,
            "differing_partners": [d.card_code for d in self.differences],
            "unlinked_customers": sorted(self.unlinked),
        }


def reconcile_receivables(
    servicetitan: Any,
    sap: Any,
    customers: CustomerMap,
    *,
    audit: Any = None,
    flow: str = FLOW_NAME,
    invoice_id_field: str = "NumAtCard",
) -> ReceivablesReport:
    """Compare ServiceTitan and SAP partner by partner (see the module documentation).

    :param servicetitan: a :class:`~airflow_provider_b1.hooks.servicetitan.ServiceTitanHook`.
    :param sap: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param customers: the customer mapping table of the tenant.
    :param audit: the audit trail, to give the reason an invoice is missing in SAP.
    :param flow: the flow whose audit rows explain it.
    :param invoice_id_field: where SAP holds the ServiceTitan invoice id.
    """
    theirs: dict[str, PartnerFigures] = defaultdict(PartnerFigures)
    by_customer: dict[str, list] = defaultdict(list)
    for page in servicetitan.iter_list("accounting/invoices", {"active": "Any"}, page_size=500):
        for invoice in page:
            by_customer[str((invoice.get("customer") or {}).get("id"))].append(invoice)
    links = customers.get(by_customer)
    unlinked = {cid: len(found) for cid, found in by_customer.items() if cid not in links}
    owners: dict[str, str] = {}
    paying: dict[str, set[str]] = defaultdict(set)  # partner -> payments applied to its invoices
    members: dict[str, list[str]] = defaultdict(list)
    for customer_id, invoices in by_customer.items():
        if customer_id not in links:
            continue
        code = links[customer_id][0]
        members[code].append(customer_id)
        figures = theirs[code]
        for invoice in invoices:
            owners[str(invoice["id"])] = code
            figures.invoices += 1
            figures.ids.add(str(invoice["id"]))
            figures.invoice_total += money(invoice.get("total"), "total")
            figures.open_balance += money(invoice.get("balance"), "balance")
    for page in servicetitan.iter_list("accounting/payments", {"active": "Any"}, page_size=500):
        for payment in page:
            for part in payment.get("appliedTo") or []:
                code = owners.get(str(part.get("appliedTo")))
                if code is not None:
                    theirs[code].payments_applied += money(part.get("appliedAmount"), "appliedAmount")
                    paying[code].add(str(payment.get("id")))

    ours: dict[str, PartnerFigures] = defaultdict(PartnerFigures)
    live: dict[tuple[str, str], int] = defaultdict(int)  # (partner, invoice id) -> versions not cancelled
    select = ["CardCode", invoice_id_field, "DocTotal", "PaidToDate"]
    for entity, sign in (("Invoices", 1), ("CreditNotes", -1)):
        for page in sap.iter_any_of(entity, "CardCode", list(theirs), select=select):
            for record in page:
                figures = ours[record["CardCode"]]
                total = Decimal(repr(record.get("DocTotal") or 0)) * sign
                settled = Decimal(repr(record.get("PaidToDate") or 0)) * sign
                value = record.get(invoice_id_field)
                if value or sign > 0:
                    figures.invoices += sign
                    live[record["CardCode"], split_revision(str(value))[0]] += sign
                figures.invoice_total += total
                figures.payments_applied += settled
                figures.open_balance += total - settled
    for (code, invoice), versions in live.items():
        if versions > 0:
            ours[code].ids.add(invoice)

    differences = []
    for code, figures in sorted(theirs.items()):
        held = ours.get(code, PartnerFigures())
        if figures.figures() == held.figures() and figures.ids == held.ids:
            continue
        missing_ids = sorted(figures.ids - held.ids, key=lambda k: (len(k), k))
        recorded = audit.latest(flow, "invoices", missing_ids) if audit is not None and missing_ids else {}
        missing = {}
        for invoice in missing_ids:
            action, error = recorded.get(invoice, (None, None))
            missing[invoice] = f"recorded as failed: {error}" if action == "failed" else "no recorded reason"
        extra = sorted(held.ids - figures.ids, key=lambda k: (len(k), k))
        payments: dict[str, str] = {}
        if audit is not None and paying[code] and figures.payments_applied != held.payments_applied:
            ordered = sorted(paying[code], key=lambda k: (len(k), k))
            for payment, (action, error) in audit.latest(flow, "payments", ordered).items():
                if action == "failed":
                    payments[payment] = f"recorded as failed: {error}"
            payments = {k: payments[k] for k in ordered if k in payments}
        differences.append(
            PartnerDifference(code, sorted(members[code]), figures, held, missing, extra, payments)
        )
    return ReceivablesReport(len(theirs), differences, unlinked)


def reconcile_or_raise(report: ReceivablesReport) -> Mapping[str, Any]:
    """Log the report; raise :class:`ReceivablesDifference` with it when SAP differs."""
    if report.ok:
        log.info("%s", report.describe())
        return report.to_xcom()
    log.warning("%s", report.describe())
    raise ReceivablesDifference(
        report.describe()
        + "\nRecords waiting for another record: the next run posts them once it is in SAP. Others "
        "recorded as failed: fix the cause, then replay them (b1_replay_failed); invoices with no "
        "recorded reason: reload their window (since/until)."
    )
