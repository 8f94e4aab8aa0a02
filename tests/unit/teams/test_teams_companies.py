"""Which SAP companies the Teams DAGs run for: the cards' (``B1_TEAMS_COMPANIES``, else the one of
``B1_TEAMS_SAP_CONN_ID``) and the approvals' (each with its own approver's connection)."""

from __future__ import annotations

import pytest

from airflow_provider_b1.companies import Company
from airflow_provider_b1.teams import flow
from airflow_provider_b1.teams.approvals import approval_companies


def test_the_cards_companies_are_the_list_else_the_one_connection_the_dag_always_read(monkeypatch):
    monkeypatch.delenv("B1_TEAMS_COMPANIES", raising=False)
    monkeypatch.delenv("B1_TEAMS_SAP_CONN_ID", raising=False)
    assert flow.teams_companies() == [Company("sap_b1_default")]
    assert flow.default_sap_conn_id() == "sap_b1_default"
    # a deployment reading another SAP connection keeps it as its default company: its flow
    # name, audit rows and ledger rows stay what they were
    monkeypatch.setenv("B1_TEAMS_SAP_CONN_ID", "sap_b1_us")
    assert flow.teams_companies() == [Company("sap_b1_us")]
    assert flow.default_sap_conn_id() == "sap_b1_us"
    # listing companies keeps it as the default company: nothing of it is sent twice
    monkeypatch.setenv("B1_TEAMS_COMPANIES", "sap_b1_us, sap_b1_eu")
    assert flow.teams_companies() == [Company("sap_b1_us"), Company("sap_b1_eu")]
    assert flow.default_sap_conn_id() == "sap_b1_us"
    for omitted in ("sap_b1_eu", "sap_b1_default, sap_b1_us"):
        monkeypatch.setenv("B1_TEAMS_COMPANIES", omitted)
        with pytest.raises(ValueError, match="B1_TEAMS_SAP_CONN_ID names sap_b1_us, the company whose cards"):
            flow.teams_companies()
    # without it, the list's default company is sap_b1_default
    monkeypatch.delenv("B1_TEAMS_SAP_CONN_ID")
    monkeypatch.setenv("B1_TEAMS_COMPANIES", "sap_b1_default, sap_b1_eu")
    assert flow.teams_companies() == [Company("sap_b1_default"), Company("sap_b1_eu")]
    assert flow.default_sap_conn_id() == "sap_b1_default"
    with pytest.raises(ValueError, match="takes only SAP connection ids"):
        flow.teams_companies("sap_b1_eu=other")


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
