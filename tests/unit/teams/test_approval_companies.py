"""Which SAP companies the approvals DAG asks for, each with its own approver's connection."""

from __future__ import annotations

import pytest

from airflow_provider_b1.companies import Company
from airflow_provider_b1.teams.approvals import approval_companies


def test_each_company_is_decided_through_its_own_approver_and_the_default_keeps_its_own(monkeypatch):
    monkeypatch.delenv("B1_APPROVALS_COMPANIES", raising=False)
    assert approval_companies() == [Company("sap_b1_default", "sap_b1_approver")]  # as before companies
    assert approval_companies("sap_b1_eu") == [Company("sap_b1_eu", "sap_b1_approver")]  # alone: the usual
    assert approval_companies("sap_b1_default, sap_b1_eu=sap_b1_eu_approver") == [
        Company("sap_b1_default", "sap_b1_approver"),
        Company("sap_b1_eu", "sap_b1_eu_approver"),
    ]
    monkeypatch.setenv("B1_APPROVALS_COMPANIES", "sap_b1_us=us_approver,sap_b1_eu=eu_approver")
    assert [c.peer_conn_id for c in approval_companies()] == ["us_approver", "eu_approver"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("sap_b1_default,sap_b1_eu", "names 'sap_b1_eu' without its approver"),
        ("sap_b1_us=a,sap_b1_eu=a", "gives one SAP approver connection to two companies"),
        ("sap_b1_default,sap_b1_eu=sap_b1_approver", "gives 'sap_b1_approver' to two companies"),
    ],
)
def test_several_companies_must_each_name_an_approver_of_their_own(value, message):
    with pytest.raises(ValueError, match=message):
        approval_companies(value)
