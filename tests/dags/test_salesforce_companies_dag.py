"""``sap_b1_salesforce`` for two SAP companies sharing one Salesforce org (``B1_SALESFORCE_COMPANIES``).

The second company is a second SAP sandbox (``SBODEMOEU``, its own server and data, the same
CardCodes and DocEntries as the first). Each account names its company in ``SAP_Company__c`` (the
mapping's ``accounts.company_field``), by SAP connection id or by CompanyDB; some name none. One
run links each company's accounts to its own partners only, posts its won opportunities into its
own SAP, brings its balances to its own accounts and its invoices as records of their own; both
reconciliations pass. With the second company's Service Layer unreachable, only its tasks fail.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dag_helpers import EU, EU_COMPANY_DB, eu_connection, forget_runs, task_states, xcoms

from airflow_provider_b1.sandbox.salesforce.schema import SAP_INVOICE_OBJECT
from airflow_provider_b1.utils.retry import RetryPolicy

DAG_ID = "sap_b1_salesforce"
HOME = "sap_b1_default"
DAG_MAPPING = Path(__file__).parents[2] / "dags" / "salesforce_mapping.yaml"
COMPANY_FIELD = "SAP_Company__c"
ORG = "b1_salesforce_default"


@pytest.fixture
def org(flow, eu_sandbox, salesforce_sandbox, set_connection, tmp_path, monkeypatch) -> Iterator[Any]:
    """A small org with a company field and an invoice object, its accounts spread over the two
    companies (a third naming none), the DAG's mapping with ``company_field`` and ``invoices``."""
    flow.sap.restore(invoices=150)
    eu_sandbox.restore(invoices=80)
    salesforce_sandbox.restore()
    salesforce_sandbox.control(
        "POST",
        "reset",
        {
            "accounts": 12,
            "opportunities": 30,
            "extra_fields": {"Account": [{"name": COMPANY_FIELD, "type": "string", "length": 40}]},
            "custom_objects": [SAP_INVOICE_OBJECT],
        },
    )
    forget_runs(DAG_ID)
    document = yaml.safe_load(DAG_MAPPING.read_text())
    document["accounts"]["company_field"] = COMPANY_FIELD
    document["invoices"] = {
        "object": "SAP_Invoice__c",
        "external_id": "SAP_Doc_Entry__c",
        "account": "Account__c",
        "fields": {"DocNum": "Name", "DocTotal": "Total__c"},
    }
    mapping = tmp_path / "salesforce_mapping.yaml"
    mapping.write_text(yaml.safe_dump(document, sort_keys=False))
    monkeypatch.setenv("B1_SALESFORCE_MAPPING", str(mapping))
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "sf-tokens"))
    monkeypatch.setenv("B1_SALESFORCE_COMPANIES", f"{HOME},{EU}")
    set_connection(ORG, salesforce_sandbox.connection())
    set_connection(EU, eu_connection(eu_sandbox))
    try:
        yield salesforce_sandbox
    finally:
        salesforce_sandbox.faults()
        salesforce_sandbox.control("POST", "reset", {})


def _linked(conn_id: str, account_ids: list[str]) -> dict[str, str]:
    """``{account id: CardCode}`` of the partners of a company whose link field holds an account id."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    sap = SapB1Hook(conn_id)
    try:
        return {
            p["U_SalesforceId"]: p["CardCode"]
            for page in sap.iter_any_of(
                "BusinessPartners", "U_SalesforceId", account_ids, select=["CardCode", "U_SalesforceId"]
            )
            for p in page
        }
    finally:
        sap.close()


def _orders(conn_id: str) -> dict[str, int]:
    """``{opportunity id: sales orders}`` of a company."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    sap = SapB1Hook(conn_id)
    found: dict[str, int] = {}
    try:
        for page in sap.iter_pages(
            "Orders", filter="startswith(NumAtCard, '006')", select=["DocEntry", "NumAtCard"]
        ):
            for order in page:
                found[order["NumAtCard"]] = found.get(order["NumAtCard"], 0) + 1
    finally:
        sap.close()
    return found


def test_one_org_two_companies_each_gets_its_own_accounts_orders_balances_and_one_down_fails_alone(
    flow, org, eu_sandbox, dag_of, set_connection, monkeypatch
):
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    accounts = [a for a in org.truth("Account") if a["AccountNumber"]]
    # by connection id, by CompanyDB (either names a company), or none: synced nowhere
    home = accounts[0::3]
    eu = accounts[1::3]
    for account in home:
        org.edit("Account", account["Id"], **{COMPANY_FIELD: HOME})
    for account in eu:
        org.edit("Account", account["Id"], **{COMPANY_FIELD: EU_COMPANY_DB})
    # one CardCode in both companies, for two accounts: a partner in each SAP
    shared = home[0]["AccountNumber"]
    org.edit("Account", eu[0]["Id"], AccountNumber=shared)
    eu_sap = SapB1Hook(EU)
    eu_sap.update("BusinessPartners", shared, {"CreditLimit": 4321.0})
    eu_sap.close()
    home_ids, eu_ids = [a["Id"] for a in home], [a["Id"] for a in eu]
    every_id = [a["Id"] for a in org.truth("Account")]
    nowhere = set(every_id) - set(home_ids) - set(eu_ids)
    won = [o for o in org.truth("Opportunity") if o.get("IsWon")]
    home_won = {o["Id"] for o in won if o["AccountId"] in home_ids}
    eu_won = {o["Id"] for o in won if o["AccountId"] in eu_ids}
    assert home_won
    assert eu_won

    dag = dag_of(DAG_ID, retries=0)
    assert {t.task_id.split(".")[0] for t in dag.tasks if "." in t.task_id} == {
        "accounts",
        "orders",
        "balances",
        EU,
    }
    first = dag.test()
    assert set(task_states(first).values()) == {"success"}, task_states(first)  # both reconciles

    # each company's SAP holds exactly its accounts as partners, and its won deals as orders
    assert set(_linked(HOME, every_id)) == set(home_ids)
    assert set(_linked(EU, every_id)) == set(eu_ids)
    assert set(_orders(HOME)) == home_won
    assert _orders(EU) == dict.fromkeys(eu_won, 1)
    # the shared CardCode: one partner in each company, each linked to its own account
    assert _linked(HOME, [home[0]["Id"]]) == {home[0]["Id"]: shared}
    assert _linked(EU, [eu[0]["Id"]]) == {eu[0]["Id"]: shared}
    # ... whose balances land on its own account
    shown = {a["Id"]: a for a in org.truth("Account")}
    home_sap = SapB1Hook()
    home_limit = home_sap.get("BusinessPartners", shared, select=["CreditLimit"])["CreditLimit"]
    assert shown[eu[0]["Id"]]["SAP_Credit_Limit__c"] == pytest.approx(4321.0)
    assert shown[home[0]["Id"]]["SAP_Credit_Limit__c"] == pytest.approx(home_limit)
    assert home_limit != pytest.approx(4321.0)
    # invoices as records: the second company's external ids carry it (DocEntries repeat)
    invoices = {r["SAP_Doc_Entry__c"]: r["Account__c"] for r in org.truth("SAP_Invoice__c")}
    eu_keys = {k for k in invoices if k.startswith(f"{EU}:")}
    assert eu_keys
    assert set(invoices) - eu_keys
    assert {invoices[k] for k in eu_keys} <= set(eu_ids)
    assert {invoices[k] for k in set(invoices) - eu_keys} <= set(home_ids)

    values = xcoms(DAG_ID, first.run_id)["values"]
    assert values["check_mapping:return_value"]["unrouted"] == {ORG: len(nowhere)}
    assert values["reconcile:return_value"]["accounts"] == len(home)
    assert values[f"{EU}.reconcile:return_value"]["accounts"] == len(eu)
    assert values[f"{EU}.reconcile:return_value"]["opportunities"] == len(eu_won)
    # audit rows, links and agreed values per company; the default company's are today's
    flows = {row[0] for row in flow.query("SELECT DISTINCT flow FROM b1_audit.audit_record")}
    assert flows == {
        "salesforce_to_sap_b1",
        "sap_b1_to_salesforce",
        f"salesforce_to_sap_b1@{EU}",
        f"sap_b1_to_salesforce@{EU}",
    }
    namespaces = {row[0] for row in flow.query("SELECT DISTINCT namespace FROM b1_audit.b1_record_links")}
    assert len(namespaces) == 2
    assert {n.rpartition("@")[2] for n in namespaces if "@" in n} == {EU}

    # the second company's Service Layer down: only its group fails, the first syncs on
    monkeypatch.setattr(
        "airflow_provider_b1.hooks.sap_b1.hook.RetryPolicy",
        functools.partial(RetryPolicy, initial_wait=0.01, max_wait=0.05),
    )
    org.edit("Account", home[1]["Id"], Website="https://still-synced.example")
    set_connection(EU, {**eu_connection(eu_sandbox), "host": "https://127.0.0.1:9/b1s/v2/"})
    second = dag_of(DAG_ID, retries=0).test()
    states = task_states(second)
    failed = {t for t, s in states.items() if s in ("failed", "upstream_failed")}
    assert failed, states
    assert all(t.startswith(f"{EU}.") for t in failed), states
    assert {s for t, s in states.items() if not t.startswith(f"{EU}.")} == {"success"}, states
    partner = home_sap.get("BusinessPartners", home[1]["AccountNumber"], select=["Website"])
    assert partner["Website"] == "https://still-synced.example"
    home_sap.close()


def test_the_changes_dags_wake_each_orgs_companies_with_that_orgs_sensor(dag_of, tmp_path, monkeypatch):
    import importlib.util

    from dag_helpers import DAGS

    document = yaml.safe_load(DAG_MAPPING.read_text())
    document["accounts"]["company_field"] = COMPANY_FIELD
    mapping = tmp_path / "salesforce_mapping.yaml"
    mapping.write_text(yaml.safe_dump(document, sort_keys=False))
    monkeypatch.setenv("B1_SALESFORCE_MAPPING", str(mapping))
    # two companies sharing the default org, a third with an org of its own
    monkeypatch.setenv("B1_SALESFORCE_COMPANIES", f"{HOME},sap_b1_uk,{EU}=b1_salesforce_eu")
    spec = importlib.util.spec_from_file_location("changes_under_test", DAGS / "sap_b1_salesforce_changes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shared = module.sap_b1_salesforce_changes()
    (own,) = module.OTHER_ORGS.values()
    assert (shared.dag_id, own.dag_id) == (
        "sap_b1_salesforce_changes",
        "sap_b1_salesforce_changes_b1_salesforce_eu",
    )
    for dag, org, companies in ((shared, ORG, (HOME, "sap_b1_uk")), (own, "b1_salesforce_eu", (EU,))):
        sensor = dag.task_dict["wait_for_changes"]
        assert sensor.salesforce_conn_id == org  # each DAG listens to its own org, keeps its replay id
        prefix = ["" if company == HOME else f"{company}." for company in companies]  # the default: no group
        assert {t.task_id for t in sensor.downstream_list} == {f"{p}accounts" for p in prefix} | {
            "cdc_unavailable"
        }
        for p in prefix:
            assert [t.task_id for t in dag.task_dict[f"{p}accounts"].downstream_list] == [f"{p}opportunities"]
            assert dag.task_dict[f"{p}opportunities"].downstream_task_ids == {"cdc_unavailable"}
    assert own.task_dict[f"{EU}.accounts"].options == {
        "mapping": str(mapping),
        "sap_b1_conn_id": EU,
        "salesforce_conn_id": "b1_salesforce_eu",
    }
    assert shared.task_dict["accounts"].options == {"mapping": str(mapping)}
    assert shared.task_dict["sap_b1_uk.accounts"].options == {
        "mapping": str(mapping),
        "sap_b1_conn_id": "sap_b1_uk",
    }
    # listed in another order, each org keeps its DAG (and so its sensor's replay id)
    monkeypatch.setenv("B1_SALESFORCE_COMPANIES", f"{EU}=b1_salesforce_eu,{HOME},sap_b1_uk")
    spec.loader.exec_module(module)
    assert module.sap_b1_salesforce_changes().task_dict["wait_for_changes"].salesforce_conn_id == ORG
    assert list(module.OTHER_ORGS) == ["sap_b1_salesforce_changes_b1_salesforce_eu"]
    # one org, one DAG: as it always was
    monkeypatch.setenv("B1_SALESFORCE_COMPANIES", f"{HOME},sap_b1_uk")
    assert {"accounts", "sap_b1_uk.accounts"} <= set(dag_of("sap_b1_salesforce_changes").task_dict)
    monkeypatch.setenv("B1_SALESFORCE_COMPANIES", f"{HOME},{EU}=b1_salesforce_eu")
    # the 10-minute DAG checks both orgs once
    check = dag_of(DAG_ID).task_dict["check_mapping"]
    assert check.companies == [[HOME, ORG], [EU, "b1_salesforce_eu"]]
