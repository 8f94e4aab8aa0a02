"""ServiceTitan's customers, invoices and payments written into SAP Business One's receivables.

One sink, three streams, each write idempotent by a foreign id, so a re-run, a replay or a task
killed half way never posts a document twice:

* **customers -> business partners.** The partner of a customer is found in the mapping table
  (:mod:`.customers`), else by the mapping's ``link_field`` or seed CSV, else created with the
  mapping's code pattern (``ST{id}``). An existing partner is updated only where its name, status
  or contact differ. A customer merged into another (``mergedToId``) is repointed to the
  surviving customer's partner and never gets one of its own.
* **invoices -> A/R invoices** (service documents): ``NumAtCard`` (or the mapping's field) holds
  the ServiceTitan invoice id. One line per item, its ``AccountCode`` from the mapping's GL
  accounts, the business unit's profit centre, the sales tax as a line of its own, so SAP's
  ``DocTotal`` equals ServiceTitan's ``total``. An invoice already in SAP with the same total is
  ``unchanged``; with another total it fails "changed after posting" (a posted invoice's amounts
  are frozen in SAP), unless the mapping says ``changed_after_posting: credit_and_repost`` (below).
  One that SAP keeps as a draft for approval is ``skipped``, "pending approval (draft N)", and
  later runs find the draft instead of posting again.
* **payments -> incoming payments** applied to the SAP invoices they pay, found by their foreign
  ids; ``CounterReference`` holds the payment id. A payment is never posted unapplied by accident.

**Credit and repost.** With ``changed_after_posting: credit_and_repost`` an invoice changed
after posting is replaced in two posts: an A/R credit memo (``CreditNotes``) for the posted
invoice, its lines based on the invoice's (``BaseType`` 13, ``BaseEntry``, ``BaseLine``) or copies
of them (``credit_memo_lines: copy``), then a new invoice with the new amounts. Each *version* of
an invoice carries its own foreign id value: the first the ServiceTitan id itself (``4711``), the
later ones the id with a revision suffix (``4711-r2``, ``4711-r3``), and the credit memo that
cancels a version carries that version's value. So every document is found again by its own
value and posted once, and the idempotency check reads: the *live* invoice of a ServiceTitan
invoice is its version that no credit memo cancels. A re-run, a replay, or a task killed between
the credit memo and the new invoice finds the versions and the credit memos SAP holds and posts
only what is missing (an invoice whose versions are all cancelled gets the next one), so there is
always one live invoice per ServiceTitan invoice and one credit memo per replaced version. The
record is ``updated``, naming the credit memo and both invoices. An invoice with payments applied
to it in SAP is not credited (SAP does not credit a paid invoice in full, and the payments would
be left on a cancelled document): it fails, naming the amount applied, for a correction in SAP.
Payments apply to the live invoice; while none is (a replacement half done), they wait for it.

**Waiting.** An invoice whose customer has no partner in SAP yet, and a payment for an invoice
(or a customer) not in SAP yet, fail *waiting for* it (:func:`~airflow_provider_b1.sync.outcomes.waiting`):
the next incremental run of their stream reads them again first and posts them once it is there
(replay does too). Until then they count as failed, "waiting for ...", in summaries and in the
reconciliation report.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from airflow_provider_b1.hooks.sap_b1.literals import odata_literal
from airflow_provider_b1.hooks.sap_b1.writes import LOOKUP_CHUNK
from airflow_provider_b1.hooks.servicetitan import money as servicetitan_money
from airflow_provider_b1.servicetitan.customers import CustomerMap
from airflow_provider_b1.servicetitan.mappings import Mappings
from airflow_provider_b1.sinks.sap_documents import SapDocuments, differences, stops_the_load
from airflow_provider_b1.sync.engine import Item, PageCommit, Sink
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome, waiting
from airflow_provider_b1.sync.records import payload_hash

log = logging.getLogger(__name__)

CUSTOMERS, INVOICES, PAYMENTS = "customers", "invoices", "payments"
PAYMENT_ID_FIELD = "CounterReference"
#: Between a ServiceTitan invoice id and the version number of an invoice posted again (``4711-r2``).
REVISION = "-r"
#: SAP's object type of A/R invoices: a credit memo line's ``BaseType``.
INVOICE_OBJECT_TYPE = 13
#: Invoice line properties a credit memo copies (``credit_memo_lines: copy``).
_COPIED_LINE_FIELDS = ("ItemDescription", "AccountCode", "LineTotal", "CostingCode", "TaxCode")
#: Invoices whose later versions one look-up asks for.
_REVISION_LOOKUP = 10
_CENT = Decimal("0.01")
#: Partner properties set when the partner is created only (addresses, its type).
_SET_ON_CREATION = ("BPAddresses", "CardType")


def money(value: Any, what: str) -> Decimal:
    """A required amount of a record (the hook's :func:`~airflow_provider_b1.hooks.servicetitan.money`),
    or :class:`ValueError` naming the field."""
    try:
        amount = servicetitan_money(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an amount") from None
    if amount is None:
        raise ValueError(f"{what} is missing")
    return amount


def _number(amount: Decimal) -> float:
    """An amount as the JSON number SAP is sent (a float holds any amount to the cent exactly)."""
    return float(amount.quantize(_CENT))


def _day(value: Any, what: str) -> str:
    text = str(value or "")[:10]
    if len(text) != 10:
        raise ValueError(f"{what} {value!r} is not a date")
    return text


class SapReceivablesSink(Sink):
    """Writes ServiceTitan records into SAP Business One (see the module documentation).

    :param hook: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param mappings: the company's :class:`~airflow_provider_b1.servicetitan.mappings.Mappings`.
    :param customers: the customer mapping table.

    :meth:`fork` gives a writer on another SAP session (the engine's ``writers``): a session
    serves one request at a time, so documents post side by side only on several. Every write is
    looked up by its foreign id first, so pages written side by side never post a document twice.
    """

    system = "sap_b1"
    page_limit = LOOKUP_CHUNK  # one look-up and one $batch a write: long pages go to several sessions

    def __init__(
        self, hook: Any, mappings: Mappings, customers: CustomerMap, *, _forked: bool = False
    ) -> None:
        self.hook = hook
        self.documents = SapDocuments(hook)
        self.mappings = mappings
        self.customers = customers
        self._forks = 0
        if mappings.seeded and not _forked:
            known = customers.get(mappings.seeded)
            customers.put(
                {cid: (code, "seed", None) for cid, code in mappings.seeded.items() if cid not in known}
            )

    def close(self) -> None:
        self.customers.close()
        self.hook.close()

    def fork(self) -> SapReceivablesSink:
        """A writer on the next SAP session of the user (its own HTTP client and mapping-table
        connection); the engine closes it."""
        self._forks += 1
        return SapReceivablesSink(
            self.hook.with_session(self._forks), self.mappings, self.customers.fork(), _forked=True
        )

    def target_entity(self, stream: Stream) -> str:
        return {CUSTOMERS: "BusinessPartners", INVOICES: "Invoices", PAYMENTS: "IncomingPayments"}[
            stream.name
        ]

    # -- prepare: pure, per record -------------------------------------------------------------

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        prepared: list[Item | Outcome] = []
        for record in records:
            key = record.get("id") if isinstance(record, Mapping) else None
            if key is None:
                prepared.append(Outcome(None, Action.FAILED, "the record has no id"))
                continue
            try:
                data = self._prepare_one(stream.name, record)
            except (ValueError, LookupError) as exc:
                prepared.append(Outcome(key, Action.FAILED, str(exc).strip("'\"")))
                continue
            prepared.append(Item(key, data, payload_hash(data)))
        return prepared

    def _prepare_one(self, stream: str, record: Mapping[str, Any]) -> dict[str, Any]:
        if stream == CUSTOMERS:
            return self._partner(record)
        if stream == INVOICES:
            return self._invoice(record)
        if stream == PAYMENTS:
            return self._payment(record)
        raise LookupError(f"no stream {stream!r} in this flow")

    def _partner(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        name = str(customer.get("name") or "").strip()
        if not name:
            raise ValueError(f"customer {customer.get('id')} has no name")
        active = customer.get("active", True) is not False
        partner: dict[str, Any] = {
            "CardName": name,
            "CardType": "cCustomer",
            "Valid": "tYES" if active else "tNO",
            "Frozen": "tNO" if active else "tYES",
        }
        for source, target in (("email", "EmailAddress"), ("phoneNumber", "Phone1"), ("phone", "Phone1")):
            if customer.get(source):
                partner[target] = str(customer[source])
        address = customer.get("address")
        if isinstance(address, Mapping) and any(address.values()):
            partner["BPAddresses"] = [
                {
                    "AddressName": "ServiceTitan",
                    "AddressType": "bo_BillTo",
                    "Street": address.get("street"),
                    "City": address.get("city"),
                    "ZipCode": address.get("zip"),
                    "State": address.get("state"),
                    "Country": address.get("country"),
                }
            ]
        return {
            "customer_id": str(customer["id"]),
            "merged_to": customer.get("mergedToId"),
            "partner": partner,
        }

    def _invoice(self, invoice: Mapping[str, Any]) -> dict[str, Any]:
        customer = invoice.get("customer") or {}
        if customer.get("id") is None:
            raise ValueError(f"invoice {invoice.get('id')} names no customer")
        unit = invoice.get("businessUnit")
        centre = self.mappings.profit_centre_for(unit)
        lines = []
        for index, item in enumerate(invoice.get("items") or []):
            line: dict[str, Any] = {
                "ItemDescription": str(item.get("skuName") or item.get("description") or "Service")[:100],
                "AccountCode": self.mappings.account_for(item.get("generalLedgerAccount")),
                "LineTotal": _number(money(item.get("total"), f"items[{index}].total")),
            }
            if centre:
                line["CostingCode"] = centre
            if self.mappings.tax_code:
                line["TaxCode"] = self.mappings.tax_code
            lines.append(line)
        total = money(invoice.get("total"), "total")
        tax = money(invoice.get("salesTax") or "0", "salesTax")
        if tax:
            if not self.mappings.sales_tax_account:
                raise LookupError("the invoice carries sales tax and the mapping has no sales_tax_account")
            line = {
                "ItemDescription": "Sales tax",
                "AccountCode": self.mappings.sales_tax_account,
                "LineTotal": _number(tax),
            }
            if self.mappings.tax_code:
                line["TaxCode"] = self.mappings.tax_code
            lines.append(line)
        if not lines:
            raise ValueError("the invoice has no items")
        if sum(Decimal(repr(line["LineTotal"])) for line in lines) != total.quantize(_CENT):
            raise ValueError(f"its items and sales tax do not add up to its total {total}")
        document = {
            "DocType": "dDocument_Service",
            "DocDate": _day(invoice.get("invoiceDate"), "invoiceDate"),
            "DocDueDate": _day(invoice.get("dueDate") or invoice.get("invoiceDate"), "dueDate"),
            self.mappings.invoice_id_field: str(invoice["id"]),
            "Comments": f"ServiceTitan invoice {invoice.get('referenceNumber') or invoice['id']}"[:254],
            "DocumentLines": lines,
        }
        return {
            "customer_id": str(customer["id"]),
            "customer_name": customer.get("name"),
            "total": str(total.quantize(_CENT)),
            "document": document,
        }

    def _payment(self, payment: Mapping[str, Any]) -> dict[str, Any]:
        customer = payment.get("customer") or {}
        if customer.get("id") is None:
            raise ValueError(f"payment {payment.get('id')} names no customer")
        account = self.mappings.payment_account_for(payment.get("type"))
        total = money(payment.get("total"), "total")
        applied = []
        for index, part in enumerate(payment.get("appliedTo") or []):
            amount = money(part.get("appliedAmount"), f"appliedTo[{index}].appliedAmount")
            if amount:
                applied.append((str(part.get("appliedTo")), str(amount.quantize(_CENT))))
        if sum(Decimal(a) for _, a in applied) > total:
            raise ValueError(f"it applies more than its total {total}")
        reference = str(payment["id"])
        if len(reference) > 100:
            raise ValueError("its id is too long for CounterReference")
        body: dict[str, Any] = {"DocDate": _day(payment.get("date"), "date"), PAYMENT_ID_FIELD: reference}
        if account.kind == "cash":
            body.update(CashAccount=account.account, CashSum=_number(total))
        else:
            body.update(
                TransferAccount=account.account, TransferSum=_number(total), TransferDate=body["DocDate"]
            )
        return {
            "customer_id": str(customer["id"]),
            "customer_name": customer.get("name"),
            "applied": applied,
            "payment": body,
        }

    # -- write: one page -----------------------------------------------------------------------

    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> Mapping[Hashable, Outcome]:
        if stream.name == CUSTOMERS:
            return self._write_customers(items)
        if stream.name == INVOICES:
            return self._write_invoices(items)
        return self._write_payments(items)

    def _write_customers(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        outcomes: dict[Hashable, Outcome] = {}
        mapped = self.customers.get([item.data["customer_id"] for item in items])
        merged_targets = [str(i.data["merged_to"]) for i in items if i.data["merged_to"] is not None]
        mapped.update(self.customers.get(merged_targets))
        links: dict[str, tuple[str, str, str | None]] = {}
        wanted: dict[Hashable, tuple[Item, str, str]] = {}
        unlinked = [i for i in items if i.data["merged_to"] is None and i.data["customer_id"] not in mapped]
        linked_in_sap = self._linked_in_sap([i.data["customer_id"] for i in unlinked])
        for item in items:
            customer_id, merged_to = item.data["customer_id"], item.data["merged_to"]
            if merged_to is not None:
                target = str(merged_to)
                code = mapped[target][0] if target in mapped else self.mappings.card_code_for(target)
                links[customer_id] = (code, "merged", target)
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.SKIPPED,
                    f"merged into customer {target} (partner {code})",
                    item.payload_hash,
                    code,
                )
                continue
            if customer_id in mapped:
                code, how = mapped[customer_id][0], "mapped"
            elif customer_id in linked_in_sap:
                code, how = linked_in_sap[customer_id], "link_field"
            else:
                code, how = self.mappings.card_code_for(customer_id), "created"
            wanted[item.key] = (item, code, how)
        existing = self.hook.existing_values(
            "BusinessPartners", "CardCode", [code for _, code, _ in wanted.values()]
        )
        current = self._partners([code for _, code, _ in wanted.values() if code in existing])
        creates = [
            (key, item, code, how) for key, (item, code, how) in wanted.items() if code not in existing
        ]
        if creates:
            results = self.hook.create_many(
                "BusinessPartners",
                [{"CardCode": code, **item.data["partner"]} for _, item, code, _ in creates],
                dedupe_field="CardCode",
                looked_up=True,  # existing_values above found none of them
            )
            for (key, item, code, how), result in zip(creates, results, strict=True):
                if result.outcome == "failed":
                    outcomes[key] = Outcome(key, Action.FAILED, result.error, item.payload_hash)
                    continue
                links[item.data["customer_id"]] = (code, how, None)
                action = Action.CREATED if result.outcome == "created" else Action.UNCHANGED
                outcomes[key] = Outcome(key, action, None, item.payload_hash, code)
        for key, (item, code, how) in wanted.items():
            if key in outcomes:
                continue
            changes = differences(item.data["partner"], current.get(code, {}), ignore=_SET_ON_CREATION)
            if changes:
                try:
                    self.hook.update("BusinessPartners", code, changes)
                except Exception as exc:  # SAP refused this record: it fails alone
                    if stops_the_load(exc):
                        raise
                    outcomes[key] = Outcome(key, Action.FAILED, str(exc), item.payload_hash)
                    continue
            links[item.data["customer_id"]] = (code, how, None)
            outcomes[key] = Outcome(
                key, Action.UPDATED if changes else Action.UNCHANGED, None, item.payload_hash, code
            )
        self.customers.put(links)
        return outcomes

    def _linked_in_sap(self, customer_ids: list[str]) -> dict[str, str]:
        field_name = self.mappings.link_field
        if not field_name or not customer_ids:
            return {}
        found = self.hook.existing_values("BusinessPartners", field_name, customer_ids)
        return {str(value): record["CardCode"] for value, record in found.items()}

    def _partners(self, codes: list[str]) -> dict[str, dict[str, Any]]:
        if not codes:
            return {}
        select = ["CardCode", "CardName", "Valid", "Frozen", "EmailAddress", "Phone1"]
        return {
            record["CardCode"]: record
            for page in self.hook.iter_any_of("BusinessPartners", "CardCode", codes, select=select)
            for record in page
        }

    def _card_codes(self, items: Sequence[Item]) -> dict[str, str]:
        mapped = self.customers.get([item.data["customer_id"] for item in items])
        return {customer_id: code for customer_id, (code, _merged) in mapped.items()}

    def _write_invoices(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        outcomes: dict[Hashable, Outcome] = {}
        field_name = self.mappings.invoice_id_field
        codes = self._card_codes(items)
        found = self._invoice_versions([str(item.key) for item in items])
        posts: list[tuple[Item, dict[str, Any]]] = []  # new invoices, first versions or not
        credits: list[tuple[Item, dict[str, Any]]] = []  # invoices to credit before posting again
        for item in items:
            foreign, data = str(item.key), item.data
            versions = found.get(foreign)
            live = versions.live if versions is not None else []
            if len(live) > 1:
                entries = ", ".join(str(versions.invoices[v]["DocEntry"]) for v in live)
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.FAILED,
                    f"SAP holds {len(live)} invoices for it that no credit memo cancels ({entries}): "
                    "cancel all but one in SAP, then replay it",
                    item.payload_hash,
                )
                continue
            if live:
                held = versions.invoices[live[0]]
                sap_total = Decimal(repr(held.get("DocTotal") or 0))
                outcome = _posted_already(
                    item, "invoice", held["DocEntry"], sap_total, Decimal(data["total"])
                )
                if outcome.action is not Action.FAILED or not self.mappings.credit_and_repost:
                    if outcome.action is Action.FAILED:
                        outcome.error = f"{outcome.error}, or set changed_after_posting: credit_and_repost"
                    outcomes[item.key] = outcome
                    continue
                paid = Decimal(repr(held.get("PaidToDate") or 0)).quantize(_CENT)
                if paid:
                    outcomes[item.key] = Outcome(
                        item.key,
                        Action.FAILED,
                        f"changed after posting (SAP invoice {held['DocEntry']} totals {sap_total.quantize(_CENT)}, "
                        f"ServiceTitan now {Decimal(data['total']).quantize(_CENT)}), and SAP invoice "
                        f"{held['DocEntry']} has {paid} applied to it: SAP does not credit a paid invoice in "
                        "full; take the payments off it in SAP (or correct it by hand), then replay it",
                        item.payload_hash,
                    )
                    continue
            elif versions is not None and not self.mappings.credit_and_repost:
                memo = versions.credited[max(versions.credited)]
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.FAILED,
                    f"cancelled in SAP by credit memo {memo['DocEntry']} and not posted again, as "
                    "changed_after_posting is fail: set it to credit_and_repost, then replay it",
                    item.payload_hash,
                )
                continue
            code = codes.get(data["customer_id"])
            if code is None:
                outcomes[item.key] = _waits_for_customer(item)
                continue
            version = versions.next if versions is not None else 1
            document = {"CardCode": code, **data["document"], field_name: revision_value(foreign, version)}
            if live:
                try:
                    credits.append((item, self._credit_memo(versions.invoices[live[0]], foreign)))
                except Exception as exc:  # SAP refused to show the invoice: this record fails alone
                    if stops_the_load(exc):
                        raise
                    outcomes[item.key] = Outcome(item.key, Action.FAILED, str(exc), item.payload_hash)
                    continue
            posts.append((item, document))
        pending = self.documents.pending_approval(
            field_name,
            [(item, body[field_name], "oInvoices") for item, body in posts]
            + [(item, body[field_name], "oCreditNotes") for item, body in credits],
        )
        outcomes.update(pending)
        credited = self.documents.create(
            "CreditNotes", field_name, [(item, body) for item, body in credits if item.key not in pending]
        )
        for key, outcome in credited.items():
            if outcome.action is Action.FAILED:
                outcome.error = f"changed after posting; SAP refused its credit memo: {outcome.error}"
                outcomes[key] = outcome
            elif outcome.action is Action.SKIPPED:
                outcomes[key] = Outcome(
                    key, Action.SKIPPED, f"credit memo {outcome.error}", outcome.payload_hash
                )
        posted = self.documents.create(
            "Invoices", field_name, [(item, body) for item, body in posts if item.key not in outcomes]
        )
        for item, body in posts:
            outcome = posted.get(item.key)
            if outcome is None:
                continue
            version = split_revision(str(body[field_name]))[1]
            if version > 1 and outcome.action in (Action.CREATED, Action.UNCHANGED):
                versions = found[str(item.key)]
                memo = credited.get(item.key)
                memo_entry = (
                    memo.target_key
                    if memo is not None
                    else versions.credited[max(versions.credited)]["DocEntry"]
                )
                old = versions.invoices[max(versions.invoices)]
                outcome = Outcome(
                    item.key,
                    Action.UPDATED,
                    f"changed after posting: credit memo {memo_entry} cancels invoice {old['DocEntry']} "
                    f"(totals {Decimal(repr(old.get('DocTotal') or 0)).quantize(_CENT)}), posted again as invoice "
                    f"{outcome.target_key} (totals {Decimal(item.data['total']).quantize(_CENT)})",
                    item.payload_hash,
                    outcome.target_key,
                )
            outcomes[item.key] = outcome
        return outcomes

    def _invoice_versions(self, foreign_ids: list[str]) -> dict[str, _Versions]:
        """What SAP holds of these ServiceTitan invoices: each posted version and its credit memo.

        One look-up of first versions, one of their credit memos; the later versions only of the
        invoices ever credited (rare), by the prefix of their revision values.
        """
        field_name = self.mappings.invoice_id_field
        select = ["DocEntry", field_name, "DocTotal", "CardCode", "PaidToDate"]
        first = self.documents.find("Invoices", field_name, foreign_ids, select)
        found = {foreign: _Versions(foreign, {1: record}) for foreign, record in first.items()}
        for value, memo in self.documents.find(
            "CreditNotes", field_name, list(first), ["DocEntry", field_name]
        ).items():
            found[value].credited[1] = memo
        replaced = [foreign for foreign, versions in found.items() if versions.credited]
        for begin in range(0, len(replaced), _REVISION_LOOKUP):
            chunk = replaced[begin : begin + _REVISION_LOOKUP]
            where = " or ".join(
                f"startswith({field_name}, {odata_literal(foreign + REVISION)})" for foreign in chunk
            )
            for entity, fields in (("Invoices", select), ("CreditNotes", ["DocEntry", field_name])):
                for page in self.hook.iter_pages(entity, filter=where, select=fields):
                    for record in page:
                        foreign, version = split_revision(str(record.get(field_name)))
                        if foreign in found and version > 1:
                            held = (
                                found[foreign].invoices if entity == "Invoices" else found[foreign].credited
                            )
                            held[version] = record
        return found

    def _credit_memo(self, invoice: Mapping[str, Any], foreign: str) -> dict[str, Any]:
        """The credit memo that cancels a posted invoice: its lines based on the invoice's
        (``base_document``), or copies of them (``copy``); it carries the invoice's own foreign id
        value, so it is found again and posted once."""
        field_name = self.mappings.invoice_id_field
        entry = invoice["DocEntry"]
        held = self.hook.get("Invoices", entry, select=["DocEntry", field_name, "DocumentLines"])
        if self.mappings.credit_memo_lines == "base_document":
            lines = [
                {"BaseType": INVOICE_OBJECT_TYPE, "BaseEntry": entry, "BaseLine": line["LineNum"]}
                for line in held.get("DocumentLines") or []
            ]
        else:
            lines = [
                {key: line[key] for key in _COPIED_LINE_FIELDS if line.get(key) is not None}
                for line in held.get("DocumentLines") or []
            ]
        return {
            "CardCode": invoice["CardCode"],
            "DocType": "dDocument_Service",
            field_name: str(held.get(field_name) or invoice.get(field_name)),
            "Comments": f"Cancels A/R invoice {entry}: ServiceTitan invoice {foreign} changed after posting"[
                :254
            ],
            "DocumentLines": lines,
        }

    def _write_payments(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        outcomes: dict[Hashable, Outcome] = {}
        codes = self._card_codes(items)
        wanted = [invoice for item in items for invoice, _ in item.data["applied"]]
        # Each invoice as SAP holds it now: its latest version no credit memo cancels.
        invoices = {
            foreign: versions.invoices[versions.live[-1]]
            for foreign, versions in self._invoice_versions(list(dict.fromkeys(wanted))).items()
            if versions.live
        }
        posted = self.documents.find(
            "IncomingPayments",
            PAYMENT_ID_FIELD,
            [str(i.key) for i in items],
            ["DocEntry", PAYMENT_ID_FIELD, "CashSum", "TransferSum"],
        )
        creates: list[tuple[Item, dict[str, Any]]] = []
        for item in items:
            data = item.data
            if str(item.key) in posted:
                found = posted[str(item.key)]
                held = Decimal(repr(found.get("CashSum") or 0)) + Decimal(repr(found.get("TransferSum") or 0))
                wanted = Decimal(
                    repr(data["payment"].get("CashSum") or data["payment"].get("TransferSum") or 0)
                )
                outcomes[item.key] = _posted_already(item, "payment", found["DocEntry"], held, wanted)
                continue
            code = codes.get(data["customer_id"])
            missing = [invoice for invoice, _ in data["applied"] if invoice not in invoices]
            if missing:
                what = f"invoice{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
                outcomes[item.key] = waiting(
                    item.key,
                    what,
                    f"waiting for {what}, not in SAP yet: the next run posts it once "
                    f"{'they are' if len(missing) > 1 else 'it is'}",
                    item.payload_hash,
                )
                continue
            if code is None:
                outcomes[item.key] = _waits_for_customer(item)
                continue
            body = {
                "CardCode": code,
                **data["payment"],
                "PaymentInvoices": [
                    {
                        "DocEntry": invoices[invoice]["DocEntry"],
                        "SumApplied": float(amount),
                        "InvoiceType": "it_Invoice",
                    }
                    for invoice, amount in data["applied"]
                ],
            }
            creates.append((item, body))
        outcomes.update(self.documents.create("IncomingPayments", PAYMENT_ID_FIELD, creates))
        return outcomes


@dataclasses.dataclass
class _Versions:
    """One ServiceTitan invoice in SAP: each posted version (1 carries the plain foreign id, later
    ones :func:`revision_value`) and the credit memo of each version cancelled."""

    foreign: str
    invoices: dict[int, dict[str, Any]]
    credited: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def live(self) -> list[int]:
        """The versions no credit memo cancels, oldest first (one, or none mid-replacement)."""
        return sorted(v for v in self.invoices if v not in self.credited)

    @property
    def next(self) -> int:
        """The version a new invoice for it gets."""
        return max((*self.invoices, *self.credited)) + 1


def revision_value(foreign: str, version: int) -> str:
    """The foreign id value of an invoice's ``version``: the id itself for the first, ``<id>-r<n>``
    for the later ones (posted when the first was changed after posting and credited)."""
    return foreign if version == 1 else f"{foreign}{REVISION}{version}"


def split_revision(value: str) -> tuple[str, int]:
    """``(ServiceTitan invoice id, version)`` of a foreign id value SAP holds (:func:`revision_value`)."""
    head, separator, tail = value.rpartition(REVISION)
    if separator and head and tail.isdigit() and int(tail) >= 2:
        return head, int(tail)
    return value, 1


def _waits_for_customer(item: Item) -> Outcome:
    """A document whose customer has no partner in SAP yet waits for it."""
    data = item.data
    return waiting(
        item.key,
        f"customer {data['customer_id']}",
        f"waiting for customer {data['customer_name']!r} ({data['customer_id']}), not in SAP yet: the next run "
        "posts it once the customer is",
        item.payload_hash,
    )


def _posted_already(item: Item, what: str, doc_entry: Any, held: Decimal, wanted: Decimal) -> Outcome:
    """A document SAP holds already: ``unchanged`` when its total is ServiceTitan's, else failed
    (a posted document's amounts are frozen in SAP: it needs a correction there)."""
    held, wanted = held.quantize(_CENT), wanted.quantize(_CENT)
    if held == wanted:
        return Outcome(item.key, Action.UNCHANGED, None, item.payload_hash, doc_entry)
    return Outcome(
        item.key,
        Action.FAILED,
        f"changed after posting: needs a correction (SAP {what} {doc_entry} totals {held}, ServiceTitan now {wanted})",
        item.payload_hash,
    )
