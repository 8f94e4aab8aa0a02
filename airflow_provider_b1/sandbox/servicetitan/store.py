"""The tenant's records, their change order, list pages, export feeds and mutations.

Every record of an entity carries a *change sequence* (a rowversion): loading, a mutation or a
seed gives the touched record the next number. Export feeds walk records in that order, so a
record changed after a client's continuation token always comes after it, and a re-read from an
old token returns the same records again while nothing changed. Each record also has the
moment it last changed (``changed``, microseconds on the sandbox clock), which the exports' lag
is measured against: the parsed ``modifiedOn`` for generated and seeded records (the seeding
moment when it does not parse or lies in the future), the mutation's moment otherwise.

Export rules (``from`` is a token or a date; ``lag`` is 15 minutes by default):

- Without ``includeRecentChanges`` a page holds the records after the position in change order,
  stopping before the first record that changed within the lag; ``continueFrom`` is the last
  record returned (or the position itself when none was).
- With it, recent records are returned too; the last page's ``continueFrom`` steps back to just
  before the first recent record, so the next run reads those again (the repeats ServiceTitan
  warns about) and nothing still settling is skipped.
- A date starts at the first record in change order that changed at or after it.

Tokens are opaque: a version byte, the entity and the position, base64url, with a short
checksum so that a hand-edited or foreign token is refused with 400 rather than misread.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import random
import struct
import threading
from collections.abc import Callable, Iterable
from decimal import Decimal, localcontext
from typing import Any

from airflow_provider_b1.sandbox.servicetitan import data
from airflow_provider_b1.sandbox.servicetitan.data import US_PER_DAY, dec, fmt_ts, money, parse_ts

try:  # msgspec ships with Airflow and encodes several times faster than json.
    import msgspec

    encode: Callable[[Any], bytes] = msgspec.json.encode
except ImportError:  # pragma: no cover
    import json

    def encode(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


ENTITY_CODES = {"customers": 1, "invoices": 2, "payments": 3, "business-units": 4}
SORT_FIELDS = {"id": "id", "modifiedon": "modifiedOn", "createdon": "createdOn"}


class StoreError(Exception):
    """A request the API refuses: ``status`` and, for validation errors, the offending field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def sort_key(key: Any) -> tuple[int, Any]:
    """Ids in order: numbers first (by value), then anything seeded that is not a number."""
    if isinstance(key, int) and not isinstance(key, bool):
        return (0, key)
    return (1, str(key))


class Table:
    """One entity's records with their change order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: dict[Any, dict[str, Any]] = {}
        self.order: list[Any] = []  # keys by change sequence
        self.seqs: list[int] = []  # their sequence numbers (ascending)
        self.changed: list[int] = []  # when each changed (sandbox microseconds)
        self.seq_of: dict[Any, int] = {}
        self.modified: dict[Any, int | None] = {}
        self.created: dict[Any, int | None] = {}
        self._bytes: dict[Any, bytes] = {}
        self._by_id: list[Any] | None = None

    def put(self, record: dict[str, Any], seq: int, changed: int) -> None:
        key = record["id"]
        if key in self.seq_of:
            index = bisect.bisect_left(self.seqs, self.seq_of[key])
            del self.order[index], self.seqs[index], self.changed[index]
        else:
            self._by_id = None
        self.rows[key] = record
        self.order.append(key)
        self.seqs.append(seq)
        self.changed.append(changed)
        self.seq_of[key] = seq
        self.refresh(key)

    def refresh(self, key: Any) -> None:
        """Forget what was derived from the record (after an edit that keeps its place)."""
        record = self.rows[key]
        self.modified[key] = parse_ts(record.get("modifiedOn"))
        self.created[key] = parse_ts(record.get("createdOn"))
        self._bytes.pop(key, None)

    def clear(self) -> None:
        self.__init__(self.name)  # type: ignore[misc]

    def encoded(self, key: Any) -> bytes:
        cached = self._bytes.get(key)
        if cached is None:
            cached = self._bytes[key] = encode(self.rows[key])
        return cached

    def by_id(self) -> list[Any]:
        if self._by_id is None:
            self._by_id = sorted(self.rows, key=sort_key)
        return self._by_id

    def next_id(self, rng: random.Random) -> int:
        numbers = [k for k in self.rows if isinstance(k, int) and not isinstance(k, bool)]
        return (max(numbers) if numbers else 1_000) + rng.randint(1, 7)


# ---------------------------------------------------------------------------------------------
# Continuation tokens

_TOKEN_SALT = b"servicetitan-sandbox-export-v1"


def make_token(entity: str, position: int) -> str:
    raw = struct.pack(">BBQ", 1, ENTITY_CODES[entity], position)
    check = hashlib.sha256(_TOKEN_SALT + raw).digest()[:6]
    return base64.urlsafe_b64encode(raw + check).decode().rstrip("=")


def read_token(entity: str, token: str) -> int | None:
    """The position a token of this entity's feed points at; None when it is no such token."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    if len(blob) != 16:
        return None
    raw, check = blob[:10], blob[10:]
    if hashlib.sha256(_TOKEN_SALT + raw).digest()[:6] != check:
        return None
    version, code, position = struct.unpack(">BBQ", raw)
    if version != 1 or code != ENTITY_CODES[entity]:
        return None
    return position


# ---------------------------------------------------------------------------------------------
# The store


class Store:
    """All records of the one tenant; ``lock`` guards every read and change.

    :param dataset: generated records to start from.
    :param clock: the sandbox's "now" in microseconds since the epoch.
    :param seed: seeds the choices random mutations make.
    :param timestamp_style: how ``modifiedOn`` stamps are written (see :func:`data.fmt_ts`).
    """

    def __init__(
        self, dataset: data.Dataset, clock: Callable[[], int], seed: int = 1, timestamp_style: str = "dotnet"
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.timestamp_style = timestamp_style
        self.rng = random.Random(f"servicetitan-mutations:{seed}")
        self.tax_rates = dict(dataset.tax_rates)
        self.tables = {name: Table(name) for name in data.ENTITIES}
        self.seq = 0
        for name, records in dataset.records.items():
            for record in records:
                changed = data.pop_stamp(record)
                if changed is None:
                    changed = parse_ts(record.get("modifiedOn")) or clock()
                self._put(name, record, changed)

    def _put(self, entity: str, record: dict[str, Any], changed: int) -> None:
        self.seq += 1
        self.tables[entity].put(record, self.seq, changed)

    def stamp(self) -> tuple[int, str]:
        now = self.clock()
        return now, fmt_ts(now, self.timestamp_style)

    # -- reads -----------------------------------------------------------------------------

    def get(self, entity: str, key: Any) -> bytes | None:
        table = self.tables[entity]
        return table.encoded(key) if key in table.rows else None

    def list_page(
        self,
        entity: str,
        *,
        page: int,
        page_size: int,
        include_total: bool,
        ids: set[int] | None = None,
        modified_from: int | None = None,
        modified_before: int | None = None,
        created_from: int | None = None,
        created_before: int | None = None,
        active: bool | None = None,
        customer_id: int | None = None,
        sort: tuple[str, bool] | None = None,
    ) -> bytes:
        """One page of a list endpoint as the JSON body ``{page, pageSize, totalCount, hasMore,
        data}`` (``totalCount`` is null unless ``include_total``)."""
        table = self.tables[entity]
        keys: Iterable[Any] = table.by_id()
        if ids is not None:
            keys = sorted((k for k in ids if k in table.rows), key=sort_key)
        if modified_from is not None or modified_before is not None:
            keys = _in_window(keys, table.modified, modified_from, modified_before)
        if created_from is not None or created_before is not None:
            keys = _in_window(keys, table.created, created_from, created_before)
        if active is not None:
            keys = [k for k in keys if table.rows[k].get("active") is active]
        if customer_id is not None:
            keys = [k for k in keys if _customer_id(table.rows[k]) == customer_id]
        keys = list(keys)
        if sort is not None and sort != ("id", False):
            field, descending = sort
            if field == "id":
                keys.reverse()
            else:
                stamps = table.modified if field == "modifiedOn" else table.created
                known = [k for k in keys if stamps[k] is not None]
                known.sort(key=lambda k: (stamps[k], sort_key(k)), reverse=descending)
                unknown = [k for k in keys if stamps[k] is None]
                keys = known + unknown
        start = (page - 1) * page_size
        window = keys[start : start + page_size]
        has_more = start + page_size < len(keys)
        head = (
            f'{{"page":{page},"pageSize":{page_size},'
            f'"totalCount":{len(keys) if include_total else "null"},'
            f'"hasMore":{"true" if has_more else "false"},"data":['
        ).encode()
        return head + b",".join(table.encoded(k) for k in window) + b"]}"

    def position_at(self, entity: str, moment: int) -> int:
        """The export position just before the first record (in change order) that changed at
        or after ``moment``."""
        table = self.tables[entity]
        first = None
        for seq, changed in zip(table.seqs, table.changed):
            if changed >= moment:
                first = seq
                break
        return (first - 1) if first is not None else (table.seqs[-1] if table.seqs else 0)

    def export(
        self, entity: str, position: int, *, include_recent: bool, page_size: int, lag_us: int
    ) -> tuple[bytes, bool, int]:
        """One export page after ``position``: ``(data array bytes, hasMore, new position)``."""
        table = self.tables[entity]
        cutoff = self.clock() - lag_us
        index = bisect.bisect_right(table.seqs, position)
        total = len(table.order)
        picked: list[int] = []
        i = index
        while i < total and len(picked) < page_size:
            if not include_recent and table.changed[i] > cutoff:
                break
            picked.append(i)
            i += 1
        if include_recent:
            has_more = i < total
        else:
            has_more = i < total and table.changed[i] <= cutoff and len(picked) == page_size
        new_position = table.seqs[picked[-1]] if picked else position
        if include_recent and not has_more:
            for seq, changed in zip(table.seqs, table.changed):
                if changed > cutoff:
                    new_position = min(new_position, seq - 1)
                    break
        body = b"[" + b",".join(table.encoded(table.order[j]) for j in picked) + b"]"
        return body, has_more, new_position

    # -- seeding ---------------------------------------------------------------------------

    def seed_records(self, entity: str, records: list[Any], replace: bool = False) -> list[Any]:
        """Hold records exactly as given (each needs an ``id``, a number or a string); they
        become the newest changes of their entity. ``replace`` drops the entity's other records
        first. Hostile values are kept: reads serve them back, truth reports what it cannot add."""
        if entity not in self.tables:
            raise StoreError(400, f"Unknown entity '{entity}'; one of {sorted(self.tables)}")
        if not isinstance(records, list):
            raise StoreError(400, "records must be a list of objects")
        for record in records:
            if not isinstance(record, dict):
                raise StoreError(400, "Every record must be a JSON object")
            key = record.get("id")
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise StoreError(400, f"Every record needs an 'id' that is a number or a string, not {key!r}")
        if replace:
            self.tables[entity].clear()
        now = self.clock()
        keys = []
        for record in records:
            changed = parse_ts(record.get("modifiedOn"))
            if changed is None or changed > now:
                changed = now
            self._put(entity, record, changed)
            keys.append(record["id"])
        return keys

    # -- mutations -------------------------------------------------------------------------

    def mutate(self, spec: dict[str, Any]) -> tuple[dict[str, list[Any]], list[tuple[str, dict[str, Any]]]]:
        """Apply the changes ``spec`` asks for; return the ids touched per entity and the events
        (``(eventType, record)``) they raise. See ``POST /_sandbox/mutate`` in the app."""
        known = {"edit_invoices", "merge_customers", "add_payments", "deactivate_customers"}
        unknown = set(spec) - known
        if unknown:
            raise StoreError(400, f"Unknown mutations {sorted(unknown)}; known: {sorted(known)}")
        touched: dict[str, list[Any]] = {name: [] for name in data.ENTITIES}
        events: list[tuple[str, dict[str, Any]]] = []

        def note(entity: str, key: Any, event: str) -> None:
            if key not in touched[entity]:
                touched[entity].append(key)
            events.append((event, self.tables[entity].rows[key]))

        for key in self._pick(spec.get("edit_invoices"), "invoices", self._editable_invoice):
            self._edit_invoice(key)
            note("invoices", key, "invoice.updated")
        for pair in self._pairs(spec.get("merge_customers")):
            source, target = pair
            moved = self._merge(source, target)
            note("customers", source, "customer.merged")
            for entity, key in moved:
                note(entity, key, "invoice.updated" if entity == "invoices" else "payment.updated")
        for request in self._payment_requests(spec.get("add_payments")):
            pay_id, invoices = self._add_payment(*request)
            note("payments", pay_id, "payment.created")
            for key in invoices:
                note("invoices", key, "invoice.updated")
        for key in self._pick(spec.get("deactivate_customers"), "customers", self._active_customer):
            record = self.tables["customers"].rows[key]
            now, stamp = self.stamp()
            record["active"] = False
            record["modifiedOn"] = stamp
            self._put("customers", record, now)
            note("customers", key, "customer.updated")
        return {k: v for k, v in touched.items() if v}, events

    def _pick(self, wanted: Any, entity: str, fits: Callable[[dict[str, Any]], bool]) -> list[Any]:
        if wanted is None or wanted == 0:
            return []
        table = self.tables[entity]
        if isinstance(wanted, list):
            for key in wanted:
                if key not in table.rows:
                    raise StoreError(404, f"No {entity} record with id {key!r}")
                if not fits(table.rows[key]):
                    raise StoreError(400, f"The {entity} record {key!r} cannot take this change")
            return list(wanted)
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
            raise StoreError(400, "A mutation takes a count or a list of ids")
        pool = [k for k in table.by_id() if fits(table.rows[k])]
        return self.rng.sample(pool, min(wanted, len(pool)))

    def _pairs(self, wanted: Any) -> list[tuple[Any, Any]]:
        customers = self.tables["customers"].rows
        if wanted is None or wanted == 0:
            return []
        if isinstance(wanted, list):
            pairs = []
            for pair in wanted:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise StoreError(400, "merge_customers takes a count or a list of [source id, target id]")
                for key in pair:
                    if key not in customers:
                        raise StoreError(404, f"No customers record with id {key!r}")
                if pair[0] == pair[1]:
                    raise StoreError(400, "A customer cannot be merged into itself")
                pairs.append((pair[0], pair[1]))
            return pairs
        if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
            raise StoreError(400, "merge_customers takes a count or a list of [source id, target id]")
        pool = [k for k in self.tables["customers"].by_id() if self._active_customer(customers[k])]
        pairs = []
        for _ in range(wanted):
            if len(pool) < 2:
                break
            source, target = self.rng.sample(pool, 2)
            pool.remove(source)
            pairs.append((source, target))
        return pairs

    def _payment_requests(self, wanted: Any) -> list[tuple[list[Any], Decimal | None]]:
        if wanted is None or wanted == 0:
            return []
        invoices = self.tables["invoices"].rows
        if isinstance(wanted, list):
            out = []
            for entry in wanted:
                if (
                    not isinstance(entry, dict)
                    or not isinstance(entry.get("invoices"), list)
                    or not entry["invoices"]
                ):
                    raise StoreError(
                        400, 'add_payments takes a count or a list of {"invoices": [ids], "amount": "25.00"}'
                    )
                for key in entry["invoices"]:
                    if key not in invoices:
                        raise StoreError(404, f"No invoices record with id {key!r}")
                amount = None
                if entry.get("amount") is not None:
                    amount = dec(entry["amount"])
                    if amount is None or amount <= 0:
                        raise StoreError(400, f"Invalid payment amount {entry['amount']!r}")
                out.append((list(entry["invoices"]), amount))
            return out
        return [([key], None) for key in self._pick(wanted, "invoices", self._open_invoice)]

    # Which records a random mutation may pick.

    @staticmethod
    def _active_customer(record: dict[str, Any]) -> bool:
        return record.get("active") is True and record.get("mergedToId") is None

    def _editable_invoice(self, record: dict[str, Any]) -> bool:
        items = record.get("items")
        return (
            isinstance(items, list)
            and bool(items)
            and all(isinstance(i, dict) and dec(i.get("total")) is not None for i in items)
            and dec(record.get("total")) is not None
            and dec(record.get("balance")) is not None
        )

    def _open_invoice(self, record: dict[str, Any]) -> bool:
        balance = dec(record.get("balance"))
        return self._editable_invoice(record) and balance is not None and balance > 0

    # The changes themselves.

    def _tax_rate(self, invoice: dict[str, Any]) -> Decimal:
        code = invoice.get("salesTaxCode")
        if isinstance(code, dict) and isinstance(code.get("taxRate"), (int, float)):
            return Decimal(repr(code["taxRate"]))
        unit = invoice.get("businessUnit")
        if isinstance(unit, dict):
            return self.tax_rates.get(unit.get("id"), Decimal(0))
        return Decimal(0)

    def _edit_invoice(self, key: Any) -> None:
        """Change an item's quantity or price, or add a part: the total only grows, so payments
        already applied never exceed it."""
        invoice = self.tables["invoices"].rows[key]
        applied = dec(invoice["total"]) - dec(invoice["balance"])  # type: ignore[operator]
        now, stamp = self.stamp()
        items = invoice["items"]
        unit = invoice.get("businessUnit") if isinstance(invoice.get("businessUnit"), dict) else {}
        if len(items) < 6 and self.rng.random() < 0.5:
            sku = self.rng.choice(data.PARTS)
            item_ids = [i.get("id") for i in items if isinstance(i.get("id"), int)]
            new_id = (max(item_ids) if item_ids else 90_000_000) + self.rng.randint(1, 7)
            order = len(items) + 1
            day = invoice.get("invoiceDate") or data.fmt_date(now)
            items.append(data.make_item(new_id, sku, Decimal(1), Decimal(sku.price), unit, order, stamp, day))
        else:
            item = self.rng.choice([i for i in items if dec(i.get("price")) and dec(i["price"]) > 0] or items)
            quantity = (dec(item.get("quantity")) or Decimal(1)) + 1
            price = dec(item.get("price")) or Decimal("10.00")
            item["quantity"] = money(quantity)
            item["total"] = money(data.item_total(quantity, price))
            cost = dec(item.get("cost"))
            if cost is not None:
                item["totalCost"] = money(data.item_total(quantity, cost))
            if item.get("soldHours") is not None:
                item["soldHours"] = money(quantity)
            item["modifiedOn"] = stamp
        data.retotal(invoice, self._tax_rate(invoice), applied)
        invoice["modifiedOn"] = stamp
        self._put("invoices", invoice, now)
        self._rebalance({_customer_id(invoice)})

    def _merge(self, source: Any, target: Any) -> list[tuple[str, Any]]:
        """Merge ``source`` into ``target``: the source goes inactive with ``mergedToId`` and its
        invoices and payments move to the target (each stamped now)."""
        customers = self.tables["customers"].rows
        src, dst = customers[source], customers[target]
        now, stamp = self.stamp()
        src["active"] = False
        src["mergedToId"] = target
        src["modifiedOn"] = stamp
        self._put("customers", src, now)
        moved = []
        for entity in ("invoices", "payments"):
            table = self.tables[entity]
            for key in [k for k, r in table.rows.items() if _customer_id(r) == source]:
                record = table.rows[key]
                record["customer"] = {"id": target, "name": dst.get("name")}
                record["modifiedOn"] = stamp
                self._put(entity, record, now)
                moved.append((entity, key))
        self._rebalance({source, target})
        return moved

    def _add_payment(self, invoice_ids: list[Any], amount: Decimal | None) -> tuple[int, list[Any]]:
        """A payment applied to the invoices in order, up to each one's balance; whatever is left
        stays unapplied. Without an amount it pays the balances in full."""
        invoices = self.tables["invoices"].rows
        balances = [max(dec(invoices[k].get("balance")) or Decimal(0), Decimal(0)) for k in invoice_ids]
        total = amount if amount is not None else sum(balances, Decimal(0))
        if total <= 0:
            raise StoreError(400, "The invoices have nothing left to pay; give an amount")
        now, stamp = self.stamp()
        first = invoices[invoice_ids[0]]
        customer = (
            first.get("customer") if isinstance(first.get("customer"), dict) else {"id": None, "name": None}
        )
        pay_id = self.tables["payments"].next_id(self.rng)
        left = total
        entries = []
        for key, balance in zip(invoice_ids, balances):
            applied = min(left, balance)
            if applied <= 0:
                continue
            left -= applied
            invoice = invoices[key]
            invoice["balance"] = money(dec(invoice["balance"]) - applied)  # type: ignore[operator]
            invoice["modifiedOn"] = stamp
            self._put("invoices", invoice, now)
            entries.append(
                {
                    "appliedId": pay_id * 10 + len(entries) + 1,
                    "appliedTo": key,
                    "appliedAmount": money(applied),
                    "appliedOn": stamp,
                    "appliedBy": "B1 sandbox",
                    "appliedToReferenceNumber": invoice.get("referenceNumber"),
                }
            )
        unit = first.get("businessUnit") if isinstance(first.get("businessUnit"), dict) else None
        payment = {
            "id": pay_id,
            "syncStatus": "Pending",
            "referenceNumber": str(self.rng.randint(1000, 99999)),
            "date": data.fmt_date(now),
            "type": "Check",
            "typeId": "1",
            "total": money(total),
            "unappliedAmount": money(left),
            "memo": None,
            "customer": {"id": customer.get("id"), "name": customer.get("name")},
            "businessUnit": dict(unit) if unit else None,
            "batch": None,
            "createdBy": "B1 sandbox",
            "generalLedgerAccount": dict(data.PAYMENT_GL_ACCOUNT),
            "appliedTo": entries,
            "customFields": [],
            "authCode": None,
            "checkNumber": str(self.rng.randint(1000, 9999)),
            "createdOn": stamp,
            "modifiedOn": stamp,
            "active": True,
        }
        self._put("payments", payment, now)
        self._rebalance({_customer_id(invoices[k]) for k in invoice_ids})
        return pay_id, [e["appliedTo"] for e in entries]

    def _rebalance(self, customer_ids: set[Any]) -> None:
        """Refresh customers' ``balance`` (the sum of their invoices' balances); like
        ServiceTitan's computed balance this does not move ``modifiedOn``."""
        customers = self.tables["customers"]
        open_by: dict[Any, Decimal] = dict.fromkeys(customer_ids, Decimal(0))
        for invoice in self.tables["invoices"].rows.values():
            cid = _customer_id(invoice)
            if cid in open_by:
                open_by[cid] += dec(invoice.get("balance")) or Decimal(0)
        for cid, balance in open_by.items():
            if cid in customers.rows:
                customers.rows[cid]["balance"] = float(money(balance))
                customers.refresh(cid)

    # -- truth -----------------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        """What a faithful copy of this tenant must add up to (money as strings).

        Per customer (by the invoice's ``customer.id``): ``invoice_count``, ``invoice_total``,
        ``payments_applied`` (applied to its invoices) and ``open_balance``; ``totals`` over the
        tenant; ``items_by_gl_account`` (item totals per account number); ``keys_sha256`` per
        entity (ids in order, one a line); ``unparseable``: the invoices and payments whose
        amounts are not numbers (seeded), left out of the sums but still counted.
        """
        with localcontext(data.WIDE):
            return self._truth()

    def _truth(self) -> dict[str, Any]:
        zero = Decimal(0)
        customers = self.tables["customers"].rows
        per: dict[Any, dict[str, Any]] = {
            key: {"invoice_count": 0, "invoice_total": zero, "payments_applied": zero, "open_balance": zero}
            for key in customers
        }
        unparseable: dict[str, list[Any]] = {"invoices": [], "payments": []}
        invoice_customer: dict[Any, Any] = {}
        totals = {"invoice_total": zero, "sub_total": zero, "sales_tax": zero, "open_balance": zero}
        by_gl: dict[str, Decimal] = {}
        for key in self.tables["invoices"].by_id():
            invoice = self.tables["invoices"].rows[key]
            cid = _customer_id(invoice)
            invoice_customer[key] = cid
            amounts = [dec(invoice.get(f)) for f in ("total", "subTotal", "salesTax", "balance")]
            entry = per.setdefault(
                cid,
                {"invoice_count": 0, "invoice_total": zero, "payments_applied": zero, "open_balance": zero},
            )
            entry["invoice_count"] += 1
            if any(a is None for a in amounts):
                unparseable["invoices"].append(key)
                continue
            total, sub, tax, balance = amounts
            entry["invoice_total"] += total
            entry["open_balance"] += balance
            totals["invoice_total"] += total
            totals["sub_total"] += sub
            totals["sales_tax"] += tax
            totals["open_balance"] += balance
            for item in invoice.get("items") or []:
                line = dec(item.get("total")) if isinstance(item, dict) else None
                gl = item.get("generalLedgerAccount") if isinstance(item, dict) else None
                number = gl.get("number") if isinstance(gl, dict) else None
                if line is not None:
                    by_gl[str(number)] = by_gl.get(str(number), zero) + line
        pay_totals = {"payments_total": zero, "payments_applied": zero, "unapplied": zero}
        for key in self.tables["payments"].by_id():
            payment = self.tables["payments"].rows[key]
            total, unapplied = dec(payment.get("total")), dec(payment.get("unappliedAmount"))
            applied_to = payment.get("appliedTo")
            entries = applied_to if isinstance(applied_to, list) else []
            amounts = [dec(e.get("appliedAmount")) if isinstance(e, dict) else None for e in entries]
            if total is None or unapplied is None or any(a is None for a in amounts):
                unparseable["payments"].append(key)
                continue
            pay_totals["payments_total"] += total
            pay_totals["unapplied"] += unapplied
            for entry, amount in zip(entries, amounts):
                pay_totals["payments_applied"] += amount  # type: ignore[operator]
                cid = invoice_customer.get(entry.get("appliedTo"), _customer_id(payment))
                per.setdefault(
                    cid,
                    {
                        "invoice_count": 0,
                        "invoice_total": zero,
                        "payments_applied": zero,
                        "open_balance": zero,
                    },
                )["payments_applied"] += amount
        return {
            "customers": {
                str(cid): {k: (money(v) if isinstance(v, Decimal) else v) for k, v in entry.items()}
                for cid, entry in sorted(per.items(), key=lambda kv: sort_key(kv[0]))
            },
            "totals": {
                "customers": len(customers),
                "active_customers": sum(1 for c in customers.values() if c.get("active") is True),
                "merged_customers": sum(1 for c in customers.values() if c.get("mergedToId") is not None),
                "invoices": len(self.tables["invoices"].rows),
                "invoice_items": sum(
                    len(i["items"])
                    for i in self.tables["invoices"].rows.values()
                    if isinstance(i.get("items"), list)
                ),
                "payments": len(self.tables["payments"].rows),
                "business_units": len(self.tables["business-units"].rows),
                **{k: money(v) for k, v in totals.items()},
                **{k: money(v) for k, v in pay_totals.items()},
            },
            "items_by_gl_account": {k: money(v) for k, v in sorted(by_gl.items())},
            "keys_sha256": {
                name: hashlib.sha256("\n".join(str(k) for k in table.by_id()).encode()).hexdigest()
                for name, table in self.tables.items()
            },
            "unparseable": unparseable,
        }


def _customer_id(record: dict[str, Any]) -> Any:
    customer = record.get("customer")
    return customer.get("id") if isinstance(customer, dict) else None


def _in_window(
    keys: Iterable[Any], stamps: dict[Any, int | None], lo: int | None, hi: int | None
) -> list[Any]:
    """Keys whose stamp is in ``[lo, hi)``; a record whose stamp does not parse matches no window."""
    out = []
    for key in keys:
        stamp = stamps[key]
        if stamp is None or (lo is not None and stamp < lo) or (hi is not None and stamp >= hi):
            continue
        out.append(key)
    return out


__all__ = ["US_PER_DAY", "Store", "StoreError", "Table", "make_token", "read_token", "sort_key"]
