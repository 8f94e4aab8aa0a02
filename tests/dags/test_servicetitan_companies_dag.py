"""servicetitan_to_sap_b1 over two SAP companies (``B1_SERVICETITAN_COMPANIES``), each fed by its own
ServiceTitan tenant.

Two SAP sandboxes (the session's ``SBODEMOUS`` and a ``SBODEMOEU`` on a server of its own) and two
ServiceTitan tenants, each a sandbox of its own, small. One run posts each tenant's customers,
invoices and payments into its own company only, and each company's reconciliation passes; with
the second company's Service Layer unreachable, only its tasks fail, and the first company posts
on from its own cursors. A replay of the second company's scoped flow reopens its own tenant. The
second company has its own GL accounts in the mapping's ``companies`` section (by its CompanyDB):
its invoices' lines carry them, the first company's the shared ones.
"""

from __future__ import annotations

import functools
import gc
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from dag_helpers import EU, EU_COMPANY_DB, eu_connection, task_states, xcoms

from airflow_provider_b1.utils.retry import RetryPolicy

DAG_ID = "servicetitan_to_sap_b1"
FLOW = "servicetitan_to_sap_b1"
HOME = "sap_b1_default"
ST_HOME, ST_EU = "servicetitan_us", "servicetitan_eu"


@pytest.fixture(scope="module")
def tenants(servicetitan_sandbox) -> Iterator[dict[str, Any]]:
    """Two small ServiceTitan tenants, each on a sandbox of its own, with other data and tenant ids."""
    from airflow_provider_b1.sandbox.server import serve_in_thread
    from airflow_provider_b1.sandbox.servicetitan import ServiceTitanSandboxConfig, create_app

    found, served = {}, []
    for conn_id, seed, tenant, invoices in ((ST_HOME, 11, "2000001", 40), (ST_EU, 12, "2000002", 30)):
        config = ServiceTitanSandboxConfig(seed=seed, customers=12, invoices=invoices, tenant_id=tenant)
        served.append(serve_in_thread(create_app(config), tls=True))
        found[conn_id] = type(servicetitan_sandbox)(served[-1].base_url, str(served[-1].ca_path), config)
    try:
        yield found
    finally:
        gc.collect()
        for server in served:
            server.stop()


def _sap_by_partner(conn_id: str) -> dict[str, tuple[int, Decimal]]:
    """``{CardCode: (invoices, DocTotal sum)}`` of the ServiceTitan partners in one SAP company."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    totals: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    try:
        for page in hook.iter_pages(
            "Invoices", filter="startswith(CardCode, 'ST')", select=["CardCode", "DocTotal"]
        ):
            for record in page:
                totals[record["CardCode"]][0] += 1
                totals[record["CardCode"]][1] += Decimal(repr(record["DocTotal"]))
    finally:
        hook.close()
    return {code: (n, total) for code, (n, total) in totals.items()}


def _line_accounts(conn_id: str) -> set[str]:
    """The accounts of the lines of the ServiceTitan invoices in one SAP company."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    hook = SapB1Hook(conn_id)
    try:
        return {
            line["AccountCode"]
            for page in hook.iter_pages(
                "Invoices", filter="startswith(CardCode, 'ST')", select=["DocumentLines"]
            )
            for record in page
            for line in record["DocumentLines"]
        }
    finally:
        hook.close()


def _expected_by_partner(tenant: Any, company: str) -> dict[str, tuple[int, Decimal]]:
    """The same figures from the tenant's truth, through the company's rows of the mapping table."""
    from airflow_provider_b1.servicetitan.customers import CustomerMap
    from airflow_provider_b1.utils.sql import open_database

    truth = tenant.truth()["customers"]
    links = CustomerMap(
        open_database("b1_audit_default"), "b1_audit", tenant.config.tenant_id, company=company
    )
    try:
        linked = links.get(truth)
    finally:
        links.close()
    expected: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    for customer_id, figures in truth.items():
        if figures["invoice_count"]:
            assert customer_id in linked, (company, customer_id)
            code = linked[customer_id][0]
            expected[code][0] += figures["invoice_count"]
            expected[code][1] += Decimal(figures["invoice_total"])
    assert sum(n for n, _ in expected.values()) == tenant.config.invoices
    return {code: (n, total) for code, (n, total) in expected.items()}


def _new_invoice(conn_id: str, tenant: Any) -> None:
    """A new invoice in a tenant (a copy of its first, nothing paid), past the export feed's lag."""
    from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook

    hook = ServiceTitanHook(conn_id)
    try:
        invoice = next(
            iter(hook.iter_list("accounting/invoices", {"pageSize": 1}, page_size=1, max_pages=1))
        )[0]
    finally:
        hook.close()
    new = {**invoice, "id": 990001, "balance": invoice["total"]}
    tenant.control("POST", "seed", {"entity": "invoices", "records": [new]})
    tenant.control("POST", "clock", {"advance_seconds": 960})  # the export feed's lag is 15 minutes


def test_two_companies_post_their_own_tenants_and_one_company_down_fails_only_its_own_tasks(
    flow, dag_of, eu_sandbox, tenants, set_connection, tmp_path, monkeypatch
):
    # The hooks' real policy (same attempts), with millisecond backoffs: the closed port costs no waiting.
    monkeypatch.setattr(
        "airflow_provider_b1.hooks.sap_b1.hook.RetryPolicy",
        functools.partial(RetryPolicy, initial_wait=0.01, max_wait=0.05),
    )
    monkeypatch.setenv("B1_SERVICETITAN_CACHE_DIR", str(tmp_path / "st-tokens"))
    eu_sandbox.restore(invoices=20)
    for conn_id, tenant in tenants.items():
        tenant.restore()
        set_connection(conn_id, tenant.connection())
    set_connection(EU, eu_connection(eu_sandbox))
    monkeypatch.setenv("B1_SERVICETITAN_COMPANIES", f"{HOME}={ST_HOME},{EU}={ST_EU}")
    # The second company's chart of accounts: its own GL accounts (by its CompanyDB); the rest shared.
    shared = yaml.safe_load((Path(__file__).parents[2] / "dags" / "servicetitan_mappings.yaml").read_text())
    eu_accounts = {"4000": "422001", "4010": "422002", "4100": "412001", "4200": "412002", "4900": "432001"}
    mapping_file = tmp_path / "mappings.yaml"
    mapping_file.write_text(
        yaml.safe_dump({**shared, "companies": {EU_COMPANY_DB: {"gl_accounts": eu_accounts}}})
    )
    monkeypatch.setenv("B1_SERVICETITAN_MAPPINGS", str(mapping_file))

    dag = dag_of(DAG_ID, retries=0)
    assert set(dag.task_dict) == {
        f"{group}{task}"
        for group in ("", f"{EU}.")  # the default company's tasks sit in the DAG
        for task in ("customers", "invoices", "payments", "reconcile")
    }
    first = dag.test()
    assert set(task_states(first).values()) == {"success"}, task_states(first)
    values = xcoms(DAG_ID, first.run_id)["values"]
    assert values["reconcile:return_value"]["ok"]
    assert values[f"{EU}.reconcile:return_value"]["ok"]

    # each SAP company holds its own tenant's invoices, partner by partner, and no other's
    home, eu = _sap_by_partner(HOME), _sap_by_partner(EU)
    assert home == _expected_by_partner(tenants[ST_HOME], HOME)
    assert eu == _expected_by_partner(tenants[ST_EU], EU)
    assert (sum(n for n, _ in home.values()), sum(n for n, _ in eu.values())) == (40, 30)
    # each company's lines on its own GL accounts; the sales-tax account shared
    tax = {shared["sales_tax_account"]}
    home_accounts, eu_accounts_used = _line_accounts(HOME) - tax, _line_accounts(EU) - tax
    assert home_accounts, "no invoice line in the first company"
    assert eu_accounts_used, "no invoice line in the second company"
    assert home_accounts <= set(shared["gl_accounts"].values()), home_accounts
    assert eu_accounts_used <= set(eu_accounts.values()), eu_accounts_used
    # audit rows under each company's scope of the flow, nothing failed
    created = dict(
        flow.query(
            "SELECT flow || ':' || source_entity, count(*) FROM b1_audit.audit_record "
            "WHERE action = 'created' GROUP BY 1"
        )
    )
    assert (created[f"{FLOW}:invoices"], created[f"{FLOW}@{EU}:invoices"]) == (40, 30)
    assert created[f"{FLOW}:payments"] > 0
    assert created[f"{FLOW}@{EU}:payments"] > 0
    assert {key.split(":")[0] for key in created} == {FLOW, f"{FLOW}@{EU}"}
    assert flow.audit_rows("action = 'failed'") == []
    # the mapping table: each company its own tenant's rows
    rows = dict(
        flow.query("SELECT company || ':' || tenant, count(*) FROM b1_audit.st_customer_map GROUP BY 1")
    )
    assert set(rows) == {f"{HOME}:2000001", f"{EU}:2000002"}

    # a replay of the second company's scoped flow, given no options, reopens its own SAP and tenant
    from airflow_provider_b1.sync.flows import get_flow

    with get_flow(f"{FLOW}@{EU}").open() as (source, sink):
        assert source.hook.tenant_id == "2000002"
        assert sink.hook.sap_b1_conn_id == EU
        assert (sink.customers.company, sink.customers.tenant) == (EU, "2000002")
        assert sink.mappings.account_for({"number": "4000"}) == "422001"  # the deployed mapping, its own

    # the second company's Service Layer down, a new invoice in each tenant: only the second
    # company's tasks fail; the first posts its invoice, from its own cursors
    for conn_id in (ST_HOME, ST_EU):
        _new_invoice(conn_id, tenants[conn_id])
    set_connection(EU, eu_connection(eu_sandbox, host="https://127.0.0.1:9/b1s/v2/"))
    second = dag_of(DAG_ID, retries=0).test()
    states = task_states(second)
    assert second.state == "failed"
    assert {t: s for t, s in states.items() if s != "success"} == {
        f"{EU}.invoices": "failed",  # it writes to SAP (customers read nothing new: nothing to write)
        f"{EU}.payments": "upstream_failed",
        f"{EU}.reconcile": "upstream_failed",
    }
    invoices = xcoms(DAG_ID, second.run_id)["values"]["invoices:return_value"]
    assert invoices["entities"]["invoices"]["mode"] == "incremental", invoices
    assert flow.audit_counts(second.run_id)["created"] == 1
    set_connection(EU, eu_connection(eu_sandbox))
    assert _sap_by_partner(EU) == eu  # the second company untouched
    home_now = _sap_by_partner(HOME)
    assert sum(n for n, _ in home_now.values()) == 41
