"""How ServiceTitan's records become SAP Business One's: the one place a company declares it.

A mapping is a JSON or YAML document (a file, or an Airflow Variable holding it), read and checked
when the DAG is parsed, so a typo fails the DAG import with its name instead of failing every
record at run time::

    card_code: "ST{id}"              # code of a partner created for a ServiceTitan customer
    link_field: U_ST_CustomerId      # optional: existing SAP partners carrying the customer id
    seed_csv: /opt/b1/customers.csv  # optional: customer_id,CardCode pairs linked up front
    invoice_id_field: NumAtCard      # where an invoice's ServiceTitan id goes (or a U_ field)
    gl_accounts:                     # ServiceTitan GL account number -> SAP AccountCode
      "4000": "410000"
      "4100": "411000"
    business_units:                  # business unit name (or id) -> SAP profit centre
      "HVAC Service": "PC1"
    tax_code: EX                     # SAP tax code of every line (the sales tax is a line of its own)
    sales_tax_account: "220000"      # SAP account of that sales-tax line
    payment_types:                   # payment type -> cash or transfer account
      Cash: {cash: "111000"}
      Check: {transfer: "112000"}
      Credit Card: {transfer: "113000"}
    changed_after_posting: fail      # or credit_and_repost (see below)
    credit_memo_lines: base_document # or copy: how a credit memo names what it credits

``changed_after_posting`` says what becomes of an invoice ServiceTitan changed after SAP posted
it (a posted invoice's amounts are frozen in SAP): ``fail`` (the default) fails it, naming both
totals, for a correction by hand; ``credit_and_repost`` posts an A/R credit memo for the posted
invoice, then a new invoice with the new amounts (see
:class:`~airflow_provider_b1.servicetitan.sink.SapReceivablesSink`). ``credit_memo_lines``:
``base_document`` (the default) bases each credit memo line on the invoice's line (``BaseType``
13, ``BaseEntry``, ``BaseLine``), so SAP closes the invoice against it; ``copy`` sends a copy of
the invoice's lines instead, for an installation that refuses based lines through the Service
Layer (the two stay open side by side, and offset in the partner's balance).

An invoice naming a GL account, business unit or payment type the mapping lacks fails alone,
naming it; the rest of its page goes on.

**Several SAP companies** (``B1_SERVICETITAN_COMPANIES``) each have their own chart of accounts,
profit centres and tax codes. The document's ``companies`` section gives a company its own value
of any key above, by the company's SAP connection id or its CompanyDB::

    companies:
      sap_b1_eu:                     # or SBODEMOEU, the CompanyDB its connection logs into
        gl_accounts: {"4000": "422001", "4100": "412001"}
        tax_code: B1
        sales_tax_account: "212001"

A key a company names replaces the shared key wholesale: ``sap_b1_eu`` above gets exactly its two
GL accounts (an invoice booked to another fails as unmapped, never falling back to the shared
account codes of another company's chart), and the shared value of every key it does not name
(business units, payment types...). A section named by the connection id wins over one named by
the CompanyDB. Each section is checked with the shared mapping when the DAG is parsed
(:func:`check_mappings`; its errors name ``companies.<name>.<key>``), and where the DAG declares
its companies, a section naming none of them is an error (a typo would otherwise leave the company
on the shared accounts); unset, a file shared by several deployments may name companies of others.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.utils.documents import read_document

_FIELD = re.compile(r"^(NumAtCard|U_[A-Za-z0-9_]{1,48})$")
_KEYS = {
    "card_code",
    "link_field",
    "seed_csv",
    "invoice_id_field",
    "gl_accounts",
    "business_units",
    "tax_code",
    "sales_tax_account",
    "payment_types",
    "changed_after_posting",
    "credit_memo_lines",
}
#: The section giving companies their own values of the keys above.
COMPANIES = "companies"
CHANGED_AFTER_POSTING = ("fail", "credit_and_repost")
CREDIT_MEMO_LINES = ("base_document", "copy")


class MappingError(PermanentError, ValueError):
    """The mapping document is wrong; the message names the key and what is expected."""


@dataclass(frozen=True)
class PaymentAccount:
    """Where a payment type lands: ``cash`` (``CashAccount``/``CashSum``) or ``transfer``."""

    kind: str
    account: str


@dataclass(frozen=True)
class Mappings:
    """A company's mapping from ServiceTitan to SAP Business One (see the module documentation)."""

    card_code: str = "ST{id}"
    link_field: str | None = None
    seeded: Mapping[str, str] = field(default_factory=dict)
    invoice_id_field: str = "NumAtCard"
    gl_accounts: Mapping[str, str] = field(default_factory=dict)
    business_units: Mapping[str, str] = field(default_factory=dict)
    tax_code: str | None = None
    sales_tax_account: str | None = None
    payment_types: Mapping[str, PaymentAccount] = field(default_factory=dict)
    changed_after_posting: str = "fail"
    credit_memo_lines: str = "base_document"
    #: The ``companies`` section applied (its name), and the keys it gave: for messages.
    company: str | None = None
    company_keys: frozenset[str] = frozenset()

    def key_name(self, key: str) -> str:
        """Where ``key`` comes from: ``gl_accounts``, or ``companies.<name>.gl_accounts``."""
        return f"{COMPANIES}.{self.company}.{key}" if key in self.company_keys else key

    @property
    def credit_and_repost(self) -> bool:
        """An invoice changed after posting is credited and posted again (else it fails)."""
        return self.changed_after_posting == "credit_and_repost"

    def card_code_for(self, customer_id: Any) -> str:
        """The ``CardCode`` a new partner gets for a ServiceTitan customer."""
        code = self.card_code.format(id=customer_id)
        if not code or len(code) > 15:
            raise MappingError(
                f"card_code {self.card_code!r} gives {code!r} for customer {customer_id}: SAP codes are 1 to 15 characters."
            )
        return code

    def account_for(self, gl: Mapping[str, Any] | None) -> str:
        """The SAP account of an invoice item's GL account; :class:`LookupError` naming it if unmapped."""
        number = str((gl or {}).get("number") or "").strip()
        account = self.gl_accounts.get(number)
        if account is None:
            name = (gl or {}).get("name")
            raise LookupError(
                f"GL account {number or '(none)'}{f' ({name})' if name else ''} has no SAP account in the "
                f"mapping's {self.key_name('gl_accounts')}"
            )
        return account

    def profit_centre_for(self, unit: Mapping[str, Any] | None) -> str | None:
        """The profit centre of a business unit (by name, then id); ``None`` when none are mapped."""
        if not self.business_units:
            return None
        unit = unit or {}
        for candidate in (unit.get("name"), unit.get("id")):
            if candidate is not None and str(candidate) in self.business_units:
                return self.business_units[str(candidate)]
        raise LookupError(
            f"business unit {unit.get('name') or unit.get('id') or '(none)'} has no profit centre in the "
            f"mapping's {self.key_name('business_units')}"
        )

    def payment_account_for(self, payment_type: Any) -> PaymentAccount:
        found = self.payment_types.get(str(payment_type or ""))
        if found is None:
            raise LookupError(
                f"payment type {payment_type!r} has no account in the mapping's {self.key_name('payment_types')}"
            )
        return found


#: A company's names in the ``companies`` section: its SAP connection id, then its CompanyDB.
CompanyNames = str | Sequence[str | None] | None


def company_sections(document: Mapping[str, Any] | None, *, where: str = "the mapping") -> dict[str, dict]:
    """The document's ``companies`` section: ``{name: {key: value}}``, each key one of the mapping's.

    :raises MappingError: for a section that is not a mapping of known keys.
    """
    sections = (document or {}).get(COMPANIES) or {}
    if not isinstance(sections, Mapping):
        raise MappingError(
            f"{where}: {COMPANIES} must map SAP connection ids (or CompanyDBs) to mapping keys."
        )
    found: dict[str, dict] = {}
    for name, section in sections.items():
        if not isinstance(section, Mapping) or not section:
            raise MappingError(
                f"{where}: {COMPANIES}.{name} must map mapping keys ({', '.join(sorted(_KEYS))}) to the "
                "company's own values."
            )
        unknown = sorted(set(section) - _KEYS)
        if unknown:
            raise MappingError(
                f"{where}: unknown keys {', '.join(f'{COMPANIES}.{name}.{key}' for key in unknown)}; "
                f"known: {', '.join(sorted(_KEYS))}."
            )
        found[str(name)] = dict(section)
    return found


def _section_of(sections: Mapping[str, dict], company: CompanyNames) -> str | None:
    names = (company,) if isinstance(company, str) else tuple(company or ())
    return next((str(name) for name in names if name and str(name) in sections), None)


def parse_mappings(
    document: Mapping[str, Any] | None, *, where: str = "the mapping", company: CompanyNames = None
) -> Mappings:
    """Check a mapping document and return it as :class:`Mappings`.

    :param document: the parsed JSON/YAML (``None`` or empty: the defaults, with nothing mapped).
    :param where: where it came from, for messages.
    :param company: the SAP company's names (its connection id, then its CompanyDB): the first the
        ``companies`` section names gives its keys in place of the shared ones. ``None``: the
        shared mapping.
    :raises MappingError: naming the key at fault (``companies.<name>.<key>`` for a company's own).
    """
    doc = dict(document or {})
    sections = company_sections(doc, where=where)
    doc.pop(COMPANIES, None)
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise MappingError(
            f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(_KEYS | {COMPANIES}))}."
        )
    section_name = _section_of(sections, company)
    own = sections[section_name] if section_name is not None else {}
    doc.update(own)

    def named(key: str) -> str:
        return f"{COMPANIES}.{section_name}.{key}" if key in own else key

    def text_map(key: str) -> dict[str, str]:
        value = doc.get(key) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(v, (str, int)) and str(v).strip() for v in value.values()
        ):
            raise MappingError(f"{where}: {named(key)} must map names to non-empty SAP codes.")
        return {str(k).strip(): str(v).strip() for k, v in value.items()}

    card_code = str(doc.get("card_code") or "ST{id}")
    if "{id}" not in card_code:
        raise MappingError(f"{where}: {named('card_code')} {card_code!r} must contain {{id}}.")
    invoice_id_field = str(doc.get("invoice_id_field") or "NumAtCard")
    link_field = doc.get("link_field")
    for key, value in (("invoice_id_field", invoice_id_field), ("link_field", link_field)):
        if value is not None and not _FIELD.match(str(value)):
            raise MappingError(f"{where}: {named(key)} {value!r} must be NumAtCard or a user field (U_...).")
    payment_types: dict[str, PaymentAccount] = {}
    if not isinstance(doc.get("payment_types") or {}, Mapping):
        raise MappingError(f"{where}: {named('payment_types')} must map payment types to accounts.")
    for name, target in (doc.get("payment_types") or {}).items():
        if (
            not isinstance(target, Mapping)
            or len(target) != 1
            or next(iter(target)) not in ("cash", "transfer")
        ):
            raise MappingError(
                f"{where}: {named('payment_types')}[{name!r}] must be {{cash: <account>}} or "
                "{transfer: <account>}."
            )
        kind, account = next(iter(target.items()))
        payment_types[str(name)] = PaymentAccount(kind, str(account))
    choices = {}
    for key, allowed in (
        ("changed_after_posting", CHANGED_AFTER_POSTING),
        ("credit_memo_lines", CREDIT_MEMO_LINES),
    ):
        value = doc.get(key)
        if value is None:
            choices[key] = allowed[0]
        elif str(value) in allowed:
            choices[key] = str(value)
        else:
            raise MappingError(f"{where}: {named(key)} {value!r} must be one of {', '.join(allowed)}.")
    seeded: dict[str, str] = {}
    if doc.get("seed_csv"):
        seeded = read_seed_csv(Path(str(doc["seed_csv"])), where=where, key=named("seed_csv"))
    mappings = Mappings(
        card_code=card_code,
        link_field=str(link_field) if link_field else None,
        seeded=seeded,
        invoice_id_field=invoice_id_field,
        gl_accounts=text_map("gl_accounts"),
        business_units=text_map("business_units"),
        tax_code=str(doc["tax_code"]) if doc.get("tax_code") else None,
        sales_tax_account=str(doc["sales_tax_account"]) if doc.get("sales_tax_account") else None,
        payment_types=payment_types,
        company=section_name,
        company_keys=frozenset(own),
        **choices,
    )
    try:
        mappings.card_code_for(1)  # the pattern renders a code SAP takes
    except MappingError as exc:
        raise MappingError(f"{where}: {named('card_code')}{str(exc).removeprefix('card_code')}") from None
    return mappings


def read_seed_csv(path: Path, *, where: str = "the mapping", key: str = "seed_csv") -> dict[str, str]:
    """``customer_id,CardCode`` pairs (a header row is allowed) linking existing SAP partners."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise MappingError(f"{where}: {key} {path} cannot be read: {exc.strerror}.") from None
    pairs: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and not row[0].strip().isdigit()):
            continue
        if len(row) < 2 or not row[0].strip().isdigit() or not row[1].strip():
            raise MappingError(f"{where}: {key} {path} line {number} must be <customer id>,<CardCode>.")
        pairs[row[0].strip()] = row[1].strip()
    return pairs


def _read(source: str | Path | Mapping[str, Any] | None) -> tuple[Any, str]:
    if source is None or isinstance(source, Mapping):
        return source, "the mapping"
    return read_document(source, MappingError)


def load_mappings(source: str | Path | Mapping[str, Any] | None, *, company: CompanyNames = None) -> Mappings:
    """A mapping from a document, a file (``.json``, ``.yaml``/``.yml``) or ``var:<Variable key>``.

    :param company: a SAP company's names (its connection id, then its CompanyDB, as
        ``(conn_id, company_db)``): its mapping, with the keys its ``companies`` section gives in
        place of the shared ones. ``None``: the shared mapping.
    :raises MappingError: naming the file or Variable and the key at fault.
    """
    document, where = _read(source)
    return parse_mappings(document, where=where, company=company)


def check_mappings(
    source: str | Path | Mapping[str, Any] | None,
    companies: Sequence[str] | None = None,
    *,
    company_db: Callable[[str], str | None] | None = None,
) -> Mappings:
    """Check the shared mapping and every company's (as a DAG does when parsed); the shared one.

    :param companies: the SAP connection ids of the companies the DAG declares; with them, a
        ``companies`` section naming none of them (by connection id or CompanyDB) is an error, as
        are two sections naming one company. ``None`` (no declaration): any name is accepted, since
        one file may serve deployments with other companies.
    :param company_db: the CompanyDB of a connection id (default:
        :func:`airflow_provider_b1.companies.company_db`), read only for a section that names no
        declared connection id.
    :raises MappingError: naming the key at fault, ``companies.<name>.<key>`` in a company's section.
    """
    document, where = _read(source)
    shared = parse_mappings(document, where=where)
    sections = company_sections(document, where=where)
    for name in sections:
        parse_mappings(document, where=where, company=name)
    if companies is None:
        return shared
    declared = list(companies)
    by_db: dict[str, str] | None = None
    claimed: dict[str, str] = {}
    for name in sections:
        if name in declared:
            owner = name
        else:
            if by_db is None:
                if company_db is None:
                    from airflow_provider_b1.companies import company_db
                by_db = {db: conn_id for conn_id in declared if (db := company_db(conn_id))}
            owner = by_db.get(name)
            if owner is None:
                raise MappingError(
                    f"{where}: {COMPANIES}.{name} names none of the declared SAP companies "
                    f"({', '.join(declared)}; CompanyDBs {', '.join(by_db) or 'unreadable'}): name a "
                    "company by its SAP connection id or CompanyDB."
                )
        if owner in claimed:
            raise MappingError(
                f"{where}: {COMPANIES}.{claimed[owner]} and {COMPANIES}.{name} both name SAP company "
                f"{owner}; give it one section."
            )
        claimed[owner] = name
    return shared
