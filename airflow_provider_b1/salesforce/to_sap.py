"""Salesforce accounts and won opportunities written into SAP Business One.

* **Account -> business partner.** The partner of an account is the one it is linked to (the
  links table), else the one its account number names, else the one whose link field
  (``U_SalesforceId``) holds its id, else a new one with the mapping's code; a new partner's code
  is written back to the account's number, so the pair is linked once. Each mapped field is
  compared with the value both sides last agreed on (:mod:`airflow_provider_b1.sync.pairs`): a
  field only Salesforce changed is written into SAP; one only SAP changed is left to the
  ``BusinessPartners`` stream of :mod:`.to_salesforce`; one both changed goes to its system of
  record, and the conflict is logged and kept in the audit trail. A value equal to the agreed one
  is an echo of the flow's own write, however the account's ``SystemModstamp`` moved: nothing is
  written.
* **Closed Won opportunity -> sales order.** The opportunity id goes into the order's
  ``NumAtCard`` (or the mapping's ``U_`` field), looked up before every post, so an order is never
  posted twice. Lines come from its products (``Product2.ProductCode`` = ``ItemCode``), else one
  line of the mapping's ``service_item`` for its amount. A deal without an account is booked to
  the mapping's ``walk_in_partner`` (created in SAP when first needed), else fails with its
  reason. An opportunity changed after its order exists updates the open order (quantities, prices, lines through ``LineNum``), and is reported,
  not applied, when the order is closed (delivered, invoiced) or cancelled. An order SAP keeps as
  a draft for approval is *pending* ("pending approval (draft N)"). The order's number, the
  draft's number, the order's status and SAP's invoiced and paid amounts are written back to the
  opportunity (one Salesforce call per page), only where they changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from airflow_provider_b1.salesforce import values
from airflow_provider_b1.salesforce.mapping import SALESFORCE, SalesforceMapping
from airflow_provider_b1.salesforce.to_salesforce import SapFigures
from airflow_provider_b1.salesforce.values import day, failures, number, salesforce_form, sap_form
from airflow_provider_b1.sinks.sap_documents import SapDocuments, draft_entry, stops_the_load
from airflow_provider_b1.sync.engine import Item, PageCommit, Sink
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome, waiting
from airflow_provider_b1.sync.pairs import PairLedger, Winner, decide, value_hash
from airflow_provider_b1.sync.records import payload_hash

log = logging.getLogger(__name__)

ACCOUNTS = "Account"
OPPORTUNITIES = "Opportunity"
_CENT = Decimal("0.01")
_CLOSED = "bost_Close"


class SalesforceToSapSink(Sink):
    """Writes Salesforce accounts and opportunities into SAP (see the module documentation).

    :param sap: a :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.
    :param open_salesforce: opens a Salesforce hook (for the write-backs; each writer its own).
    :param mapping: the org's :class:`~airflow_provider_b1.salesforce.mapping.SalesforceMapping`.
    :param ledger: the links and agreed values of this org.
    """

    system = "sap_b1"

    def __init__(
        self,
        sap: Any,
        open_salesforce: Callable[[], Any],
        mapping: SalesforceMapping,
        ledger: PairLedger,
    ) -> None:
        self.sap = sap
        self.documents = SapDocuments(sap)
        self.open_salesforce = open_salesforce
        self._salesforce: Any = None
        self.mapping = mapping
        self.ledger = ledger
        self._forks = 0
        self._walk_in_ready = False

    @property
    def salesforce(self) -> Any:
        if self._salesforce is None:
            self._salesforce = self.open_salesforce()
        return self._salesforce

    def fork(self) -> SalesforceToSapSink:
        """A writer on the next SAP session, with its own Salesforce client and ledger connection."""
        self._forks += 1
        return SalesforceToSapSink(
            self.sap.with_session(self._forks), self.open_salesforce, self.mapping, self.ledger.fork()
        )

    def close(self) -> None:
        self.ledger.close()
        if self._salesforce is not None:
            self._salesforce.close()
        self.sap.close()

    def target_entity(self, stream: Stream) -> str:
        return {ACCOUNTS: "BusinessPartners", OPPORTUNITIES: "Orders"}[stream.name]

    def hold(self, flow: str, stream: Stream) -> contextlib.AbstractContextManager[None]:
        """One task at a time writes a stream of this org, whichever DAG runs it (see
        :meth:`~airflow_provider_b1.sync.pairs.PairLedger.hold`)."""
        return self.ledger.hold(f"{flow}:{stream.name}")

    # -- prepare -------------------------------------------------------------------------------

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        prepared: list[Item | Outcome] = []
        for record in records:
            key = record.get("Id") if isinstance(record, Mapping) else None
            if not key:
                prepared.append(Outcome(None, Action.FAILED, "the record has no Id"))
                continue
            try:
                data = self._account(record) if stream.name == ACCOUNTS else self._opportunity(record)
            except (ValueError, LookupError, TypeError) as exc:
                prepared.append(Outcome(key, Action.FAILED, str(exc).strip("'\"")))
                continue
            prepared.append(Item(key, data, payload_hash(data)))
        return prepared

    def _account(self, account: Mapping[str, Any]) -> dict[str, Any]:
        number_field = self.mapping.account_number
        values = {}
        for field in self.mapping.fields:
            sap_form(field, account.get(field.salesforce))  # fails the record now if SAP cannot take it
            values[field.salesforce] = salesforce_form(field, account.get(field.salesforce))
        return {
            "number": (str(account.get(number_field) or "").strip() or None),
            "values": {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()},
        }

    def _opportunity(self, opportunity: Mapping[str, Any]) -> dict[str, Any]:
        name = str(opportunity.get("Name") or "").strip()
        close = day(opportunity.get("CloseDate"))
        if close is None:
            raise ValueError(f"opportunity {name!r} has no close date")
        lines = []
        items = (opportunity.get("OpportunityLineItems") or {}).get("records") or []
        for line in items:
            code = ((line.get("Product2") or {}).get("ProductCode") or "").strip()
            if not code:
                raise ValueError(
                    f"opportunity {name!r}: its line {line.get('Id')} has a product without a product code"
                )
            quantity, price = number(line.get("Quantity")), number(line.get("UnitPrice"))
            if quantity is None or price is None:
                raise ValueError(f"opportunity {name!r}: its line {line.get('Id')} has no quantity or price")
            lines.append({"ItemCode": code, "Quantity": float(quantity), "UnitPrice": float(price)})
        if not lines:
            amount = number(opportunity.get("Amount"))
            if self.mapping.service_item is None:
                raise ValueError(
                    f"opportunity {name!r} has no products, and the mapping names no orders.service_item "
                    "for its amount"
                )
            if amount is None:
                raise ValueError(f"opportunity {name!r} has neither products nor an amount")
            lines.append({"ItemCode": self.mapping.service_item, "Quantity": 1.0, "UnitPrice": float(amount)})
        account = opportunity.get("Account") or {}
        code = str(account.get(self.mapping.account_number) or "").strip() or None
        if not opportunity.get("AccountId"):
            code = self.mapping.walk_in_partner
            if code is None:
                raise ValueError(
                    f"opportunity {name!r} has no account, and a sales order needs a customer: give it an "
                    "account in Salesforce, or name orders.walk_in_partner (a one-time customer) in the mapping"
                )
        return {
            "name": name,
            "account_id": opportunity.get("AccountId"),
            "number": code,
            "document": {
                "DocDate": close.isoformat(),
                "DocDueDate": (close + dt.timedelta(days=self.mapping.due_days)).isoformat(),
                "Comments": f"Salesforce opportunity {name}"[:254],
                "DocumentLines": lines,
            },
        }

    # -- write ---------------------------------------------------------------------------------

    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> Mapping[Hashable, Outcome]:
        if stream.name == ACCOUNTS:
            return self._write_accounts(items)
        return self._write_opportunities(items)

    def _card_codes(self, items: Sequence[Item]) -> dict[Hashable, str]:
        """The partner of each account: linked, numbered, found by the link field, or new."""
        links = self.ledger.linked(ACCOUNTS, [item.key for item in items])
        codes: dict[Hashable, str] = {}
        for item in items:
            code = item.data["number"] or links.get(str(item.key))
            if code:
                codes[item.key] = code
        unresolved = [str(item.key) for item in items if item.key not in codes]
        if unresolved and self.mapping.link_field:
            found = self.sap.existing_values("BusinessPartners", self.mapping.link_field, unresolved)
            for account_id, record in found.items():
                codes[account_id] = record["CardCode"]
        for item in items:
            if item.key not in codes:
                codes[item.key] = self.mapping.card_code_for(str(item.key))
        return codes

    def _write_accounts(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        mapping = self.mapping
        codes = self._card_codes(items)
        select = ["CardCode", *(f.sap for f in mapping.fields)]
        if mapping.link_field:
            select.append(mapping.link_field)
        partners = {
            record["CardCode"]: record
            for page in self.sap.iter_any_of(
                "BusinessPartners", "CardCode", list(set(codes.values())), select=select
            )
            for record in page
        }
        agreed = self.ledger.agreed([item.key for item in items])
        outcomes: dict[Hashable, Outcome] = {}
        creates: list[tuple[Item, dict[str, Any]]] = []
        agree: dict[Hashable, dict[str, str]] = {}
        for item in items:
            code, values = codes[item.key], item.data["values"]
            partner = partners.get(code)
            fields = {f.sap: sap_form(f, values[f.salesforce]) for f in mapping.fields}
            if partner is None:
                body = {"CardCode": code, **mapping.partner_defaults, **fields}
                if mapping.link_field:
                    body[mapping.link_field] = str(item.key)
                creates.append((item, body))
                agree[item.key] = {name: value_hash(value) for name, value in values.items()}
                continue
            changes: dict[str, Any] = {}
            conflicts = []
            agree[item.key] = {}
            for field in mapping.fields:
                held = salesforce_form(field, partner.get(field.sap))
                decision = decide(
                    values[field.salesforce],
                    held,
                    agreed.get(str(item.key), {}).get(field.salesforce),
                    "left" if field.owner == SALESFORCE else "right",
                )
                if decision.winner is Winner.LEFT:
                    changes[field.sap] = fields[field.sap]
                if decision.winner is not Winner.RIGHT and decision.agreed is not None:
                    agree[item.key][field.salesforce] = decision.agreed
                if decision.conflict:
                    conflicts.append(
                        field.conflict(values[field.salesforce] if field.owner == SALESFORCE else held)
                    )
            if mapping.link_field and partner.get(mapping.link_field) != str(item.key):
                changes[mapping.link_field] = str(item.key)
            note = "; ".join(conflicts) or None
            for conflict in conflicts:
                log.warning("Account %s / partner %s: %s", item.key, code, conflict)
            if changes:
                try:
                    self.sap.update("BusinessPartners", code, changes)
                except Exception as exc:  # SAP refused this partner: it fails alone
                    if stops_the_load(exc):
                        raise
                    outcomes[item.key] = Outcome(item.key, Action.FAILED, str(exc), item.payload_hash)
                    continue
            action = Action.UPDATED if changes else Action.UNCHANGED
            outcomes[item.key] = Outcome(item.key, action, note, item.payload_hash, code)
        if creates:
            results = self.sap.create_many(
                "BusinessPartners", [body for _, body in creates], dedupe_field="CardCode", looked_up=True
            )
            for (item, body), result in zip(creates, results, strict=True):
                if result.outcome == "failed":
                    outcomes[item.key] = Outcome(item.key, Action.FAILED, result.error, item.payload_hash)
                else:
                    action = Action.CREATED if result.outcome == "created" else Action.UNCHANGED
                    outcomes[item.key] = Outcome(item.key, action, None, item.payload_hash, body["CardCode"])
        done = [item for item in items if outcomes[item.key].action is not Action.FAILED]
        self.ledger.link(ACCOUNTS, {item.key: codes[item.key] for item in done})
        self.ledger.agree({item.key: agree[item.key] for item in done if agree.get(item.key)})
        self._write_back_numbers([(item, codes[item.key]) for item in done], outcomes)
        return outcomes

    def _write_back_numbers(self, done: list[tuple[Item, str]], outcomes: dict[Hashable, Outcome]) -> None:
        """Each account gets its partner's code as its number (one Salesforce call per page)."""
        field = self.mapping.account_number
        missing = [(item, code) for item, code in done if item.data["number"] != code]
        if not missing:
            return
        results = self.salesforce.update_many(
            ACCOUNTS, [{"Id": str(item.key), field: code} for item, code in missing]
        )
        for index, message in failures(results).items():
            item, code = missing[index]
            outcomes[item.key] = Outcome(
                item.key,
                Action.FAILED,
                f"partner {code} is linked to it, but Salesforce refused {field} = {code}: {message}",
                item.payload_hash,
            )

    def _walk_in_partner(self) -> None:
        """The mapping's partner of opportunities without an account, created once when SAP lacks it."""
        code = self.mapping.walk_in_partner
        if code is None or self._walk_in_ready:
            return
        if not self.documents.find("BusinessPartners", "CardCode", [code], ["CardCode"]):
            self.sap.create(
                "BusinessPartners",
                {
                    **self.mapping.partner_defaults,
                    "CardCode": code,
                    "CardName": "Salesforce walk-in customers",
                },
                dedupe_field="CardCode",
            )
            log.info("Created SAP partner %s for won opportunities without an account.", code)
        self._walk_in_ready = True

    def _write_opportunities(self, items: Sequence[Item]) -> dict[Hashable, Outcome]:
        field = self.mapping.order_id_field
        outcomes: dict[Hashable, Outcome] = {}
        if any(not item.data["account_id"] for item in items):
            self._walk_in_partner()
        links = self.ledger.linked(ACCOUNTS, [i.data["account_id"] for i in items if i.data["account_id"]])
        orders = self.documents.find(
            "Orders",
            field,
            [str(item.key) for item in items],
            ["DocEntry", "DocNum", field, "CardCode", "DocumentStatus", "Cancelled", "DocumentLines"],
        )
        creates: list[tuple[Item, dict[str, Any]]] = []
        for item in items:
            data = item.data
            code = data["number"] or links.get(str(data["account_id"]))
            if not code:
                outcomes[item.key] = waiting(
                    item.key,
                    f"account {data['account_id']}",
                    f"waiting for its account {data['account_id']}, not linked to an SAP partner yet: the next "
                    "run posts it once the account is",
                    item.payload_hash,
                )
                continue
            order = orders.get(str(item.key))
            if order is None:
                creates.append((item, {"CardCode": code, field: str(item.key), **data["document"]}))
                continue
            outcomes[item.key] = self._changed_order(item, code, order)
        pending = self.documents.pending_approval(
            field, [(item, str(item.key), "oOrders") for item, _ in creates]
        )
        outcomes.update(pending)
        created: dict[Hashable, dict[str, Any]] = {}
        posted = self.documents.create(
            "Orders", field, [(i, body) for i, body in creates if i.key not in pending], created
        )
        outcomes.update(posted)
        numbers = {str(order.get(field)): order.get("DocNum") for order in orders.values()}
        numbers.update({str(key): order.get("DocNum") for key, order in created.items()})
        statuses = {str(order.get(field)): order_status(order) for order in orders.values()}
        self._write_back_orders(items, outcomes, numbers, statuses)
        return outcomes

    def _changed_order(self, item: Item, code: str, order: Mapping[str, Any]) -> Outcome:
        """An opportunity whose order exists: unchanged, updated, or reported when the order is closed."""
        wanted = item.data["document"]["DocumentLines"]
        held = sorted(order.get("DocumentLines") or [], key=lambda line: line.get("LineNum", 0))
        entry = order["DocEntry"]

        def line_of(line: Mapping[str, Any]) -> tuple[str, Decimal, Decimal]:
            price = number(line.get("UnitPrice") if line.get("UnitPrice") is not None else line.get("Price"))
            return (
                str(line.get("ItemCode")),
                (number(line.get("Quantity")) or Decimal(0)).quantize(_CENT),
                (price or Decimal(0)).quantize(_CENT),
            )

        if [line_of(line) for line in wanted] == [line_of(line) for line in held] and order.get(
            "CardCode"
        ) == code:
            return Outcome(item.key, Action.UNCHANGED, None, item.payload_hash, entry)
        if order.get("Cancelled") == "tYES" or order.get("DocumentStatus") == _CLOSED:
            state = "cancelled" if order.get("Cancelled") == "tYES" else "closed (delivered or invoiced)"
            return Outcome(
                item.key,
                Action.SKIPPED,
                f"changed after its order {order.get('DocNum') or entry} was {state}: not applied; correct the order "
                "in SAP if it must change",
                item.payload_hash,
                entry,
            )
        if any(line.get("LineStatus") == _CLOSED for line in held):
            return Outcome(
                item.key,
                Action.SKIPPED,
                f"changed after lines of its order {order.get('DocNum') or entry} were delivered: not applied",
                item.payload_hash,
                entry,
            )
        lines = [
            {**line, "LineNum": held[index]["LineNum"]} if index < len(held) else dict(line)
            for index, line in enumerate(wanted)
        ]
        changes: dict[str, Any] = {"DocumentLines": lines}
        if order.get("CardCode") != code:
            changes["CardCode"] = code
        try:
            # Fewer lines than the order holds: the collection is replaced, kept lines by LineNum.
            self.sap.update("Orders", entry, changes, replace_collections=len(wanted) < len(held))
        except Exception as exc:
            if stops_the_load(exc):
                raise
            return Outcome(
                item.key, Action.FAILED, f"SAP refused the change of order {entry}: {exc}", item.payload_hash
            )
        return Outcome(
            item.key,
            Action.UPDATED,
            f"order {order.get('DocNum') or entry} updated: {len(held)} line(s) now {len(wanted)}",
            item.payload_hash,
            entry,
        )

    def _write_back_orders(
        self,
        items: Sequence[Item],
        outcomes: dict[Hashable, Outcome],
        numbers: Mapping[str, Any],
        statuses: Mapping[str, str],
    ) -> None:
        """The order's number, the draft's number, the order's status and SAP's invoiced and paid
        amounts on each opportunity, where they changed since last written (one Salesforce call per
        page). A new order shows "Not invoiced" at once, not only once an invoice moves."""
        back = self.mapping.write_back
        balances = self.mapping.opportunity_balances
        if not back and not balances:
            return
        agreed = self.ledger.agreed([item.key for item in items])
        shown = [
            str(item.key)
            for item in items
            if draft_entry(outcomes[item.key]) is not None
            or (outcomes[item.key].action is not Action.FAILED and outcomes[item.key].target_key is not None)
        ]
        amounts = (
            SapFigures(self.sap, self.mapping, values.utc_today()).opportunities(shown)
            if balances and shown
            else {}
        )
        updates: list[tuple[Item, dict[str, Any], dict[str, str]]] = []
        for item in items:
            outcome = outcomes[item.key]
            draft = draft_entry(outcome)
            if draft is not None:
                figures = {
                    "order_number": None,
                    "draft_number": str(draft),
                    "order_status": "Pending approval",
                }
            elif outcome.action is Action.FAILED or outcome.target_key is None:
                continue
            else:
                order_number = numbers.get(str(item.key)) or outcome.target_key
                status = statuses.get(str(item.key), "Open")
                figures = {"order_number": str(order_number), "draft_number": None, "order_status": status}
            fields = {back[what]: value for what, value in figures.items() if what in back}
            fields.update(
                {
                    balances[what]: value
                    for what, value in amounts.get(str(item.key), {}).items()
                    if what in balances
                }
            )
            hashes = {name: value_hash(value) for name, value in fields.items()}
            held = agreed.get(str(item.key), {})
            if any(held.get(name) != digest for name, digest in hashes.items()):
                updates.append((item, fields, hashes))
        if not updates:
            return
        results = self.salesforce.update_many(
            OPPORTUNITIES, [{"Id": str(item.key), **fields} for item, fields, _ in updates]
        )
        refused = failures(results)
        for index, (item, _fields, _hashes) in enumerate(updates):
            if index in refused:
                outcome = outcomes[item.key]
                outcomes[item.key] = Outcome(
                    item.key,
                    Action.FAILED,
                    f"{outcome.error or outcome.action.value}; Salesforce refused the order's number on the "
                    f"opportunity: {refused[index]}",
                    item.payload_hash,
                )
        self.ledger.agree(
            {item.key: hashes for index, (item, _f, hashes) in enumerate(updates) if index not in refused}
        )


def order_status(order: Mapping[str, Any]) -> str:
    """An order's status as the opportunity shows it: Open, Closed or Cancelled."""
    if order.get("Cancelled") == "tYES":
        return "Cancelled"
    return "Closed" if order.get("DocumentStatus") == _CLOSED else "Open"
