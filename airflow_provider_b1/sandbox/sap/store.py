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
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import threading
from collections import OrderedDict
from typing import Any
from zoneinfo import ZoneInfo

from airflow_provider_b1.sandbox.sap import data, schema
from airflow_provider_b1.sandbox.sap.data import DOCUMENT_ENTITIES, LINES, SALES_DOCUMENTS, Entity
from airflow_provider_b1.sandbox.sap.odata import FilterCompiler, key_literal, parse_orderby, sort_rows

PAYMENT_ENTITIES = ("IncomingPayments", "VendorPayments")
ETAG_MISMATCH = "Another user or another operation modified data; to cancel your changes, reload the record"
ALREADY_EXISTS = "This entry already exists in the following tables (ODBC -2035)"


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

    # -- reading ---------------------------------------------------------------------------

    def entity(self, name: str) -> Entity:
        ent = self.entities.get(name)
        if ent is None:
            raise SapError(404, -1000, f"Invalid resource path: '{name}'")
        return ent

    def compiler(self, ent: Entity) -> FilterCompiler:
        return FilterCompiler(ent.has_property, ent.raw_getter, ent.is_date, ent.object_name)

    def query(self, ent: Entity, filter_text: str | None, orderby_text: str | None) -> list[list]:
        """Rows matching the filter in the requested order; cached until the entity changes."""
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
            rows = [row for row in rows if pred(row)]
        if orderby_text:
            keys = parse_orderby(orderby_text, ent.has_property, ent.object_name)
            rows = sort_rows(rows, [(ent.raw_getter(name), desc) for name, desc in keys])
        self._cache[cache_key] = (ent.version, rows)
        if len(self._cache) > 32:
            self._cache.popitem(last=False)
        return rows

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
        ent.touch()

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

    def _document_line(
        self, raw: dict[str, Any], line_num: int, doc: list, sales: bool, base: dict | None = None
    ) -> dict[str, Any]:
        for prop in raw:
            if prop not in schema.DOCUMENT_LINE:
                raise SapError(400, -1000, f"Property '{prop}' of 'DocumentLine' is invalid")
        line = dict(base or {})
        line.update(raw)
        code = line.get("ItemCode")
        item = self.entities["Items"].rows.get(code)
        if item is None:
            raise business(f"Invalid item code '{code}'")
        currency, rate = doc[9], doc[10] or 1.0
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
                "ItemCode": code,
                "ItemDescription": line.get("ItemDescription") or item[1],
                "Quantity": qty,
                "Price": float(price),
                "UnitPrice": float(price),
                "Currency": currency,
                "AccountCode": acct,
                "TaxCode": tax_code,
                "LineTotal": total,
                "TaxTotal": tax,
                "TaxPercentagePerRow": rates[tax_code] * 100,
                "GrossTotal": round(total + tax, 2),
                "WarehouseCode": line.get("WarehouseCode") or "01",
                "LineStatus": "bost_Open" if open_ else "bost_Close",
                "DocEntry": doc[0],
            }
        )
        return line

    @staticmethod
    def _totals(doc: list) -> None:
        lines = doc[LINES]
        vat = round(sum(line.get("TaxTotal") or 0.0 for line in lines), 2)
        doc[8] = vat
        doc[7] = round(sum(line.get("LineTotal") or 0.0 for line in lines) + vat, 2)

    def _create_document(self, ent: Entity, payload: dict[str, Any]) -> list:
        sales = ent.name in SALES_DOCUMENTS
        bp = self._partner(payload.get("CardCode"), ("cCustomer", "cLid") if sales else ("cSupplier",))
        lines_in = payload.get("DocumentLines") or []
        if not lines_in:
            raise business("Document has no rows; add at least one line")
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
            if prop in (
                "DocumentLines",
                "DocEntry",
                "DocNum",
                "CardCode",
                "CardName",
                "DocCurrency",
                "DocRate",
            ):
                continue
            self._set(ent, row, prop, value)
        if row[2] is None:  # "DocDate": null posts on today, as SAP does
            row[2] = today
        if row[3] is None:
            row[3] = (dt.date.fromisoformat(row[2]) + dt.timedelta(days=30)).isoformat()
        if row[4] is None:
            row[4] = row[2]
        row[LINES] = [self._document_line(raw, n, row, sales) for n, raw in enumerate(lines_in)]
        self._totals(row)
        self._remember(ent, entry)
        ent.next_entry = entry + 1
        ent.rows[entry] = row
        ent.touch()
        return row

    # -- creates ---------------------------------------------------------------------------

    def create(self, name: str, payload: dict[str, Any]) -> tuple[Entity, list]:
        ent = self.entity(name)
        payload = self._clean(ent, payload)
        if name in DOCUMENT_ENTITIES:
            return ent, self._create_document(ent, payload)
        if name == "BusinessPartners":
            return ent, self._create_partner(ent, payload)
        if name in PAYMENT_ENTITIES:
            return ent, self._create_payment(ent, payload)
        if name == "JournalEntries":
            return ent, self._create_journal(ent, payload)
        if name == "Dimensions":
            raise SapError(400, -5006, "Action 'Add' is not supported for 'Dimensions'")
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
        ent.touch()
        return row

    def _create_payment(self, ent: Entity, payload: dict[str, Any]) -> list:
        incoming = ent.name == "IncomingPayments"
        doc_type = payload.get("DocType") or ("rCustomer" if incoming else "rSupplier")
        bp = None
        if doc_type != "rAccount":
            bp = self._partner(
                payload.get("CardCode"), ("cCustomer", "cLid") if doc_type == "rCustomer" else ("cSupplier",)
            )
        source = self.entities["Invoices" if incoming else "PurchaseInvoices"]
        applied = []
        for n, raw in enumerate(payload.get("PaymentInvoices") or []):
            doc = source.rows.get(raw.get("DocEntry"))
            if doc is None or (bp is not None and doc[5] != bp[0]):
                raise business(f"Invalid document number {raw.get('DocEntry')} in PaymentInvoices")
            applied.append(
                {
                    **raw,
                    "LineNum": n,
                    "InvoiceType": raw.get("InvoiceType")
                    or ("it_Invoice" if incoming else "it_PurchaseInvoice"),
                    "SumApplied": float(raw.get("SumApplied") or 0.0),
                }
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
            payload.get("DocCurrency") or (bp[4] if bp else data.LOCAL_CURRENCY),
            1.0,
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
            if prop not in ("PaymentInvoices", "DocEntry", "DocNum", "CardCode", "DocType"):
                self._set(ent, row, prop, value)
        if (row[7] or 0) and not row[11]:
            row[11] = self.tables.bank_accounts[0]
        self._remember(ent, entry)
        ent.next_entry = entry + 1
        ent.rows[entry] = row
        ent.touch()
        for child in applied:
            doc = source.rows[child["DocEntry"]]
            total = doc[7]
            if data.is_number(total) and child["SumApplied"] >= total - 0.005 and doc[11] == "bost_Open":
                self._remember(source, doc[0])
                self._materialize(source, doc)
                doc[11] = "bost_Close"
                for line in doc[LINES]:
                    line["LineStatus"] = "bost_Close"
                self._stamp(source, doc)
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
        ent.touch()
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
        ent.touch()
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
    ) -> None:
        ent = self.entity(name)
        row = self.get(ent, key)
        if if_match and if_match.strip() != "*" and if_match.strip() != ent.etag(row):
            raise SapError(412, -2039, ETAG_MISMATCH)
        payload = self._clean(ent, payload)
        self._remember(ent, key)
        before = copy.deepcopy(row)
        try:
            self._update(ent, row, key, payload, replace_collections)
        except SapError:
            row[:] = before  # SAP writes all of a request or nothing of it
            raise
        self._stamp(ent, row)

    def _update(
        self, ent: Entity, row: list, key: Any, payload: dict[str, Any], replace_collections: bool
    ) -> None:
        name = ent.name
        for prop, value in payload.items():
            if prop == ent.key:
                if value != key:
                    raise business(f"Cannot change the key '{ent.key}'")
                continue
            if prop == "DocumentLines" and name in DOCUMENT_ENTITIES:
                self._materialize(ent, row)
                sales = name in SALES_DOCUMENTS
                current = [] if replace_collections else row[LINES]
                merged = list(current)
                for raw in value or []:
                    num = raw.get("LineNum")
                    at = next((i for i, line in enumerate(merged) if line["LineNum"] == num), None)
                    if num is not None and at is not None and not replace_collections:
                        merged[at] = self._document_line(raw, num, row, sales, base=merged[at])
                    else:
                        next_num = max((line["LineNum"] for line in merged), default=-1) + 1
                        merged.append(self._document_line(raw, next_num, row, sales))
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
            ):
                continue
            else:
                if prop == "CardCode" and name in DOCUMENT_ENTITIES:
                    bp = self._partner(
                        value, ("cCustomer", "cLid") if name in SALES_DOCUMENTS else ("cSupplier",)
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
            self._stamp(ent, row)
            return
        raise SapError(400, -5006, f"Action '{action}' is not supported for '{name}'")

    def delete(self, name: str, key: Any) -> None:
        ent = self.entity(name)
        self.get(ent, key)
        if name in DOCUMENT_ENTITIES or name in PAYMENT_ENTITIES or name in ("JournalEntries", "Dimensions"):
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
