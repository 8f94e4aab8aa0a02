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
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
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
                "mapping's gl_accounts"
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
            "mapping's business_units"
        )

    def payment_account_for(self, payment_type: Any) -> PaymentAccount:
        found = self.payment_types.get(str(payment_type or ""))
        if found is None:
            raise LookupError(f"payment type {payment_type!r} has no account in the mapping's payment_types")
        return found


def parse_mappings(document: Mapping[str, Any] | None, *, where: str = "the mapping") -> Mappings:
    """Check a mapping document and return it as :class:`Mappings`.

    :param document: the parsed JSON/YAML (``None`` or empty: the defaults, with nothing mapped).
    :param where: where it came from, for messages.
    :raises MappingError: naming the key at fault.
    """
    doc = dict(document or {})
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise MappingError(f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}.")

    def text_map(key: str) -> dict[str, str]:
        value = doc.get(key) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(v, (str, int)) and str(v).strip() for v in value.values()
        ):
            raise MappingError(f"{where}: {key} must map names to non-empty SAP codes.")
        return {str(k).strip(): str(v).strip() for k, v in value.items()}

    card_code = str(doc.get("card_code") or "ST{id}")
    if "{id}" not in card_code:
        raise MappingError(f"{where}: card_code {card_code!r} must contain {{id}}.")
    invoice_id_field = str(doc.get("invoice_id_field") or "NumAtCard")
    link_field = doc.get("link_field")
    for key, value in (("invoice_id_field", invoice_id_field), ("link_field", link_field)):
        if value is not None and not _FIELD.match(str(value)):
            raise MappingError(f"{where}: {key} {value!r} must be NumAtCard or a user field (U_...).")
    payment_types: dict[str, PaymentAccount] = {}
    for name, target in (doc.get("payment_types") or {}).items():
        if (
            not isinstance(target, Mapping)
            or len(target) != 1
            or next(iter(target)) not in ("cash", "transfer")
        ):
            raise MappingError(
                f"{where}: payment_types[{name!r}] must be {{cash: <account>}} or {{transfer: <account>}}."
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
            raise MappingError(f"{where}: {key} {value!r} must be one of {', '.join(allowed)}.")
    seeded: dict[str, str] = {}
    if doc.get("seed_csv"):
        seeded = read_seed_csv(Path(str(doc["seed_csv"])), where=where)
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
        **choices,
    )
    try:
        mappings.card_code_for(1)  # the pattern renders a code SAP takes
    except MappingError as exc:
        raise MappingError(f"{where}: {exc}") from None
    return mappings


def read_seed_csv(path: Path, *, where: str = "the mapping") -> dict[str, str]:
    """``customer_id,CardCode`` pairs (a header row is allowed) linking existing SAP partners."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise MappingError(f"{where}: seed_csv {path} cannot be read: {exc.strerror}.") from None
    pairs: dict[str, str] = {}
    for number, row in enumerate(rows, start=1):
        if not row or (number == 1 and not row[0].strip().isdigit()):
            continue
        if len(row) < 2 or not row[0].strip().isdigit() or not row[1].strip():
            raise MappingError(f"{where}: seed_csv {path} line {number} must be <customer id>,<CardCode>.")
        pairs[row[0].strip()] = row[1].strip()
    return pairs


def load_mappings(source: str | Path | Mapping[str, Any] | None) -> Mappings:
    """A mapping from a document, a file (``.json``, ``.yaml``/``.yml``) or ``var:<Variable key>``.

    :raises MappingError: naming the file or Variable and the key at fault.
    """
    if source is None or isinstance(source, Mapping):
        return parse_mappings(source)
    document, where = read_document(source, MappingError)
    return parse_mappings(document, where=where)
