"""The two flows of ``sap_b1_salesforce``: Salesforce into SAP, and SAP into Salesforce.

Each direction is a :class:`~airflow_provider_b1.sync.flows.Flow` on the sync engine, with a
cursor per stream; both share the org's links and agreed values
(:class:`~airflow_provider_b1.sync.pairs.PairLedger`, in the audit database), which is what keeps
one direction from echoing the other's writes.

================================  ======================  ==================================
stream                            cursor                  writes
================================  ======================  ==================================
Salesforce ``Account``            SystemModstamp + Id     business partners; numbers back
Salesforce ``Opportunity`` (won)  SystemModstamp + Id     sales orders; their numbers back
SAP ``BusinessPartners``          UpdateDate + UpdateTime accounts (fields SAP changed)
SAP ``Invoices``                  UpdateDate + UpdateTime balances on accounts, opportunities
SAP ``IncomingPayments``          UpdateDate + UpdateTime balances on accounts, opportunities
================================  ======================  ==================================

With the mapping's ``invoices`` section, the two SAP document streams also upsert each invoice
into the org's invoice object (by external id), the payments re-sending the invoices they paid.

Both flows run per SAP company (``scope_option="sap_b1_conn_id"``): a company other than
``sap_b1_default`` runs as ``<flow>@<conn id>``, with its own audit rows, checkpoints and replay.
Its links and agreed values are a namespace of their own (``salesforce:<org id>@<conn id>``; the
default company keeps ``salesforce:<org id>``), and the external ids it writes that carry SAP keys
carry the company too (the invoice object's ``sap_b1_eu:17``; the default company's stay ``17``),
so a CardCode or DocEntry every company has never leads one company's writes to another's
records. With the mapping's ``accounts.company_field`` (one org, several companies), a company
reads only the accounts naming it (:func:`company_values`) and the won opportunities of those.
A replay of ``<flow>@<conn id>`` reopens the company's own org (:func:`salesforce_conn_id`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_b1.hooks.sap_b1 import SapCursor
from airflow_provider_b1.sync.audit import DEFAULT_CONN_ID as AUDIT_CONN_ID
from airflow_provider_b1.sync.audit import DEFAULT_SCHEMA as AUDIT_SCHEMA
from airflow_provider_b1.sync.cursors import KeysetCursor
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System

TO_SAP = "salesforce_to_sap_b1"
TO_SALESFORCE = "sap_b1_to_salesforce"
DEFAULT_SALESFORCE_CONN_ID = "b1_salesforce_default"
DEFAULT_SAP_CONN_ID = "sap_b1_default"
DEFAULT_LEDGER_CONN_ID = AUDIT_CONN_ID
#: Records per Salesforce query page and per SAP page read for Salesforce: a page's writes to
#: Salesforce go in one sObject Collections call (200 records at most).
BATCH = 200

OPTIONS = {
    "salesforce_conn_id": DEFAULT_SALESFORCE_CONN_ID,
    "sap_b1_conn_id": DEFAULT_SAP_CONN_ID,
    "ledger_conn_id": DEFAULT_LEDGER_CONN_ID,
    "ledger_schema": AUDIT_SCHEMA,
    "mapping": None,
    # a read matching more records than this runs as a Bulk API 2.0 query job
    "bulk_threshold": 50_000,
}


def mapping_of(options: Mapping[str, Any]) -> Any:
    """The ``mapping`` option, else ``B1_SALESFORCE_MAPPING`` (as the DAGs read it, so that a replay
    or a task run outside them maps alike), else the built-in defaults."""
    import os

    from airflow_provider_b1.salesforce.mapping import load_mapping

    return load_mapping(options["mapping"] or os.environ.get("B1_SALESFORCE_MAPPING") or None)


#: The environment variable declaring the SAP companies and, where one has its own, their orgs.
COMPANIES_ENV = "B1_SALESFORCE_COMPANIES"


def salesforce_conn_id(options: Mapping[str, Any]) -> str:
    """The Salesforce connection of the SAP company the (merged) options name: the options' own,
    unless it is the default and ``B1_SALESFORCE_COMPANIES`` gives the SAP connection an org of its
    own (a replay of ``<flow>@<conn id>``, which sets only its SAP connection, then reopens the
    company's own org; the variable must be the same where the replay runs as where the DAG is
    parsed).

    :raises SalesforceMappingError: when the declaration cannot be read (not retried).
    """
    from airflow_provider_b1.companies import declared_companies, peer_conn_id
    from airflow_provider_b1.salesforce.mapping import SalesforceMappingError

    try:
        return peer_conn_id(
            options,
            "salesforce_conn_id",
            DEFAULT_SALESFORCE_CONN_ID,
            lambda: declared_companies(COMPANIES_ENV, peer="Salesforce connection"),
        )
    except ValueError as exc:
        raise SalesforceMappingError(str(exc)) from None


def _salesforce(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.salesforce import SalesforceHook

    return SalesforceHook(salesforce_conn_id(options))


def company_of(options: Mapping[str, Any]) -> str | None:
    """The SAP connection id of the company the options run for; ``None`` for ``sap_b1_default``,
    whose namespace and external ids are the ones a flow of one company always had."""
    conn_id = str(options["sap_b1_conn_id"])
    return None if conn_id == DEFAULT_SAP_CONN_ID else conn_id


def company_values(options: Mapping[str, Any], mapping: Any) -> tuple[str, ...] | None:
    """The values of the mapping's ``accounts.company_field`` that name the options' company (its
    SAP connection id and its CompanyDB); ``None`` without a company field (the org serves one
    company: every account is its)."""
    if not mapping.company_field:
        return None
    from airflow_provider_b1.companies import company_db

    conn_id = str(options["sap_b1_conn_id"])
    return tuple(dict.fromkeys(value for value in (conn_id, company_db(conn_id)) if value))


def company_options(company: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """The flows' options of one declared :class:`~airflow_provider_b1.companies.Company`: its
    SAP connection (when not the default) and its own Salesforce connection (when it names one)
    added to ``options``; the default company's are ``options`` themselves, as they always were."""
    found = dict(options)
    if not company.is_default:
        found["sap_b1_conn_id"] = company.sap_b1_conn_id
    if company.peer_conn_id:
        found["salesforce_conn_id"] = company.peer_conn_id
    return found


def orgs_of(companies: Sequence[Any]) -> dict[str, list[str]]:
    """``{Salesforce connection id: [SAP connection ids]}``: which companies share which org."""
    orgs: dict[str, list[str]] = {}
    for company in companies:
        orgs.setdefault(company.peer_conn_id or DEFAULT_SALESFORCE_CONN_ID, []).append(company.sap_b1_conn_id)
    return orgs


def check_companies(companies: Sequence[Any], mapping: Any, env: str = COMPANIES_ENV) -> None:
    """Refuse, when a DAG is parsed, an org shared by several companies without the mapping's
    ``accounts.company_field`` (nothing would tell their accounts apart).

    :raises SalesforceMappingError: naming the companies and the key.
    """
    from airflow_provider_b1.salesforce.mapping import SalesforceMappingError

    for org, sap_conn_ids in orgs_of(companies).items():
        if len(sap_conn_ids) > 1 and not mapping.company_field:
            raise SalesforceMappingError(
                f"{env} has {', '.join(sap_conn_ids)} share the Salesforce org of {org}, and the mapping "
                "names no accounts.company_field: name the account field that says each account's "
                "company (its SAP connection id or CompanyDB), or give each company its own org "
                "(<SAP conn id>=<Salesforce conn id>)."
            )


def _ledger(options: Mapping[str, Any], salesforce: Any) -> Any:
    """The links and agreed values of the org and company: one namespace per org (its id), so two
    orgs linked to one company never mix, and per company within an org (``@<conn id>``, the
    default company keeping the plain one), so a CardCode two companies have is two links."""
    from airflow_provider_b1.sync.pairs import PairLedger
    from airflow_provider_b1.utils.sql import open_database

    database = open_database(options["ledger_conn_id"], purpose="the Salesforce links and agreed values")
    company = company_of(options)
    namespace = f"salesforce:{salesforce.org_id}" + (f"@{company}" if company else "")
    return PairLedger(database, options["ledger_schema"], namespace)


def reads(mapping: Any, companies: Any = None) -> dict[str, Any]:
    """The SOQL of each Salesforce stream, from the mapping; with ``companies`` (the company
    field's values naming one company, :func:`company_values`) only that company's records."""
    from airflow_provider_b1.sources.salesforce import SoqlRead

    number = mapping.account_number
    return {
        "Account": SoqlRead(
            "Account", (number, *(f.salesforce for f in mapping.fields)), mapping.account_filter(companies)
        ),
        "Opportunity": SoqlRead(
            "Opportunity",
            (
                "Name",
                "AccountId",
                f"Account.{number}",
                "Amount",
                "CloseDate",
                "StageName",
                "(SELECT Id, Quantity, UnitPrice, Product2.ProductCode FROM OpportunityLineItems)",
            ),
            mapping.opportunity_filter(companies),
        ),
    }


def _open_salesforce_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.sources.salesforce import SalesforceSource

    mapping = mapping_of(options)
    return SalesforceSource(
        _salesforce(options),
        reads(mapping, company_values(options, mapping)),
        batch_size=BATCH,
        bulk_threshold=options["bulk_threshold"],
    )


def _open_sap_sink(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.salesforce.to_sap import SalesforceToSapSink

    salesforce = _salesforce(options)
    return SalesforceToSapSink(
        SapB1Hook(options["sap_b1_conn_id"]),
        lambda: _salesforce(options),
        mapping_of(options),
        _ledger(options, salesforce),
    )


def _open_sap_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.sources.sap_b1 import SapB1Source

    mapping = mapping_of(options)
    partner = ["CardCode", *(f.sap for f in mapping.fields)]
    if mapping.link_field:
        partner.append(mapping.link_field)
    invoice = ["DocEntry", "CardCode", mapping.order_id_field]
    if mapping.invoices is not None:  # what the invoice object shows of each invoice
        invoice = list(dict.fromkeys([*invoice, *mapping.invoices.sap_fields()]))
    return SapB1Source(
        SapB1Hook(options["sap_b1_conn_id"]),
        select={
            "BusinessPartners": partner,
            "Invoices": invoice,
            "IncomingPayments": ["DocEntry", "CardCode", "PaymentInvoices"],
        },
        page_size=BATCH,
        encoded=False,
    )


def _open_salesforce_sink(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.salesforce.to_salesforce import SapToSalesforceSink

    salesforce = _salesforce(options)
    mapping = mapping_of(options)
    return SapToSalesforceSink(
        salesforce,
        lambda: SapB1Hook(options["sap_b1_conn_id"]),
        mapping,
        _ledger(options, salesforce),
        company=company_of(options),
        companies=company_values(options, mapping),
    )


SALESFORCE_TO_SAP_FLOW = Flow(
    name=TO_SAP,
    source_system="salesforce",
    target_system="sap_b1",
    streams=(
        Stream("Account", cursor=KeysetCursor, target="BusinessPartners"),
        Stream("Opportunity", cursor=KeysetCursor, target="Orders"),
    ),
    open_source=_open_salesforce_source,
    open_sink=_open_sap_sink,
    options=OPTIONS,
    scope_option="sap_b1_conn_id",
    description="Salesforce accounts into SAP business partners, won opportunities into sales orders.",
    lineage=Lineage(
        source=System("salesforce", "salesforce_conn_id"),
        target=System("sap_b1", "sap_b1_conn_id"),
        # a won opportunity's order lines come from its products
        inputs={"Opportunity": ("Opportunity", "OpportunityLineItem")},
    ),
)


SAP_TO_SALESFORCE_FLOW = Flow(
    name=TO_SALESFORCE,
    source_system="sap_b1",
    target_system="salesforce",
    streams=(
        Stream("BusinessPartners", cursor=SapCursor, target="Account"),
        Stream("Invoices", cursor=SapCursor, target="Account"),
        Stream("IncomingPayments", cursor=SapCursor, target="Account"),
    ),
    open_source=_open_sap_source,
    open_sink=_open_salesforce_sink,
    options=OPTIONS,
    scope_option="sap_b1_conn_id",
    description="SAP business partners' changes, balances and payment status into Salesforce.",
    lineage=Lineage(
        source=System("sap_b1", "sap_b1_conn_id"),
        target=System("salesforce", "salesforce_conn_id"),
        # balances land on the partner's account and on the opportunity the invoice was ordered from
        outputs={
            "Invoices": ("Account", "Opportunity"),
            "IncomingPayments": ("Account", "Opportunity"),
        },
    ),
)
