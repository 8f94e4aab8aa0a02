"""SAP Business One partners, invoices and payments written into Salesforce.

* **BusinessPartners -> Account.** For each partner linked to an account (the links table, or
  the partner's link field), every mapped field is compared with the value both sides last
  agreed on: a field only SAP changed is written to the account; a field both changed goes to its
  system of record (conflict logged and audited); an echo of the flow's own write changes
  nothing. The account's balances (below) go in the same call, so a newly linked account and a
  changed credit limit show at once. Partners no account is linked to are skipped: SAP-only
  customers stay in SAP (the flow creates no account). When several companies share the org, an
  account whose company field names another company is skipped too, with its reason.
* **Invoices and IncomingPayments -> balances.** A changed invoice or payment recomputes, from
  SAP, what Salesforce shows of its partner (open balance: open invoices less open credit memos;
  overdue balance: open invoices past their due date; credit limit; last payment date) and of the
  opportunity whose order the invoice comes from (invoiced amount less credit memos, paid amount,
  payment status). An invoice belongs to an opportunity when it carries the opportunity's id in
  the orders' id field (``NumAtCard``), as SAP copies it from the order to the invoice.

* **Invoices and IncomingPayments -> the invoice object** (only with the mapping's ``invoices``
  section: Revenue Cloud's ``Invoice`` or a custom object). Each invoice of a linked partner is
  upserted by its external id (``DocEntry``; ``<conn id>:<DocEntry>`` for a SAP company other
  than ``sap_b1_default``, as every company numbers its invoices from 1), pointing at its account
  and, when it carries one, its opportunity; a payment re-sends the invoices it is applied to,
  whose paid amount and status it moved. An invoice is sent only when a value differs from the one last written (the agreed
  values, kept per invoice record), so a second run writes nothing. Credit notes are not sent:
  the flow reads no credit notes stream, and they lower the balances above instead.

Only fields whose value differs from the one last written are sent, through sObject Collections
(by ``Id``, or by external id for the invoice object): one Salesforce call per object and page,
at most 200 records a call. A record Salesforce refuses fails alone, with Salesforce's reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from airflow_provider_b1.salesforce import values
from airflow_provider_b1.salesforce.mapping import INVOICE_STATUS, SAP, InvoiceObject, SalesforceMapping
from airflow_provider_b1.salesforce.values import OPPORTUNITY_ID, day, failures, number, salesforce_form
from airflow_provider_b1.sync.engine import Item, PageCommit, Sink
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome
from airflow_provider_b1.sync.pairs import PairLedger, Winner, decide, value_hash
from airflow_provider_b1.sync.records import payload_hash

log = logging.getLogger(__name__)

PARTNERS = "BusinessPartners"
INVOICES = "Invoices"
PAYMENTS = "IncomingPayments"
ACCOUNT = "Account"
OPPORTUNITY = "Opportunity"
_CENT = Decimal("0.01")
_OPEN = "bost_Open"


class SapToSalesforceSink(Sink):
    """Writes SAP partners and balances into Salesforce (see the module documentation).

    :param salesforce: a :class:`~airflow_provider_b1.hooks.salesforce.SalesforceHook`.
    :param open_sap: opens an SAP hook (for the figures read back from SAP; each writer its own).
    :param mapping: the org's mapping.
    :param ledger: the links and agreed values of this org.
    :param today: the date "overdue" is judged on (default: today, UTC).
    :param company: the SAP connection id of a company other than ``sap_b1_default``: the external
        ids it writes carry it (:func:`invoice_external_id`); ``None`` for the default company.
    :param companies: the values of the mapping's ``accounts.company_field`` naming this company,
        when several companies share the org: an account naming another company is never written.
    """

    system = "salesforce"

    def __init__(
        self,
        salesforce: Any,
        open_sap: Callable[[], Any],
        mapping: SalesforceMapping,
        ledger: PairLedger,
        *,
        today: Callable[[], dt.date] | None = None,
        company: str | None = None,
        companies: Sequence[str] | None = None,
    ) -> None:
        self.salesforce = salesforce
        self.company = company
        self.companies = None if companies is None else {str(v).lower() for v in companies}
        self.open_sap = open_sap
        self._sap: Any = None
        self.mapping = mapping
        self.ledger = ledger
        self.today = today or (lambda: values.utc_today())

    @property
    def sap(self) -> Any:
        if self._sap is None:
            self._sap = self.open_sap()
        return self._sap

    def close(self) -> None:
        self.ledger.close()
        if self._sap is not None:
            self._sap.close()
        self.salesforce.close()

    def target_entity(self, stream: Stream) -> str:
        return ACCOUNT

    # -- prepare -------------------------------------------------------------------------------

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        key_field = "CardCode" if stream.name == PARTNERS else "DocEntry"
        prepared: list[Item | Outcome] = []
        for record in records:
            key = record.get(key_field) if isinstance(record, Mapping) else None
            if key is None:
                prepared.append(Outcome(None, Action.FAILED, f"the record has no {key_field}"))
                continue
            try:
                data = self._prepare_one(stream.name, record)
            except (ValueError, TypeError) as exc:
                prepared.append(Outcome(key, Action.FAILED, str(exc)))
                continue
            prepared.append(Item(key, data, payload_hash(data)))
        return prepared

    def _prepare_one(self, stream: str, record: Mapping[str, Any]) -> dict[str, Any]:
        if stream == PARTNERS:
            values = {f.salesforce: salesforce_form(f, record.get(f.sap)) for f in self.mapping.fields}
            link = record.get(self.mapping.link_field) if self.mapping.link_field else None
            return {
                "values": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()},
                "link": link or None,
            }
        if stream == INVOICES:
            foreign = str(record.get(self.mapping.order_id_field) or "")
            data = {
                "card_code": record.get("CardCode"),
                "opportunities": [foreign] if OPPORTUNITY_ID.match(foreign) else [],
                "invoices": [],
            }
            if self.mapping.invoices is not None:
                data["record"] = invoice_values(self.mapping.invoices, record)
            return data
        applied = [
            line.get("DocEntry")
            for line in record.get("PaymentInvoices") or []
            if line.get("DocEntry") and line.get("InvoiceType") in (None, "it_Invoice")
        ]
        return {"card_code": record.get("CardCode"), "opportunities": [], "invoices": applied}

    # -- write ---------------------------------------------------------------------------------

    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> Mapping[Hashable, Outcome]:
        if stream.name == PARTNERS:
            return self._write_partners(items)
        invoices = self.mapping.invoices
        if invoices is None:
            return self._write_balances(items)
        if stream.name == INVOICES:
            records = {
                item.key: {
                    "DocEntry": item.key,
                    "CardCode": item.data["card_code"],
                    "opportunity": next(iter(item.data["opportunities"]), None),
                    "values": item.data["record"],
                }
                for item in items
            }
            applied: list[Mapping[str, Any]] | None = None
        else:
            # The invoices the payments are applied to, read once for both their object records
            # and the opportunities whose paid amount they move.
            entries = [entry for item in items for entry in item.data["invoices"]]
            select = list(dict.fromkeys([*invoices.sap_fields(), self.mapping.order_id_field]))
            applied = SapFigures(self.sap, self.mapping, self.today()).rows(
                INVOICES, "DocEntry", entries, select
            )
            records = {doc["DocEntry"]: self._invoice_source(invoices, doc) for doc in applied}
        outcomes = self._write_balances(items, applied)
        done = self._write_invoice_records(invoices, records)
        for item in items:
            entries = [item.key] if stream.name == INVOICES else item.data["invoices"]
            outcomes[item.key] = _with_invoices(outcomes[item.key], [done[e] for e in entries if e in done])
        return outcomes

    def _accounts_of(self, codes: Iterable[str], links: Mapping[str, str] | None = None) -> dict[str, str]:
        """``{CardCode: Account id}`` of the partners linked to an account."""
        found = self.ledger.linked_to(ACCOUNT, codes)
        new = {code: account for code, account in (links or {}).items() if code not in found and account}
        if new:
            self.ledger.link(ACCOUNT, {account: code for code, account in new.items()})
            found.update(new)
        return found

    def _write_partners(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        mapping = self.mapping
        accounts = self._accounts_of(
            [str(item.key) for item in items], {str(item.key): item.data["link"] for item in items}
        )
        outcomes: dict[Hashable, Outcome] = {}
        linked = []
        for item in items:
            if str(item.key) in accounts:
                linked.append(item)
            else:
                outcomes[item.key] = Outcome(
                    item.key, Action.SKIPPED, "no Salesforce account is linked to it", item.payload_hash
                )
        ids = [accounts[str(item.key)] for item in linked]
        read = [f.salesforce for f in mapping.fields]
        if self.companies is not None and mapping.company_field:
            read.append(mapping.company_field)
        held = self.salesforce.get_many(ACCOUNT, ids, read) if ids else {}
        agreed = self.ledger.agreed(ids)
        # A partner's balances move with its credit limit, and a newly linked account shows them
        # at once: they go in the same call as the partner's fields.
        balances = self._account_balances({str(item.key): accounts[str(item.key)] for item in linked})
        updates: list[tuple[Item, str, dict[str, Any], dict[str, str], str | None]] = []
        settled: dict[str, dict[str, str]] = {}
        for item in linked:
            account_id = accounts[str(item.key)]
            account = held.get(account_id)
            if account is None:
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.SKIPPED,
                    f"its Salesforce account {account_id} no longer exists",
                    item.payload_hash,
                )
                continue
            if self.companies is not None and mapping.company_field:
                named = str(account.get(mapping.company_field) or "").strip()
                if named.lower() not in self.companies:
                    outcomes[item.key] = Outcome(
                        item.key,
                        Action.SKIPPED,
                        f"its Salesforce account {account_id} names company {named or '(none)'} in "
                        f"{mapping.company_field}, not this one: not written",
                        item.payload_hash,
                    )
                    continue
            values, changes, hashes, conflicts = item.data["values"], {}, {}, []
            for field in mapping.fields:
                current = salesforce_form(field, account.get(field.salesforce))
                decision = decide(
                    values[field.salesforce],
                    current,
                    agreed.get(account_id, {}).get(field.salesforce),
                    "left" if field.owner == SAP else "right",
                )
                if decision.winner is Winner.LEFT:
                    changes[field.salesforce] = _json(values[field.salesforce])
                if decision.winner is not Winner.RIGHT and decision.agreed is not None:
                    hashes[field.salesforce] = decision.agreed
                if decision.conflict:
                    conflicts.append(
                        field.conflict(values[field.salesforce] if field.owner == SAP else current)
                    )
            for name, value in balances.get(account_id, {}).items():
                digest = value_hash(value)
                if agreed.get(account_id, {}).get(name) != digest:
                    changes[name], hashes[name] = value, digest
            for conflict in conflicts:
                log.warning("Partner %s / account %s: %s", item.key, account_id, conflict)
            note = "; ".join(conflicts) or None
            if changes:
                updates.append((item, account_id, changes, hashes, note))
            else:
                settled[account_id] = hashes
                outcomes[item.key] = Outcome(item.key, Action.UNCHANGED, note, item.payload_hash, account_id)
        refused = self._update(ACCOUNT, [(account_id, changes) for _, account_id, changes, _, _ in updates])
        for index, (item, account_id, _changes, hashes, note) in enumerate(updates):
            if index in refused:
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.FAILED,
                    f"Salesforce refused account {account_id}: {refused[index]}",
                    item.payload_hash,
                )
                continue
            settled[account_id] = hashes
            outcomes[item.key] = Outcome(item.key, Action.UPDATED, note, item.payload_hash, account_id)
        self.ledger.agree({k: v for k, v in settled.items() if v})
        return outcomes

    def _account_balances(self, accounts: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """``{Account id: {field: value}}``: what the accounts of ``{CardCode: Account id}`` should
        show of SAP's receivables (the mapping's account balance fields)."""
        fields = self.mapping.account_balances
        if not fields or not accounts:
            return {}
        shown = SapFigures(self.sap, self.mapping, self.today()).partners(list(accounts))
        return {
            accounts[code]: {fields[name]: value for name, value in figures.items() if name in fields}
            for code, figures in shown.items()
        }

    def _update(self, sobject: str, changes: list[tuple[str, dict[str, Any]]]) -> dict[int, str]:
        """Send ``[(Id, fields)]`` in one Collections call per 200; ``{index: why}`` of refusals."""
        if not changes:
            return {}
        results = self.salesforce.update_many(
            sobject, [{"Id": record_id, **fields} for record_id, fields in changes]
        )
        return failures(results)

    # -- balances ------------------------------------------------------------------------------

    def _write_balances(
        self, items: Sequence[Item], applied: Sequence[Mapping[str, Any]] | None = None
    ) -> dict[Hashable, Outcome]:
        """Balances of the items' accounts and opportunities; ``applied``: the invoices the
        payments are applied to, when read already."""
        codes = list(dict.fromkeys(str(item.data["card_code"]) for item in items if item.data["card_code"]))
        accounts = self._accounts_of(codes)
        paid_invoices = [entry for item in items for entry in item.data["invoices"]]
        figures = SapFigures(self.sap, self.mapping, self.today())
        via_payments = (
            figures.opportunities_of(paid_invoices)
            if applied is None
            else {
                doc["DocEntry"]: str(doc[self.mapping.order_id_field])
                for doc in applied
                if OPPORTUNITY_ID.match(str(doc.get(self.mapping.order_id_field) or ""))
            }
        )
        opportunities = {
            item.key: [
                found
                for found in dict.fromkeys(
                    [*item.data["opportunities"], *(via_payments.get(e) for e in item.data["invoices"])]
                )
                if found
            ]
            for item in items
        }
        wanted: dict[tuple[str, str], dict[str, Any]] = {
            (ACCOUNT, account_id): fields
            for account_id, fields in self._account_balances(
                {code: accounts[code] for code in codes if code in accounts}
            ).items()
        }
        all_opportunities = list(dict.fromkeys(o for found in opportunities.values() for o in found))
        if self.mapping.opportunity_balances and all_opportunities:
            for opportunity, shown in figures.opportunities(all_opportunities).items():
                wanted[(OPPORTUNITY, opportunity)] = {
                    self.mapping.opportunity_balances[name]: value
                    for name, value in shown.items()
                    if name in self.mapping.opportunity_balances
                }
        agreed = self.ledger.agreed([record_id for _, record_id in wanted])
        sends: dict[str, list[tuple[str, dict[str, Any], dict[str, str]]]] = {ACCOUNT: [], OPPORTUNITY: []}
        for (sobject, record_id), fields in wanted.items():
            hashes = {name: value_hash(value) for name, value in fields.items()}
            held = agreed.get(record_id, {})
            changed = {name: value for name, value in fields.items() if held.get(name) != hashes[name]}
            if changed:
                sends[sobject].append((record_id, changed, {n: hashes[n] for n in changed}))
        written: set[str] = set()
        refused_ids: dict[str, str] = {}
        settled: dict[str, dict[str, str]] = {}
        for sobject, changes in sends.items():
            refused = self._update(sobject, [(record_id, fields) for record_id, fields, _ in changes])
            for index, (record_id, _fields, hashes) in enumerate(changes):
                if index in refused:
                    refused_ids[record_id] = f"Salesforce refused {sobject} {record_id}: {refused[index]}"
                else:
                    written.add(record_id)
                    settled[record_id] = hashes
        self.ledger.agree(settled)
        outcomes: dict[Hashable, Outcome] = {}
        for item in items:
            account = accounts.get(str(item.data["card_code"]))
            touched = [r for r in [account, *opportunities[item.key]] if r]
            if not touched:
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.SKIPPED,
                    f"partner {item.data['card_code']} is not linked to a Salesforce account",
                    item.payload_hash,
                )
                continue
            errors = [refused_ids[r] for r in touched if r in refused_ids]
            if errors:
                outcomes[item.key] = Outcome(item.key, Action.FAILED, "; ".join(errors), item.payload_hash)
                continue
            action = Action.UPDATED if any(r in written for r in touched) else Action.UNCHANGED
            outcomes[item.key] = Outcome(item.key, action, None, item.payload_hash, account or touched[0])
        return outcomes

    # -- the invoice object --------------------------------------------------------------------

    def _invoice_source(self, invoices: InvoiceObject, doc: Mapping[str, Any]) -> dict[str, Any]:
        """What the invoice object needs of one SAP invoice."""
        foreign = str(doc.get(self.mapping.order_id_field) or "")
        return {
            "DocEntry": doc["DocEntry"],
            "CardCode": doc.get("CardCode"),
            "opportunity": foreign if OPPORTUNITY_ID.match(foreign) else None,
            "values": invoice_values(invoices, doc),
        }

    def _write_invoice_records(
        self, invoices: InvoiceObject, sources: Mapping[Any, Mapping[str, Any]]
    ) -> dict[Any, tuple[Action, str | None]]:
        """Upsert the invoices ``{DocEntry: source}`` whose record differs from the one last written,
        in one Collections call per 200; ``{DocEntry: (action, error)}``."""
        accounts = self._accounts_of(
            list(dict.fromkeys(str(s["CardCode"]) for s in sources.values() if s["CardCode"]))
        )
        done: dict[Any, tuple[Action, str | None]] = {}
        wanted: dict[Any, dict[str, Any]] = {}
        for entry, source in sources.items():
            account = accounts.get(str(source["CardCode"]))
            if account is None:
                done[entry] = (Action.SKIPPED, None)
                continue
            record = {invoices.account: account, **source["values"]}
            if invoices.opportunity:
                record[invoices.opportunity] = source["opportunity"]
            wanted[entry] = record
        pairs = {entry: invoice_pair(invoices, entry) for entry in wanted}
        agreed = self.ledger.agreed(pairs.values())
        sends: list[tuple[Any, dict[str, Any], dict[str, str]]] = []
        for entry, record in wanted.items():
            hashes = {name: value_hash(value) for name, value in record.items()}
            if agreed.get(pairs[entry]) == hashes:
                done[entry] = (Action.UNCHANGED, None)
            else:
                # The whole record goes: a record deleted in Salesforce comes back complete.
                sends.append(
                    (
                        entry,
                        {invoices.external_id: invoice_external_id(entry, self.company), **record},
                        hashes,
                    )
                )
        if not sends:
            return done
        results = self.salesforce.upsert_many(
            invoices.sobject, invoices.external_id, [record for _, record, _ in sends]
        )
        refused = failures(results)
        settled = {}
        for index, (entry, _record, hashes) in enumerate(sends):
            if index in refused:
                done[entry] = (
                    Action.FAILED,
                    f"Salesforce refused {invoices.sobject} {entry}: {refused[index]}",
                )
                continue
            settled[pairs[entry]] = hashes
            created = getattr(results[index], "created", None)
            done[entry] = (Action.CREATED if created else Action.UPDATED, None)
        self.ledger.agree(settled)
        return done


def invoice_pair(invoices: InvoiceObject, entry: Any) -> str:
    """The key of an invoice's record in the agreed values (its object and ``DocEntry``)."""
    return f"{invoices.sobject}:{entry}"


def invoice_external_id(entry: Any, company: str | None) -> str:
    """The invoice object's external id of an SAP invoice: its ``DocEntry`` for the default company,
    ``<conn id>:<DocEntry>`` for another (each company numbers its invoices from 1)."""
    return f"{company}:{entry}" if company else str(entry)


def invoice_values(invoices: InvoiceObject, doc: Mapping[str, Any]) -> dict[str, Any]:
    """``{Salesforce field: value}``: what the invoice object shows of an SAP invoice (JSON values)."""
    values = {}
    for field in invoices.fields:
        value = doc.get(field.sap)
        if field.sap == "DocumentStatus":
            value = "Cancelled" if doc.get("Cancelled") == "tYES" else INVOICE_STATUS.get(value, value)
        values[field.salesforce] = _json(salesforce_form(field, value))
    return values


def _with_invoices(outcome: Outcome, done: Sequence[tuple[Action, str | None]]) -> Outcome:
    """A balances outcome with the outcome of the invoice records its record wrote."""
    errors = [error for action, error in done if action is Action.FAILED and error]
    if errors:
        if outcome.action is Action.FAILED and outcome.error:
            errors.insert(0, outcome.error)
        return dataclasses.replace(outcome, action=Action.FAILED, error="; ".join(errors))
    actions = {action for action, _ in done}
    if Action.CREATED in actions and outcome.action is not Action.FAILED:
        return dataclasses.replace(outcome, action=Action.CREATED, error=None)
    if Action.UPDATED in actions and outcome.action in (Action.UNCHANGED, Action.SKIPPED):
        return dataclasses.replace(outcome, action=Action.UPDATED, error=None)
    return outcome


class SapFigures:
    """What Salesforce shows of SAP's receivables, computed from SAP: per partner and per opportunity.

    :param sap: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param mapping: the org's mapping (the orders' id field).
    :param today: the date "overdue" is judged on.
    """

    def __init__(self, sap: Any, mapping: SalesforceMapping, today: dt.date) -> None:
        self.sap = sap
        self.mapping = mapping
        self.today = today

    def rows(self, entity: str, field: str, values: Sequence[Any], select: list[str]) -> list[dict[str, Any]]:
        if not values:
            return []
        return [
            record
            for page in self.sap.iter_any_of(entity, field, list(dict.fromkeys(values)), select=select)
            for record in page
        ]

    def opportunities_of(self, invoice_entries: Sequence[Any]) -> dict[Any, str]:
        """``{invoice DocEntry: opportunity id}`` of paid invoices that come from an opportunity."""
        field = self.mapping.order_id_field
        found = {}
        for record in self.rows(INVOICES, "DocEntry", invoice_entries, ["DocEntry", field]):
            foreign = str(record.get(field) or "")
            if OPPORTUNITY_ID.match(foreign):
                found[record["DocEntry"]] = foreign
        return found

    def partners(self, codes: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Open balance, overdue balance, credit limit and last payment date of each partner, from SAP."""
        today = self.today
        select = ["CardCode", "DocTotal", "PaidToDate", "DocDueDate", "DocumentStatus", "Cancelled"]
        figures = {
            code: {
                "open_balance": Decimal(0),
                "overdue_balance": Decimal(0),
                "credit_limit": None,
                "last_payment_date": None,
            }
            for code in codes
        }
        for entity, sign in ((INVOICES, 1), ("CreditNotes", -1)):
            for doc in self.rows(entity, "CardCode", codes, select):
                if doc.get("DocumentStatus") != _OPEN or doc.get("Cancelled") == "tYES":
                    continue
                left = _amount(doc.get("DocTotal")) - _amount(doc.get("PaidToDate"))
                row = figures[doc["CardCode"]]
                row["open_balance"] += sign * left
                due = day(doc.get("DocDueDate"))
                if sign > 0 and due is not None and due < today:
                    row["overdue_balance"] += left
        for partner in self.rows(PARTNERS, "CardCode", codes, ["CardCode", "CreditLimit"]):
            figures[partner["CardCode"]]["credit_limit"] = _amount(partner.get("CreditLimit"))
        for payment in self.rows(PAYMENTS, "CardCode", codes, ["CardCode", "DocDate", "Cancelled"]):
            paid_on = day(payment.get("DocDate"))
            row = figures[payment["CardCode"]]
            if (
                payment.get("Cancelled") != "tYES"
                and paid_on
                and (row["last_payment_date"] is None or paid_on > row["last_payment_date"])
            ):
                row["last_payment_date"] = paid_on
        return {code: {k: _json(v) for k, v in row.items()} for code, row in figures.items()}

    def opportunities(self, opportunities: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Invoiced amount, paid amount and payment status of each opportunity, from its invoices."""
        field = self.mapping.order_id_field
        select = [field, "DocTotal", "PaidToDate", "DocumentStatus", "Cancelled"]
        invoiced = dict.fromkeys(opportunities, Decimal(0))
        open_ = dict.fromkeys(opportunities, Decimal(0))
        for entity, sign in ((INVOICES, 1), ("CreditNotes", -1)):
            for doc in self.rows(entity, field, opportunities, select):
                key = str(doc.get(field))
                if key not in invoiced or doc.get("Cancelled") == "tYES":
                    continue
                invoiced[key] += sign * _amount(doc.get("DocTotal"))
                if sign > 0 and doc.get("DocumentStatus") == _OPEN:
                    open_[key] += _amount(doc.get("DocTotal")) - _amount(doc.get("PaidToDate"))
        figures = {}
        for key in opportunities:
            total, paid = invoiced[key].quantize(_CENT), (invoiced[key] - open_[key]).quantize(_CENT)
            if total <= 0:
                status = "Not invoiced"
            elif paid >= total:
                status = "Paid"
            elif paid > 0:
                status = "Partially paid"
            else:
                status = "Unpaid"
            figures[key] = {
                "invoiced_amount": float(total),
                "paid_amount": float(max(paid, Decimal(0))),
                "payment_status": status,
            }
        return figures


def _amount(value: Any) -> Decimal:
    return number(value) or Decimal(0)


def _json(value: Any) -> Any:
    """A value as Salesforce's JSON takes it."""
    if isinstance(value, Decimal):
        return float(value.quantize(_CENT))
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
