"""Several SAP companies on the Salesforce flows: which records a company reads, the namespace and
external ids it writes under, and the mapping's company field, checked at parse time and against
the org's describe."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_b1.companies import declared_companies
from airflow_provider_b1.salesforce.flow import (
    SALESFORCE_TO_SAP_FLOW,
    SAP_TO_SALESFORCE_FLOW,
    check_companies,
    company_of,
    company_options,
    company_values,
    orgs_of,
    reads,
    salesforce_conn_id,
)
from airflow_provider_b1.salesforce.mapping import (
    SalesforceMappingError,
    load_mapping,
    parse_mapping,
    soql_list,
)
from airflow_provider_b1.salesforce.to_salesforce import invoice_external_id

DAG_MAPPING = Path(__file__).parents[3] / "dags" / "salesforce_mapping.yaml"
ENV = "B1_SALESFORCE_COMPANIES"


def _mapping(**accounts):
    return parse_mapping({"accounts": {"fields": {"Name": {"sap": "CardName"}}, **accounts}})


def test_a_company_reads_only_its_accounts_and_the_won_opportunities_of_its_accounts():
    mapping = _mapping(company_field="SAP_Company__c", where="Type = 'Customer' OR Type = 'Partner'")
    found = reads(mapping, ("sap_b1_eu", "SBODEMOEU"))
    assert found["Account"].where == (
        "(Type = 'Customer' OR Type = 'Partner') AND SAP_Company__c IN ('sap_b1_eu', 'SBODEMOEU')"
    )
    assert found["Opportunity"].where == (
        "IsWon = true AND Account.SAP_Company__c IN ('sap_b1_eu', 'SBODEMOEU')"
    )
    # one company per org: the reads of a flow of one company, unchanged
    alone = reads(mapping)
    assert (alone["Account"].where, alone["Opportunity"].where) == (
        "Type = 'Customer' OR Type = 'Partner'",
        "IsWon = true",
    )
    assert soql_list(["O'Brien", "a\\b"]) == "'O\\'Brien', 'a\\\\b'"


def test_several_companies_on_one_org_need_the_company_field_everywhere_it_is_used():
    mapping = load_mapping(DAG_MAPPING)  # the example names none
    assert mapping.company_field is None
    with pytest.raises(SalesforceMappingError, match=r"accounts\.company_field"):
        mapping.account_filter(("sap_b1_eu",))
    shared = declared_companies(ENV, "sap_b1_us, sap_b1_eu", peer="Salesforce connection")
    with pytest.raises(SalesforceMappingError, match="sap_b1_us, sap_b1_eu share the Salesforce org"):
        check_companies(shared, mapping)
    check_companies(shared, _mapping(company_field="SAP_Company__c"))
    # an org per company needs no company field
    own = declared_companies(ENV, "sap_b1_us=sf_us,sap_b1_eu=sf_eu", peer="Salesforce connection")
    check_companies(own, mapping)
    assert orgs_of(own) == {"sf_us": ["sap_b1_us"], "sf_eu": ["sap_b1_eu"]}
    assert orgs_of(declared_companies(ENV, "")) == {"b1_salesforce_default": ["sap_b1_default"]}


def test_the_company_field_is_checked_in_the_document_and_against_the_org():
    with pytest.raises(SalesforceMappingError) as caught:
        _mapping(company_field="not a field")
    assert "accounts.company_field: 'not a field' is not a Salesforce field name" in str(caught.value)
    with pytest.raises(SalesforceMappingError, match=r"another field than accounts\.account_number"):
        _mapping(company_field="AccountNumber")
    mapping = _mapping(company_field="SAP_Company__c")
    assert mapping.salesforce_fields()["Account"]["SAP_Company__c"] == "text"
    described = {
        "Account": {
            "AccountNumber": {"type": "string"},
            "Name": {"type": "string"},
            "SAP_Company__c": {"type": "picklist"},
        },
        "Opportunity": {},
    }
    assert mapping.check_against(described) == []
    described["Account"]["SAP_Company__c"] = {"type": "double"}
    assert mapping.check_against(described) == [
        "Account.SAP_Company__c is a double field; the mapping puts text in it"
    ]
    del described["Account"]["SAP_Company__c"]
    assert mapping.check_against(described) == ["Account.SAP_Company__c does not exist in the org"]


def test_the_default_company_keeps_todays_options_names_and_external_ids():
    default, eu = declared_companies(ENV, "sap_b1_default,sap_b1_eu=b1_salesforce_eu", peer="x")
    options = {"mapping": "m.yaml"}
    assert company_options(default, options) == options
    assert company_options(eu, options) == {
        "mapping": "m.yaml",
        "sap_b1_conn_id": "sap_b1_eu",
        "salesforce_conn_id": "b1_salesforce_eu",
    }
    for flow in (SALESFORCE_TO_SAP_FLOW, SAP_TO_SALESFORCE_FLOW):
        assert flow.scoped(company_options(default, options)) is flow
        assert flow.scoped(company_options(eu, options)).name == f"{flow.name}@sap_b1_eu"
    assert company_of(SAP_TO_SALESFORCE_FLOW.merged_options(options)) is None
    assert company_of(SAP_TO_SALESFORCE_FLOW.merged_options(company_options(eu, options))) == "sap_b1_eu"
    # DocEntry 17 exists in each company: the second company's invoice record carries it
    assert invoice_external_id(17, None) == "17"
    assert invoice_external_id(17, "sap_b1_eu") == "sap_b1_eu:17"


def test_a_company_is_named_by_its_connection_id_or_its_company_db(set_connection):
    mapping = _mapping(company_field="SAP_Company__c")
    set_connection(
        "sap_b1_eu",
        {"conn_type": "sap_b1", "host": "https://sap.example/b1s/v2/", "schema": "SBODEMOEU", "login": "u"},
    )
    assert company_values({"sap_b1_conn_id": "sap_b1_eu"}, mapping) == ("sap_b1_eu", "SBODEMOEU")
    # a connection that cannot be read: its id still names it (its tasks then fail on it)
    assert company_values({"sap_b1_conn_id": "sap_b1_nowhere"}, mapping) == ("sap_b1_nowhere",)
    assert company_values({"sap_b1_conn_id": "sap_b1_eu"}, load_mapping(DAG_MAPPING)) is None


def test_a_replay_of_a_companys_scoped_flow_reopens_the_org_the_declaration_pairs_it_with(monkeypatch):
    monkeypatch.setenv(ENV, "sap_b1_default,sap_b1_eu=b1_salesforce_eu")
    # a replay of salesforce_to_sap_b1@sap_b1_eu: only its SAP connection is set
    replayed = SALESFORCE_TO_SAP_FLOW.scoped({"sap_b1_conn_id": "sap_b1_eu"}).merged_options({})
    assert salesforce_conn_id(replayed) == "b1_salesforce_eu"
    assert salesforce_conn_id(SALESFORCE_TO_SAP_FLOW.merged_options({})) == "b1_salesforce_default"
    # options naming another connection keep it
    assert salesforce_conn_id({**replayed, "salesforce_conn_id": "b1_salesforce_x"}) == "b1_salesforce_x"
    monkeypatch.setenv(ENV, "sap_b1_eu,sap_b1_eu")
    with pytest.raises(SalesforceMappingError, match="names a SAP connection twice"):
        salesforce_conn_id(replayed)


def test_the_check_names_an_invoice_external_id_too_short_for_a_companys_keys():
    from airflow_provider_b1.operators.salesforce import _external_id_room

    mapping = parse_mapping(
        {
            "accounts": {"fields": {"Name": {"sap": "CardName"}}},
            "invoices": {
                "object": "SAP_Invoice__c",
                "external_id": "SAP_Doc_Entry__c",
                "account": "Account__c",
                "fields": {"DocNum": "Name"},
            },
        }
    )
    described = {"SAP_Invoice__c": {"SAP_Doc_Entry__c": {"type": "string", "length": 20}}}
    assert _external_id_room(mapping, described, ["sap_b1_default", "sap_b1_eu"]) == []
    assert _external_id_room(mapping, described, ["sap_b1_default", "sap_b1_europe"]) == [
        "SAP_Invoice__c.SAP_Doc_Entry__c holds 20 characters, and the invoices of sap_b1_europe need "
        "up to 24 (<SAP conn id>:<DocEntry>): lengthen it"
    ]
    assert _external_id_room(mapping, described, ["sap_b1_default"]) == []
