"""SAP documents as Teams cards, exactly once per destination, document and event: the flow's sink.

For each page of documents the engine hands it, :class:`TeamsSink`:

1. finds each document's destinations (:mod:`.routing`; partners' groups looked up in SAP once
   per page, and remembered);
2. derives the document's events from its status fields (:func:`events_of`: ``created``, then
   ``approved``, ``closed``, ``paid``, ``cancelled``) and reads the sent-ledger (:mod:`.ledger`)
   for what each destination already got;
3. sends what is missing: a new document's card (or, when one run finds more than
   ``digest_over`` new documents for one destination, one digest card for them); for a later
   event, the bot **updates** the card it posted (its activity id is in the ledger) and the
   webhook, which cannot, posts a short follow-up card. A card posted for a document that
   already moved on shows its current status, and covers those events too.

Each card's ledger rows are committed ``pending`` before it is sent and ``sent`` (with the activity
id) after. A row found ``pending`` means the card *may* have been sent (the task was killed, or
the call failed without an answer, between the two writes):

* **bot**: the card carries a marker (the ``id`` of its first element), and the conversation's
  recent messages are read through Microsoft Graph (``GET /chats/{id}/messages`` for a user's
  chat, ``GET /teams/{team}/channels/{channel}/messages`` for a channel whose destination names
  its ``team``): found, the row is completed with that message's id and nothing is posted; not
  found, the card was never sent and is sent now. When the conversation cannot be read (a
  channel without ``team``, Graph refusing the app ``Chat.Read.All`` /
  ``ChannelMessage.Read.All``), nothing is posted: the record fails, saying so, and the row stays
  pending for a person to settle. The bot never posts a card twice.
* **webhook**: a webhook answers nothing to look up, so that one card is sent again; it may
  then show twice. The task log says so and the sink's closing line counts it.

**Several SAP companies.** A sink sends one company's documents (the flow runs once per company):
its ledger rows are that company's, so ``DocEntry`` 17 of two companies is two documents with a
card each; its markers name the company (a card of one company is never taken for another's in a
conversation); rules naming ``companies`` are matched against the company's connection id and
CompanyDB; and where several companies send cards, each card names its company's CompanyDB.

Failures of one card (a user Graph does not know, a user without the bot, a 400) fail its
document alone, with the reason, in the audit trail; rows of a refused card are removed so that
replay sends it once the cause is fixed. A failure that stops the load (Teams down after its
retries, an expired secret) ends the task; what was sent before it keeps its rows and trail.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from airflow_provider_b1.companies import DEFAULT_SAP_CONN_ID
from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.hooks.teams.errors import (
    TeamsBadRequestError,
    TeamsForbiddenError,
    TeamsNotFoundError,
)
from airflow_provider_b1.sync.engine import Item, PageCommit, PartialWrite, Sink
from airflow_provider_b1.sync.flows import Stream
from airflow_provider_b1.sync.outcomes import Action, Outcome
from airflow_provider_b1.sync.records import payload_hash
from airflow_provider_b1.teams import cards
from airflow_provider_b1.teams.ledger import PENDING, SENT, Entry, SentLedger
from airflow_provider_b1.teams.routing import PAYMENTS, Destination, Routing
from airflow_provider_b1.utils.sql import advisory_hold

log = logging.getLogger(__name__)

CREATED = "created"
#: The entity of each kind of invoice a payment names (``PaymentInvoices[].InvoiceType``).
INVOICE_ENTITIES = {"it_Invoice": "Invoices", "it_PurchaseInvoice": "PurchaseInvoices"}
#: Events a document can reach after it is created, in the order they are shown.
LATER_EVENTS = ("approved", "closed", "paid", "cancelled")
_APPROVED = {
    "dasApproved",
    "dasGenerated",
    "dasGeneratedbyAuthorizer",
    "pasApproved",
    "pasGenerated",
    "pasGeneratedbyAuthorizer",
}
#: Failures that concern one card only: the document fails, the page goes on.
CARD_ERRORS = (TeamsBadRequestError, TeamsForbiddenError, TeamsNotFoundError)
_EVENT_WORDS = {
    "approved": "approved",
    "closed": "closed",
    "paid": "paid",
    "cancelled": "cancelled",
}


def events_of(kind: str, document: Mapping[str, Any]) -> list[str]:
    """The events a document has reached, from its status fields: always ``created``; ``approved``
    when it went through an approval; ``cancelled``, else ``paid`` / ``closed`` from its status."""
    events = [CREATED]
    if document.get("AuthorizationStatus") in _APPROVED:
        events.append("approved")
    if document.get("Cancelled") in ("tYES", "Y", True):
        events.append("cancelled")
    elif document.get("DocumentStatus") == "bost_Paid":
        events.append("paid")
    elif document.get("DocumentStatus") == "bost_Close":
        events.append("closed")
    return events


def marker_of(*parts: str) -> str:
    """The id a card carries so that it can be found among a conversation's messages."""
    return "b1-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _marked(card: dict[str, Any], marker: str) -> dict[str, Any]:
    """``card`` with ``marker`` as the id of its first element."""
    body = [dict(card["body"][0], id=marker), *card["body"][1:]]
    return {**card, "body": body}


def followup_card(
    kind: str, document: Mapping[str, Any], event: str, company: str | None = None
) -> dict[str, Any]:
    """A short card about a later event of a document whose first card cannot be updated
    (``company``: the CompanyDB to name, where several SAP companies send cards)."""
    label = cards.DOCUMENT_KINDS.get(kind, kind)
    number = cards.escape(document.get("DocNum", document.get("DocEntry")), limit=40)
    partner = cards.escape(document.get("CardName") or document.get("CardCode") or cards.MISSING)
    if company:
        partner = f"{partner} · {cards.escape(company, limit=100)}"
    return {
        "type": "AdaptiveCard",
        "$schema": cards.CARD_SCHEMA,
        "version": cards.CARD_VERSION,
        "body": [
            {
                "type": "TextBlock",
                "text": f"{label} {number} is now {_EVENT_WORDS.get(event, event)}",
                "wrap": True,
                "weight": "Bolder",
                "color": "Attention" if event == "cancelled" else "Default",
            },
            {"type": "TextBlock", "text": partner, "wrap": True, "isSubtle": True, "spacing": "None"},
        ],
    }


class _Card:
    """One card to send: the ledger rows it settles, and how to render it."""

    def __init__(
        self,
        destination: Destination,
        entries: list[Entry],
        render: Callable[[], dict],
        document: Mapping[str, Any],
    ) -> None:
        self.destination = destination
        self.entries = entries
        self.render = render
        self.document = document
        self.update_of: Entry | None = None  # the bot updates this card instead of posting
        self.previous: Entry | None = None  # the pending row of an interrupted send of this card


class TeamsSink(Sink):
    """Sends each document's cards (see the module documentation).

    :param routing: the routing rules.
    :param ledger: the sent-ledger (in the audit database).
    :param open_hook: ``(transport, conn_id) -> hook`` (:class:`TeamsWebhookHook` or :class:`TeamsBotHook`).
    :param partner_groups: ``CardCodes -> {CardCode: GroupCode}`` (one SAP call per page); ``None``
        when no rule needs them.
    :param invoice_numbers: ``(entity, DocEntries) -> {DocEntry: DocNum}`` (one SAP call per page
        and kind of invoice), so that a payment's card names the invoices it pays by number.
    :param on_close: called when the sink closes (the SAP hook of the look-ups).
    :param company: the names of the documents' SAP company (its connection id, its CompanyDB),
        for rules naming ``companies``.
    :param shown_company: the CompanyDB each card names, where several companies send cards;
        ``None``: cards name no company.
    """

    system = "teams"

    def __init__(
        self,
        routing: Routing,
        ledger: SentLedger,
        open_hook: Callable[[str, str], Any],
        partner_groups: Callable[[Sequence[str]], Mapping[str, int | None]] | None = None,
        on_close: Callable[[], None] | None = None,
        invoice_numbers: Callable[[str, Sequence[int]], Mapping[int, Any]] | None = None,
        company: Sequence[str | None] = (),
        shown_company: str | None = None,
    ) -> None:
        self.routing = routing
        self.company = tuple(company)
        self.shown_company = shown_company
        self.ledger = ledger
        self.open_hook = open_hook
        self.partner_groups = partner_groups
        self.on_close = on_close
        self.invoice_numbers = invoice_numbers
        self._numbers: dict[str, dict[int, Any]] = {}  # invoice entity -> DocEntry -> DocNum
        self._hooks: dict[tuple[str, str], Any] = {}
        self._groups: dict[str, int | None] = {}
        self._conversations: dict[str, str] = {}
        self._unreachable: dict[str, str] = {}  # destination key -> why (a user not found)
        self._digesting: set[str] = set()
        self._where: dict[Hashable, list[str]] = {}  # this page's documents: where they went
        self.cards_sent = 0
        self.updates = 0
        self.digests = 0
        self.recovered = 0
        self.repeated = 0  # webhook cards sent again after a pending row: maybe shown twice

    # -- the engine's side ---------------------------------------------------------------------

    def target_entity(self, stream: Stream) -> str:
        return "cards"

    def prepare(self, stream: Stream, records: Sequence[Any]) -> list[Item | Outcome]:
        prepared: list[Item | Outcome] = []
        for record in records:
            if not isinstance(record, Mapping) or record.get("DocEntry") is None:
                prepared.append(Outcome(None, Action.FAILED, "the record has no DocEntry"))
                continue
            state = {"events": events_of(stream.name, record), "total": record.get("DocTotal")}
            prepared.append(Item(record["DocEntry"], record, payload_hash(state)))
        return prepared

    def write(self, stream: Stream, items: Sequence[Item], page: PageCommit) -> Mapping[Hashable, Outcome]:
        kind = stream.name
        documents = {item.key: item.data for item in items}
        groups = self._groups_of(documents.values()) if self.partner_groups else {}
        if kind in PAYMENTS and self.invoice_numbers is not None:
            self._numbers_of(documents.values())
        ledger = self.ledger.entries(kind, documents)
        outcomes: dict[Hashable, Outcome] = {}
        failures: dict[Hashable, list[str]] = {}
        did: dict[Hashable, set[str]] = {}
        new_cards: dict[str, list[tuple[Hashable, _Card]]] = {}
        later: list[tuple[Hashable, _Card]] = []
        hashes = {item.key: item.payload_hash for item in items}
        self._where = {}
        for key, document in documents.items():
            group = groups.get(str(document.get("CardCode")))
            destinations = self.routing.route(kind, document, group, self.company)
            if not destinations:
                outcomes[key] = Outcome(key, Action.SKIPPED, "no routing rule matches", hashes[key])
                continue
            rows = [e for e in ledger.get(str(key), ())]
            for destination in destinations:
                mine = {e.event: e for e in rows if e.destination == destination.key}
                card, changes = self._plan(kind, key, document, destination, mine)
                if card is not None:
                    new_cards.setdefault(destination.key, []).append((key, card))
                later.extend((key, change) for change in changes)
        try:
            for destination_key, planned in new_cards.items():
                self._send_new(kind, destination_key, planned, did, failures)
            for key, change in later:
                self._deliver(change, key, did, failures, "updated")
        except (RetryableError, PermanentError) as exc:
            # What was settled keeps its trail (sent, refused, routed nowhere); the rest of the page
            # is read again by the next try, which the ledger keeps from sending anything twice.
            sent_so_far = dict(outcomes)
            for key in documents:
                if key in did or key in failures:
                    sent_so_far[key] = self._outcome(key, did, failures, hashes)
            raise PartialWrite(sent_so_far, exc) from exc
        for key in documents:
            if key not in outcomes:
                outcomes[key] = self._outcome(key, did, failures, hashes)
        return outcomes

    def hold(self, flow: str, stream: Stream) -> contextlib.AbstractContextManager[None]:
        """Two runs of one stream (a backfill beside the schedule) take turns: each would otherwise
        find no ledger row for the same new document and both would send its card."""

        def waiting() -> None:
            log.info("%s: another run is sending %s cards; waiting for it to finish.", stream.name, flow)

        return advisory_hold(self.ledger.connection(), f"{flow}:{stream.name}:teams", waiting=waiting)

    def finish(self, stream: Stream) -> str | None:
        parts = [f"{self.cards_sent} cards posted", f"{self.updates} updated or followed up"]
        if self.digests:
            parts.append(f"{self.digests} digests")
        if self.recovered:
            parts.append(f"{self.recovered} maybe-sent bot cards found already posted")
        if self.repeated:
            parts.append(
                f"{self.repeated} webhook cards sent again after an interrupted send (they may show twice)"
            )
        self.cards_sent = self.updates = self.digests = self.recovered = self.repeated = 0
        self._digesting.clear()
        return ", ".join(parts)

    def close(self) -> None:
        for hook in self._hooks.values():
            hook.close()
        self._hooks.clear()
        self.ledger.close()
        if self.on_close is not None:
            self.on_close()

    # -- planning ----------------------------------------------------------------------------------

    def _plan(
        self,
        kind: str,
        key: Hashable,
        document: Mapping[str, Any],
        destination: Destination,
        rows: dict[str, Entry],
    ) -> tuple[_Card | None, list[_Card]]:
        """What one destination still needs of one document: its first card, and cards (or updates)
        for events reached since."""
        events = events_of(kind, document)
        entry = str(key)
        first = rows.get(CREATED)
        if first is None or first.state == PENDING:
            marker = (
                first.marker if first is not None else self._marker(destination.key, kind, entry, CREATED)
            )
            entries = [
                Entry(destination.key, kind, entry, event, PENDING, "card", marker)
                for event in events
                if event == CREATED or event not in rows or rows[event].state == PENDING
            ]
            card = _Card(destination, entries, lambda: _marked(self._card(kind, document), marker), document)
            card.entries[0].attempts = (first.attempts + 1) if first is not None else 1
            card.previous = first
            return card, []
        reached = [e for e in events[1:] if e not in rows or rows[e].state == PENDING]
        if not reached:
            return None, []
        if destination.transport == "bot" and first.card == "card" and first.activity_id:
            # One update shows the document as it is now, every event reached since with it.
            update = _Card(
                destination,
                [
                    Entry(destination.key, kind, entry, event, PENDING, "update", first.marker)
                    for event in reached
                ],
                lambda: _marked(self._card(kind, document), first.marker),
                document,
            )
            update.update_of = first
            return None, [update]
        changes = []
        for event in reached:
            row = rows.get(event)
            marker = row.marker if row is not None else self._marker(destination.key, kind, entry, event)
            change = _Card(
                destination,
                [Entry(destination.key, kind, entry, event, PENDING, "followup", marker)],
                lambda event=event, marker=marker: _marked(
                    followup_card(kind, document, event, self.shown_company), marker
                ),
                document,
            )
            if row is not None:
                change.entries[0].attempts = row.attempts + 1
            changes.append(change)
        return None, changes

    def _send_new(
        self,
        kind: str,
        destination_key: str,
        planned: list[tuple[Hashable, _Card]],
        did: dict[Hashable, set[str]],
        failures: dict[Hashable, list[str]],
    ) -> None:
        """The first cards of one destination's documents: one each, or one digest for a flood."""
        maybe_sent = [(k, c) for k, c in planned if c.entries[0].attempts > 1]
        fresh = [(k, c) for k, c in planned if c.entries[0].attempts == 1]
        digests: dict[str, list[tuple[Hashable, _Card]]] = {}
        for key, card in maybe_sent:  # settled as they were sent: alone, or in their digest
            if card.previous is not None and card.previous.card == "digest":
                digests.setdefault(card.previous.marker, []).append((key, card))
            else:
                self._deliver(card, key, did, failures, "created")
        for marker, group in digests.items():
            self._send_digest(kind, group, did, failures, marker)
        if not fresh:
            return
        if len(fresh) > self.routing.digest_over or destination_key in self._digesting:
            self._digesting.add(destination_key)
            self._send_digest(kind, fresh, did, failures)
            return
        for key, card in fresh:
            self._deliver(card, key, did, failures, "created")

    def _send_digest(
        self,
        kind: str,
        planned: list[tuple[Hashable, _Card]],
        did: dict[Hashable, set[str]],
        failures: dict[Hashable, list[str]],
        marker: str | None = None,
    ) -> None:
        """One card listing these documents' first cards (``marker``: an interrupted digest's own)."""
        destination = planned[0][1].destination
        keys = [str(k) for k, _ in planned]
        marker = marker or self._marker(destination.key, kind, "digest", *keys)
        entries: list[Entry] = []
        for _, card in planned:
            for entry in card.entries:
                entry.card, entry.marker = "digest", marker
                entries.append(entry)
        rows = [card.document for _, card in planned]
        label = cards.DOCUMENT_KINDS.get(kind, kind)

        def render() -> dict[str, Any]:
            return _marked(
                cards.digest_card(
                    f"{len(rows)} new {label.lower()}s",
                    [(kind, document) for document in rows],
                    subtitle="More documents than one card each would be useful for",
                    company=self.shown_company,
                ),
                marker,
            )

        digest = _Card(destination, entries, render, {})
        keys_of = [k for k, _ in planned]
        try:
            self._send(digest)
        except CARD_ERRORS as exc:
            for key in keys_of:
                failures.setdefault(key, []).append(f"{destination}: {exc}")
            return
        self.digests += 1
        for key in keys_of:
            did.setdefault(key, set()).add("created")
            self._where.setdefault(key, []).append(f"{destination} (digest)")

    # -- sending -----------------------------------------------------------------------------------

    def _deliver(
        self,
        card: _Card,
        key: Hashable,
        did: dict[Hashable, set[str]],
        failures: dict[Hashable, list[str]],
        what: str,
    ) -> None:
        try:
            self._send(card)
        except CARD_ERRORS as exc:
            failures.setdefault(key, []).append(f"{card.destination}: {exc}")
            return
        did.setdefault(key, set()).add(what)
        self._where.setdefault(key, []).append(str(card.destination))

    def _send(self, card: _Card) -> None:
        """Send one card (or update one): ledger ``pending``, the call, ledger ``sent``."""
        destination = card.destination
        why = self._unreachable.get(destination.key)
        if why is not None:
            raise TeamsNotFoundError(why)
        hook = self._hook(destination)
        try:
            conversation = self._conversation(destination, hook)
        except CARD_ERRORS as exc:
            self._unreachable[destination.key] = str(exc)
            raise
        maybe_sent = card.entries[0].attempts > 1
        for entry in card.entries:
            entry.conversation_id = conversation
            entry.state = PENDING
        if maybe_sent and card.update_of is None:
            if destination.transport == "bot":
                found = self._find(hook, destination, conversation, card.entries[0].marker)
                if found is not None:
                    self._settle(card, found)
                    self.recovered += 1
                    log.info(
                        "A card for %s that an interrupted run may have posted was found posted (activity %s): "
                        "not posted again.",
                        destination,
                        found,
                    )
                    return
            else:
                self.repeated += 1
                log.warning(
                    "A card for %s may have been posted by an interrupted run (a webhook gives nothing to check): "
                    "posting it again; it may show twice.",
                    destination,
                )
        self.ledger.write(card.entries)
        message = card.render()
        try:
            if card.update_of is not None:
                where = card.update_of.conversation_id or conversation
                activity = hook.update(where, card.update_of.activity_id, message)
            elif destination.transport == "bot":
                activity = hook.send(conversation, message)
            else:
                hook.post_card(message)
                activity = None
        except CARD_ERRORS:
            # Refused: certainly not shown. Forget the rows, so that replay sends the card.
            self.ledger.forget(card.entries)
            raise
        if card.update_of is not None or card.entries[0].card == "followup":
            self.updates += 1
        else:
            self.cards_sent += 1
        self._settle(card, activity)

    def _settle(self, card: _Card, activity: str | None) -> None:
        for entry in card.entries:
            entry.state = SENT
            entry.activity_id = activity
        self.ledger.write(card.entries)

    def _find(self, hook: Any, destination: Destination, conversation: str | None, marker: str) -> str | None:
        """The activity id of a card carrying ``marker`` in the conversation, ``None`` when it is not
        there; raises a card error when the conversation cannot be read (nothing is posted then)."""
        finder = getattr(hook, "find_marked", None)
        if finder is None or conversation is None:
            raise TeamsNotFoundError(
                f"A card for {destination} may have been posted by an interrupted run and its conversation "
                "cannot be checked: not posted again. Settle the pending row of the sent-ledger by hand."
            )
        try:
            return finder(conversation, marker, team_id=destination.team)
        except CARD_ERRORS as exc:
            raise TeamsForbiddenError(
                f"A card for {destination} may have been posted by an interrupted run, and its conversation "
                f"cannot be read to check ({exc}): not posted again. Settle the pending row of the sent-ledger "
                "by hand, or give the app the permission to read it."
            ) from None

    def _hook(self, destination: Destination) -> Any:
        handle = (destination.transport, destination.conn_id)
        hook = self._hooks.get(handle)
        if hook is None:
            hook = self._hooks[handle] = self.open_hook(*handle)
        return hook

    def _conversation(self, destination: Destination, hook: Any) -> str | None:
        if destination.transport != "bot":
            return None
        if not destination.is_user:
            return destination.to
        found = self._conversations.get(destination.key)
        if found is None:
            found = self._conversations[destination.key] = hook.open_conversation(destination.to)
        return found

    # -- what one document became ----------------------------------------------------------------

    def _outcome(
        self,
        key: Hashable,
        did: dict[Hashable, set[str]],
        failures: dict[Hashable, list[str]],
        hashes: Mapping[Hashable, str | None],
    ) -> Outcome:
        errors = failures.get(key)
        if errors:
            sent = self._where.get(key)
            note = f" (sent to {', '.join(sent)})" if sent else ""
            return Outcome(key, Action.FAILED, "; ".join(errors)[:1500] + note, hashes.get(key))
        done = did.get(key, set())
        if "created" in done:
            return Outcome(key, Action.CREATED, None, hashes.get(key))
        if done:
            return Outcome(key, Action.UPDATED, None, hashes.get(key))
        return Outcome(key, Action.UNCHANGED, None, hashes.get(key))

    def _marker(self, *parts: str) -> str:
        """The marker of a card of this sink's company: another company's card of the same
        destination, document type and ``DocEntry`` carries another (the default company's are
        what they always were)."""
        company = self.ledger.company
        return marker_of(*parts) if company == DEFAULT_SAP_CONN_ID else marker_of(company, *parts)

    def _card(self, kind: str, document: Mapping[str, Any]) -> dict[str, Any]:
        """A document's card; a payment's names the invoices it pays by their numbers when known."""
        if kind not in PAYMENTS:
            return cards.document_card(kind, document, company=self.shown_company)
        numbers = {}
        for applied in document.get("PaymentInvoices") or ():
            entity = INVOICE_ENTITIES.get(applied.get("InvoiceType"))
            entry = applied.get("DocEntry")
            if entity and entry in self._numbers.get(entity, {}):
                numbers[entry] = self._numbers[entity][entry]
        return cards.document_card(kind, document, invoice_numbers=numbers, company=self.shown_company)

    def _numbers_of(self, payments: Any) -> None:
        wanted: dict[str, set[int]] = {}
        for payment in payments:
            for applied in payment.get("PaymentInvoices") or ():
                entity = INVOICE_ENTITIES.get(applied.get("InvoiceType"))
                entry = applied.get("DocEntry")
                if entity and isinstance(entry, int) and entry not in self._numbers.get(entity, {}):
                    wanted.setdefault(entity, set()).add(entry)
        for entity, entries in wanted.items():
            found = self.invoice_numbers(entity, sorted(entries))  # type: ignore[misc]
            self._numbers.setdefault(entity, {}).update(found)

    def _groups_of(self, documents: Any) -> dict[str, int | None]:
        codes = sorted({str(d.get("CardCode")) for d in documents if d.get("CardCode")} - set(self._groups))
        if codes:
            found = self.partner_groups(codes)  # type: ignore[misc]
            for code in codes:
                self._groups[code] = found.get(code)
        return self._groups
