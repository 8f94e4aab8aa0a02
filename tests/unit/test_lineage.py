"""OpenLineage datasets of the flows: exact namespaces and names from given streams and connections."""

from __future__ import annotations

import os
import sys

import pytest

from airflow_provider_b1.lineage import (
    DatasetName,
    LineageConfigError,
    flow_datasets,
    operator_lineage,
    salesforce_namespace,
    sap_b1_namespace,
)
from airflow_provider_b1.salesforce.flow import SALESFORCE_TO_SAP_FLOW, SAP_TO_SALESFORCE_FLOW
from airflow_provider_b1.servicetitan.flow import SERVICETITAN_FLOW
from airflow_provider_b1.sync.flows import Flow, Lineage, Stream, System, get_flow
from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW

SAP = "sap-b1://sap.example.com:50000/SBODEMOUS"
SALESFORCE = "salesforce://acme.my.salesforce.com"
SERVICETITAN = "servicetitan://1234567"
POSTGRES = "postgres://warehouse.example.com:5433"


def _connection(conn_id: str = "c", **fields):
    from airflow.sdk import Connection

    return Connection(conn_id=conn_id, **fields)


@pytest.fixture
def connections(set_connection):
    """Each system's connection under the flows' default ids."""
    set_connection(
        "sap_b1_default",
        {
            "conn_type": "sap_b1",
            "host": "https://SAP.example.com:50000/b1s/v2/",
            "schema": "SBODEMOUS",
            "login": "manager",
            "password": "secret-1",
        },
    )
    set_connection(
        "b1_warehouse_default",
        {
            "conn_type": "postgres",
            "host": "warehouse.example.com",
            "port": 5433,
            "schema": "analytics",
            "login": "loader",
        },
    )
    set_connection(
        "b1_salesforce_default",
        {"conn_type": "b1_salesforce", "host": "https://acme.my.salesforce.com", "login": "key"},
    )
    set_connection(
        "servicetitan_default",
        {"conn_type": "servicetitan", "login": "client", "extra": {"tenant_id": "1234567", "app_key": "k"}},
    )


def _names(datasets):
    return [(d.namespace, d.name) for d in datasets]


def test_warehouse_entities_name_their_sap_entity_sets_and_every_table_they_land_in(connections):
    found = flow_datasets(WAREHOUSE_FLOW, ["Invoices", "BusinessPartners", "JournalEntries"])

    assert _names(found.inputs) == [(SAP, "Invoices"), (SAP, "BusinessPartners"), (SAP, "JournalEntries")]
    assert _names(found.outputs) == [
        (POSTGRES, "analytics.sap_b1.fact_sales_invoice"),
        (POSTGRES, "analytics.sap_b1.fact_sales_invoice_line"),
        # inferred partners (an invoice naming a partner not loaded yet) land in the dimension
        (POSTGRES, "analytics.sap_b1.dim_business_partner"),
        (POSTGRES, "analytics.sap_b1.fact_journal_entry"),
        (POSTGRES, "analytics.sap_b1.fact_journal_entry_line"),
    ]


def test_warehouse_schema_and_connections_come_from_the_options(set_connection, tmp_path, connections):
    database = tmp_path / "warehouse.db"
    set_connection("demo_warehouse", {"conn_type": "sqlite", "host": str(database)})
    set_connection(
        "sap_other", {"conn_type": "sap_b1", "host": "sap2.example.com", "port": 50001, "schema": "SBOTEST"}
    )

    found = flow_datasets(
        WAREHOUSE_FLOW, ["Items"], {"warehouse_conn_id": "demo_warehouse", "sap_b1_conn_id": "sap_other"}
    )

    assert found.inputs == (DatasetName("sap-b1://sap2.example.com:50001/SBOTEST", "Items"),)
    assert found.outputs == (DatasetName(f"sqlite://{os.path.realpath(database)}", "dim_item"),)
    schema = flow_datasets(WAREHOUSE_FLOW, ["Items"], {"warehouse_schema": "mart"})
    assert schema.outputs == (DatasetName(POSTGRES, "analytics.mart.dim_item"),)


def test_servicetitan_export_feeds_land_in_sap_receivables(connections):
    found = flow_datasets(SERVICETITAN_FLOW)

    assert _names(found.inputs) == [
        (SERVICETITAN, "crm/export/customers"),
        (SERVICETITAN, "accounting/export/invoices"),
        (SERVICETITAN, "accounting/export/payments"),
    ]
    assert _names(found.outputs) == [(SAP, "BusinessPartners"), (SAP, "Invoices"), (SAP, "IncomingPayments")]


def test_servicetitan_feeds_are_the_hooks_export_endpoints():
    from airflow_provider_b1.hooks.servicetitan.reads import KINDS

    for stream in SERVICETITAN_FLOW.streams:
        kind = KINDS[stream.name]
        assert SERVICETITAN_FLOW.lineage.inputs_of(stream) == (f"{kind.module}/{kind.export}",)


def test_salesforce_objects_into_sap_and_sap_into_salesforce_objects(connections):
    to_sap = flow_datasets(SALESFORCE_TO_SAP_FLOW)
    assert _names(to_sap.inputs) == [
        (SALESFORCE, "Account"),
        (SALESFORCE, "Opportunity"),
        (SALESFORCE, "OpportunityLineItem"),
    ]
    assert _names(to_sap.outputs) == [(SAP, "BusinessPartners"), (SAP, "Orders")]

    to_salesforce = flow_datasets(SAP_TO_SALESFORCE_FLOW)
    assert _names(to_salesforce.inputs) == [
        (SAP, "BusinessPartners"),
        (SAP, "Invoices"),
        (SAP, "IncomingPayments"),
    ]
    assert _names(to_salesforce.outputs) == [(SALESFORCE, "Account"), (SALESFORCE, "Opportunity")]

    partners = flow_datasets(SAP_TO_SALESFORCE_FLOW, ["BusinessPartners"])
    assert _names(partners.outputs) == [(SALESFORCE, "Account")]


def test_every_flow_of_the_provider_declares_its_lineage():
    for name in (
        "sap_b1_to_warehouse",
        "servicetitan_to_sap_b1",
        "salesforce_to_sap_b1",
        "sap_b1_to_salesforce",
    ):
        assert get_flow(name).lineage is not None, name


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "https://sap.example.com:50000/b1s/v1"}, SAP),
        ({"host": "sap.example.com", "port": 50000}, SAP),
        ({"host": "https://SAP.Example.com:50000"}, SAP),
        ({"host": "https://sap.example.com/b1s/v2/"}, "sap-b1://sap.example.com:443/SBODEMOUS"),
        ({"host": "http://10.0.0.5:50001"}, "sap-b1://10.0.0.5:50001/SBODEMOUS"),
    ],
)
def test_the_sap_namespace_is_the_service_layer_host_port_and_company(fields, expected):
    assert sap_b1_namespace(_connection(schema="SBODEMOUS", **fields)) == expected


def test_the_salesforce_namespace_is_the_my_domain_host_with_a_port_only_when_not_443():
    assert salesforce_namespace(_connection(host="acme.my.salesforce.com")) == SALESFORCE
    assert salesforce_namespace(_connection(host="https://acme.my.salesforce.com:443/")) == SALESFORCE
    assert salesforce_namespace(_connection(host="https://127.0.0.1:8443")) == "salesforce://127.0.0.1:8443"


def test_a_connection_that_cannot_name_its_datasets_says_which(set_connection, connections):
    set_connection("no_company", {"conn_type": "sap_b1", "host": "sap.example.com"})
    with pytest.raises(LineageConfigError, match=r"no_company.*company database"):
        flow_datasets(WAREHOUSE_FLOW, ["Items"], {"sap_b1_conn_id": "no_company"})
    set_connection("no_tenant", {"conn_type": "servicetitan", "extra": {}})
    with pytest.raises(LineageConfigError, match=r"no_tenant.*tenant_id"):
        flow_datasets(SERVICETITAN_FLOW, None, {"servicetitan_conn_id": "no_tenant"})


def test_a_flow_cannot_name_the_lineage_of_a_stream_it_lacks():
    with pytest.raises(ValueError, match="lineage of streams it lacks"):
        Flow(
            name="lineage_typo",
            source_system="a",
            target_system="b",
            streams=(Stream("orders"),),
            open_source=lambda options: None,
            open_sink=lambda options: None,
            lineage=Lineage(System("sap_b1", "a"), System("sap_b1", "b"), outputs={"order": ("Orders",)}),
            register=False,
        )


# -- through the operators --------------------------------------------------------------------------


def test_sync_operator_reports_openlineage_datasets_of_its_streams_and_options(set_connection, connections):
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import Dataset

    from airflow_provider_b1.operators.sync import SyncOperator

    set_connection("sf_eu", {"conn_type": "b1_salesforce", "host": "eu.my.salesforce.com"})
    task = SyncOperator(
        task_id="opportunities",
        flow="salesforce_to_sap_b1",
        streams=["Opportunity"],
        options={"salesforce_conn_id": "sf_eu"},
    )

    lineage = task.get_openlineage_facets_on_start()

    assert isinstance(lineage, OperatorLineage)
    assert lineage.inputs == [
        Dataset(namespace="salesforce://eu.my.salesforce.com", name="Opportunity"),
        Dataset(namespace="salesforce://eu.my.salesforce.com", name="OpportunityLineItem"),
    ]
    assert lineage.outputs == [Dataset(namespace=SAP, name="Orders")]


def test_warehouse_operator_reports_the_tables_of_its_group(connections):
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1ToWarehouseOperator

    task = SapB1ToWarehouseOperator(task_id="load_sales", group="sales", warehouse_schema="dwh")

    lineage = task.get_openlineage_facets_on_start()

    assert _names(lineage.inputs) == [(SAP, "Invoices"), (SAP, "IncomingPayments")]
    assert _names(lineage.outputs) == [
        (POSTGRES, "analytics.dwh.fact_sales_invoice"),
        (POSTGRES, "analytics.dwh.fact_sales_invoice_line"),
        (POSTGRES, "analytics.dwh.dim_business_partner"),
        (POSTGRES, "analytics.dwh.fact_incoming_payment"),
        (POSTGRES, "analytics.dwh.fact_incoming_payment_invoice"),
    ]


def test_the_openlineage_provider_extractor_takes_the_operators_datasets(connections):
    """The provider's own default extractor (what a deployment with lineage enabled runs) finds the methods."""
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1ToWarehouseOperator

    task = SapB1ToWarehouseOperator(task_id="load_finance", group="finance")
    extractor = DefaultExtractor(task)

    for lineage in (extractor.extract(), extractor.extract_on_complete(None)):
        assert _names(lineage.inputs) == [(SAP, "JournalEntries")]
        assert [d.name for d in lineage.outputs] == [
            "analytics.sap_b1.fact_journal_entry",
            "analytics.sap_b1.fact_journal_entry_line",
        ]


def test_without_the_openlineage_provider_the_operators_report_nothing(monkeypatch, connections):
    from airflow_provider_b1.operators.sync import SyncOperator

    # a None entry in sys.modules makes the import raise ImportError, as without the extra
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    task = SyncOperator(task_id="customers", flow=SERVICETITAN_FLOW, streams=["customers"])

    assert task.get_openlineage_facets_on_start() is None
    assert operator_lineage(WAREHOUSE_FLOW, ["Items"]) is None


def test_a_flow_without_lineage_reports_nothing():
    flow = Flow(
        name="no_lineage",
        source_system="a",
        target_system="b",
        streams=(Stream("orders"),),
        open_source=lambda options: None,
        open_sink=lambda options: None,
        register=False,
    )
    assert flow_datasets(flow) is None
    assert operator_lineage(flow) is None
