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
"""

from __future__ import annotations

from collections.abc import Mapping
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


def _salesforce(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.hooks.salesforce import SalesforceHook

    return SalesforceHook(options["salesforce_conn_id"])


def _ledger(options: Mapping[str, Any], salesforce: Any) -> Any:
    """The org's links and agreed values: one namespace per org (its id), so two orgs linked to
    one company never mix."""
    from airflow_provider_b1.sync.pairs import PairLedger
    from airflow_provider_b1.utils.sql import open_database

    database = open_database(options["ledger_conn_id"], purpose="the Salesforce links and agreed values")
    return PairLedger(database, options["ledger_schema"], f"salesforce:{salesforce.org_id}")


def reads(mapping: Any) -> dict[str, Any]:
    """The SOQL of each Salesforce stream, from the mapping."""
    from airflow_provider_b1.sources.salesforce import SoqlRead

    number = mapping.account_number
    return {
        "Account": SoqlRead(
            "Account", (number, *(f.salesforce for f in mapping.fields)), mapping.account_where
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
            "IsWon = true",
        ),
    }


def _open_salesforce_source(options: Mapping[str, Any]) -> Any:
    from airflow_provider_b1.sources.salesforce import SalesforceSource

    return SalesforceSource(
        _salesforce(options),
        reads(mapping_of(options)),
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
    return SapToSalesforceSink(
        salesforce,
        lambda: SapB1Hook(options["sap_b1_conn_id"]),
        mapping_of(options),
        _ledger(options, salesforce),
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
