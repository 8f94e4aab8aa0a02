"""Adaptive Cards (schema 1.4, what Workflows webhooks render) for SAP Business One documents and
for failed tasks.

Inputs are the plain dicts the Service Layer returns (``DocNum``, ``CardName``, ``DocTotal``,
``DocumentLines``, ``PaymentInvoices``...). Every value taken from SAP is shown as text: Adaptive
Cards render a Markdown subset in TextBlocks and facts, so :func:`escape` disarms it, and
amounts are formatted from :class:`~decimal.Decimal` (never through float arithmetic).

A card and the message around it must stay under about 28 KB: each builder measures the message
as the Teams hooks send it and, when too large, shows fewer lines (or digest entries) and says
how many were left out. Long single values are cut too, so a card always fits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_b1.hooks.teams.hook import CARD_TYPE, MAX_MESSAGE_BYTES

CARD_VERSION = "1.4"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
MAX_CARD_BYTES = MAX_MESSAGE_BYTES - 1_000
"""The largest message (as the hooks serialise it) a builder produces: under Teams' 28 KB with
room left for what a bot adds around an activity."""
DEFAULT_MAX_LINES = 20
DEFAULT_MAX_ENTRIES = 50
MAX_TEXT_CHARS = 300
"""Longest single value shown (a partner name, an item description); longer ones end in ``…``."""
MAX_ERROR_CHARS = 2_000

MISSING = "\u2013"
"""Shown for a value SAP did not give (an en dash)."""
_DASH = f" {MISSING} "

DOCUMENT_KINDS: dict[str, str] = {
    "PurchaseOrders": "Purchase order",
    "PurchaseInvoices": "Purchase invoice",
    "IncomingPayments": "Incoming payment",
    "VendorPayments": "Vendor payment",
}
"""Service Layer entity → the name shown on a card."""

_DOCUMENT_STATUS = {
    "bost_Open": "Open",
    "bost_Close": "Closed",
    "bost_Paid": "Paid",
    "bost_Delivered": "Delivered",
}
_INVOICE_TYPES = {"it_PurchaseInvoice": "Purchase invoice", "it_Invoice": "A/R invoice"}

# Markdown (and the card's {{DATE(...)}} functions) read these anywhere in a text...
_INLINE = re.compile(r"([\\`*_{}\[\]()<>~])")
# ...and these only at the start of a line: lists ("- ", "+ ", "1. ") and headings.
_LINE_START = re.compile(r"^(\s*)([-+=#])", re.MULTILINE)
_NUMBERED = re.compile(r"^(\s*\d+)\.", re.MULTILINE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"\s+")


def escape(value: Any, *, multiline: bool = False, limit: int = MAX_TEXT_CHARS) -> str:
    """``value`` as literal text for a TextBlock or a fact: Markdown-significant characters
    backslash-escaped, control characters dropped, at most ``limit`` characters (then ``…``).

    A one-line value (a name, a description) has its line breaks and runs of spaces collapsed to
    one space; a ``multiline`` one (an error) keeps its lines, blank lines dropped, each shown on
    a line of its own.
    """
    text = _CONTROL.sub("", "" if value is None else str(value))
    if multiline:
        lines = [
            _SPACES.sub(" ", line).strip()
            for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        ]
        text = "\n".join(line for line in lines if line)
    else:
        text = _SPACES.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    text = _INLINE.sub(r"\\\1", text)
    text = _LINE_START.sub(r"\1\\\2", text)
    text = _NUMBERED.sub(r"\1\\.", text)
    # Teams shows a single line break inside a paragraph as a space: separate lines as paragraphs.
    return text.replace("\n", "\n\n")


def decimal_of(value: Any) -> Decimal | None:
    """An SAP amount or quantity as a Decimal: a float through its shortest repr (``0.1`` stays
    ``0.1``), ints, strings and Decimals exactly; ``None`` when absent or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def format_amount(value: Any, currency: Any = None) -> str:
    """``1234.5, "EUR"`` → ``1,234.50 EUR``: two decimals at least, more when SAP has them, never
    rounded; the currency escaped. A missing amount shows as :data:`MISSING`."""
    number = decimal_of(value)
    if number is None:
        return MISSING
    exponent = number.as_tuple().exponent
    places = max(2, -exponent if isinstance(exponent, int) else 2)
    text = f"{number:,.{places}f}"
    if currency not in (None, ""):
        text = f"{text} {escape(currency, limit=10)}"
    return text


def format_quantity(value: Any) -> str:
    """A quantity without trailing zeros: ``3.000000`` → ``3``, ``2.5`` → ``2.5``."""
    number = decimal_of(value)
    if number is None:
        return MISSING
    if number == number.to_integral_value():
        return f"{number.quantize(Decimal(1)):,}"
    return f"{number.normalize():,f}"


def format_date(value: Any) -> str:
    """``2024-03-01T00:00:00Z`` → ``2024-03-01`` (the Service Layer's dates carry a midnight)."""
    if value in (None, ""):
        return MISSING
    text = str(value)
    if re.match(r"^\d{4}-\d{2}-\d{2}T00:00:00(\.0+)?(Z|[+-]00:?00)?$", text):
        text = text[:10]
    return escape(text, limit=40)


def document_status(document: Mapping[str, Any], *, payment: bool = False) -> str:
    """Cancelled, else the document's status (Open, Closed...); a payment not cancelled is Posted."""
    if document.get("Cancelled") in ("tYES", "Y", True):
        return "Cancelled"
    if payment:
        return "Posted"
    status = document.get("DocumentStatus")
    return _DOCUMENT_STATUS.get(status, escape(status, limit=40) if status else MISSING)


def payment_total(payment: Mapping[str, Any]) -> Decimal | None:
    """A payment's amount: ``DocTotal`` when given, else cash + transfer + checks + credit cards."""
    if payment.get("DocTotal") is not None:
        return decimal_of(payment["DocTotal"])
    parts = [decimal_of(payment.get("CashSum")), decimal_of(payment.get("TransferSum"))]
    parts += [decimal_of(c.get("CheckSum")) for c in payment.get("PaymentChecks") or []]
    parts += [decimal_of(c.get("CreditSum")) for c in payment.get("PaymentCreditCards") or []]
    known = [p for p in parts if p is not None]
    return sum(known, Decimal(0)) if known else None


def document_total(document: Mapping[str, Any]) -> Decimal | None:
    """A marketing document's total in its own currency (``DocCurrency``): SAP's ``DocTotal`` is in
    the company's local currency, so a foreign-currency document's total is ``DocTotalFc``."""
    foreign = decimal_of(document.get("DocTotalFc"))
    return foreign if foreign else decimal_of(document.get("DocTotal"))


def _line_total(line: Mapping[str, Any]) -> Any:
    """A line's total in the document's currency (``RowTotalFC`` on a foreign-currency document;
    ``LineTotal`` is in the local currency)."""
    foreign = decimal_of(line.get("RowTotalFC"))
    return foreign if foreign else line.get("LineTotal")


def message_bytes(card: Mapping[str, Any]) -> int:
    """The size of the message carrying ``card``, serialised as the Teams hooks send it."""
    return len(json.dumps(_message(card)).encode())


def _message(card: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_TYPE, "contentUrl": None, "content": card}],
    }


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA,
        "version": CARD_VERSION,
        "body": body,
    }
    if actions:
        card["actions"] = actions
    return card


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def _facts(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def _more(count: int, what: str) -> dict[str, Any]:
    noun = what if count == 1 else f"{what}s"
    return _text(f"and {count} more {noun}", isSubtle=True, spacing="Small")


def _open_url(title: str, url: str | None) -> dict[str, Any] | None:
    """An Action.OpenUrl to an http(s) URL; anything else (``javascript:``, blank) is refused."""
    if not url:
        return None
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{title}: a link must be an http(s) URL, not {str(url)[:40]!r}.")
    return {"type": "Action.OpenUrl", "title": title, "url": str(url)}


def submit_action(title: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """An Action.Submit button: pressed in a card a bot posted, Teams sends ``data`` to the bot
    (as the activity's ``value``). ``data`` is visible to the user: never put a secret in it."""
    action: dict[str, Any] = {"type": "Action.Submit", "title": escape(title, limit=60), "data": dict(data)}
    style = {"approve": "positive", "reject": "destructive"}.get(str(title).lower())
    if style:
        action["style"] = style
    return action


def _fit(render: Callable[[int], dict[str, Any]], wanted: int, max_bytes: int) -> dict[str, Any]:
    """``render(n)`` for the largest ``n <= wanted`` whose message fits in ``max_bytes``.

    :raises ValueError: when even ``render(0)`` is too large (every value is already cut short,
        so only a very small ``max_bytes`` gets here).
    """
    card = render(wanted)
    if message_bytes(card) <= max_bytes:
        return card
    low, high = 0, wanted - 1  # render(high + 1) is too large
    if message_bytes(render(0)) > max_bytes:
        raise ValueError(f"Even without lines the card is over {max_bytes} bytes.")
    while low < high:
        middle = (low + high + 1) // 2
        if message_bytes(render(middle)) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    return render(low)


def _partner(document: Mapping[str, Any]) -> str:
    name, code = document.get("CardName"), document.get("CardCode")
    if name and code:
        return f"{escape(name)} ({escape(code, limit=40)})"
    return escape(name or code or MISSING)


def _title(kind: str, document: Mapping[str, Any]) -> str:
    label = DOCUMENT_KINDS.get(kind, escape(kind, limit=60))
    number = document.get("DocNum", document.get("DocEntry"))
    return f"{label} {escape(number, limit=40)}" if number is not None else label


def _line_fact(line: Mapping[str, Any], currency: Any) -> tuple[str, str]:
    code, description = line.get("ItemCode"), line.get("ItemDescription")
    title = _DASH.join(escape(v, limit=120) for v in (code, description) if v not in (None, "")) or MISSING
    total = format_amount(_line_total(line), line.get("Currency") or currency)
    value = f"Qty {format_quantity(line.get('Quantity'))} · {total}"
    return title, value


def _document_card(
    kind: str,
    document: Mapping[str, Any],
    *,
    max_lines: int,
    max_bytes: int,
    url: str | None,
    invoice_numbers: Mapping[Any, Any] | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    payment = kind in ("IncomingPayments", "VendorPayments")
    currency = document.get("DocCurrency")
    amount = payment_total(document) if payment else document_total(document)
    facts = [("Company", escape(company, limit=100))] if company else []
    facts += [("Partner", _partner(document)), ("Amount", format_amount(amount, currency))]
    facts.append(("Date", format_date(document.get("DocDate"))))
    if not payment or document.get("DocDueDate") or document.get("DueDate"):
        facts.append(("Due", format_date(document.get("DocDueDate") or document.get("DueDate"))))
    facts.append(("Status", document_status(document, payment=payment)))
    if payment:
        rows = [
            (_invoice_title(p, invoice_numbers), format_amount(p.get("SumApplied"), currency))
            for p in document.get("PaymentInvoices") or []
        ]
        heading, what = "Pays", "invoice"
    else:
        rows = [_line_fact(line, currency) for line in document.get("DocumentLines") or []]
        heading, what = "Lines", "line"
    status = facts[-1][1]
    header = [
        _text(_title(kind, document), weight="Bolder", size="Medium"),
        _facts(facts),
    ]
    if status == "Cancelled":
        header.insert(1, _text("Cancelled", color="Attention", weight="Bolder", spacing="None"))
    action = _open_url("Open", url)

    def render(shown: int) -> dict[str, Any]:
        body = list(header)
        if rows:
            body.append(_text(f"{heading} ({len(rows)})", weight="Bolder", separator=True))
            if shown:
                body.append(_facts(rows[:shown]))
            if len(rows) > shown:
                body.append(_more(len(rows) - shown, what))
        return _card(body, [action] if action else None)

    return _fit(render, min(max_lines, len(rows)), max_bytes)


def _invoice_title(applied: Mapping[str, Any], numbers: Mapping[Any, Any] | None) -> str:
    entry = applied.get("DocEntry")
    label = _INVOICE_TYPES.get(applied.get("InvoiceType"), "Invoice")
    if numbers and entry in numbers:
        return f"{label} {escape(numbers[entry], limit=40)}"
    return f"{label} (entry {escape(entry, limit=40)})"


def purchase_order_card(
    order: Mapping[str, Any],
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = MAX_CARD_BYTES,
    url: str | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """A purchase order: number, vendor, total, dates, status and up to ``max_lines`` lines (item,
    description, quantity, line total), then "and K more lines"; ``url`` adds an Open button;
    ``company`` (a CompanyDB) is shown first, where several SAP companies send cards."""
    return _document_card(
        "PurchaseOrders", order, max_lines=max_lines, max_bytes=max_bytes, url=url, company=company
    )


def purchase_invoice_card(
    invoice: Mapping[str, Any],
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = MAX_CARD_BYTES,
    url: str | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """A purchase invoice, shown like a purchase order (its due date is when it must be paid)."""
    return _document_card(
        "PurchaseInvoices", invoice, max_lines=max_lines, max_bytes=max_bytes, url=url, company=company
    )


def incoming_payment_card(
    payment: Mapping[str, Any],
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = MAX_CARD_BYTES,
    url: str | None = None,
    invoice_numbers: Mapping[Any, Any] | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """An incoming payment: number, customer, amount (``DocTotal``, else cash + transfer + checks
    + cards), date, status and the invoices it pays with the sum applied to each.

    :param invoice_numbers: ``DocEntry → DocNum`` of the paid invoices, when known (a payment
        names them by ``DocEntry`` only).
    """
    return _document_card(
        "IncomingPayments",
        payment,
        max_lines=max_lines,
        max_bytes=max_bytes,
        url=url,
        invoice_numbers=invoice_numbers,
        company=company,
    )


def vendor_payment_card(
    payment: Mapping[str, Any],
    *,
    max_lines: int = DEFAULT_MAX_LINES,
    max_bytes: int = MAX_CARD_BYTES,
    url: str | None = None,
    invoice_numbers: Mapping[Any, Any] | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """A vendor payment, shown like an incoming payment (the purchase invoices it pays)."""
    return _document_card(
        "VendorPayments",
        payment,
        max_lines=max_lines,
        max_bytes=max_bytes,
        url=url,
        invoice_numbers=invoice_numbers,
        company=company,
    )


CARD_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "PurchaseOrders": purchase_order_card,
    "PurchaseInvoices": purchase_invoice_card,
    "IncomingPayments": incoming_payment_card,
    "VendorPayments": vendor_payment_card,
}


def document_card(kind: str, document: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """The card of a ``kind`` (a Service Layer entity: ``PurchaseOrders``...) of document."""
    try:
        builder = CARD_BUILDERS[kind]
    except KeyError:
        raise ValueError(f"No card for {kind!r} documents; known: {', '.join(CARD_BUILDERS)}.") from None
    return builder(document, **options)


def digest_card(
    title: str,
    entries: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    subtitle: str | None = None,
    max_entries: int = DEFAULT_MAX_ENTRIES,
    max_bytes: int = MAX_CARD_BYTES,
    url: str | None = None,
    company: str | None = None,
) -> dict[str, Any]:
    """One card listing many documents for one destination: a title, the count and totals per
    currency, then one row per document (kind and number, partner, amount, status) up to
    ``max_entries`` and what fits, then "and K more documents". ``company`` (a CompanyDB) names
    the SAP company the documents are in, where several send cards.

    :param entries: ``(kind, document)`` pairs, ``kind`` a Service Layer entity
        (``PurchaseOrders``, ``PurchaseInvoices``, ``IncomingPayments``, ``VendorPayments``).
    """
    rows: list[tuple[str, str]] = []
    totals: dict[str, Decimal] = {}
    for kind, document in entries:
        payment = kind in ("IncomingPayments", "VendorPayments")
        amount = payment_total(document) if payment else document_total(document)
        currency = document.get("DocCurrency")
        status = document_status(document, payment=payment)
        if amount is not None and status != "Cancelled":
            key = str(currency or "")
            totals[key] = totals.get(key, Decimal(0)) + amount
        rows.append(
            (
                _title(kind, document),
                f"{_partner(document)} · {format_amount(amount, currency)} · {status}",
            )
        )
    summary = f"{len(rows)} document" + ("" if len(rows) == 1 else "s")
    if totals:
        summary += ": " + ", ".join(format_amount(v, k or None) for k, v in sorted(totals.items()))
    header = [_text(escape(title, limit=200), weight="Bolder", size="Medium")]
    if subtitle:
        header.append(_text(escape(subtitle, limit=200), isSubtle=True, spacing="None"))
    header.append(_text(summary, spacing="Small"))
    if company:
        header.append(_facts([("Company", escape(company, limit=100))]))
    action = _open_url("Open", url)

    def render(shown: int) -> dict[str, Any]:
        body = list(header)
        if shown:
            body.append(_facts(rows[:shown]) | {"separator": True})
        if len(rows) > shown:
            body.append(_more(len(rows) - shown, "document"))
        return _card(body, [action] if action else None)

    return _fit(render, min(max_entries, len(rows)), max_bytes)


def failure_card(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    try_number: int | None,
    log_url: str,
    error: Any = None,
    max_tries: int | None = None,
    hitl_url: str | None = None,
    max_bytes: int = MAX_CARD_BYTES,
) -> dict[str, Any]:
    """An alert for a failed task: DAG, task, run and try, the error (cut to fit), a "View log"
    button and, when a human must act, a "Required actions" button to the HITL page."""
    tries = MISSING if try_number is None else str(try_number)
    if try_number is not None and max_tries is not None:
        tries = f"{try_number} of {max_tries}"
    facts = [
        ("DAG", escape(dag_id, limit=250)),
        ("Task", escape(task_id, limit=250)),
        ("Run", escape(run_id, limit=250)),
        ("Try", tries),
    ]
    actions = [a for a in (_open_url("View log", log_url), _open_url("Required actions", hitl_url)) if a]
    if not actions or actions[0]["title"] != "View log":
        raise ValueError("A failure card needs the task's log URL.")
    heading = _text(
        f"Task failed: {escape(task_id, limit=250)}", weight="Bolder", size="Medium", color="Attention"
    )
    message = escape(error, multiline=True, limit=MAX_ERROR_CHARS) if error not in (None, "") else ""

    def render(chars: int) -> dict[str, Any]:
        body = [heading, _facts(facts)]
        if message:
            shown = message if chars >= len(message) else message[:chars].rstrip("\\\n") + "…"
            body.append(_text(shown, fontType="Monospace", size="Small", separator=True))
        return _card(body, actions)

    return _fit(render, len(message), max_bytes)


def failure_card_from_context(context: Mapping[str, Any], *, hitl_url: str | None = None) -> dict[str, Any]:
    """:func:`failure_card` from an Airflow task's context (an ``on_failure_callback``'s)."""
    ti = context["ti"]
    return failure_card(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        run_id=ti.run_id,
        try_number=getattr(ti, "try_number", None),
        max_tries=getattr(ti, "max_tries", None),
        log_url=ti.log_url,
        error=context.get("exception"),
        hitl_url=hitl_url,
    )


def notice_card(
    title: str,
    facts: Sequence[tuple[str, Any]],
    *,
    text: Any = None,
    note: Any = None,
    color: str | None = None,
    links: Sequence[tuple[str, str | None]] = (),
    max_bytes: int = MAX_CARD_BYTES,
    submits: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> dict[str, Any]:
    """A short notice: a title, facts, an optional text (cut to fit) and a note, with link
    buttons. Every title, fact and text is shown as literal text (:func:`escape`).

    What task notifications and approval requests post: a task that succeeded, a human asked to
    act, a request withdrawn or decided.

    :param facts: ``(label, value)`` pairs; a ``None`` value is shown as :data:`MISSING`.
    :param color: of the title (``Attention``, ``Good``, ``Warning``...).
    :param links: ``(button title, http(s) URL)``; a ``None`` URL leaves its button out.
    :param submits: ``(button title, data)`` of :func:`submit_action` buttons, shown first
        (only a bot's cards can take them: a Workflows webhook cannot call back).
    """
    style: dict[str, Any] = {"weight": "Bolder", "size": "Medium"}
    if color:
        style["color"] = color
    heading = _text(escape(title, limit=250), **style)
    shown_facts = _facts(
        (escape(label, limit=60), MISSING if value is None else escape(value, limit=250))
        for label, value in facts
    )
    actions = [submit_action(label, data) for label, data in submits]
    actions += [a for a in (_open_url(label, url) for label, url in links) if a]
    message = escape(text, multiline=True, limit=MAX_ERROR_CHARS) if text not in (None, "") else ""
    footer = (
        _text(escape(note, multiline=True), isSubtle=True, separator=True) if note not in (None, "") else None
    )

    def render(chars: int) -> dict[str, Any]:
        body = [heading, shown_facts]
        if message:
            shown = message if chars >= len(message) else message[:chars].rstrip("\\\n") + "…"
            body.append(_text(shown, separator=True))
        if footer:
            body.append(footer)
        return _card(body, actions or None)

    return _fit(render, len(message), max_bytes)
