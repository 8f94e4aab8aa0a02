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
  are frozen in SAP). One that SAP keeps as a draft for approval is ``skipped``, "pending approval
  (draft N)", and later runs find the draft instead of posting again.
* **payments -> incoming payments** applied to the SAP invoices they pay, found by their foreign
  ids; ``CounterReference`` holds the payment id. A payment is never posted unapplied by accident.

**Waiting.** An invoice whose customer has no partner in SAP yet, and a payment for an invoice
(or a customer) not in SAP yet, fail *waiting for* it (:func:`~airflow_provider_b1.sync.outcomes.waiting`):
the next incremental run of their stream reads them again first and posts them once it is there
(replay does too). Until then they count as failed, "waiting for ...", in summaries and in the
reconciliation report.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from airflow_provider_b1.hooks.sap_b1.writes import APPROVAL_DRAFT_CODE, LOOKUP_CHUNK, is_draft
from airflow_provider_b1.hooks.servicetitan import money as servicetitan_money
from airflow_provider_b1.servicetitan.customers import CustomerMap
from airflow_provider_b1.servicetitan.mappings import Mappings
from airflow_provider_b1.sync.engine import Item, PageCommit, Sink
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome, waiting
from airflow_provider_b1.sync.records import payload_hash

log = logging.getLogger(__name__)

CUSTOMERS, INVOICES, PAYMENTS = "customers", "invoices", "payments"
PAYMENT_ID_FIELD = "CounterReference"
_CENT = Decimal("0.01")


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
            changes = _differences(item.data["partner"], current.get(code, {}))
            if changes:
                try:
                    self.hook.update("BusinessPartners", code, changes)
                except Exception as exc:  # SAP refused this record: it fails alone
                    if _stops_the_load(exc):
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
        ids = [str(item.key) for item in items]
        posted = self._documents(
            "Invoices", field_name, ids, ["DocEntry", field_name, "DocTotal", "CardCode"]
        )
        drafts = self._documents(
            "Drafts", field_name, [i for i in ids if i not in posted], ["DocEntry", field_name]
        )
        creates: list[tuple[Item, dict[str, Any]]] = []
        for item in items:
            foreign = str(item.key)
            data = item.data
            if foreign in posted:
                found = posted[foreign]
                sap_total = Decimal(repr(found.get("DocTotal") or 0))
                outcomes[item.key] = _posted_already(
                    item, "invoice", found["DocEntry"], sap_total, Decimal(data["total"])
                )
                continue
            if foreign in drafts:
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.SKIPPED,
                    f"pending approval (draft {drafts[foreign]['DocEntry']})",
                    item.payload_hash,
                )
                continue
            code = codes.get(data["customer_id"])
            if code is None:
                outcomes[item.key] = _waits_for_customer(item)
                continue
            creates.append((item, {"CardCode": code, **data["document"]}))
        outcomes.update(self._create("Invoices", field_name, creates))
        return outcomes

    def _write_payments(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        outcomes: dict[Hashable, Outcome] = {}
        field_name = self.mappings.invoice_id_field
        codes = self._card_codes(items)
        wanted = [invoice for item in items for invoice, _ in item.data["applied"]]
        invoices = self._documents("Invoices", field_name, wanted, ["DocEntry", field_name, "CardCode"])
        posted = self._documents(
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
        outcomes.update(self._create("IncomingPayments", PAYMENT_ID_FIELD, creates))
        return outcomes

    def _documents(
        self, entity: str, field_name: str, values: list[str], select: list[str]
    ) -> dict[str, dict]:
        if not values:
            return {}
        return {
            str(record.get(field_name)): record
            for page in self.hook.iter_any_of(entity, field_name, list(dict.fromkeys(values)), select=select)
            for record in page
        }

    def _create(
        self, entity: str, field_name: str, creates: list[tuple[Item, dict[str, Any]]]
    ) -> dict[Hashable, Outcome]:
        """Post the documents in ``$batch``; one that SAP holds as a draft for approval is
        ``skipped``, "pending approval (draft N)", whichever way the Service Layer says so."""
        outcomes: dict[Hashable, Outcome] = {}
        if not creates:
            return outcomes
        results = self.hook.create_many(entity, [body for _, body in creates], dedupe_field=field_name)
        for (item, body), result in zip(creates, results, strict=True):
            record = result.record or {}
            if result.outcome == "failed":
                outcomes[item.key] = self._refused(entity, field_name, item, body, result)
            elif is_draft(record):
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.SKIPPED,
                    f"pending approval (draft {record.get('DocEntry')})",
                    item.payload_hash,
                )
            else:
                action = Action.CREATED if result.outcome == "created" else Action.UNCHANGED
                outcomes[item.key] = Outcome(
                    item.key, action, None, item.payload_hash, record.get("DocEntry")
                )
        return outcomes

    def _refused(
        self, entity: str, field_name: str, item: Item, body: dict[str, Any], result: Any
    ) -> Outcome:
        """A document refused in ``$batch``. Where an approval procedure applies, SAP answers the
        POST with -2028 and keeps a draft, but a changeset rolls the draft back with it: the
        document is then posted alone, and the draft it leaves is found by its foreign id."""
        if str(result.code) != str(APPROVAL_DRAFT_CODE):
            return Outcome(item.key, Action.FAILED, result.error, item.payload_hash)
        record: dict[str, Any] = {}
        try:
            record = self.hook.create(entity, body, dedupe_field=field_name)
        except Exception as exc:
            if _stops_the_load(exc):
                raise
            if str(getattr(exc, "code", None)) != str(APPROVAL_DRAFT_CODE):
                return Outcome(item.key, Action.FAILED, str(exc), item.payload_hash)
        if record and not is_draft(record):
            return Outcome(item.key, Action.CREATED, None, item.payload_hash, record.get("DocEntry"))
        value = str(body[field_name])
        found = self._documents("Drafts", field_name, [value], ["DocEntry", field_name]).get(value)
        if found is None:
            return Outcome(item.key, Action.FAILED, result.error, item.payload_hash)
        return Outcome(
            item.key, Action.SKIPPED, f"pending approval (draft {found['DocEntry']})", item.payload_hash
        )


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


def _differences(wanted: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The properties of ``wanted`` SAP holds otherwise (addresses are set on creation only)."""
    return {k: v for k, v in wanted.items() if k not in ("BPAddresses", "CardType") and current.get(k) != v}


def _stops_the_load(exc: BaseException) -> bool:
    from airflow_provider_b1.exceptions import PermanentError, RetryableError

    return isinstance(exc, (RetryableError, PermanentError)) and not _is_business_error(exc)


def _is_business_error(exc: BaseException) -> bool:
    from airflow_provider_b1.hooks.sap_b1.errors import SapB1BusinessError, SapB1NotFoundError

    return isinstance(exc, (SapB1BusinessError, SapB1NotFoundError))
