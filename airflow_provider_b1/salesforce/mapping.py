"""How a Salesforce org and an SAP Business One company correspond: the one place it is declared.

A mapping is a JSON or YAML document (a file, or ``var:<Variable key>``), checked when the DAG is
parsed: unknown keys, unknown SAP fields, a Salesforce field mapped to an SAP field of another
type, and missing required fields are reported with their names before any run. The Salesforce
side is checked against the org itself (describe calls) when the DAG's first task starts
(:meth:`SalesforceMapping.salesforce_fields`).

::

    accounts:
      where: "Type = 'Customer'"      # optional: which accounts become business partners (SOQL)
      company_field: SAP_Company__c    # one org, several SAP companies: the account's company
      account_number: AccountNumber    # the account's field that holds its CardCode
      link_field: U_SalesforceId       # the partner's field that holds the account id
      card_code: "SF{hash}"            # code of a partner made for an account without a number
      defaults: {CardType: cCustomer}  # set on partners the flow creates
      fields:                          # Salesforce field: SAP field, and which system owns it
        Name: {sap: CardName, owner: salesforce}
        Phone: {sap: Phone1, owner: sap}
    orders:
      id_field: NumAtCard              # the order's field that holds the opportunity id
      service_item: A00001             # the one line of an opportunity without products
      due_days: 14                     # DocDueDate = CloseDate + due_days
      walk_in_partner: C99999          # the partner of a won opportunity without an account
      write_back:                      # opportunity fields the flow fills in
        order_number: SAP_Order_Number__c
        draft_number: SAP_Draft_Number__c
        order_status: SAP_Order_Status__c
    balances:
      account:                         # account fields SAP's figures go to (omit what the org lacks)
        open_balance: SAP_Open_Balance__c
        overdue_balance: SAP_Overdue_Balance__c
        credit_limit: SAP_Credit_Limit__c
        last_payment_date: SAP_Last_Payment_Date__c
      opportunity:
        invoiced_amount: SAP_Invoiced_Amount__c
        paid_amount: SAP_Paid_Amount__c
        payment_status: SAP_Payment_Status__c
    invoices:                          # optional: each SAP invoice as a record of an invoice object
      object: SAP_Invoice__c           # Revenue Cloud's Invoice, or a custom object
      external_id: SAP_Doc_Entry__c    # its External ID text field: holds the invoice's DocEntry
      account: Account__c              # its reference to the Account (the partner's linked account)
      opportunity: Opportunity__c      # optional: reference to the opportunity named in orders.id_field
      fields:                          # SAP invoice field: Salesforce field
        DocNum: Name
        DocDate: Invoice_Date__c
        DocDueDate: Due_Date__c
        DocTotal: Total__c
        PaidToDate: Paid__c
        DocumentStatus: Status__c

``owner`` is the field's system of record: when both sides changed a field between two runs, its
owner's value wins, and the conflict is logged and audited. A change on one side only always
flows to the other, whoever owns the field. ``card_code`` may use ``{hash}`` (8 characters
derived from the account id: the same account always gets the same code, so a run killed after
creating the partner finds it again) and ``{id}`` (the 15-character id; SAP codes take at most
15 characters, so only on its own).

``company_field`` is for an org that serves several SAP companies (``B1_SALESFORCE_COMPANIES``
naming them without a Salesforce connection of their own): each account names its company in
that field (text or picklist), by the company's SAP connection id (``sap_b1_eu``) or its
CompanyDB (``SBODEMOEU``). A company's flows then read only its accounts, and only the won
opportunities of its accounts (``Account.<field>``). An account whose field is empty or names no
declared company is synced into no company: the mapping check counts and logs such accounts
once a run, without failing it, and filling the field brings the account in at the next run (the
edit moves its ``SystemModstamp``). Won opportunities without an account name no company either,
so the walk-in partner is not used then. The check fails when several companies share an org
and the mapping names no ``company_field``, and when ``account_number`` is a unique field (the
same CardCode exists in each company, for different accounts).

``invoices`` is for an org that keeps invoices as records of their own: Salesforce's ``Invoice``
object exists only with Revenue Cloud (or Order Management), so an org without it names a custom
object. Without the section, SAP's invoices reach Salesforce only as the balances above. With it,
every invoice of a partner linked to an account is upserted by ``external_id`` (a text field
marked External ID, holding ``DocEntry``, or ``<SAP conn id>:<DocEntry>`` for a company other
than ``sap_b1_default``: make it long enough), with ``account`` pointing at that account and,
where the invoice carries an opportunity id in ``orders.id_field``, ``opportunity`` at the
opportunity (sent empty otherwise). ``fields`` may name ``DocNum``, ``DocDate``, ``DocDueDate``, ``TaxDate``,
``DocTotal``, ``VatSum``, ``PaidToDate``, ``DocCurrency``, ``DocumentStatus``, ``Cancelled``,
``CardCode``, ``CardName``, ``NumAtCard``, ``Comments`` and ``U_`` fields (as text);
``DocumentStatus`` goes as ``Open``, ``Closed``, ``Paid`` or ``Delivered``, and as ``Cancelled``
for a cancelled invoice. SAP owns these records: Salesforce's edits to them are not read back.
The org's check names a missing object, a missing field, a field of the wrong type, a reference
to another object, an external id field not marked External ID and a field the API user cannot
write.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.utils.documents import read_document

SALESFORCE = "salesforce"
SAP = "sap"
OWNERS = (SALESFORCE, SAP)

_SF_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(__c)?$")
_SAP_UDF = re.compile(r"^U_[A-Za-z0-9_]{1,48}$")
_DOCUMENT_ID_FIELD = re.compile(r"^(NumAtCard|U_[A-Za-z0-9_]{1,48})$")

#: The business partner properties a mapping may name (a ``U_`` field too): type, and for text the
#: longest value SAP Business One takes. A field not listed here is a typo until proven otherwise.
PARTNER_FIELDS: dict[str, tuple[str, int | None]] = {
    "CardName": ("text", 100),
    "CardForeignName": ("text", 100),
    "AliasName": ("text", 100),
    "Phone1": ("text", 20),
    "Phone2": ("text", 20),
    "Cellular": ("text", 50),
    "Fax": ("text", 20),
    "EmailAddress": ("text", 100),
    "Website": ("text", 100),
    "Address": ("text", 100),
    "City": ("text", 100),
    "County": ("text", 100),
    "ZipCode": ("text", 20),
    "Country": ("text", 3),
    "BillToState": ("text", 3),
    "MailAddress": ("text", 100),
    "MailCity": ("text", 100),
    "MailZipCode": ("text", 20),
    "MailCountry": ("text", 3),
    "ShipToState": ("text", 3),
    "FederalTaxID": ("text", 32),
    "Notes": ("text", 100),
    "FreeText": ("text", None),
    "ContactPerson": ("text", 90),
    "Currency": ("text", 3),
    "Industry": ("number", None),
    "CreditLimit": ("number", None),
    "MaxCommitment": ("number", None),
    "DiscountPercent": ("number", None),
    "Valid": ("boolean", None),
    "Frozen": ("boolean", None),
}
#: A user-defined field holds text of at most this many characters unless declared otherwise.
UDF_LENGTH = 254
#: Properties SAP requires of a new partner (CardCode comes from the flow).
PARTNER_REQUIRED = ("CardName",)
#: What each balance figure is, for checking the Salesforce field it goes to.
ACCOUNT_FIGURES = {
    "open_balance": "number",
    "overdue_balance": "number",
    "credit_limit": "number",
    "last_payment_date": "date",
}
OPPORTUNITY_FIGURES = {"invoiced_amount": "number", "paid_amount": "number", "payment_status": "text"}
WRITE_BACK = {"order_number": "text", "draft_number": "text", "order_status": "text"}
#: The SAP invoice properties an ``invoices`` section may send (a ``U_`` field too, as text), and
#: what each is.
INVOICE_FIELDS = {
    "DocNum": "text",
    "DocDate": "date",
    "DocDueDate": "date",
    "TaxDate": "date",
    "DocTotal": "number",
    "VatSum": "number",
    "PaidToDate": "number",
    "DocCurrency": "text",
    "DocumentStatus": "text",
    "Cancelled": "boolean",
    "CardCode": "text",
    "CardName": "text",
    "NumAtCard": "text",
    "Comments": "text",
}
#: ``DocumentStatus`` as an invoice object shows it (a cancelled invoice shows ``Cancelled``).
INVOICE_STATUS = {
    "bost_Open": "Open",
    "bost_Close": "Closed",
    "bost_Paid": "Paid",
    "bost_Delivered": "Delivered",
}
#: Kinds of the invoice object's own fields: its external id, and references to these objects.
EXTERNAL_ID = "external_id"
REFERENCE = "reference:"
#: Salesforce field types (describe's ``type``) each kind of value may go to or come from.
SALESFORCE_TYPES = {
    "text": {"string", "textarea", "phone", "url", "email", "picklist", "combobox", "id", "reference"},
    "number": {"double", "currency", "percent", "int", "long"},
    "date": {"date", "datetime"},
    "boolean": {"boolean"},
}


class SalesforceMappingError(PermanentError, ValueError):
    """The mapping document is wrong; the message names the key and what is expected."""


@dataclasses.dataclass(frozen=True)
class InvoiceObject:
    """The ``invoices`` section: SAP invoices as records of an invoice object, upserted by external id.

    :param sobject: the object (Revenue Cloud's ``Invoice``, or a custom object).
    :param external_id: its External ID text field, holding the invoice's ``DocEntry``.
    :param account: its reference to the partner's ``Account``.
    :param opportunity: its reference to the ``Opportunity`` (``None``: not linked).
    :param fields: what it shows of the invoice (SAP field -> Salesforce field), SAP's own.
    """

    sobject: str
    external_id: str
    account: str
    opportunity: str | None
    fields: tuple[FieldMap, ...]

    def sap_fields(self) -> list[str]:
        """The invoice properties to read from SAP for these records."""
        names = ["DocEntry", "CardCode", *(f.sap for f in self.fields)]
        if any(f.sap == "DocumentStatus" for f in self.fields):
            names.append("Cancelled")
        return list(dict.fromkeys(names))

    def salesforce_fields(self) -> dict[str, str]:
        """``{field: kind}`` of every field of the object written."""
        out = {self.external_id: EXTERNAL_ID, self.account: REFERENCE + "Account"}
        if self.opportunity:
            out[self.opportunity] = REFERENCE + "Opportunity"
        out.update({f.salesforce: f.kind for f in self.fields})
        return out


@dataclasses.dataclass(frozen=True)
class FieldMap:
    """One account field kept equal with one partner field.

    :param salesforce: the account's field.
    :param sap: the partner's field.
    :param owner: ``salesforce`` or ``sap``: whose value wins when both changed it.
    :param kind: ``text``, ``number``, ``date`` or ``boolean`` (from SAP's side).
    :param length: the longest text SAP takes in it (``None``: no limit known).
    """

    salesforce: str
    sap: str
    owner: str
    kind: str
    length: int | None

    def conflict(self, winning: Any) -> str:
        """What the audit trail and the log say of a field both sides changed since they agreed."""
        owner = "Salesforce" if self.owner == SALESFORCE else "SAP"
        return (
            f"conflict: {self.salesforce}/{self.sap} changed on both sides ({owner}, its system of "
            f"record, wins: {winning!r})"
        )


@dataclasses.dataclass(frozen=True)
class SalesforceMapping:
    """A checked mapping (see the module documentation)."""

    fields: tuple[FieldMap, ...]
    account_where: str | None = None
    account_number: str = "AccountNumber"
    link_field: str | None = "U_SalesforceId"
    card_code: str = "SF{hash}"
    partner_defaults: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"CardType": "cCustomer"})
    order_id_field: str = "NumAtCard"
    service_item: str | None = None
    due_days: int = 14
    walk_in_partner: str | None = None
    write_back: Mapping[str, str] = dataclasses.field(default_factory=dict)
    account_balances: Mapping[str, str] = dataclasses.field(default_factory=dict)
    opportunity_balances: Mapping[str, str] = dataclasses.field(default_factory=dict)
    invoices: InvoiceObject | None = None
    company_field: str | None = None

    def account_filter(self, companies: Sequence[str] | None) -> str | None:
        """The SOQL condition of the accounts a company's flows read: the mapping's ``where``, and
        with ``companies`` (the values of :attr:`company_field` naming the company; ``None``: the
        org serves one company) only the accounts naming it."""
        if companies is None:
            return self.account_where
        routed = f"{self._company_field()} IN ({soql_list(companies)})"
        return f"({self.account_where}) AND {routed}" if self.account_where else routed

    def opportunity_filter(self, companies: Sequence[str] | None) -> str:
        """The SOQL condition of the won opportunities a company's flows read: with ``companies``,
        only those of its accounts."""
        if companies is None:
            return "IsWon = true"
        return f"IsWon = true AND Account.{self._company_field()} IN ({soql_list(companies)})"

    def _company_field(self) -> str:
        if not self.company_field:
            raise SalesforceMappingError(
                "Several SAP companies share this Salesforce org, and the mapping names no "
                "accounts.company_field: name the account field that says each account's company."
            )
        return self.company_field

    def card_code_for(self, account_id: str) -> str:
        """The ``CardCode`` of a partner made for an account without a number: the same for the
        same account every time."""
        digest = base64.b32encode(hashlib.sha256(account_id[:15].encode()).digest()).decode()
        code = self.card_code.format(hash=digest[:8], id=account_id[:15])
        if not code or len(code) > 15:
            raise SalesforceMappingError(
                f"card_code {self.card_code!r} gives {code!r} for account {account_id}: SAP codes are "
                "1 to 15 characters."
            )
        return code

    def salesforce_fields(self) -> dict[str, dict[str, str]]:
        """``{object: {field: kind}}``: every Salesforce field the mapping names, for a describe check."""
        account = {self.account_number: "text"}
        if self.company_field:
            account[self.company_field] = "text"
        account.update({f.salesforce: f.kind for f in self.fields})
        account.update({field: ACCOUNT_FIGURES[figure] for figure, field in self.account_balances.items()})
        opportunity = {field: WRITE_BACK[what] for what, field in self.write_back.items()}
        opportunity.update(
            {field: OPPORTUNITY_FIGURES[figure] for figure, field in self.opportunity_balances.items()}
        )
        found = {"Account": account, "Opportunity": opportunity}
        if self.invoices is not None:
            found.setdefault(self.invoices.sobject, {}).update(self.invoices.salesforce_fields())
        return found

    def check_against(self, described: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
        """What the org lacks or types otherwise: one sentence per problem (empty: all good).

        :param described: ``{object: {field: describe entry}}`` as the org describes them
            (objects and fields it lacks are absent).
        """
        problems = []
        invoices = self.invoices
        for obj, fields in self.salesforce_fields().items():
            if obj not in described:
                if invoices is not None and obj == invoices.sobject:
                    problems.append(
                        f"the org has no {obj} object (invoices.object: Salesforce's Invoice object comes "
                        "with Revenue Cloud; otherwise create a custom object with the fields "
                        f"{', '.join(fields)}, or leave the invoices section out)"
                    )
                else:
                    problems.append(f"the org has no {obj} object")
                continue
            written = invoices is not None and obj == invoices.sobject
            for name, kind in fields.items():
                entry = described[obj].get(name)
                if entry is None:
                    problems.append(f"{obj}.{name} does not exist in the org")
                    continue
                problem = _misfit(entry, kind, written)
                if problem:
                    problems.append(f"{obj}.{name} {problem}")
        return problems


def _misfit(entry: Mapping[str, Any], kind: str, written: bool) -> str | None:
    """Why a described field cannot take what the mapping puts in it (``None``: it can)."""
    sf_type = str(entry.get("type"))
    if kind == EXTERNAL_ID:
        if sf_type not in SALESFORCE_TYPES["text"] - {"id", "reference", "textarea", "picklist"}:
            return f"is a {sf_type} field; the invoices' external id is a text field (DocEntry)"
        if not entry.get("externalId"):
            return "is not marked External ID; the invoices are upserted by it"
    elif kind.startswith(REFERENCE):
        target = kind[len(REFERENCE) :]
        if sf_type != "reference" or target not in (entry.get("referenceTo") or []):
            to = ", ".join(entry.get("referenceTo") or []) or "nothing"
            return f"is a {sf_type} field (to {to}); the mapping puts a reference to {target} in it"
    elif sf_type not in SALESFORCE_TYPES[kind]:
        return f"is a {sf_type} field; the mapping puts {kind} in it"
    if written and (entry.get("createable") is False or entry.get("updateable") is False):
        return "cannot be written by the API user (not createable or not updateable)"
    return None


def parse_mapping(document: Mapping[str, Any] | None, *, where: str = "the mapping") -> SalesforceMapping:
    """Check a mapping document and return it.

    :raises SalesforceMappingError: naming every key at fault.
    """
    doc = dict(document or {})
    problems: list[str] = []
    _unknown(doc, {"accounts", "orders", "balances", "invoices"}, "", problems)
    accounts = _section(doc, "accounts", problems)
    orders = _section(doc, "orders", problems)
    balances = _section(doc, "balances", problems)
    invoices = None
    if doc.get("invoices"):
        section = _section(doc, "invoices", problems)
        invoices = _invoice_object(section, problems) if section else None
    _unknown(
        accounts,
        {"where", "account_number", "link_field", "card_code", "defaults", "fields", "company_field"},
        "accounts.",
        problems,
    )
    _unknown(
        orders, {"id_field", "service_item", "due_days", "walk_in_partner", "write_back"}, "orders.", problems
    )
    _unknown(balances, {"account", "opportunity"}, "balances.", problems)

    fields = []
    raw_fields = accounts.get("fields") or {}
    if not isinstance(raw_fields, Mapping):
        problems.append("accounts.fields must map Salesforce fields to {sap: ..., owner: ...}")
        raw_fields = {}
    seen_sap: dict[str, str] = {}
    for sf_name, spec in raw_fields.items():
        where_field = f"accounts.fields.{sf_name}"
        if not _SF_NAME.match(str(sf_name)):
            problems.append(f"{where_field}: {sf_name!r} is not a Salesforce field name")
        if isinstance(spec, str):
            spec = {"sap": spec}
        if not isinstance(spec, Mapping):
            problems.append(f"{where_field} must be {{sap: <SAP field>, owner: salesforce|sap}}")
            continue
        _unknown(spec, {"sap", "owner", "length"}, f"{where_field}.", problems)
        sap_name = str(spec.get("sap") or "")
        owner = str(spec.get("owner") or SALESFORCE)
        if owner not in OWNERS:
            problems.append(f"{where_field}.owner must be salesforce or sap, not {owner!r}")
        known = PARTNER_FIELDS.get(sap_name)
        if known is None and _SAP_UDF.match(sap_name):
            known = ("text", int(spec.get("length") or UDF_LENGTH))
        if known is None:
            problems.append(f"{where_field}: SAP business partners have no field {sap_name!r}")
            continue
        if sap_name in seen_sap:
            problems.append(
                f"{where_field}: SAP field {sap_name} is already mapped from {seen_sap[sap_name]}"
            )
        seen_sap[sap_name] = str(sf_name)
        fields.append(FieldMap(str(sf_name), sap_name, owner, known[0], known[1]))
    if raw_fields and not any(f.sap in PARTNER_REQUIRED for f in fields):
        problems.append(
            f"accounts.fields maps nothing to {', '.join(PARTNER_REQUIRED)}, which SAP requires of a new partner"
        )

    account_number = str(accounts.get("account_number") or "AccountNumber")
    if not _SF_NAME.match(account_number):
        problems.append(f"accounts.account_number: {account_number!r} is not a Salesforce field name")
    company_field = accounts.get("company_field")
    if company_field is not None and (
        not isinstance(company_field, str) or not _SF_NAME.match(company_field)
    ):
        problems.append(f"accounts.company_field: {company_field!r} is not a Salesforce field name")
    elif company_field and company_field == account_number:
        problems.append("accounts.company_field must be another field than accounts.account_number")
    link_field = accounts.get("link_field", "U_SalesforceId")
    if link_field is not None and not _SAP_UDF.match(str(link_field)):
        problems.append(f"accounts.link_field must be a U_ field of SAP's partners, not {link_field!r}")
    defaults = accounts.get("defaults", {"CardType": "cCustomer"}) or {}
    if not isinstance(defaults, Mapping):
        problems.append("accounts.defaults must map SAP fields to values")
        defaults = {}
    id_field = str(orders.get("id_field") or "NumAtCard")
    if not _DOCUMENT_ID_FIELD.match(id_field):
        problems.append(f"orders.id_field must be NumAtCard or a U_ field, not {id_field!r}")
    due_days = orders.get("due_days", 14)
    if not isinstance(due_days, int) or isinstance(due_days, bool) or not 0 <= due_days <= 3650:
        problems.append(f"orders.due_days must be a whole number of days, not {due_days!r}")
        due_days = 14
    write_back = _field_map(orders.get("write_back"), WRITE_BACK, "orders.write_back", problems)
    account_balances = _field_map(balances.get("account"), ACCOUNT_FIGURES, "balances.account", problems)
    opportunity_balances = _field_map(
        balances.get("opportunity"), OPPORTUNITY_FIGURES, "balances.opportunity", problems
    )
    if problems:
        raise SalesforceMappingError(f"{where}: " + "; ".join(problems) + ".")
    mapping = SalesforceMapping(
        fields=tuple(fields),
        account_where=accounts.get("where") or None,
        account_number=account_number,
        link_field=str(link_field) if link_field else None,
        card_code=str(accounts.get("card_code") or "SF{hash}"),
        partner_defaults=dict(defaults),
        order_id_field=id_field,
        service_item=str(orders["service_item"]) if orders.get("service_item") else None,
        due_days=due_days,
        walk_in_partner=str(orders["walk_in_partner"]) if orders.get("walk_in_partner") else None,
        write_back=write_back,
        account_balances=account_balances,
        opportunity_balances=opportunity_balances,
        invoices=invoices,
        company_field=company_field or None,
    )
    mapping.card_code_for("001000000000001")  # a pattern that cannot give a valid code fails now
    return mapping


def soql_list(values: Sequence[str]) -> str:
    """SOQL text literals separated by commas (``'a', 'b'``), quotes and backslashes escaped."""
    from airflow_provider_b1.sources.salesforce import quoted

    return ", ".join(quoted(v) for v in values)


def load_mapping(source: str | Path | Mapping[str, Any] | None) -> SalesforceMapping:
    """A mapping from a document, a file (``.json``, ``.yaml``/``.yml``) or ``var:<Variable key>``."""
    if source is None or isinstance(source, Mapping):
        return parse_mapping(source)
    document, where = read_document(source, SalesforceMappingError)
    return parse_mapping(document, where=where)


def _invoice_object(section: Mapping[str, Any], problems: list[str]) -> InvoiceObject | None:
    """The ``invoices`` section, checked (problems go to ``problems``)."""
    where = "invoices"
    _unknown(section, {"object", "external_id", "account", "opportunity", "fields"}, f"{where}.", problems)
    names: dict[str, str] = {}
    for key in ("object", "external_id", "account", "opportunity"):
        value = section.get(key)
        if value is None and key == "opportunity":
            continue
        if not isinstance(value, str) or not _SF_NAME.match(value):
            what = "object" if key == "object" else "field"
            problems.append(
                f"{where}.{key} is required (the Salesforce {what})"
                if value is None
                else f"{where}.{key}: {value!r} is not a Salesforce {what} name"
            )
            continue
        names[key] = value
    raw = section.get("fields") or {}
    if not isinstance(raw, Mapping) or not raw:
        problems.append(
            f"{where}.fields must map SAP invoice fields to Salesforce fields (DocNum: Name, ...)"
        )
        raw = {}
    fields: list[FieldMap] = []
    taken = {names[k]: f"{where}.{k}" for k in ("external_id", "account", "opportunity") if k in names}
    for sap_name, sf_name in raw.items():
        sap_name = str(sap_name)
        kind = INVOICE_FIELDS.get(sap_name) or ("text" if _SAP_UDF.match(sap_name) else None)
        if kind is None:
            problems.append(
                f"{where}.fields: SAP invoices have no field {sap_name!r} here (known: "
                f"{', '.join(INVOICE_FIELDS)}, U_ fields)"
            )
            continue
        if not isinstance(sf_name, str) or not _SF_NAME.match(sf_name):
            problems.append(f"{where}.fields.{sap_name}: {sf_name!r} is not a Salesforce field name")
            continue
        if sf_name in taken:
            problems.append(f"{where}.fields.{sap_name}: {sf_name} is already written by {taken[sf_name]}")
            continue
        taken[sf_name] = f"{where}.fields.{sap_name}"
        fields.append(FieldMap(sf_name, sap_name, SAP, kind, None))
    wanted = {"object", "external_id", "account"} | ({"opportunity"} if section.get("opportunity") else set())
    if set(names) != wanted or len(fields) != len(raw):
        return None  # the problems are named
    return InvoiceObject(
        names["object"], names["external_id"], names["account"], names.get("opportunity"), tuple(fields)
    )


def _section(doc: Mapping[str, Any], key: str, problems: list[str]) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping):
        problems.append(f"{key} must be a mapping")
        return {}
    return dict(value)


def _unknown(doc: Mapping[str, Any], known: set[str], prefix: str, problems: list[str]) -> None:
    unknown = sorted(str(k) for k in set(doc) - known)
    if unknown:
        problems.append(
            f"unknown keys {', '.join(prefix + k for k in unknown)} (known: {', '.join(sorted(known))})"
        )


def _field_map(value: Any, allowed: Mapping[str, str], where: str, problems: list[str]) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"{where} must map {', '.join(allowed)} to Salesforce fields")
        return {}
    _unknown(value, set(allowed), f"{where}.", problems)
    out = {}
    for what, name in value.items():
        if what in allowed:
            if not isinstance(name, str) or not _SF_NAME.match(name):
                problems.append(f"{where}.{what}: {name!r} is not a Salesforce field name")
            else:
                out[str(what)] = name
    return out
