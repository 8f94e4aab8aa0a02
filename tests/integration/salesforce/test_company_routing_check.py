"""The mapping check of an org whose accounts say their SAP company (``accounts.company_field``),
against the Salesforce sandbox: accounts naming no company are counted for every org, and a
CompanyDB that two companies sharing the org log into is refused while accounts use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_provider_b1.operators.salesforce import SalesforceMappingCheckOperator, SalesforceMappingMismatch

FIELD = "SAP_Company__c"
ORG = "b1_salesforce_default"


@pytest.fixture
def accounts(org, set_connection) -> list[dict[str, Any]]:
    """Six accounts with a company field, none naming a company yet; two SAP connections that both
    log into ``SBODEMOUS`` (two servers, one CompanyDB)."""
    org.control(
        "POST",
        "reset",
        {"accounts": 6, "opportunities": 0, "extra_fields": {"Account": [{"name": FIELD, "type": "string"}]}},
    )
    for conn_id, host in (("sap_b1_us", "sap-a.example"), ("sap_b1_us2", "sap-b.example")):
        connection = {
            "conn_type": "sap_b1",
            "host": f"https://{host}/b1s/v2/",
            "schema": "SBODEMOUS",
            "login": "u",
        }
        set_connection(conn_id, connection)
    return org.truth("Account")


def _check(companies: list[list[str]] | None, **options: Any) -> dict[str, Any]:
    document = yaml.safe_load((Path(__file__).parents[3] / "dags" / "salesforce_mapping.yaml").read_text())
    document["accounts"]["company_field"] = FIELD
    operator = SalesforceMappingCheckOperator(
        task_id="check_mapping", options={"mapping": document, **options}, companies=companies
    )
    return operator.run({})


def test_an_org_of_one_company_counts_the_accounts_naming_no_company(org, accounts):
    org.edit("Account", accounts[0]["Id"], **{FIELD: "sap_b1_us"})
    org.edit("Account", accounts[1]["Id"], **{FIELD: "SBODEMOUS"})  # by CompanyDB
    found = _check(None, sap_b1_conn_id="sap_b1_us")
    assert found["unrouted"] == {ORG: 4}


def test_a_companydb_two_companies_share_is_refused_while_accounts_name_it(org, accounts):
    shared = [["sap_b1_us", ORG], ["sap_b1_us2", ORG]]
    org.edit("Account", accounts[0]["Id"], **{FIELD: "sap_b1_us"})
    org.edit("Account", accounts[1]["Id"], **{FIELD: "SBODEMOUS"})
    with pytest.raises(SalesforceMappingMismatch) as caught:
        _check(shared)
    assert "1 account(s) name 'SBODEMOUS' in SAP_Company__c, the CompanyDB of sap_b1_us, sap_b1_us2" in str(
        caught.value
    )
    # named by connection id, each account has one company
    org.edit("Account", accounts[1]["Id"], **{FIELD: "sap_b1_us2"})
    assert _check(shared)["unrouted"] == {ORG: 4}
