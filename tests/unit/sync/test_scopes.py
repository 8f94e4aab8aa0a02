"""A flow run per SAP company is the same flow under a scoped name; the company list is declared once."""

from __future__ import annotations

import pytest

from airflow_provider_b1.companies import Company, declared_companies
from airflow_provider_b1.sync.flows import UnknownFlowError, get_flow
from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW


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
    assert declared_companies(value="") == [Company("sap_b1_default")]
    assert [c.sap_b1_conn_id for c in declared_companies(value=" sap_b1_us , sap_b1_eu,")] == [
        "sap_b1_us",
        "sap_b1_eu",
    ]
    with pytest.raises(ValueError, match="twice"):
        declared_companies(value="a,a")
    with pytest.raises(ValueError, match="not a connection id"):
        declared_companies(value="sap b1")
    with pytest.raises(ValueError, match="takes only SAP connection ids"):
        declared_companies(value="sap_b1_us=servicetitan_us")


def test_a_flow_with_a_connection_per_company_reads_pairs():
    companies = declared_companies(
        "B1_X", " sap_b1_us = servicetitan_us , sap_b1_eu=servicetitan_eu", peer="ServiceTitan connection"
    )
    assert companies == [Company("sap_b1_us", "servicetitan_us"), Company("sap_b1_eu", "servicetitan_eu")]
    assert declared_companies("B1_X", "sap_b1_us", peer="x") == [Company("sap_b1_us")]
    with pytest.raises(ValueError, match="gives one ServiceTitan connection to two companies"):
        declared_companies("B1_X", "a=t,b=t", peer="ServiceTitan connection")
    with pytest.raises(ValueError, match="B1_X holds ''"):
        declared_companies("B1_X", "a=", peer="x")


def test_the_list_is_read_from_the_flow_s_own_variable(monkeypatch):
    monkeypatch.setenv("B1_TEAMS_COMPANIES", "sap_b1_us,sap_b1_eu")
    monkeypatch.delenv("B1_SAP_COMPANIES", raising=False)
    assert len(declared_companies("B1_TEAMS_COMPANIES")) == 2
    assert declared_companies() == [Company("sap_b1_default")]
