"""A flow run per SAP company is the same flow under a scoped name; the company list is declared once."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sync.flows import UnknownFlowError, get_flow
from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW, declared_companies


def test_the_default_company_keeps_the_plain_flow():
    assert WAREHOUSE_FLOW.scoped({"sap_b1_conn_id": "sap_b1_default"}) is WAREHOUSE_FLOW
    assert WAREHOUSE_FLOW.scoped({}) is WAREHOUSE_FLOW


def test_another_company_is_its_own_scope_found_again_by_name():
    eu = WAREHOUSE_FLOW.scoped({"sap_b1_conn_id": "sap_b1_eu", "page_size": 100})
    assert eu.name == "sap_b1_to_warehouse@sap_b1_eu"
    assert eu.options["sap_b1_conn_id"] == "sap_b1_eu"  # replay reopens the company's connection
    assert eu.streams == WAREHOUSE_FLOW.streams
    assert WAREHOUSE_FLOW.scoped({"sap_b1_conn_id": "sap_b1_eu"}) is eu
    assert get_flow("sap_b1_to_warehouse@sap_b1_eu") is eu
    assert eu.scoped({"sap_b1_conn_id": "sap_b1_us"}) is eu


def test_a_flow_without_scopes_refuses_a_scoped_name():
    from airflow_provider_b1.sync.flows import Flow, unregister_flow

    Flow("plain_flow", "a", "b", (), open_source=dict, open_sink=dict)
    try:
        with pytest.raises(UnknownFlowError, match="one scope only"):
            get_flow("plain_flow@x")
    finally:
        unregister_flow("plain_flow")


def test_the_company_list_is_the_default_connection_unless_declared():
    assert declared_companies("") == ["sap_b1_default"]
    assert declared_companies(" sap_b1_us , sap_b1_eu,") == ["sap_b1_us", "sap_b1_eu"]
    with pytest.raises(ValueError, match="twice"):
        declared_companies("a,a")
    with pytest.raises(ValueError, match="not a SAP connection id"):
        declared_companies("sap b1")
