"""Which Teams channels and people hear of which SAP documents: the routing rules, declared once.

The rules are a document (YAML or JSON, in a file beside the DAG or an Airflow Variable named
``var:<key>``), checked as a whole when it is read, every problem named at once::

    digest_over: 20                 # more new cards than this for one destination: a digest (below)
    connections:                    # defaults of the destinations below
      webhook: b1_teams_webhook_default
      bot: b1_teams_bot_default
    rules:
      - name: large purchase orders
        documents: [PurchaseOrders, PurchaseInvoices]
        amount: {min: 10000, max: null, in: local}   # or "document" (its own currency)
        partner_groups: [101]                         # the partner's GroupCode
        branches: [1]                                 # BPLID (BPL_IDAssignedToInvoice on documents)
        profit_centres: [CC01]                        # any line's CostingCode
        companies: [sap_b1_eu]                        # the SAP company: connection id or CompanyDB
        to:
          - webhook: b1_teams_webhook_default         # the channel of a Workflows webhook
          - channel: "19:...@thread.tacv2"            # a channel, through the bot (team: its team id)
          - user: ada@contoso.example                 # a 1:1 chat, through the bot (UPN or e-mail)

A rule without a condition matches every document of its kinds; ``documents`` omitted means all
four kinds. A document goes to the union of the destinations of every rule it matches, each once.

``companies`` matters where the DAG runs for several SAP companies (``B1_TEAMS_COMPANIES``): a
rule naming them matches only documents of those companies, each named by its SAP connection id
(``sap_b1_eu``) or its CompanyDB (``SBODEMOEU``; either way without regard to case). A rule
without ``companies`` matches the documents of every company.

A **digest**: when a page a run reads (up to the flow's ``page_size`` documents, 200 by default)
holds more than ``digest_over`` new documents for one destination, they go there as one digest
card, and so does every later new document of that run for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.teams.cards import DOCUMENT_KINDS, decimal_of, payment_total
from airflow_provider_b1.utils.documents import read_document

DEFAULT_WEBHOOK_CONN_ID = "b1_teams_webhook_default"
DEFAULT_BOT_CONN_ID = "b1_teams_bot_default"
DEFAULT_DIGEST_OVER = 20
PAYMENTS = ("IncomingPayments", "VendorPayments")

_TOP = {"digest_over", "connections", "rules"}
_RULE = {"name", "documents", "amount", "partner_groups", "branches", "profit_centres", "companies", "to"}
_AMOUNT = {"min", "max", "in"}
_DESTINATION = {"webhook", "channel", "user", "bot", "team"}


class RoutingError(PermanentError, ValueError):
    """The routing rules cannot be used; the message names every problem and where it is."""


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a card goes.

    :param transport: ``webhook`` (a Workflows webhook's channel) or ``bot``.
    :param conn_id: the Airflow connection of that transport.
    :param to: for the bot, a channel's conversation id or a user's UPN / e-mail (lower case);
        ``None`` for a webhook.
    :param team: for a bot's channel, the id of its team (Graph's group id): with it, a card an
        interrupted run may have posted is looked for in the channel instead of being left unsent.
    """

    transport: str
    conn_id: str
    to: str | None = None
    team: str | None = dataclasses.field(default=None, compare=False)

    @property
    def key(self) -> str:
        """The destination as the sent-ledger names it (stable across runs)."""
        if self.transport == "webhook":
            return f"webhook:{self.conn_id}"
        return f"bot:{self.conn_id}:{self.to}"

    @property
    def is_user(self) -> bool:
        return self.transport == "bot" and not str(self.to).startswith(("19:", "a:", "29:"))

    def __str__(self) -> str:
        if self.transport == "webhook":
            return f"the webhook {self.conn_id}"
        return f"{'user' if self.is_user else 'conversation'} {self.to} (bot {self.conn_id})"


@dataclasses.dataclass(frozen=True)
class Rule:
    """One routing rule; see the module documentation for its keys."""

    name: str
    documents: frozenset[str]
    destinations: tuple[Destination, ...]
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    amount_in: str = "local"
    partner_groups: frozenset[int] | None = None
    branches: frozenset[int] | None = None
    profit_centres: frozenset[str] | None = None
    companies: frozenset[str] | None = None  # case-folded connection ids and CompanyDBs

    def matches(
        self,
        kind: str,
        document: Mapping[str, Any],
        group_code: int | None,
        company: Iterable[str | None] = (),
    ) -> bool:
        """Whether a ``kind`` document (its partner in group ``group_code``, of the SAP company
        named by ``company``: its connection id and CompanyDB) is for this rule."""
        if kind not in self.documents:
            return False
        if self.companies is not None and not self.companies & {str(n).casefold() for n in company if n}:
            return False
        if self.min_amount is not None or self.max_amount is not None:
            amount = amount_of(kind, document, self.amount_in)
            if amount is None:
                return False
            if self.min_amount is not None and amount < self.min_amount:
                return False
            if self.max_amount is not None and amount > self.max_amount:
                return False
        if self.partner_groups is not None and group_code not in self.partner_groups:
            return False
        if self.branches is not None and branch_of(document) not in self.branches:
            return False
        return self.profit_centres is None or bool(profit_centres_of(document) & self.profit_centres)

    @property
    def needs_partner_group(self) -> bool:
        return self.partner_groups is not None


@dataclasses.dataclass(frozen=True)
class Routing:
    """The rules, the digest threshold and where they came from."""

    rules: tuple[Rule, ...]
    digest_over: int = DEFAULT_DIGEST_OVER
    where: str = "routing rules"

    def route(
        self,
        kind: str,
        document: Mapping[str, Any],
        group_code: int | None = None,
        company: Iterable[str | None] = (),
    ) -> list[Destination]:
        """The destinations of one document, each once, in rule order.

        :param company: the names of the document's SAP company (its connection id, its
            CompanyDB), for rules naming ``companies``.
        """
        found: dict[str, Destination] = {}
        for rule in self.rules:
            if rule.matches(kind, document, group_code, company):
                for destination in rule.destinations:
                    found.setdefault(destination.key, destination)
        return list(found.values())

    @property
    def needs_partner_groups(self) -> bool:
        """Whether any rule asks for the partner's group (then partners are looked up in SAP)."""
        return any(rule.needs_partner_group for rule in self.rules)

    @property
    def destinations(self) -> list[Destination]:
        """Every destination any rule names, each once."""
        found: dict[str, Destination] = {}
        for rule in self.rules:
            for destination in rule.destinations:
                found.setdefault(destination.key, destination)
        return list(found.values())


# -- what the rules read from a document ---------------------------------------------------------


def amount_of(kind: str, document: Mapping[str, Any], currency: str = "local") -> Decimal | None:
    """A document's total: ``local`` is SAP's ``DocTotal`` (local currency); ``document`` is its own
    currency's (``DocTotalFc`` for a foreign-currency document). Payments: their total as the
    cards show it."""
    if kind in PAYMENTS:
        return payment_total(document)
    if currency == "document":
        foreign = decimal_of(document.get("DocTotalFc"))
        if foreign:
            return foreign
    return decimal_of(document.get("DocTotal"))


def branch_of(document: Mapping[str, Any]) -> int | None:
    """The document's branch: ``BPL_IDAssignedToInvoice`` on marketing documents, ``BPLID`` on payments."""
    for name in ("BPL_IDAssignedToInvoice", "BPLID"):
        value = document.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def profit_centres_of(document: Mapping[str, Any]) -> frozenset[str]:
    """The profit centres (first dimension, ``CostingCode``) of a document's lines."""
    return frozenset(
        str(line["CostingCode"])
        for line in document.get("DocumentLines") or ()
        if isinstance(line, Mapping) and line.get("CostingCode") not in (None, "")
    )


#: What a document must be read with for the rules and cards (besides its key and stamps).
FIELDS_READ = (
    "DocEntry",
    "DocNum",
    "DocDate",
    "DocDueDate",
    "CardCode",
    "CardName",
    "DocTotal",
    "DocTotalFc",
    "DocCurrency",
    "DocumentStatus",
    "Cancelled",
    "AuthorizationStatus",
    "BPL_IDAssignedToInvoice",
    "DocumentLines",
)
PAYMENT_FIELDS_READ = (
    "DocEntry",
    "DocNum",
    "DocDate",
    "DueDate",
    "CardCode",
    "CardName",
    "DocCurrency",
    "CashSum",
    "TransferSum",
    "PaymentChecks",
    "PaymentCreditCards",
    "Cancelled",
    "AuthorizationStatus",
    "BPLID",
    "PaymentInvoices",
)


# -- reading and checking -------------------------------------------------------------------------


def load_routing(source: str | Path | Mapping[str, Any]) -> Routing:
    """The routing rules from a document, a file (``.yaml``, ``.json``) or ``var:<Variable key>``.

    :raises RoutingError: naming every problem at once.
    """
    if isinstance(source, Mapping):
        return parse_routing(source)
    document, where = read_document(source, RoutingError)
    return parse_routing(document, where=where.replace("mapping file", "routing file"))


def parse_routing(document: Any, *, where: str = "routing rules") -> Routing:
    """Check a parsed document and build the :class:`Routing`.

    :raises RoutingError: naming every problem at once.
    """
    problems: list[str] = []
    if not isinstance(document, Mapping):
        raise RoutingError(f"{where}: expected a mapping with 'rules', not {type(document).__name__}.")
    _unknown(document, _TOP, "", problems)
    digest_over = document.get("digest_over", DEFAULT_DIGEST_OVER)
    if not isinstance(digest_over, int) or isinstance(digest_over, bool) or digest_over < 1:
        problems.append(f"digest_over must be a whole number of at least 1, not {digest_over!r}")
        digest_over = DEFAULT_DIGEST_OVER
    connections = document.get("connections") or {}
    if not isinstance(connections, Mapping):
        problems.append("connections must be a mapping {webhook: <conn id>, bot: <conn id>}")
        connections = {}
    _unknown(connections, {"webhook", "bot"}, "connections.", problems)
    defaults = {
        "webhook": str(connections.get("webhook") or DEFAULT_WEBHOOK_CONN_ID),
        "bot": str(connections.get("bot") or DEFAULT_BOT_CONN_ID),
    }
    raw_rules = document.get("rules")
    rules: list[Rule] = []
    if not isinstance(raw_rules, list) or not raw_rules:
        problems.append("rules must be a non-empty list")
        raw_rules = []
    names: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _rule(raw, index, defaults, problems)
        if rule is None:
            continue
        if rule.name in names:
            problems.append(f"rules[{index}]: the name {rule.name!r} is used by an earlier rule")
        names.add(rule.name)
        rules.append(rule)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise RoutingError(
            f"{where} has {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n{listed}"
        )
    return Routing(tuple(rules), digest_over, where)


def _unknown(section: Mapping[str, Any], known: set[str], prefix: str, problems: list[str]) -> None:
    for key in section:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown key (known: {', '.join(sorted(known))})")


def _rule(raw: Any, index: int, defaults: Mapping[str, str], problems: list[str]) -> Rule | None:
    where = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: a rule is a mapping, not {type(raw).__name__}")
        return None
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        problems.append(f"{where}.name must be text")
        name = None
    name = name or f"rule {index + 1}"
    where = f"rules[{index}] ({name})"
    before = len(problems)
    _unknown(raw, _RULE, f"{where}.", problems)
    documents = _documents(raw.get("documents"), where, problems)
    low, high, currency = _amount(raw.get("amount"), where, problems)
    groups = _numbers(raw.get("partner_groups"), f"{where}.partner_groups", problems)
    branches = _numbers(raw.get("branches"), f"{where}.branches", problems)
    centres = _texts(raw.get("profit_centres"), f"{where}.profit_centres", problems)
    companies = _companies(raw.get("companies"), f"{where}.companies", problems)
    destinations = _destinations(raw.get("to"), where, defaults, problems)
    if len(problems) > before:
        return None
    return Rule(
        name=name,
        documents=documents,
        destinations=destinations,
        min_amount=low,
        max_amount=high,
        amount_in=currency,
        partner_groups=groups,
        branches=branches,
        profit_centres=centres,
        companies=companies,
    )


def _documents(value: Any, where: str, problems: list[str]) -> frozenset[str]:
    if value is None:
        return frozenset(DOCUMENT_KINDS)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        problems.append(f"{where}.documents must be a list of {', '.join(DOCUMENT_KINDS)}")
        return frozenset()
    unknown = [v for v in items if v not in DOCUMENT_KINDS]
    if unknown:
        problems.append(f"{where}.documents: unknown {unknown!r}; known: {', '.join(DOCUMENT_KINDS)}")
    return frozenset(v for v in items if v in DOCUMENT_KINDS)


def _amount(value: Any, where: str, problems: list[str]) -> tuple[Decimal | None, Decimal | None, str]:
    if value is None:
        return None, None, "local"
    if not isinstance(value, Mapping):
        problems.append(f"{where}.amount must be a mapping {{min, max, in}}")
        return None, None, "local"
    _unknown(value, _AMOUNT, f"{where}.amount.", problems)
    bounds: list[Decimal | None] = []
    for key in ("min", "max"):
        raw = value.get(key)
        number = None if raw is None or isinstance(raw, bool) else decimal_of(raw)
        if raw is not None and number is None:
            problems.append(f"{where}.amount.{key} must be a number, not {raw!r}")
        bounds.append(number)
    low, high = bounds
    if low is None and high is None and not problems:
        problems.append(f"{where}.amount names neither min nor max")
    if low is not None and high is not None and low > high:
        problems.append(f"{where}.amount: min {low} is above max {high}")
    currency = value.get("in", "local")
    if currency not in ("local", "document"):
        problems.append(f"{where}.amount.in must be 'local' or 'document', not {currency!r}")
        currency = "local"
    return low, high, currency


def _numbers(value: Any, where: str, problems: list[str]) -> frozenset[int] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    found = set()
    for item in items:
        if (
            isinstance(item, bool)
            or not isinstance(item, (int, str))
            or not str(item).strip().lstrip("-").isdigit()
        ):
            problems.append(f"{where}: {item!r} is not a whole number")
            continue
        found.add(int(item))
    if not found and not problems:
        problems.append(f"{where} is empty (leave it out to match any)")
    return frozenset(found)


def _texts(value: Any, where: str, problems: list[str]) -> frozenset[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    texts = [str(item).strip() for item in items if isinstance(item, (str, int)) and str(item).strip()]
    if len(texts) != len(items) or not texts:
        problems.append(f"{where} must be a list of codes")
    return frozenset(texts)


def _companies(value: Any, where: str, problems: list[str]) -> frozenset[str] | None:
    """SAP companies, each a connection id or a CompanyDB: names of letters, digits, ``_``, ``-``
    and ``.`` (what both are made of), compared without regard to case."""
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    names = []
    for item in items:
        name = item.strip() if isinstance(item, str) else ""
        if not name or not name.replace("_", "").replace("-", "").replace(".", "").isalnum():
            problems.append(
                f"{where}: {item!r} is not a SAP company; name it by its SAP connection id (sap_b1_eu) "
                "or its CompanyDB (SBODEMOEU)"
            )
            continue
        names.append(name.casefold())
    if not items:
        problems.append(f"{where} is empty (leave it out to match every company)")
    return frozenset(names)


def _destinations(
    value: Any, where: str, defaults: Mapping[str, str], problems: list[str]
) -> tuple[Destination, ...]:
    if not isinstance(value, list) or not value:
        problems.append(f"{where}.to must list at least one destination (webhook, channel or user)")
        return ()
    found: list[Destination] = []
    for position, raw in enumerate(value):
        at = f"{where}.to[{position}]"
        if isinstance(raw, str):
            raw = {"user": raw} if "@" in raw else {"channel": raw}
        if not isinstance(raw, Mapping):
            problems.append(f"{at}: expected {{webhook: <conn id>}}, {{channel: <id>}} or {{user: <e-mail>}}")
            continue
        _unknown(raw, _DESTINATION, f"{at}.", problems)
        kinds = [k for k in ("webhook", "channel", "user") if k in raw]
        if len(kinds) != 1:
            problems.append(f"{at}: name exactly one of webhook, channel or user (found {kinds or 'none'})")
            continue
        kind = kinds[0]
        target = raw[kind]
        if kind == "webhook":
            if "bot" in raw:
                problems.append(f"{at}: a webhook destination takes no bot connection")
            conn_id = defaults["webhook"] if target in (None, True, "") else target
            if not isinstance(conn_id, str) or not conn_id.strip():
                problems.append(f"{at}.webhook must be a connection id")
                continue
            found.append(Destination("webhook", conn_id.strip()))
            continue
        bot = raw.get("bot") or defaults["bot"]
        if not isinstance(bot, str) or not bot.strip():
            problems.append(f"{at}.bot must be a connection id")
            continue
        if not isinstance(target, str) or not target.strip():
            problems.append(f"{at}.{kind} must be text")
            continue
        target = target.strip()
        if kind == "channel" and not target.startswith("19:"):
            problems.append(f"{at}.channel: {target!r} is not a channel's conversation id (19:...)")
            continue
        team = raw.get("team")
        if team is not None and (kind != "channel" or not isinstance(team, str) or not team.strip()):
            problems.append(f"{at}.team: only a channel names its team, as the team's id")
            continue
        if kind == "user":
            if "@" not in target and not _looks_like_id(target):
                problems.append(f"{at}.user: {target!r} is neither an e-mail / UPN nor an object id")
                continue
            target = target.lower()
        found.append(Destination("bot", bot.strip(), target, team.strip() if team else None))
    return tuple(found)


def _looks_like_id(text: str) -> bool:
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12]


def describe(routing: Routing) -> Iterable[str]:
    """One line per rule, for logs."""
    for rule in routing.rules:
        targets = ", ".join(str(d) for d in rule.destinations)
        yield f"{rule.name}: {', '.join(sorted(rule.documents))} -> {targets}"


__all__: Sequence[str] = [
    "Destination",
    "Routing",
    "RoutingError",
    "Rule",
    "amount_of",
    "branch_of",
    "load_routing",
    "parse_routing",
    "profit_centres_of",
]
