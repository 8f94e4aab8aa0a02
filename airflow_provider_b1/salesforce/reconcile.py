"""Are Salesforce and SAP Business One equal, both ways? The last task of ``sap_b1_salesforce``.

Checks, and names every difference:

* every account (of the mapping's ``where``) is linked to exactly one partner: its number names
  a partner SAP holds, and no other partner carries its id in the link field;
* every mapped field holds the same value on both sides;
* every Closed Won opportunity has exactly one sales order (or one draft pending approval) whose
  lines and total are the opportunity's, and the opportunity shows the order's number;
* every linked account and every ordered opportunity shows SAP's balances;
* with the mapping's ``invoices`` section, every SAP invoice of a linked partner has exactly one
  record in the invoice object, pointing at the partner's account (and the invoice's opportunity),
  with the values the mapping sends.

Run for one SAP company of several (``companies``: the values of the mapping's
``accounts.company_field`` naming it), it compares only that company's accounts and the won
opportunities of its accounts with its SAP; ``company`` (a company other than the default) is
what its invoice records' external ids carry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from airflow_provider_b1.salesforce import values
from airflow_provider_b1.salesforce.mapping import InvoiceObject, SalesforceMapping
from airflow_provider_b1.salesforce.to_salesforce import SapFigures, invoice_external_id, invoice_values
from airflow_provider_b1.salesforce.values import OPPORTUNITY_ID, number, salesforce_form
from airflow_provider_b1.sources.salesforce import SoqlRead
from airflow_provider_b1.sync.pairs import value_hash

_CENT = Decimal("0.01")


@dataclasses.dataclass
class SalesforceReport:
    """What :func:`reconcile` found."""

    accounts: int = 0
    opportunities: int = 0
    orders: int = 0
    drafts: int = 0
    invoices: int | None = None
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        head = (
            f"{self.accounts} accounts, {self.opportunities} won opportunities "
            f"({self.orders} orders, {self.drafts} pending approval)"
        )
        if self.invoices is not None:
            head += f", {self.invoices} invoice records"
        if self.ok:
            return f"Salesforce and SAP agree: {head}."
        shown = "\n".join(f"- {p}" for p in self.problems[:200])
        more = f"\n- ... and {len(self.problems) - 200} more" if len(self.problems) > 200 else ""
        return f"Salesforce and SAP differ in {len(self.problems)} ways ({head}):\n{shown}{more}"


def _query(salesforce: Any, read: SoqlRead) -> list[dict[str, Any]]:
    soql = read.select() + (f" WHERE {read.where}" if read.where else "")
    return [record for page in salesforce.query_pages(soql) for record in page]


def reconcile(
    salesforce: Any,
    sap: Any,
    mapping: SalesforceMapping,
    *,
    today: dt.date | None = None,
    companies: Sequence[str] | None = None,
    company: str | None = None,
) -> SalesforceReport:
    """Compare the org with the company (see the module documentation)."""
    report = SalesforceReport()
    today = today or values.utc_today()
    figures = SapFigures(sap, mapping, today)
    number_field = mapping.account_number
    account_fields = (
        number_field,
        *(f.salesforce for f in mapping.fields),
        *mapping.account_balances.values(),
    )
    accounts = _query(salesforce, SoqlRead("Account", account_fields, mapping.account_filter(companies)))
    report.accounts = len(accounts)
    codes = {a["Id"]: str(a.get(number_field) or "") for a in accounts}
    select = ["CardCode", *(f.sap for f in mapping.fields)] + (
        [mapping.link_field] if mapping.link_field else []
    )
    partners = {
        p["CardCode"]: p
        for p in figures.rows("BusinessPartners", "CardCode", [c for c in codes.values() if c], select)
    }
    if mapping.link_field:
        carriers: dict[str, list[str]] = defaultdict(list)
        for partner in figures.rows(
            "BusinessPartners", mapping.link_field, list(codes), ["CardCode", mapping.link_field]
        ):
            carriers[str(partner[mapping.link_field])].append(partner["CardCode"])
        for account_id, found in carriers.items():
            if len(found) > 1:
                report.problems.append(
                    f"account {account_id} is linked to {len(found)} partners: {', '.join(sorted(found))}"
                )
    for account in accounts:
        code = codes[account["Id"]]
        partner = partners.get(code)
        if not code or partner is None:
            report.problems.append(
                f"account {account['Id']} ({account.get('Name')!r}) "
                + ("has no account number" if not code else f"names partner {code}, which SAP does not hold")
            )
            continue
        for field in mapping.fields:
            left, right = (
                salesforce_form(field, account.get(field.salesforce)),
                salesforce_form(field, partner.get(field.sap)),
            )
            if value_hash(left) != value_hash(right):
                report.problems.append(
                    f"account {account['Id']} / partner {code}: {field.salesforce} is {left!r}, {field.sap} is {right!r}"
                )
    if mapping.account_balances:
        _compare(
            report,
            "account",
            {a["Id"]: a for a in accounts if codes[a["Id"]] in partners},
            _by_account(figures, codes, partners),
            mapping.account_balances,
        )
    _reconcile_orders(report, salesforce, sap, mapping, figures, companies)
    if mapping.invoices is not None:
        linked = {code: account_id for account_id, code in codes.items() if code in partners}
        _reconcile_invoices(report, salesforce, mapping, mapping.invoices, figures, linked, company)
    return report


def _reconcile_invoices(
    report: SalesforceReport,
    salesforce: Any,
    mapping: SalesforceMapping,
    invoices: InvoiceObject,
    figures: SapFigures,
    linked: Mapping[str, str],
    company: str | None = None,
) -> None:
    """Every SAP invoice of a linked partner (``{CardCode: Account id}``) has one record with its
    values in the invoice object."""
    references = [invoices.account, *([invoices.opportunity] if invoices.opportunity else [])]
    records = _query(
        salesforce,
        SoqlRead(
            invoices.sobject,
            (invoices.external_id, *references, *(f.salesforce for f in invoices.fields)),
        ),
    )
    held = _group(records, invoices.external_id)
    select = list(dict.fromkeys([*invoices.sap_fields(), mapping.order_id_field]))
    documents = figures.rows("Invoices", "CardCode", list(linked), select)
    report.invoices = 0
    for doc in documents:
        entry = str(doc["DocEntry"])
        found = held.get(invoice_external_id(entry, company), [])
        where = f"invoice {entry} (partner {doc.get('CardCode')})"
        if len(found) != 1:
            report.problems.append(
                f"{where} has {len(found) or 'no'} {invoices.sobject} record{'s' if len(found) != 1 else ''}"
                + (f": {', '.join(r['Id'] for r in found)}" if found else "")
            )
            continue
        report.invoices += 1
        record = found[0]
        foreign = str(doc.get(mapping.order_id_field) or "")
        wanted: dict[str, Any] = {invoices.account: linked[str(doc.get("CardCode"))]}
        if invoices.opportunity:
            wanted[invoices.opportunity] = foreign if OPPORTUNITY_ID.match(foreign) else None
        for name, want in wanted.items():
            if str(record.get(name) or "")[:15] != str(want or "")[:15]:
                report.problems.append(
                    f"{where}: {invoices.sobject} {record['Id']}.{name} is {record.get(name)!r}, not {want!r}"
                )
        values = invoice_values(invoices, doc)
        for field in invoices.fields:
            shown, want = record.get(field.salesforce), values[field.salesforce]
            if field.kind == "number" and shown is not None and want is not None:
                same = (number(shown) or Decimal(0)).quantize(_CENT) == (number(want) or Decimal(0)).quantize(
                    _CENT
                )
            else:
                same = value_hash(salesforce_form(field, shown)) == value_hash(salesforce_form(field, want))
            if not same:
                report.problems.append(
                    f"{where}: {invoices.sobject} {record['Id']}.{field.salesforce} shows {shown!r}, "
                    f"SAP's {field.sap} says {want!r}"
                )


def _by_account(
    figures: SapFigures, codes: Mapping[str, str], partners: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    linked = {account_id: code for account_id, code in codes.items() if code in partners}
    shown = figures.partners(list(dict.fromkeys(linked.values())))
    return {account_id: shown[code] for account_id, code in linked.items()}


def _compare(
    report: SalesforceReport,
    what: str,
    records: Mapping[str, Mapping[str, Any]],
    expected: Mapping[str, Mapping[str, Any]],
    fields: Mapping[str, str],
) -> None:
    for record_id, wanted in expected.items():
        record = records.get(record_id)
        if record is None:
            continue
        for figure, field in fields.items():
            held, want = record.get(field), wanted.get(figure)
            if isinstance(want, float) or isinstance(held, (int, float)):
                same = (number(held) or Decimal(0)).quantize(_CENT) == (number(want) or Decimal(0)).quantize(
                    _CENT
                )
            else:
                same = value_hash(
                    None if held is None else str(held)[:10] if figure.endswith("date") else held
                ) == value_hash(want)
            if not same:
                report.problems.append(f"{what} {record_id}: {field} shows {held!r}, SAP says {want!r}")


def _reconcile_orders(
    report: SalesforceReport,
    salesforce: Any,
    sap: Any,
    mapping: SalesforceMapping,
    figures: SapFigures,
    companies: Sequence[str] | None = None,
) -> None:
    field = mapping.order_id_field
    back = mapping.write_back
    opportunities = _query(
        salesforce,
        SoqlRead(
            "Opportunity",
            (
                "Name",
                "Amount",
                *back.values(),
                *mapping.opportunity_balances.values(),
                "(SELECT Id, Quantity, UnitPrice, Product2.ProductCode FROM OpportunityLineItems)",
            ),
            mapping.opportunity_filter(companies),
        ),
    )
    report.opportunities = len(opportunities)
    ids = [o["Id"] for o in opportunities]
    orders = _group(
        figures.rows(
            "Orders", field, ids, ["DocEntry", "DocNum", field, "DocTotal", "Cancelled", "DocumentLines"]
        ),
        field,
    )
    drafts = _group(
        figures.rows("Drafts", field, ids, ["DocEntry", field, "DocObjectCode", "DocumentStatus"]), field
    )
    ordered = {}
    for opportunity in opportunities:
        key = opportunity["Id"]
        live = [o for o in orders.get(key, []) if o.get("Cancelled") != "tYES"]
        pending = [
            d
            for d in drafts.get(key, [])
            if d.get("DocumentStatus") != "bost_Close" and d.get("DocObjectCode") in (None, "oOrders")
        ]
        if len(live) > 1:
            report.problems.append(
                f"opportunity {key} has {len(live)} sales orders: {', '.join(str(o['DocEntry']) for o in live)}"
            )
            continue
        if not live:
            if pending:
                report.drafts += 1
                if back.get("draft_number") and str(opportunity.get(back["draft_number"]) or "") != str(
                    pending[0]["DocEntry"]
                ):
                    report.problems.append(
                        f"opportunity {key} does not show its draft {pending[0]['DocEntry']}"
                    )
            else:
                report.problems.append(f"opportunity {key} ({opportunity.get('Name')!r}) has no sales order")
            continue
        order = live[0]
        report.orders += 1
        ordered[key] = opportunity
        wanted = _lines(
            ((line.get("Product2") or {}).get("ProductCode"), line.get("Quantity"), line.get("UnitPrice"))
            for line in ((opportunity.get("OpportunityLineItems") or {}).get("records") or [])
        )
        if not wanted and mapping.service_item:
            wanted = _lines([(mapping.service_item, 1, opportunity.get("Amount"))])
        held = _lines(
            (
                line.get("ItemCode"),
                line.get("Quantity"),
                line.get("UnitPrice") if line.get("UnitPrice") is not None else line.get("Price"),
            )
            for line in sorted(order.get("DocumentLines") or [], key=lambda line: line.get("LineNum", 0))
        )
        if wanted != held:
            report.problems.append(
                f"opportunity {key}: lines {wanted} but order {order['DocEntry']} holds {held}"
            )
        if back.get("order_number") and str(opportunity.get(back["order_number"]) or "") != str(
            order.get("DocNum")
        ):
            report.problems.append(
                f"opportunity {key} shows order number {opportunity.get(back['order_number'])!r}, SAP's is {order.get('DocNum')}"
            )
    if mapping.opportunity_balances and ordered:
        _compare(
            report, "opportunity", ordered, figures.opportunities(list(ordered)), mapping.opportunity_balances
        )


def _group(records: Iterable[Mapping[str, Any]], field: str) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[str(record.get(field))].append(record)
    return grouped


def _lines(lines: Iterable[tuple[Any, Any, Any]]) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (
            str(code),
            (number(quantity) or Decimal(0)).quantize(_CENT),
            (number(price) or Decimal(0)).quantize(_CENT),
        )
        for code, quantity, price in lines
    ]
