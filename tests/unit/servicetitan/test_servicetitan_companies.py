"""``B1_SERVICETITAN_COMPANIES``: the SAP companies of ``servicetitan_to_sap_b1``, each paired with
the ServiceTitan connection of its own tenant, checked when the DAG is parsed."""

from __future__ import annotations

import pytest

from airflow_provider_b1.companies import Company
from airflow_provider_b1.servicetitan.flow import (
    COMPANIES_ENV,
    SERVICETITAN_FLOW,
    servicetitan_companies,
    servicetitan_conn_id,
)


def test_unset_it_is_the_default_company_reading_the_default_tenant(monkeypatch):
    monkeypatch.delenv(COMPANIES_ENV, raising=False)
    assert servicetitan_companies() == [Company("sap_b1_default", "servicetitan_default")]
    assert servicetitan_companies(" ") == [Company("sap_b1_default", "servicetitan_default")]
    # one entry without '=' reads servicetitan_default; one with '=' its own connection
    assert servicetitan_companies("sap_b1_eu") == [Company("sap_b1_eu", "servicetitan_default")]
    assert servicetitan_companies("sap_b1_eu=servicetitan_eu") == [Company("sap_b1_eu", "servicetitan_eu")]
    assert servicetitan_companies("sap_b1_us=servicetitan_us, sap_b1_eu=servicetitan_eu") == [
        Company("sap_b1_us", "servicetitan_us"),
        Company("sap_b1_eu", "servicetitan_eu"),
    ]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (
            "sap_b1_us=servicetitan_us,sap_b1_eu",
            "declares 2 SAP companies but names no ServiceTitan connection for sap_b1_eu; with several "
            "companies every entry must be <SAP conn id>=<ServiceTitan conn id>",
        ),
        ("sap_b1_us,sap_b1_eu", "names no ServiceTitan connection for sap_b1_us, sap_b1_eu"),
        ("sap_b1_us=st,sap_b1_eu=st", "gives one ServiceTitan connection to two companies"),
        ("sap_b1_us=a,sap_b1_us=b", "names a SAP connection twice"),
        ("sap_b1_us=service titan", "holds 'service titan', which is not a connection id"),
        ("sap_b1_us=", "holds ''"),
    ],
)
def test_a_declaration_that_would_mix_tenants_or_companies_is_refused_naming_it(value, says):
    with pytest.raises(ValueError, match="B1_SERVICETITAN_COMPANIES") as raised:
        servicetitan_companies(value)
    assert says in str(raised.value)


def test_a_scoped_flow_reads_the_tenant_declared_for_its_company_unless_told_another(monkeypatch):
    monkeypatch.setenv(COMPANIES_ENV, "sap_b1_default=servicetitan_us,sap_b1_eu=servicetitan_eu")
    # a replay of servicetitan_to_sap_b1@sap_b1_eu given no options: the scope sets only SAP's connection
    scoped = SERVICETITAN_FLOW.scoped({"sap_b1_conn_id": "sap_b1_eu"})
    assert scoped.name == "servicetitan_to_sap_b1@sap_b1_eu"
    assert servicetitan_conn_id(scoped.merged_options()) == "servicetitan_eu"
    assert servicetitan_conn_id(SERVICETITAN_FLOW.merged_options()) == "servicetitan_us"
    # options naming a connection of their own keep it
    assert servicetitan_conn_id(scoped.merged_options({"servicetitan_conn_id": "st_other"})) == "st_other"
    # a company the variable does not declare reads the default
    assert servicetitan_conn_id({"sap_b1_conn_id": "sap_b1_x"}) == "servicetitan_default"
    monkeypatch.delenv(COMPANIES_ENV)
    assert servicetitan_conn_id(scoped.merged_options()) == "servicetitan_default"
    monkeypatch.setenv(COMPANIES_ENV, "a,b")
    from airflow_provider_b1.servicetitan.mappings import MappingError

    with pytest.raises(MappingError, match="names no ServiceTitan connection"):
        servicetitan_conn_id(scoped.merged_options())


def test_two_companies_whose_connections_reach_one_tenant_are_refused_before_anything_is_posted(
    monkeypatch,
):
    import json

    from airflow_provider_b1.servicetitan.flow import own_tenant
    from airflow_provider_b1.servicetitan.mappings import MappingError

    def servicetitan(conn_id: str, tenant: str) -> None:
        extra = {"tenant_id": tenant, "app_key": "k"}
        connection = {"conn_type": "servicetitan", "login": "id", "password": "secret", "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))

    servicetitan("servicetitan_us", "1000")
    servicetitan("servicetitan_eu", "2000")
    monkeypatch.setenv(COMPANIES_ENV, "sap_b1_us=servicetitan_us,sap_b1_eu=servicetitan_eu")
    eu = {"sap_b1_conn_id": "sap_b1_eu", "servicetitan_conn_id": "servicetitan_eu"}
    assert own_tenant(eu) == "2000"
    assert own_tenant({"sap_b1_conn_id": "sap_b1_eu"}) == "2000"  # a replay: the declared pair
    servicetitan("servicetitan_eu", "1000")  # a copy of the US connection, renamed
    with pytest.raises(
        MappingError, match=r"'servicetitan_eu' .* and 'servicetitan_us' .* both reach tenant 1000"
    ):
        own_tenant(eu)


def test_the_dag_refuses_a_mapping_section_naming_none_of_its_companies_where_it_declares_them(
    tmp_path, monkeypatch
):
    import importlib.util
    from pathlib import Path

    from airflow_provider_b1.servicetitan.flow import MAPPINGS_ENV
    from airflow_provider_b1.servicetitan.mappings import MappingError

    def parse_dag() -> None:
        path = Path(__file__).parents[3] / "dags" / "servicetitan_to_sap_b1.py"
        spec = importlib.util.spec_from_file_location("servicetitan_to_sap_b1_parsed", path)
        spec.loader.exec_module(importlib.util.module_from_spec(spec))

    mapping_file = tmp_path / "mappings.yaml"
    mapping_file.write_text('gl_accounts: {"4000": "421001"}\ncompanies:\n  sap_b1_ue: {tax_code: B1}\n')
    monkeypatch.setenv(MAPPINGS_ENV, str(mapping_file))
    monkeypatch.delenv(COMPANIES_ENV, raising=False)
    parse_dag()  # no declaration: the file may serve other deployments' companies
    monkeypatch.setenv(COMPANIES_ENV, "sap_b1_us=servicetitan_us,sap_b1_eu=servicetitan_eu")
    with pytest.raises(
        MappingError,
        match=r"companies\.sap_b1_ue names none of the declared SAP companies \(sap_b1_us, sap_b1_eu;",
    ):
        parse_dag()
    mapping_file.write_text('companies:\n  sap_b1_eu: {gl_accounts: {"4000": ""}}\n')
    with pytest.raises(MappingError, match=r"companies\.sap_b1_eu\.gl_accounts must map names"):
        parse_dag()


def test_a_task_reads_its_option_else_the_variable_else_maps_nothing(monkeypatch):
    from airflow_provider_b1.servicetitan.flow import MAPPINGS_ENV, mappings_source

    monkeypatch.delenv(MAPPINGS_ENV, raising=False)
    assert mappings_source({}) is None  # never the example file's sandbox accounts
    monkeypatch.setenv(MAPPINGS_ENV, "var:st_mappings")
    assert mappings_source({}) == "var:st_mappings"
    assert mappings_source({"mappings": "/deployed/mappings.yaml"}) == "/deployed/mappings.yaml"
