"""The company database behind the imitation: queries, SAP's write rules, test-only changes.

Business errors raised here (status / code / message):

- 400 / -10 ``Invalid BP code 'X'`` (unknown partner, or one of the wrong ``CardType``)
- 400 / -10 ``Business partner code 'X' already assigned``
- 400 / -10 ``Document has no rows; add at least one line`` (document without ``DocumentLines``)
- 400 / -10 ``Invalid item code 'X'``, ``Invalid account code 'X'``, ``Invalid tax code 'X'``,
  ``Invalid profit center 'X' for dimension N``, ``Unbalanced transaction``,
  ``Document is already closed``, ``Document is already cancelled``
- 400 / -1000 ``Property 'X' of 'Document' is invalid`` (unknown property in a payload, or in
  one of its lines)
- 400 / -1000 ``Value 'X' of property 'P' of 'Document' is invalid: a PrintStatusEnum (psNo,
  psYes, psAmended) is expected`` (a value of the wrong type, checked against the $metadata types
  of :mod:`.schema` before anything is written: an enumeration member that does not exist, a
  string where a number is due, a day that does not exist such as ``2024-02-30``, a time such as
  ``24:00``). SAP's exact wording is unconfirmed; the status, code and property name are the
  contract.

A write is all or nothing: a PATCH refused half way leaves the record as it was.
- 400 / -2035 ``This entry already exists in the following tables (ODBC -2035)`` (duplicate key,
  or a PATCH adding a child row that already exists; the reply closes the connection)
- 400 / -5006 ``Action 'X' is not supported`` / deleting documents
- 404 / -2028 ``Entity with value('X') does not exist`` (``No matching records found (ODBC -2028)``
  after a delete)
- 412 / -2039 ``Another user or another operation modified data; to cancel your changes, reload the record``
- 400 / -10 on service-type documents (``DocType: dDocument_Service``, lines of ``AccountCode``
  and ``LineTotal``): ``G/L account is not valid [DocumentLines.AccountCode][line: N]`` (no
  account; N counts from 1), ``Item code is not allowed in a service document (line L)``
- 400 / -10 on credit memos based on invoices (lines with ``BaseType: 13, BaseEntry,
  BaseLine``): ``Base document card and target document card do not match.``, ``Base document N
  does not exist``, ``Base document N is closed or cancelled``, ``Base line L does not exist in
  document N``, ``Base line L of document N is closed``, ``Amount A exceeds the open amount O of
  line L of base document N``, ``Amount A exceeds the balance due B of base document N``
- 400 / -10 on payments: ``Invalid document number N in PaymentInvoices`` (missing, or another
  partner's), ``Payment amount is greater than invoice amount  [RCT2.SumApplied][line: N]``
  (more than the invoice's balance due; ``VPM2`` on vendor payments), ``Total applied
  to documents (A) exceeds the payment amount (P)``; 400 / -5006 for an ``InvoiceType`` other
  than ``it_Invoice`` (``it_PurchaseInvoice`` on vendor payments)
- approvals: 404 / -2028 ``No matching records found (ODBC -2028)`` for a POST held as a draft
  (with ``post_reply="error"``); 400 / -10 ``User code or password is incorrect [Message
  131-93]``, ``User 'X' is not an approver of stage S of approval request C``, ``Approval
  request C is not pending (status S)``, ``Cannot add the document: approval request C is S,
  not approved``, ``Draft N is closed; it was already added as a document``

Of those added for issue 9, ``Base document card and target document card do not match.``, the
overpayment, the -2028 reply to a held POST and the wrong approver password are SAP's words as
recorded from real servers, and the missing G/L account follows SAP's wording for another
collection; the others keep SAP's status, code and shape with wording of our own.

Money: a document's ``PaidToDate`` grows with every payment applied to it and every credit memo
based on it; paid in full, it closes (``bost_Close``); a cancelled payment or credit memo takes
its part back and reopens it. Generated documents were paid in full when closed and not
cancelled.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_b1.sandbox.sap import data, schema
from airflow_provider_b1.sandbox.sap.data import DOCUMENT_ENTITIES, LINES, SALES_DOCUMENTS, Entity
from airflow_provider_b1.sandbox.sap.odata import (
    FilterCompiler,
    Narrowing,
    exact,
    key_literal,
    narrowing,
    parse_orderby,
    sort_rows,
)

PAYMENT_ENTITIES = ("IncomingPayments", "VendorPayments")
ETAG_MISMATCH = "Another user or another operation modified data; to cancel your changes, reload the record"
ALREADY_EXISTS = "This entry already exists in the following tables (ODBC -2035)"
NO_MATCH = "No matching records found (ODBC -2028)"
SERVICE = "dDocument_Service"
DRAFT_CODES = {code: name for name, code in data.OBJECT_CODES.items()}
"""``DocObjectCode`` of a draft -> the entity set of the document it stands for."""
_HALF_CENT = 0.005
_DRAFT_ONLY = frozenset(
    (
        "DocObjectCode",
        "AuthorizationStatus",
        "PaidToDate",
        "PaidToDateFC",
        "PaidToDateSys",
        "Document_ApprovalRequests",
    )
)
"""Document properties the server keeps itself: never copied from a payload."""
_NOT_COPIED = _DRAFT_ONLY | {
    "DocumentLines",
    "DocEntry",
    "DocNum",
    "CardCode",
    "CardName",
    "DocCurrency",
    "DocRate",
    "DocType",
}
_LINE_DERIVED = frozenset(
    (
        "LineNum",
        "DocEntry",
        "LineStatus",
        "OpenAmount",
        "RemainingOpenQuantity",
        "TaxTotal",
        "GrossTotal",
        "TaxPercentagePerRow",
        "Currency",
    )
)


@dataclass
class ApprovalRule:
    """An approval procedure, switched on at run time with ``POST /_sandbox/approvals``.

    :param entities: document sets it covers (``Invoices``, ``CreditNotes``...).
    :param threshold: a document whose ``DocTotal`` reaches it is held for approval (0: all).
    :param post_reply: what the held POST answers. ``"error"``: 404 / -2028 ``No matching records
        found (ODBC -2028)`` while the draft is kept, as SAP 10.0 (Service Layer 1000321) was
        seen to answer; ``"draft"``: 201 with the draft and ``Location: .../Drafts(N)``.
    :param after_generate: what ``DraftsService_SaveDraftToDocument`` leaves of the request:
        ``"generated"`` (``Status: arsGenerated``) or ``"deleted"`` (404 afterwards, as one
        installation was seen to do).
    :param required: approvals that approve a request (one rejection rejects it).
    :param approvers: approver user -> password for this rule (default: the configured ones).
    :param save_draft: how an approved draft becomes its document. ``"service"``:
        ``POST DraftsService_SaveDraftToDocument``; ``"post"`` (the other reading of SAP's
        documentation): a ``POST`` of the document naming the draft's key (``{"DocEntry": N}``),
        while the service answers 404 as a Service Layer without it would.
    """

    entities: tuple[str, ...]
    threshold: float = 0.0
    post_reply: str = "error"
    after_generate: str = "generated"
    required: int = 1
    approvers: dict[str, str] | None = None
    save_draft: str = "service"

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ApprovalRule | None:
        """The rule a control call asks for (``{}`` switches approvals off).

        :raises ValueError: for an unknown key or a value out of range.
        """
        if not body:
            return None
        known = {"entity", "threshold", "post_reply", "after_generate", "required", "approvers", "save_draft"}
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"Unknown approval settings: {sorted(unknown)}")
        entity = body.get("entity")
        entities = tuple([entity] if isinstance(entity, str) else entity or ())
        if not entities or any(e not in DOCUMENT_ENTITIES for e in entities):
            raise ValueError(f"entity: one or more of {', '.join(DOCUMENT_ENTITIES)}")
        threshold = body.get("threshold", 0)
        if not data.is_number(threshold) or threshold < 0:
            raise ValueError("threshold: a number, 0 or more")
        post_reply = body.get("post_reply", "error")
        if post_reply not in ("error", "draft"):
            raise ValueError("post_reply: error or draft")
        after = body.get("after_generate", "generated")
        if after not in ("generated", "deleted"):
            raise ValueError("after_generate: generated or deleted")
        required = body.get("required", 1)
        if type(required) is not int or required < 1:
            raise ValueError("required: an integer, 1 or more")
        approvers = body.get("approvers")
        if approvers is not None and (
            not isinstance(approvers, dict)
            or not approvers
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in approvers.items())
        ):
            raise ValueError("approvers: an object of user name -> password")
        save_draft = body.get("save_draft", "service")
        if save_draft not in ("service", "post"):
            raise ValueError("save_draft: service or post")
        return cls(entities, float(threshold), post_reply, after, required, approvers, save_draft)

    def describe(self) -> dict[str, Any]:
        """The rule as the control plane shows it (approver names, never their passwords)."""
        return {
            "entity": list(self.entities),
            "threshold": self.threshold,
            "post_reply": self.post_reply,
            "after_generate": self.after_generate,
            "required": self.required,
            "approvers": sorted(self.approvers) if self.approvers else None,
            "save_draft": self.save_draft,
        }


def _as_key(value: Any, key_type: type) -> Any:
    """The key a filter's literal is equal to (``2.0`` and ``true`` equal the key 2 and 1), or
    None when it can equal none."""
    if key_type is str:
        return value if type(value) is str else None
    if type(value) in (int, bool):
        return int(value)
    if type(value) is float and value.is_integer():
        return int(value)
    return None


class SapError(Exception):
    """An error the Service Layer answers with ``{"error": {...}}``."""

    def __init__(self, status: int, code: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close


def business(message: str) -> SapError:
    return SapError(400, -10, message)


class Store:
    """All entity sets of one company, with a lock (two servers may share one store)."""

    def __init__(self, *, seed: int, invoices: int, timezone: str, anchor: dt.date | None = None) -> None:
        self.seed = seed
        self.tz = ZoneInfo(timezone)
        self.anchor = anchor or dt.datetime.now(self.tz).date()
        self.dataset = data.generate(seed, invoices, self.anchor)
        self.entities: dict[str, Entity] = self.dataset.entities
        self.tables = self.dataset.tables
        self.lock = threading.RLock()
        self.deleted: dict[str, set] = {name: set() for name in self.entities}
        self._cache: OrderedDict[tuple, tuple[int, list[list]]] = OrderedDict()
        self.journal: dict[tuple, Any] | None = None
        self._mutations = 0
        self.approval: ApprovalRule | None = None
        self.approvers: dict[str, str] = {}
        self.user_keys: dict[str, int] = {}
        self.request_rules: dict[int, tuple[int, str]] = {}

    # -- reading ---------------------------------------------------------------------------

    def entity(self, name: str) -> Entity:
        ent = self.entities.get(name)
        if ent is None:
            raise SapError(404, -1000, f"Invalid resource path: '{name}'")
        return ent

    def compiler(self, ent: Entity) -> FilterCompiler:
        return FilterCompiler(ent.has_property, ent.raw_getter, ent.is_date, ent.object_name)

    def query(self, ent: Entity, filter_text: str | None, orderby_text: str | None) -> list[list]:
        """Rows matching the filter in the requested order; cached until the entity changes.

        Rows are kept in key order, so a filter on a key range looks only at that range
        (bisection), an equality filter on an indexed property (``NumAtCard``,
        ``CounterReference``, one value or several joined by ``or``) only at the rows holding
        those values, and ``$orderby`` on the key alone sorts nothing."""
        if not filter_text and not orderby_text:
            return ent.ordered()
        cache_key = (ent.name, filter_text, orderby_text)
        hit = self._cache.get(cache_key)
        if hit is not None and hit[0] == ent.version:
            self._cache.move_to_end(cache_key)
            return hit[1]
        rows = ent.ordered()
        if filter_text:
            pred = self.compiler(ent).compile(filter_text)
            rows, complete = self._candidates(ent, narrowing(pred))
            if not (complete and exact(pred)):
                rows = [row for row in rows if pred(row)]
        if orderby_text:
            keys = parse_orderby(orderby_text, ent.has_property, ent.object_name)
            if keys == [(ent.key, True)]:
                rows = rows[::-1]
            elif keys != [(ent.key, False)]:
                rows = sort_rows(rows, [(ent.raw_getter(name), desc) for name, desc in keys])
        self._cache[cache_key] = (ent.version, rows)
        if len(self._cache) > 32:
            self._cache.popitem(last=False)
        return rows

    @staticmethod
    def _candidates(ent: Entity, narrow: Narrowing) -> tuple[list[list], bool]:
        """The rows in key order a filter with these conditions can match (a superset), and
        whether they are exactly the rows meeting the conditions (a key range, or key values)."""
        key_type = int if ent.int_keys else str
        low = high = None
        low_open = high_open = False
        best: list[list] | None = None
        ranged = 0
        for prop, op, value in narrow:
            if op == "in":
                if prop == ent.key:
                    wanted = {_as_key(v, key_type) for v in value} - {None}
                    found = [ent.rows[v] for v in sorted(wanted) if v in ent.rows]
                elif prop in data.INDEXED:
                    found = ent.lookup(prop, value)
                else:
                    continue
                if best is None or len(found) < len(best):
                    best = found
            elif prop == ent.key and type(value) in ((int, float) if key_type is int else (str,)):
                ranged += 1
                if op in ("gt", "ge") and (low is None or value > low or (value == low and op == "gt")):
                    low, low_open = value, op == "gt"
                if op in ("lt", "le") and (high is None or value < high or (value == high and op == "lt")):
                    high, high_open = value, op == "lt"
        if best is not None:
            key_values = len(narrow) == 1 and narrow[0][0] == ent.key
            return best, key_values
        complete = ranged == len(narrow)
        if low is None and high is None:
            return ent.ordered(), complete
        return ent.key_range(low, low_open, high, high_open), complete

    def get(self, ent: Entity, key: Any) -> list:
        row = ent.rows.get(key)
        if row is None:
            if key in self.deleted[ent.name]:
                raise SapError(404, -2028, "No matching records found (ODBC -2028)")
            raise SapError(404, -2028, f"Entity with value({key_literal(key)}) does not exist")
        return row

    # -- stamps and the undo journal used by $batch changesets ------------------------------

    def now(self) -> tuple[str, str]:
        now = dt.datetime.now(self.tz)
        return now.date().isoformat(), now.strftime("%H:%M:%S")

    def _remember(self, ent: Entity, key: Any) -> None:
        if self.journal is None:
            return
        jkey = (ent.name, key)
        if jkey not in self.journal:
            row = ent.rows.get(key)
            self.journal[jkey] = copy.deepcopy(row) if row is not None else None
        ekey = (ent.name, "__next__")
        if ekey not in self.journal:
            self.journal[ekey] = ent.next_entry

    def begin(self) -> None:
        self.journal = {}

    def commit(self) -> None:
        self.journal = None

    def rollback(self) -> None:
        journal, self.journal = self.journal or {}, None
        for (name, key), old in journal.items():
            ent = self.entities[name]
            if key == "__next__":
                ent.next_entry = old
                continue
            if old is None:
                ent.rows.pop(key, None)
            else:
                ent.rows[key] = old
            ent.touch()

    def _stamp(self, ent: Entity, row: list) -> None:
        day, time = self.now()
        if "UpdateDate" in ent.col:
            row[ent.col["UpdateDate"]] = day
        if "UpdateTime" in ent.col:
            row[ent.col["UpdateTime"]] = time
        row[ent.ver] += 1
        ent.touch(row[ent.key_index])

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _set(ent: Entity, row: list, prop: str, value: Any) -> None:
        """Store one property's value as given (writes are checked by :meth:`_clean` first)."""
        if prop in ent.col:
            row[ent.col[prop]] = value
        else:
            if row[ent.ext] is None:
                row[ent.ext] = {}
            row[ent.ext][prop] = value

    @staticmethod
    def _clean(ent: Entity, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload checked against the entity's $metadata types and normalized (see
        :func:`schema.clean`); a value SAP would refuse answers 400 / -1000 before anything is
        written."""
        try:
            return schema.clean(ent.template, payload, schema.CHILDREN)
        except schema.TypeMismatch as exc:
            raise SapError(400, -1000, str(exc)) from None

    def _partner(self, code: Any, allowed: tuple[str, ...]) -> list:
        bp = self.entities["BusinessPartners"].rows.get(code)
        if bp is None or bp[2] not in allowed:
            raise business(f"Invalid BP code '{code}'")
        return bp

    def _check_centres(self, line: dict[str, Any]) -> None:
        for dim, prop in enumerate(
            ("CostingCode", "CostingCode2", "CostingCode3", "CostingCode4", "CostingCode5"), 1
        ):
            value = line.get(prop)
            if value and value not in self.tables.active_centres.get(dim, ()):
                raise business(f"Invalid profit center '{value}' for dimension {dim}")

    def _check_account(self, code: Any) -> None:
        if code not in self.tables.postable:
            raise business(f"Invalid account code '{code}'")

    # -- documents -------------------------------------------------------------------------

    def _kind(self, ent: Entity, row: list) -> str:
        """The document type a row stands for: its entity, or for a draft the type it names."""
        if ent.name == "Drafts":
            return DRAFT_CODES.get(ent.value(row, "DocObjectCode"), "Invoices")
        return ent.name

    def _document_line(
        self,
        raw: dict[str, Any],
        line_num: int,
        doc: list,
        sales: bool,
        base: dict | None = None,
        *,
        service: bool = False,
    ) -> dict[str, Any]:
        for prop in raw:
            if prop not in schema.DOCUMENT_LINE:
                raise SapError(400, -1000, f"Property '{prop}' of 'DocumentLine' is invalid")
        line = dict(base or {})
        line.update(raw)
        currency, rate = doc[9], doc[10] or 1.0
        if service:
            # A service row is a G/L account and an amount: no item, no quantity, no warehouse.
            if line.get("ItemCode"):
                raise business(f"Item code is not allowed in a service document (line {line_num})")
            acct = line.get("AccountCode")
            if not acct:
                raise business(f"G/L account is not valid [DocumentLines.AccountCode][line: {line_num + 1}]")
            self._check_account(acct)
            price = line.get("UnitPrice", line.get("Price"))
            if line.get("LineTotal") is not None:
                total = round(float(line["LineTotal"]), 2)
            else:
                total = round(float(price or 0.0) * rate, 2)
            price = round(total / rate, 4)
        else:
            code = line.get("ItemCode")
            item = self.entities["Items"].rows.get(code)
            if item is None:
                raise business(f"Invalid item code '{code}'")
            qty = float(line.get("Quantity") or 1.0)
            price = line.get("UnitPrice", line.get("Price"))
            if price is None:
                base_price = next((p["Price"] for p in item[14] if p["PriceList"] == 1), 0.0)
                price = round(base_price / rate, 4)
            if "LineTotal" in raw and raw["LineTotal"] is not None:
                total = round(float(raw["LineTotal"]), 2)
            else:
                total = round(qty * float(price) * rate, 2)
            accounts = self.tables.revenue_accounts if sales else self.tables.expense_accounts
            acct = line.get("AccountCode") or accounts[data.hash_index(str(code), len(accounts))]
            self._check_account(acct)
        tax_code = line.get("TaxCode") or "EX"
        rates = dict(data.SALES_TAX)
        if tax_code not in rates:
            raise business(f"Invalid tax code '{tax_code}'")
        self._check_centres(line)
        tax = round(total * rates[tax_code], 2)
        open_ = doc[11] == "bost_Open"
        line.update(
            {
                "LineNum": line_num,
                "Price": float(price),
                "UnitPrice": float(price),
                "Currency": currency,
                "AccountCode": acct,
                "TaxCode": tax_code,
                "LineTotal": total,
                "TaxTotal": tax,
                "TaxPercentagePerRow": rates[tax_code] * 100,
                "GrossTotal": round(total + tax, 2),
                "OpenAmount": total if open_ else 0.0,
                "LineStatus": "bost_Open" if open_ else "bost_Close",
                "DocEntry": doc[0],
            }
        )
        if not service:
            line.update(
                {
                    "ItemCode": code,
                    "ItemDescription": line.get("ItemDescription") or item[1],
                    "Quantity": qty,
                    "RemainingOpenQuantity": qty if open_ else 0.0,
                    "WarehouseCode": line.get("WarehouseCode") or "01",
                }
            )
        return line

    @staticmethod
    def _totals(doc: list) -> None:
        lines = doc[LINES]
        vat = round(sum(line.get("TaxTotal") or 0.0 for line in lines), 2)
        doc[8] = vat
        doc[7] = round(sum(line.get("LineTotal") or 0.0 for line in lines) + vat, 2)

    def _paid(self, ent: Entity, row: list) -> float:
        value = ent.value(row, "PaidToDate")
        return float(value) if data.is_number(value) else 0.0

    def _balance(self, ent: Entity, row: list) -> float:
        """What is still owed on a document: nothing once it is closed or cancelled."""
        if row[11] != "bost_Open" or row[12] == "tYES" or not data.is_number(row[7]):
            return 0.0
        return round(row[7] - self._paid(ent, row), 2)

    def _add_paid(self, ent: Entity, row: list, amount: float) -> None:
        """Move a document's ``PaidToDate`` by ``amount``; paid in full closes it, and taking a
        payment back (a negative amount) reopens it."""
        self._remember(ent, row[0])
        self._materialize(ent, row)
        paid = round(self._paid(ent, row) + amount, 2)
        self._set(ent, row, "PaidToDate", paid)
        self._set(ent, row, "PaidToDateSys", paid)
        total = row[7] if data.is_number(row[7]) else 0.0
        status = None
        if row[11] == "bost_Open" and paid >= total - _HALF_CENT:
            status = "bost_Close"
        elif amount < 0 and row[11] == "bost_Close" and row[12] == "tNO" and paid < total - _HALF_CENT:
            status = "bost_Open"
        if status:
            row[11] = status
            for line in row[LINES]:
                line["LineStatus"] = status
        self._stamp(ent, row)

    def _base_refs(self, kind: str, bp: list, lines_in: list) -> list[tuple[list, dict] | None]:
        """The invoice line each credit memo line is based on (``BaseType`` 13, ``BaseEntry``,
        ``BaseLine``), checked as SAP checks it before anything is copied."""
        refs: list[tuple[list, dict] | None] = []
        invoices = self.entities["Invoices"]
        for raw in lines_in:
            if kind != "CreditNotes" or all(
                raw.get(p) is None for p in ("BaseType", "BaseEntry", "BaseLine")
            ):
                refs.append(None)
                continue
            if raw.get("BaseType") != int(data.OBJECT_TYPES["Invoices"]):
                raise business(
                    f"Invalid base document type {raw.get('BaseType')}; "
                    "an A/R credit memo is based on an A/R invoice (13)"
                )
            entry = raw.get("BaseEntry")
            inv = invoices.rows.get(entry)
            if inv is None:
                raise business(f"Base document {entry} does not exist")
            if inv[5] != bp[0]:
                raise business("Base document card and target document card do not match.")
            if inv[12] == "tYES" or inv[11] != "bost_Open":
                raise business(f"Base document {entry} is closed or cancelled")
            self._materialize(invoices, inv)
            line = next((x for x in inv[LINES] if x.get("LineNum") == raw.get("BaseLine")), None)
            if line is None:
                raise business(f"Base line {raw.get('BaseLine')} does not exist in document {entry}")
            if line.get("LineStatus") == "bost_Close":
                raise business(f"Base line {raw.get('BaseLine')} of document {entry} is closed")
            refs.append((inv, line))
        return refs

    @staticmethod
    def _inherited(raw: dict[str, Any], base_line: dict[str, Any], service: bool) -> tuple[dict, dict]:
        """A based line's defaults from its base line, and the line as sent (crediting what is
        still open on the base line when it names neither a quantity nor an amount)."""
        keep = [
            "ItemDescription",
            "AccountCode",
            "TaxCode",
            "CostingCode",
            "CostingCode2",
            "CostingCode3",
            "CostingCode4",
            "CostingCode5",
            "ProjectCode",
            "UnitPrice",
        ]
        if not service:
            keep += ["ItemCode", "WarehouseCode"]
        inherited = {p: base_line.get(p) for p in keep if base_line.get(p) is not None}
        if not service:
            remaining = base_line.get("RemainingOpenQuantity")
            inherited["Quantity"] = remaining if remaining else base_line.get("Quantity")
        sent = dict(raw)
        if sent.get("Quantity") is None and sent.get("LineTotal") is None:
            open_amount = base_line.get("OpenAmount")
            sent["LineTotal"] = open_amount if open_amount is not None else base_line.get("LineTotal")
        return inherited, sent

    def _credit(self, row: list, refs: list[tuple[list, dict] | None]) -> None:
        """Apply a credit memo to the invoices it is based on: each base line's open amount and
        each invoice's open balance shrink; an invoice credited in full closes. All checks run
        before anything changes."""
        per_line: dict[tuple[int, int], tuple[dict, float, float]] = {}
        per_invoice: dict[int, tuple[list, float]] = {}
        for line, ref in zip(row[LINES], refs, strict=True):
            if ref is None:
                continue
            inv, base_line = ref
            key = (inv[0], base_line["LineNum"])
            _, net, qty = per_line.get(key, (base_line, 0.0, 0.0))
            per_line[key] = (base_line, net + line["LineTotal"], qty + float(line.get("Quantity") or 0.0))
            _, gross = per_invoice.get(inv[0], (inv, 0.0))
            per_invoice[inv[0]] = (inv, gross + line["LineTotal"] + line["TaxTotal"])
        invoices = self.entities["Invoices"]
        for (entry, line_num), (base_line, net, _) in per_line.items():
            open_amount = base_line.get("OpenAmount")
            if open_amount is None:
                open_amount = base_line.get("LineTotal") or 0.0
            if net > open_amount + _HALF_CENT:
                raise business(
                    f"Amount {net:.2f} exceeds the open amount {open_amount:.2f} "
                    f"of line {line_num} of base document {entry}"
                )
        for entry, (inv, gross) in per_invoice.items():
            balance = self._balance(invoices, inv)
            if gross > balance + _HALF_CENT:
                raise business(
                    f"Amount {gross:.2f} exceeds the balance due {balance:.2f} of base document {entry}"
                )
        for (entry, _), (base_line, net, qty) in per_line.items():
            self._remember(invoices, entry)
            open_amount = base_line.get("OpenAmount")
            if open_amount is None:
                open_amount = base_line.get("LineTotal") or 0.0
            left = round(open_amount - net, 2)
            base_line["OpenAmount"] = max(left, 0.0)
            if base_line.get("RemainingOpenQuantity"):
                base_line["RemainingOpenQuantity"] = max(base_line["RemainingOpenQuantity"] - qty, 0.0)
            if left <= _HALF_CENT:
                base_line["LineStatus"] = "bost_Close"
        applied = 0.0
        for inv, gross in per_invoice.values():
            self._add_paid(invoices, inv, round(gross, 2))
            applied += gross
        if per_invoice:
            # A memo copied from invoices is reconciled with them: what it credited is settled.
            paid = round(applied, 2)
            self._set(self.entities["CreditNotes"], row, "PaidToDate", paid)
            self._set(self.entities["CreditNotes"], row, "PaidToDateSys", paid)
            if paid >= row[7] - _HALF_CENT:
                row[11] = "bost_Close"
                for line in row[LINES]:
                    line["LineStatus"] = "bost_Close"
                    line["OpenAmount"] = 0.0

    def _uncredit(self, row: list) -> None:
        """Take a cancelled credit memo back from the invoices it was based on."""
        invoices = self.entities["Invoices"]
        gross: dict[int, float] = {}
        restored: list[tuple[list, dict, float]] = []
        for line in row[LINES]:
            inv = invoices.rows.get(line.get("BaseEntry")) if line.get("BaseType") == 13 else None
            if inv is None:
                continue
            self._materialize(invoices, inv)
            base_line = next((x for x in inv[LINES] if x.get("LineNum") == line.get("BaseLine")), None)
            if base_line is not None:
                restored.append((inv, base_line, line["LineTotal"]))
            gross[inv[0]] = gross.get(inv[0], 0.0) + line["LineTotal"] + (line.get("TaxTotal") or 0.0)
        for entry, amount in gross.items():
            self._add_paid(invoices, invoices.rows[entry], -round(amount, 2))
        for inv, base_line, net in restored:
            base_line["OpenAmount"] = round((base_line.get("OpenAmount") or 0.0) + net, 2)
            base_line["LineStatus"] = inv[11]

    def _create_document(
        self,
        ent: Entity,
        payload: dict[str, Any],
        *,
        kind: str | None = None,
        user: str | None = None,
        approved: bool = False,
    ) -> tuple[Entity, list]:
        """Create a document of ``kind`` in ``ent`` (the kind's own set, or ``Drafts``).

        Under an approval procedure that applies (and unless ``approved``), the document is
        held as a draft with an approval request instead; see :meth:`_hold`.
        """
        kind = kind or ent.name
        sales = kind in SALES_DOCUMENTS
        bp = self._partner(payload.get("CardCode"), ("cCustomer", "cLid") if sales else ("cSupplier",))
        lines_in = payload.get("DocumentLines") or []
        if not lines_in:
            raise business("Document has no rows; add at least one line")
        refs = self._base_refs(kind, bp, lines_in)
        doc_type = payload.get("DocType")
        based_on = next((ref[0] for ref in refs if ref is not None), None)
        if based_on is not None:
            base_type = self.entities["Invoices"].value(based_on, "DocType")
            if doc_type is not None and doc_type != base_type:
                raise business(
                    f"Document type {doc_type} does not match the base document's type {base_type}"
                )
            doc_type = base_type
        service = doc_type == SERVICE
        today, time = self.now()
        entry = ent.next_entry
        currency = payload.get("DocCurrency") or bp[4]
        rate = payload.get("DocRate") or (
            1.0
            if currency == data.LOCAL_CURRENCY
            else dict((c, x) for c, _, x in data.CURRENCIES).get(currency, 1.0)
        )
        row: list[Any] = [None] * (len(ent.columns) + 2)
        row[ent.ver] = 1
        row[:LINES] = [
            entry,
            data.DOCNUM_BASE[ent.name] + entry,
            today,
            None,
            None,
            bp[0],
            payload.get("CardName") or bp[1],
            0.0,
            0.0,
            currency,
            rate,
            "bost_Open",
            "tNO",
            None,
            None,
            -1,
            today,
            time,
            today,
            time,
            None,
        ]
        for prop, value in payload.items():
            if prop in _NOT_COPIED:
                continue
            self._set(ent, row, prop, value)
        if doc_type is not None:
            self._set(ent, row, "DocType", doc_type)
        if row[2] is None:  # "DocDate": null posts on today, as SAP does
            row[2] = today
        if row[3] is None:
            row[3] = (dt.date.fromisoformat(row[2]) + dt.timedelta(days=30)).isoformat()
        if row[4] is None:
            row[4] = row[2]
        lines = []
        for n, (raw, ref) in enumerate(zip(lines_in, refs, strict=True)):
            inherited = None
            if ref is not None:
                inherited, raw = self._inherited(raw, ref[1], service)
            lines.append(self._document_line(raw, n, row, sales, inherited, service=service))
        row[LINES] = lines
        self._totals(row)
        self._set(ent, row, "PaidToDate", 0.0)
        self._set(ent, row, "PaidToDateSys", 0.0)
        if ent.name == "Drafts":
            self._set(ent, row, "DocObjectCode", data.OBJECT_CODES[kind])
            self._set(ent, row, "AuthorizationStatus", "dasWithout")
        elif not approved and self._needs_approval(kind, row):
            return self._hold(kind, row, payload, user)
        elif kind == "CreditNotes":
            self._credit(row, refs)
        self._remember(ent, entry)
        ent.next_entry = entry + 1
        ent.rows[entry] = row
        ent.touch(entry)
        return ent, row

    # -- approval procedures and drafts ----------------------------------------------------

    def configure_users(self, users: list[str], approvers: dict[str, str]) -> None:
        """Name the company's users (internal keys 1, 2... in order) and the default approvers."""
        self.approvers = dict(approvers)
        self.user_keys = {}
        for name in [*users, *approvers]:
            self.user_keys.setdefault(name, len(self.user_keys) + 1)

    def set_approval(self, rule: ApprovalRule | None) -> None:
        """Switch the approval procedure on (``rule``) or off (None)."""
        if rule is not None:
            for name in rule.approvers or {}:
                self.user_keys.setdefault(name, len(self.user_keys) + 1)
        self.approval = rule

    def _approvers(self) -> dict[str, str]:
        rule = self.approval
        return dict(rule.approvers) if rule is not None and rule.approvers else dict(self.approvers)

    def _needs_approval(self, kind: str, row: list) -> bool:
        rule = self.approval
        return (
            rule is not None
            and kind in rule.entities
            and data.is_number(row[7])
            and row[7] >= rule.threshold - _HALF_CENT
        )

    def _hold(self, kind: str, row: list, payload: dict[str, Any], user: str | None) -> tuple[Entity, list]:
        """Store a document held by the approval procedure as a draft, with its approval request.

        :returns: the draft, when the procedure answers the POST with it (``post_reply="draft"``).
        :raises SapError: 404 / -2028, when it answers as SAP 10.0 was seen to (``"error"``).
        """
        rule = self.approval
        assert rule is not None
        drafts, requests = self.entities["Drafts"], self.entities["ApprovalRequests"]
        entry = drafts.next_entry
        row[0] = entry
        row[1] = data.DOCNUM_BASE["Drafts"] + entry
        for line in row[LINES]:
            line["DocEntry"] = entry
        self._set(drafts, row, "DocObjectCode", data.OBJECT_CODES[kind])
        self._set(drafts, row, "AuthorizationStatus", "dasPending")
        self._remember(drafts, entry)
        drafts.next_entry = entry + 1
        drafts.rows[entry] = row
        drafts.touch()
        today, time = self.now()
        asked = payload.get("Document_ApprovalRequests") or []
        remarks = asked[0].get("Remarks") if asked and isinstance(asked[0], dict) else None
        lines = [
            {
                "StageCode": 1,
                "UserID": self.user_keys[name],
                "Status": "ardPending",
                "Remarks": None,
                "CreationDate": today,
                "CreationTime": time,
            }
            for name in self._approvers()
        ]
        code = requests.next_entry
        request: list[Any] = [
            code,
            1,
            data.OBJECT_TYPES[kind],
            "Y",
            None,
            "arsPending",
            remarks,
            1,
            self.user_keys.get(user or "", 1),
            today,
            time,
            entry,
            lines,
            [],
            1,
            None,
        ]
        self.request_rules[code] = (rule.required, rule.after_generate)
        self._remember(requests, code)
        requests.next_entry = code + 1
        requests.rows[code] = request
        requests.touch()
        if rule.post_reply == "draft":
            return drafts, row
        raise SapError(404, -2028, NO_MATCH)

    def _request_of(self, draft_entry: int) -> list | None:
        requests = self.entities["ApprovalRequests"]
        return next((r for r in requests.rows.values() if r[11] == draft_entry), None)

    def _decide(self, row: list, payload: dict[str, Any], user: str | None) -> None:
        """``PATCH ApprovalRequests(<Code>)`` with ``ApprovalRequestDecisions``: decisions are
        taken as the named approver (checked by password) or, naming nobody, as the session's
        user; each must be an approver of the current stage."""
        for prop in payload:
            if prop not in ("ApprovalRequestDecisions", "Code", "Remarks"):
                raise business(f"Cannot update property '{prop}' of an approval request")
        decisions = payload.get("ApprovalRequestDecisions") or []
        if not decisions and "Remarks" not in payload:
            return
        if decisions and row[5] != "arsPending":
            raise business(f"Approval request {row[0]} is not pending (status {row[5]})")
        approvers = self._approvers()
        stage = row[7]
        taken = []
        for decision in decisions:
            name = decision.get("ApproverUserName")
            if name is None:
                name = user
            elif approvers.get(name) is None or decision.get("ApproverPassword") != approvers[name]:
                raise business("User code or password is incorrect [Message 131-93]")
            key = self.user_keys.get(name or "")
            line = next((x for x in row[12] if x["UserID"] == key and x["StageCode"] == stage), None)
            if line is None:
                raise business(
                    f"User '{name}' is not an approver of stage {stage} of approval request {row[0]}"
                )
            status = decision.get("Status")
            if status not in ("ardApproved", "ardNotApproved"):
                raise SapError(
                    400,
                    -1000,
                    f"Value '{status}' of property 'Status' of 'ApprovalRequestDecision' is invalid: "
                    "ardApproved or ardNotApproved is expected",
                )
            remarks = decision.get("Remarks")
            if remarks is not None and len(remarks) > 200:
                raise business("Remarks of a decision are limited to 200 characters")
            taken.append((line, name, status, remarks))
        today, time = self.now()
        if "Remarks" in payload:
            row[6] = payload["Remarks"]
        for line, name, status, remarks in taken:
            line.update({"Status": status, "Remarks": remarks, "UpdateDate": today, "UpdateTime": time})
            row[13].append({"ApproverUserName": name, "Status": status, "Remarks": remarks})
        if not taken:
            return
        required, _ = self.request_rules.get(row[0], (1, "generated"))
        approved = sum(1 for x in row[12] if x["Status"] == "ardApproved")
        if any(x["Status"] == "ardNotApproved" for x in row[12]):
            row[5], draft_status = "arsNotApproved", "dasRejected"
        elif approved >= min(required, len(row[12])):
            row[5], draft_status = "arsApproved", "dasApproved"
        else:
            return
        drafts = self.entities["Drafts"]
        draft = drafts.rows.get(row[11])
        if draft is not None:
            self._remember(drafts, draft[0])
            self._set(drafts, draft, "AuthorizationStatus", draft_status)
            self._stamp(drafts, draft)

    def save_draft_to_document(self, payload: dict[str, Any], user: str | None = None) -> tuple[Entity, list]:
        """``POST DraftsService_SaveDraftToDocument`` with ``{"Document": {"DocEntry": <draft>}}``:
        add a draft as the document it stands for. A draft under approval must be approved; the
        document is checked by every write rule again, then the draft closes and its request
        becomes ``arsGenerated`` (or is deleted, with ``after_generate="deleted"``).

        :returns: the new document.
        """
        if self.approval is not None and self.approval.save_draft == "post":
            raise SapError(404, -1000, "Invalid resource path: 'DraftsService_SaveDraftToDocument'")
        return self._add_draft(payload, user)

    def _add_draft(self, payload: dict[str, Any], user: str | None) -> tuple[Entity, list]:
        body = payload.get("Document")
        if not isinstance(body, dict):
            raise SapError(
                400, -1000, "The request body needs a 'Document' object naming the draft's DocEntry"
            )
        entry = body.get("DocEntry")
        if isinstance(entry, str) and entry.strip().isdigit():
            entry = int(entry)
        drafts = self.entities["Drafts"]
        draft = self.get(drafts, entry)
        kind = DRAFT_CODES.get(drafts.value(draft, "DocObjectCode"))
        if kind is None:
            raise SapError(400, -5006, f"Drafts of '{drafts.value(draft, 'DocObjectCode')}' cannot be added")
        if draft[11] != "bost_Open":
            raise business(f"Draft {entry} is closed; it was already added as a document")
        request = self._request_of(entry)
        if request is not None and request[5] != "arsApproved":
            raise business(
                f"Cannot add the document: approval request {request[0]} is {request[5]}, not approved"
            )
        overrides = self._clean(drafts, {k: v for k, v in body.items() if k != "DocEntry"})
        document = {**self._draft_payload(drafts, draft), **overrides}
        target = self.entities[kind]
        ent, row = self._create_document(target, document, kind=kind, user=user, approved=True)
        self._remember(drafts, entry)
        draft[11] = "bost_Close"
        for line in draft[LINES]:
            line["LineStatus"] = "bost_Close"
        after = (
            self.request_rules.get(request[0], (1, "generated"))[1] if request is not None else "generated"
        )
        self._set(
            drafts, draft, "AuthorizationStatus", "dasWithout" if after == "deleted" else "dasGenerated"
        )
        self._stamp(drafts, draft)
        if request is not None:
            requests = self.entities["ApprovalRequests"]
            self._remember(requests, request[0])
            if after == "deleted":
                del requests.rows[request[0]]
                self.deleted[requests.name].add(request[0])
                requests.touch()
            else:
                request[5] = "arsGenerated"
                self._stamp(requests, request)
        return ent, row

    @staticmethod
    def _draft_payload(drafts: Entity, draft: list) -> dict[str, Any]:
        """What a draft holds, as the POST of its document would carry it."""
        payload: dict[str, Any] = {
            prop: draft[drafts.col[prop]]
            for prop in (
                "CardCode",
                "CardName",
                "DocDate",
                "DocDueDate",
                "TaxDate",
                "DocCurrency",
                "DocRate",
                "NumAtCard",
                "Comments",
                "SalesPersonCode",
                "U_ExternalId",
            )
            if draft[drafts.col[prop]] is not None
        }
        for prop, value in (draft[drafts.ext] or {}).items():
            if prop not in _DRAFT_ONLY:
                payload[prop] = copy.deepcopy(value)
        payload["DocumentLines"] = [
            {k: copy.deepcopy(v) for k, v in line.items() if k not in _LINE_DERIVED} for line in draft[LINES]
        ]
        return payload

    # -- creates ---------------------------------------------------------------------------

    def create(self, name: str, payload: dict[str, Any], user: str | None = None) -> tuple[Entity, list]:
        ent = self.entity(name)
        rule = self.approval
        if (
            name in DOCUMENT_ENTITIES
            and rule is not None
            and rule.save_draft == "post"
            and "DocEntry" in payload
        ):
            # The other reading: the document POSTed naming its approved draft's key.
            draft = self.entities["Drafts"].rows.get(payload["DocEntry"])
            if (
                draft is not None
                and DRAFT_CODES.get(self.entities["Drafts"].value(draft, "DocObjectCode")) == name
            ):
                return self._add_draft({"Document": payload}, user)
        payload = self._clean(ent, payload)
        if name in DOCUMENT_ENTITIES:
            return self._create_document(ent, payload, user=user)
        if name == "Drafts":
            code = payload.get("DocObjectCode")
            kind = DRAFT_CODES.get(code)
            if kind is None:
                raise business(
                    f"Specify the document type of the draft (DocObjectCode); '{code}' is not supported"
                )
            return self._create_document(ent, payload, kind=kind, user=user)
        if name == "BusinessPartners":
            return ent, self._create_partner(ent, payload)
        if name in PAYMENT_ENTITIES:
            return ent, self._create_payment(ent, payload)
        if name == "JournalEntries":
            return ent, self._create_journal(ent, payload)
        if name in ("Dimensions", "ApprovalRequests"):
            raise SapError(400, -5006, f"Action 'Add' is not supported for '{name}'")
        return ent, self._create_plain(ent, payload)

    def _create_partner(self, ent: Entity, payload: dict[str, Any]) -> list:
        code = payload.get("CardCode")
        if not code:
            raise business("Enter a business partner code (CardCode)")
        if code in ent.rows:
            raise business(f"Business partner code '{code}' already assigned")
        card_type = payload.get("CardType") or "cCustomer"
        today, time = self.now()
        row: list[Any] = [None] * (len(ent.columns) + 2)
        row[: len(ent.columns)] = [
            code,
            None,
            card_type,
            100,
            data.LOCAL_CURRENCY,
            None,
            None,
            None,
            "tYES",
            "tNO",
            0.0,
            today,
            time,
            today,
            time,
            None,
            [],
        ]
        row[ent.ver] = 1
        for prop, value in payload.items():
            if prop == "BPAddresses":
                row[16] = self._merge_children([], value, "RowNum", ("AddressName", "AddressType"), True)
                for child in row[16]:
                    child["BPCode"] = code
                    child.setdefault("AddressType", "bo_BillTo")
            elif prop != "CardCode":
                self._set(ent, row, prop, value)
        self._remember(ent, code)
        ent.rows[code] = row
        self.tables.partners[code] = card_type
        self.deleted[ent.name].discard(code)
        ent.touch(code)
        return row

    def _create_payment(self, ent: Entity, payload: dict[str, Any]) -> list:
        """A payment, applied to the invoices its ``PaymentInvoices`` name.

        Each applied sum must fit its invoice's balance due (``DocTotal - PaidToDate``) and
        together they must fit the payment's means (cash, transfer, checks, cards, in local
        currency); what is not applied stays on account. Every check runs before anything is
        written; then each invoice's ``PaidToDate`` grows, and one paid in full closes.
        """
        incoming = ent.name == "IncomingPayments"
        doc_type = payload.get("DocType") or ("rCustomer" if incoming else "rSupplier")
        bp = None
        if doc_type != "rAccount":
            bp = self._partner(
                payload.get("CardCode"), ("cCustomer", "cLid") if doc_type == "rCustomer" else ("cSupplier",)
            )
        source = self.entities["Invoices" if incoming else "PurchaseInvoices"]
        invoice_type = "it_Invoice" if incoming else "it_PurchaseInvoice"
        currency = payload.get("DocCurrency") or (bp[4] if bp else data.LOCAL_CURRENCY)
        rate = payload.get("DocRate") or (
            1.0
            if currency == data.LOCAL_CURRENCY
            else dict((c, x) for c, _, x in data.CURRENCIES).get(currency, 1.0)
        )
        for prop in ("CashAccount", "TransferAccount", "CheckAccount"):
            if payload.get(prop):
                self._check_account(payload[prop])
        means = float(payload.get("CashSum") or 0.0) + float(payload.get("TransferSum") or 0.0)
        means += sum(float(c.get("CheckSum") or 0.0) for c in payload.get("PaymentChecks") or [])
        means += sum(float(c.get("CreditSum") or 0.0) for c in payload.get("PaymentCreditCards") or [])
        means_local = round(means if currency == data.LOCAL_CURRENCY else means * rate, 2)
        applied = []
        per_doc: dict[Any, float] = {}
        for n, raw in enumerate(payload.get("PaymentInvoices") or []):
            kind = raw.get("InvoiceType") or invoice_type
            if kind != invoice_type:
                raise SapError(
                    400,
                    -5006,
                    f"InvoiceType '{kind}' is not supported in {ent.name} here; use {invoice_type}",
                )
            entry = raw.get("DocEntry")
            doc = source.rows.get(entry)
            if doc is None or (bp is not None and doc[5] != bp[0]):
                raise business(f"Invalid document number {entry} in PaymentInvoices")
            amount = float(raw.get("SumApplied") or 0.0)
            if amount < 0:
                raise business(f"SumApplied of document {entry} cannot be negative")
            balance = round(self._balance(source, doc) - per_doc.get(entry, 0.0), 2)
            if amount > balance + _HALF_CENT:
                table = "RCT2" if incoming else "VPM2"
                raise business(
                    f"Payment amount is greater than invoice amount  [{table}.SumApplied][line: {n + 1}]"
                )
            per_doc[entry] = per_doc.get(entry, 0.0) + amount
            applied.append({**raw, "LineNum": n, "InvoiceType": kind, "SumApplied": amount})
        total_applied = round(sum(per_doc.values()), 2)
        if total_applied > means_local + _HALF_CENT:
            raise business(
                f"Total applied to documents ({total_applied:.2f}) "
                f"exceeds the payment amount ({means_local:.2f})"
            )
        today, time = self.now()
        entry = ent.next_entry
        row: list[Any] = [None] * (len(ent.columns) + 2)
        row[: len(ent.columns)] = [
            entry,
            data.DOCNUM_BASE[ent.name] + entry,
            today,
            doc_type,
            bp[0] if bp else None,
            bp[1] if bp else None,
            0.0,
            0.0,
            currency,
            rate,
            "tNO",
            None,
            None,
            None,
            today,
            time,
            today,
            time,
            applied,
        ]
        row[ent.ver] = 1
        for prop, value in payload.items():
            if prop not in (
                "PaymentInvoices",
                "DocEntry",
                "DocNum",
                "CardCode",
                "DocType",
                "DocCurrency",
                "DocRate",
            ):
                self._set(ent, row, prop, value)
        if (row[7] or 0) and not row[11]:
            row[11] = self.tables.bank_accounts[0]
        if (row[6] or 0) and not row[12]:
            row[12] = self.tables.bank_accounts[0]
        self._remember(ent, entry)
        ent.next_entry = entry + 1
        ent.rows[entry] = row
        ent.touch(entry)
        for doc_entry, amount in per_doc.items():
            if amount:
                self._add_paid(source, source.rows[doc_entry], round(amount, 2))
        return row

    def _create_journal(self, ent: Entity, payload: dict[str, Any]) -> list:
        lines = payload.get("JournalEntryLines") or []
        if len(lines) < 2:
            raise business("Journal entry needs at least two lines")
        debit = credit = 0.0
        out = []
        for n, raw in enumerate(lines):
            for prop in raw:
                if prop not in schema.JOURNAL_LINE:
                    raise SapError(400, -1000, f"Property '{prop}' of 'JournalEntryLine' is invalid")
            self._check_account(raw.get("AccountCode"))
            self._check_centres(raw)
            line = {**raw, "Line_ID": n, "ShortName": raw.get("ShortName") or raw.get("AccountCode")}
            line["Debit"] = float(raw.get("Debit") or 0.0)
            line["Credit"] = float(raw.get("Credit") or 0.0)
            debit += line["Debit"]
            credit += line["Credit"]
            out.append(line)
        if round(debit, 2) != round(credit, 2):
            raise business("Unbalanced transaction")
        today, _ = self.now()
        entry = ent.next_entry
        row: list[Any] = [None] * (len(ent.columns) + 2)
        row[: len(ent.columns)] = [
            entry,
            today,
            today,
            today,
            None,
            None,
            None,
            None,
            "ttJournalEntry",
            today,
            today,
            out,
        ]
        row[ent.ver] = 1
        for prop, value in payload.items():
            if prop not in ("JournalEntryLines", "JdtNum"):
                self._set(ent, row, prop, value)
        self._remember(ent, entry)
        ent.next_entry = entry + 1
        ent.rows[entry] = row
        ent.touch(entry)
        return row

    def _create_plain(self, ent: Entity, payload: dict[str, Any]) -> list:
        key = payload.get(ent.key)
        if key in (None, ""):
            raise business(f"Enter a value for '{ent.key}'")
        if key in ent.rows:
            raise SapError(400, -2035, ALREADY_EXISTS)
        today, time = self.now()
        row: list[Any] = [None] * (len(ent.columns) + 2)
        row[ent.ver] = 1
        defaults = {
            "CreateDate": today,
            "CreateTime": time,
            "UpdateDate": today,
            "UpdateTime": time,
            "Valid": "tYES",
            "Frozen": "tNO",
            "Active": "tYES",
            "ActiveAccount": "tYES",
            "SalesItem": "tYES",
            "PurchaseItem": "tYES",
            "InventoryItem": "tYES",
            "ItemPrices": [
                {"PriceList": pl, "Price": 0.0, "Currency": data.LOCAL_CURRENCY} for pl, _ in data.PRICE_LISTS
            ],
            "ItemWarehouseInfoCollection": [
                {"WarehouseCode": w, "InStock": 0.0, "Committed": 0.0, "Ordered": 0.0, "ItemCode": key}
                for w in data.WAREHOUSES
            ],
        }
        for prop, i in ent.col.items():
            if prop in defaults:
                row[i] = copy.deepcopy(defaults[prop])
        for prop, value in payload.items():
            if prop in ent.collections:
                row[ent.col[prop]] = [dict(child) for child in value or []]
            else:
                self._set(ent, row, prop, value)
        if ent.name == "ChartOfAccounts" and row[ent.col["ActiveAccount"]] == "tYES":
            self.tables.postable.add(key)
        if ent.name == "ProfitCenters":
            dim = row[ent.col["InWhichDimension"]]
            if dim not in range(1, 6):
                raise business("Invalid dimension; InWhichDimension must be 1 to 5")
            self.tables.active_centres.setdefault(dim, set()).add(key)
        self._remember(ent, key)
        ent.rows[key] = row
        self.deleted[ent.name].discard(key)
        ent.touch(key)
        return row

    # -- updates ---------------------------------------------------------------------------

    def _materialize(self, ent: Entity, row: list) -> None:
        if ent.name in DOCUMENT_ENTITIES and isinstance(row[LINES], tuple):
            row[LINES] = [
                dict(line) for line in data.document_line_dicts(row, self.tables, ent.name in SALES_DOCUMENTS)
            ]

    @staticmethod
    def _merge_children(
        existing: list[dict[str, Any]],
        incoming: Any,
        row_field: str | None,
        unique: tuple[str, ...] | None,
        replace: bool,
    ) -> list[dict[str, Any]]:
        if not isinstance(incoming, list):
            raise SapError(400, -1000, "A collection property needs a JSON array")
        out = [] if replace else [dict(child) for child in existing]
        for raw in incoming:
            if not isinstance(raw, dict):
                raise SapError(400, -1000, "Collection entries must be JSON objects")
            if not replace and row_field and raw.get(row_field) is not None:
                match = next((c for c in out if c.get(row_field) == raw[row_field]), None)
                if match is not None:
                    match.update(raw)
                    continue
            if unique and all(raw.get(f) is not None for f in unique[:1]):
                probe = {f: raw.get(f, "bo_BillTo" if f == "AddressType" else None) for f in unique}
                if any(all(c.get(f) == v for f, v in probe.items()) for c in out):
                    raise SapError(400, -2035, ALREADY_EXISTS, close=True)
            child = dict(raw)
            if row_field:
                child[row_field] = max((c.get(row_field) or 0 for c in out), default=-1) + 1 if out else 0
            out.append(child)
        return out

    def update(
        self,
        name: str,
        key: Any,
        payload: dict[str, Any],
        *,
        if_match: str | None = None,
        replace_collections: bool = False,
        user: str | None = None,
    ) -> None:
        ent = self.entity(name)
        row = self.get(ent, key)
        if if_match and if_match.strip() != "*" and if_match.strip() != ent.etag(row):
            raise SapError(412, -2039, ETAG_MISMATCH)
        payload = self._clean(ent, payload)
        self._remember(ent, key)
        before = copy.deepcopy(row)
        try:
            if name == "ApprovalRequests":
                self._decide(row, payload, user)
            else:
                self._update(ent, row, key, payload, replace_collections)
        except SapError:
            row[:] = before  # SAP writes all of a request or nothing of it
            raise
        self._stamp(ent, row)

    def _update(
        self, ent: Entity, row: list, key: Any, payload: dict[str, Any], replace_collections: bool
    ) -> None:
        name = ent.name
        document = name in DOCUMENT_ENTITIES or name == "Drafts"
        kind = self._kind(ent, row) if document else name
        if document and payload.get("DocType") not in (None, ent.value(row, "DocType")):
            raise business("Cannot change the document type (DocType) of an existing document")
        for prop, value in payload.items():
            if prop == ent.key:
                if value != key:
                    raise business(f"Cannot change the key '{ent.key}'")
                continue
            if prop == "DocumentLines" and document:
                self._materialize(ent, row)
                sales = kind in SALES_DOCUMENTS
                service = ent.value(row, "DocType") == SERVICE
                current = [] if replace_collections else row[LINES]
                merged = list(current)
                for raw in value or []:
                    num = raw.get("LineNum")
                    at = next((i for i, line in enumerate(merged) if line["LineNum"] == num), None)
                    if num is not None and at is not None and not replace_collections:
                        merged[at] = self._document_line(
                            raw, num, row, sales, base=merged[at], service=service
                        )
                    else:
                        next_num = max((line["LineNum"] for line in merged), default=-1) + 1
                        merged.append(self._document_line(raw, next_num, row, sales, service=service))
                if not merged:
                    raise business("Document has no rows; add at least one line")
                row[LINES] = merged
                self._totals(row)
            elif prop in ent.collections:
                spec = {
                    "BPAddresses": ("RowNum", ("AddressName", "AddressType")),
                    "ItemWarehouseInfoCollection": (None, ("WarehouseCode",)),
                    "ItemPrices": ("PriceList", None),
                    "PaymentInvoices": ("LineNum", None),
                    "JournalEntryLines": ("Line_ID", None),
                }.get(prop, (None, None))
                i = ent.col[prop]
                row[i] = self._merge_children(row[i] or [], value, spec[0], spec[1], replace_collections)
            elif prop in (
                "DocEntry",
                "DocNum",
                "CreateDate",
                "CreateTime",
                "UpdateDate",
                "UpdateTime",
                "DataVersion",
            ) or (document and prop in _DRAFT_ONLY):
                continue
            else:
                if prop == "CardCode" and document:
                    bp = self._partner(
                        value, ("cCustomer", "cLid") if kind in SALES_DOCUMENTS else ("cSupplier",)
                    )
                    row[6] = bp[1]
                self._set(ent, row, prop, value)

    def action(self, name: str, key: Any, action: str) -> None:
        ent = self.entity(name)
        row = self.get(ent, key)
        if name in DOCUMENT_ENTITIES and action in ("Close", "Cancel"):
            if row[12] == "tYES":
                raise business("Document is already cancelled")
            if row[11] == "bost_Close":
                raise business("Document is already closed")
            self._remember(ent, key)
            self._materialize(ent, row)
            # Keep what was paid: closing by hand is not a payment.
            self._set(ent, row, "PaidToDate", self._paid(ent, row))
            if action == "Cancel" and name == "CreditNotes":
                self._uncredit(row)
            row[11] = "bost_Close"
            if action == "Cancel":
                row[12] = "tYES"
            for line in row[LINES]:
                line["LineStatus"] = "bost_Close"
            self._stamp(ent, row)
            return
        if name in PAYMENT_ENTITIES and action == "Cancel":
            if row[10] == "tYES":
                raise business("Document is already cancelled")
            self._remember(ent, key)
            row[10] = "tYES"
            # A cancelled payment no longer pays its invoices: they owe again and reopen.
            source = self.entities["Invoices" if name == "IncomingPayments" else "PurchaseInvoices"]
            for child in row[18] if isinstance(row[18], list) else []:
                doc = source.rows.get(child.get("DocEntry")) if isinstance(child, dict) else None
                amount = child.get("SumApplied") if doc is not None else None
                if doc is not None and data.is_number(amount) and amount:
                    self._add_paid(source, doc, -round(float(amount), 2))
            self._stamp(ent, row)
            return
        raise SapError(400, -5006, f"Action '{action}' is not supported for '{name}'")

    def delete(self, name: str, key: Any) -> None:
        ent = self.entity(name)
        self.get(ent, key)
        if (
            name in DOCUMENT_ENTITIES
            or name in PAYMENT_ENTITIES
            or name
            in (
                "JournalEntries",
                "Dimensions",
                "ApprovalRequests",
            )
        ):
            raise SapError(
                400, -5006, f"Action 'Delete' is not supported for '{name}'; close or cancel it instead"
            )
        self._remember(ent, key)
        del ent.rows[key]
        self.deleted[name].add(key)
        ent.touch()

    # -- test-only changes -----------------------------------------------------------------

    def seed_records(self, name: str, records: Any) -> list:
        """Put records into the company exactly as given: what SAP's database may hold and serve
        even though its API would refuse to write it (hostile keys, strings in number fields,
        impossible dates, unknown enumeration values...).

        No write rule applies: no type check, no business rule, no normalization. A record
        whose key exists has the given properties replaced and the rest kept; a new one starts
        blank (collections empty) with ``CreateDate``/``UpdateDate`` and their times set to now.
        Either way the record's ``DataVersion`` moves on and, unless the record gives them, its
        ``UpdateDate``/``UpdateTime`` become now, so incremental readers see it. A record of an
        entity with integer keys may leave the key out to take the next free one.

        Only what cannot be stored is refused (400): a record that is not an object, or a key of
        the wrong type (``DocEntry`` must be an integer, ``CardCode`` a string). Nothing is
        written unless every record passes.

        :returns: the keys seeded, in the order given.
        """
        ent = self.entity(name)
        if not isinstance(records, list):
            raise SapError(400, -1000, "'records' must be a list of JSON objects")
        keys: list = []
        next_entry = ent.next_entry
        for record in records:
            if not isinstance(record, dict):
                raise SapError(400, -1000, "Each seeded record must be a JSON object")
            key = record.get(ent.key)
            if key is None and ent.int_keys:
                while next_entry in ent.rows or next_entry in keys:
                    next_entry += 1
                key = next_entry
            wanted = int if ent.int_keys else str
            if type(key) is not wanted:
                raise SapError(400, -1000, f"{ent.name} keys ({ent.key}) are {wanted.__name__}s; got {key!r}")
            keys.append(key)
        today, time = self.now()
        for key, record in zip(keys, records, strict=True):
            row = ent.rows.get(key)
            if row is None:
                row = [None] * (len(ent.columns) + 2)
                row[ent.key_index] = key
                row[ent.ver] = 0
                for prop in ent.collections:
                    if prop in ent.col:
                        row[ent.col[prop]] = []
                for prop, value in (("CreateDate", today), ("CreateTime", time)):
                    if ent.has_property(prop):
                        self._set(ent, row, prop, value)
                ent.rows[key] = row
                self.deleted[name].discard(key)
            for prop, value in record.items():
                if prop != ent.key:
                    self._set(ent, row, prop, value)
            self._stamp(ent, row)
            for prop in ("UpdateDate", "UpdateTime"):
                if prop in record:
                    self._set(ent, row, prop, record[prop])
            if ent.int_keys:
                ent.next_entry = max(ent.next_entry, key + 1)
            if name == "BusinessPartners":
                self.tables.partners[key] = row[2]
        return keys

    def _pick(self, ent: Entity, count: int | None, keys: list | None) -> list:
        if keys:
            for key in keys:
                self.get(ent, key)
            return list(keys)
        self._mutations += 1
        rng = random.Random(self.seed * 7_777 + self._mutations)
        pool = sorted(ent.rows)
        return rng.sample(pool, min(int(count or 1), len(pool)))

    def mutate(self, name: str, count: int | None = None, keys: list | None = None) -> list:
        """Make records change: a note in a free-text property and their UpdateDate/Time now."""
        ent = self.entity(name)
        chosen = self._pick(ent, count, keys)
        field = next(
            (
                f
                for f in (
                    "Comments",
                    "Remarks",
                    "Memo",
                    "FreeText",
                    "Name",
                    "CenterName",
                    "DimensionDescription",
                )
                if f in ent.template
            ),
            None,
        )
        for key in chosen:
            row = ent.rows[key]
            if field:
                self._set(ent, row, field, f"Changed #{self._mutations} ({row[ent.ver] + 1})")
            self._stamp(ent, row)
        return chosen

    def corrupt(self, name: str, keys: list, kind: str) -> list:
        ent = self.entity(name)
        if kind == "missing_partner":
            props = {"CardCode": None}
        elif kind == "null_amount":
            prop = next((p for p in ("DocTotal", "TransferSum", "Balance") if p in ent.template), None)
            props = {prop: None} if prop else {}
        elif kind == "bad_date":
            prop = next(
                (p for p in ("DocDate", "ReferenceDate", "CreateDate", "EffectiveFrom") if p in ent.template),
                None,
            )
            props = {prop: None} if prop else {}
        else:
            raise SapError(400, -1000, f"Unknown corruption kind '{kind}'")
        if not props or ("CardCode" in props and "CardCode" not in ent.template):
            raise SapError(400, -1000, f"'{kind}' does not apply to {name}")
        done = []
        for key in keys:
            row = self.get(ent, key)
            if key in ent.corrupted:
                continue
            saved = {p: ent.value(row, p) for p in props}
            ent.corrupted[key] = (kind, saved)
            for prop in props:
                if kind == "missing_partner":
                    value: Any = f"ZZ-GONE-{key}"
                elif kind == "null_amount":
                    value = None
                else:
                    value = "2024-13-45"
                if prop in ent.col:
                    row[ent.col[prop]] = value
                else:
                    self._set(ent, row, prop, value)
            self._stamp(ent, row)
            done.append(key)
        return done

    def repair(self, name: str, keys: list | None = None) -> list:
        ent = self.entity(name)
        done = []
        for key in list(keys or ent.corrupted):
            entry = ent.corrupted.pop(key, None)
            row = ent.rows.get(key)
            if entry is None or row is None:
                continue
            for prop, value in entry[1].items():
                if prop in ent.col:
                    row[ent.col[prop]] = value
                else:
                    self._set(ent, row, prop, value)
            self._stamp(ent, row)
            done.append(key)
        return done
