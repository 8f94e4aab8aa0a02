"""Fixtures of the Salesforce flow's integration tests: both sandboxes over HTTPS, the real hooks.

Every test starts from freshly seeded sandboxes (the SAP company with 200 invoices, the org of
40 accounts and 80 opportunities whose accounts carry SAP's customer codes ``C00001``...), a
token cache of its own, counters at zero and its own ledger of links and agreed values.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from salesforce_flow_helpers import FAST, MAPPING

from airflow_provider_b1.hooks.salesforce import SalesforceHook
from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
from airflow_provider_b1.salesforce.flow import reads
from airflow_provider_b1.salesforce.mapping import SalesforceMapping, parse_mapping
from airflow_provider_b1.sandbox.salesforce.schema import SAP_INVOICE_OBJECT
from airflow_provider_b1.sources.salesforce import SalesforceSource
from airflow_provider_b1.sync.pairs import PairLedger
from airflow_provider_b1.utils.sql import Database


@pytest.fixture
def org(salesforce_sandbox, set_connection, monkeypatch, tmp_path) -> Iterator[Any]:
    """The Salesforce sandbox, freshly seeded, no faults, counters at zero; ``b1_salesforce_default``
    points at it and tokens are cached in this test's own folder."""
    salesforce_sandbox.restore()
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "sf-tokens"))
    set_connection("b1_salesforce_default", salesforce_sandbox.connection())
    yield salesforce_sandbox
    salesforce_sandbox.faults()


@pytest.fixture
def salesforce(org) -> Iterator[SalesforceHook]:
    """The real hook on the sandbox org."""
    hook = SalesforceHook("b1_salesforce_default", retry_policy=FAST)
    yield hook
    hook.close()


@pytest.fixture
def sap(sap_sandbox, set_connection) -> Iterator[SapB1Hook]:
    """The real SAP hook on the freshly seeded SAP sandbox."""
    sap_sandbox.restore(invoices=200)
    set_connection("sap_b1_default", sap_sandbox.connection())
    hook = SapB1Hook("sap_b1_default")
    yield hook
    hook.close()


@pytest.fixture
def ledger(tmp_path, salesforce) -> Iterator[PairLedger]:
    """The org's links and agreed values, in a SQLite file of this test's own."""
    path = str(tmp_path / "audit.db")
    pairs = PairLedger(Database("audit", "sqlite", (path,), path), None, f"salesforce:{salesforce.org_id}")
    yield pairs
    pairs.close()


@pytest.fixture
def source(salesforce) -> SalesforceSource:
    """The flow's Salesforce source (the mapping's SOQL), on Salesforce's default query batch, which
    the sandbox sets to 25 records so that paging through ``nextRecordsUrl`` shows."""
    return SalesforceSource(salesforce, reads(MAPPING), batch_size=None, bulk_threshold=None)  # type: ignore[arg-type]


#: An org's invoice object where Revenue Cloud's ``Invoice`` is missing (the sandbox's example).
INVOICE_OBJECT = SAP_INVOICE_OBJECT

#: The ``invoices`` section that writes SAP's invoices into :data:`INVOICE_OBJECT`.
INVOICES_SECTION: dict[str, Any] = {
    "object": "SAP_Invoice__c",
    "external_id": "SAP_Doc_Entry__c",
    "account": "Account__c",
    "opportunity": "Opportunity__c",
    "fields": {
        "DocNum": "Name",
        "DocDate": "Invoice_Date__c",
        "DocDueDate": "Due_Date__c",
        "DocTotal": "Total__c",
        "PaidToDate": "Paid__c",
        "DocumentStatus": "Status__c",
    },
}


@pytest.fixture
def invoice_org(org) -> Iterator[Any]:
    """The sandbox org with the custom invoice object :data:`INVOICE_OBJECT` (seeded as usual);
    back to the default org afterwards."""
    org.control("POST", "reset", {"custom_objects": [INVOICE_OBJECT]})
    try:
        yield org
    finally:
        org.control("POST", "reset", {})


@pytest.fixture
def invoices_section() -> dict[str, Any]:
    """A copy of :data:`INVOICES_SECTION` (``conftest`` is not importable from the tests)."""
    return copy.deepcopy(INVOICES_SECTION)


@pytest.fixture
def invoice_mapping() -> SalesforceMapping:
    """The DAG's mapping with the ``invoices`` section :data:`INVOICES_SECTION`."""
    return dataclasses.replace(MAPPING, invoices=parse_mapping({"invoices": INVOICES_SECTION}).invoices)
