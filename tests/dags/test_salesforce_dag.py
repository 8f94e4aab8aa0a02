"""``sap_b1_salesforce`` end to end with dag.test(): the SAP and Salesforce sandboxes over HTTPS,
the audit trail, the links and the agreed values in PostgreSQL.

What the flow must show: after a run both sides are equal (every account linked to one partner,
every Closed Won opportunity one sales order with its lines, balances on both objects); a second
run with no edits writes nothing on either side; an edit made on both sides goes to the field's
system of record; faults, re-runs and a kill change none of that; Salesforce is written 200
records a call; and the API-limit guard stops a run before the org's share is used.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from dag_helpers import forget_runs, rerun_task, salesforce_writes, task_states

DAG_ID = "sap_b1_salesforce"
#: A small SAP company: the balances read every invoice and payment on a first run, and what these
#: tests show (links, orders, balances, echoes, faults) needs a few hundred, not thousands.
SAP_INVOICES = 300
MAPPING_FILE = str(Path(__file__).parents[2] / "dags" / "salesforce_mapping.yaml")
SAP_WRITES = ("POST BusinessPartners", "PATCH BusinessPartners", "POST Orders", "PATCH Orders", "POST Drafts")


@pytest.fixture
def sf(flow, salesforce_sandbox, set_connection, tmp_path, monkeypatch):
    flow.sap.restore(invoices=SAP_INVOICES)
    salesforce_sandbox.restore()
    forget_runs(DAG_ID)
    monkeypatch.setenv("B1_SALESFORCE_CACHE_DIR", str(tmp_path / "sf-tokens"))
    set_connection("b1_salesforce_default", salesforce_sandbox.connection())
    yield salesforce_sandbox
    salesforce_sandbox.faults()


def sap_writes(sap) -> int:
    requests = sap.stats()["requests"]
    return sum(n for label, n in requests.items() if label.startswith(SAP_WRITES))


def sap_orders() -> dict[str, list[dict]]:
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    orders: dict[str, list[dict]] = {}
    for page in SapB1Hook().iter_pages(
        "Orders",
        filter="startswith(NumAtCard, '006')",  # opportunity ids select=["DocEntry", "NumAtCard", "DocTotal", "Cancelled"]
    ):
        for order in page:
            orders.setdefault(order["NumAtCard"], []).append(order)
    return orders


def won(sf) -> list[dict]:
    return [o for o in sf.truth("Opportunity") if o.get("IsWon")]


def assert_equal_both_ways(flow, sf) -> None:
    """Every account names one partner SAP holds, no partner twice; every won deal has one order."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    accounts = sf.truth("Account")
    numbers = [a["AccountNumber"] for a in accounts]
    assert all(numbers), [a["Id"] for a in accounts if not a["AccountNumber"]]
    assert len(set(numbers)) == len(numbers)
    held = {
        p["CardCode"]
        for page in SapB1Hook().iter_any_of("BusinessPartners", "CardCode", numbers, select=["CardCode"])
        for p in page
    }
    assert held == set(numbers)
    orders = sap_orders()
    deals = won(sf)
    assert deals
    assert {o["Id"]: len(orders.get(o["Id"], [])) for o in deals} == {o["Id"]: 1 for o in deals}
    assert all(o["SAP_Order_Number__c"] for o in deals)


def test_a_run_makes_both_sides_equal_and_the_next_writes_nothing_on_either(flow, sf, dag_of, capsys):
    run = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    assert "Salesforce and SAP agree: 40 accounts" in capsys.readouterr().out
    assert_equal_both_ways(flow, sf)
    calls, written = salesforce_writes(sf)
    print(f"first run: {written} Salesforce records written in {calls} calls")

    before_sap, before_sf = sap_writes(flow.sap), salesforce_writes(sf)
    # The second run reads back what the first wrote on both sides: none of it is an echo.
    again = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(again).values()) == {"success"}, task_states(again)
    counts = flow.audit_counts(again.run_id)
    assert (counts.get("created", 0), counts.get("updated", 0)) == (0, 0), counts
    assert sap_writes(flow.sap) == before_sap  # nothing written into SAP
    assert salesforce_writes(sf) == before_sf  # nor into Salesforce
    assert_equal_both_ways(flow, sf)


def test_an_edit_on_one_side_reaches_the_other_and_a_conflict_goes_to_the_fields_owner(
    flow, sf, dag_of, capsys
):
    """Name is Salesforce's, Phone is SAP's (dags/salesforce_mapping.yaml)."""
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    first = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(first).values()) == {"success"}
    both, one_sided = [a for a in sf.truth("Account") if a["AccountNumber"]][:2]
    sap = SapB1Hook()
    sf.edit("Account", both["Id"], Name="Renamed in Salesforce", Phone="+1 555 0101")
    sap.update(
        "BusinessPartners", both["AccountNumber"], {"CardName": "Renamed in SAP", "Phone1": "+1 555 0202"}
    )
    sf.edit("Account", one_sided["Id"], Website="https://one-sided.example")
    sap.update("BusinessPartners", one_sided["AccountNumber"], {"Phone1": "+1 555 0303"})

    second = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(second).values()) == {"success"}, task_states(second)  # reconcile: equal
    partner = sap.get("BusinessPartners", both["AccountNumber"], select=["CardName", "Phone1"])
    account = {a["Id"]: a for a in sf.truth("Account")}
    assert (partner["CardName"], partner["Phone1"]) == ("Renamed in Salesforce", "+1 555 0202")
    assert (account[both["Id"]]["Name"], account[both["Id"]]["Phone"]) == (
        "Renamed in Salesforce",
        "+1 555 0202",
    )
    other = sap.get("BusinessPartners", one_sided["AccountNumber"], select=["Website", "Phone1"])
    assert other["Website"] == "https://one-sided.example"
    assert account[one_sided["Id"]]["Phone"] == "+1 555 0303"
    conflicts = [
        (r["entity"], r["error"])
        for r in flow.audit_rows("run_id = %s AND error LIKE %s", (second.run_id, "%conflict%"))
    ]
    assert sorted(conflicts) == [
        (
            "Account",
            "conflict: Name/CardName changed on both sides (Salesforce, its system of record, wins: "
            "'Renamed in Salesforce'); conflict: Phone/Phone1 changed on both sides (SAP, its system of "
            "record, wins: '+1 555 0202')",
        ),
        # The partners' direction meets the Phone conflict again (the account's Phone still differs
        # from the agreed value) and settles it: SAP's value is written to the account.
        (
            "BusinessPartners",
            "conflict: Phone/Phone1 changed on both sides (SAP, its system of record, wins: '+1 555 0202')",
        ),
    ]
    third = dag_of(DAG_ID, retries=0).test()
    counts = flow.audit_counts(third.run_id)
    assert (counts.get("created", 0), counts.get("updated", 0)) == (0, 0), counts


def test_salesforce_is_written_200_records_a_call(flow, sf, dag_of, capsys):
    """An org of 450 accounts and their deals, read 200 records a page: every write to Salesforce
    goes through sObject Collections, one call per object and page."""
    sf.control("POST", "reset", {"accounts": 450, "opportunities": 600, "keep_config": True})
    try:
        run = dag_of(DAG_ID, retries=0).test()
        assert set(task_states(run).values()) == {"success"}, task_states(run)
        stats = sf.stats()
        calls, written = salesforce_writes(sf)
        from airflow_provider_b1.sandbox.salesforce.app import WRITE_KINDS

        by_kind = {k: n for k, n in stats["calls"].items() if k in WRITE_KINDS}
        print(
            f"Salesforce: {written} records written in {calls} calls {by_kind}: {written / calls:.0f} a call"
        )
        assert set(by_kind) <= {"collections_update"}  # no single-record calls
        from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

        # One call per page that changed something and object: the streams that write to
        # Salesforce read 200 records a page (accounts, partners, won deals); no call per record.
        pages = (
            math.ceil(450 / 200)
            + math.ceil(SapB1Hook().count("BusinessPartners") / 200)
            + math.ceil(len(won(sf)) / 200)
        )
        assert written > 600
        assert calls <= pages, (calls, pages)
        assert written / calls > 50
    finally:
        sf.control("POST", "reset", {})


def test_the_api_limit_guard_and_salesforces_own_refusal_stop_a_run_and_the_next_day_completes_it(
    flow, sf, dag_of, capsys
):
    """First the org's daily allowance is 10,000 requests and 7,990 are used: the connection's 80%
    leaves 10 calls, and the run stops before the eleventh, saying why, nothing half-written. Then,
    on a new day, the org's other users spend the whole allowance while the flow runs: Salesforce
    refuses (403 REQUEST_LIMIT_EXCEEDED), the task fails at once saying so, and is never retried.
    The day after, a run completes the work: both sides equal."""
    import threading
    import time

    sf.control("POST", "faults", {"api_limit": 10000, "api_usage": 7990})
    run = dag_of(DAG_ID, retries=3).test()
    states = task_states(run)
    assert "failed" in states.values(), states
    out = capsys.readouterr().out
    assert "Salesforce org at 80.0% of its daily API requests (8000/10000)" in out
    assert "stopping before the org's own users are starved" in out or "not starved" in out
    assert "(Not retried: retrying cannot fix this.)" in out
    assert sf.stats()["api_usage"]["used"] <= 8000
    assert sf.stats()["limit_refusals"] == 0  # stopped by the guard, never by Salesforce

    sf.control("POST", "faults", {"api_usage": 0})  # a new day, spent by others during the run
    stop = threading.Event()

    def others_spend_it_all() -> None:
        while not stop.is_set() and sf.stats()["api_usage"]["used"] < 4:
            time.sleep(0.02)
        sf.control("POST", "faults", {"api_usage": 10000})

    spender = threading.Thread(target=others_spend_it_all, daemon=True)
    spender.start()
    try:
        refused = dag_of(DAG_ID, retries=3).test()
    finally:
        stop.set()
        spender.join(timeout=30)
    assert "failed" in task_states(refused).values()
    assert sf.stats()["limit_refusals"] == 1  # refused once, never retried
    out = capsys.readouterr().out
    assert "REQUEST_LIMIT_EXCEEDED" in out
    assert "(Not retried: retrying cannot fix this.)" in out

    sf.control("POST", "faults", {"api_usage": 0})  # the next day
    again = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(again).values()) == {"success"}, task_states(again)
    assert_equal_both_ways(flow, sf)


def _fast_retries(monkeypatch) -> None:
    import functools

    from airflow_provider_b1.utils.retry import RetryPolicy

    fast = functools.partial(RetryPolicy, initial_wait=0.01, max_wait=0.05)
    monkeypatch.setattr("airflow_provider_b1.hooks.sap_b1.hook.RetryPolicy", fast)
    monkeypatch.setattr("airflow_provider_b1.hooks.salesforce.hook.RetryPolicy", fast)


def test_under_faults_on_both_sandboxes_both_sides_end_equal_with_no_duplicate_order(
    flow, sf, dag_of, monkeypatch
):
    """5xx, resets and expired sessions and tokens on both sides, slow SAP logins: the run ends as a
    clean one would, and the next run writes nothing."""
    import datetime as dt

    _fast_retries(monkeypatch)
    flow.sap.faults(error_rate=0.06, reset_rate=0.04, session_expiry_rate=0.05, login_delay=0.2, seed=11)
    sf.faults(error_rate=0.15, reset_rate=0.1, token_expiry_rate=0.15, seed=11, max_faults=200)
    run = dag_of(DAG_ID, retries=3, retry_delay=dt.timedelta(0)).test()
    sap_faults, sf_faults = flow.sap.stats()["faults_injected"], sf.stats()["faults_injected"]
    flow.sap.faults()
    sf.faults()
    print(f"faults injected: SAP {sap_faults}, Salesforce {sf_faults}")
    assert set(task_states(run).values()) == {"success"}, task_states(run)  # reconcile: equal
    assert sap_faults.get("reset", 0) > 0
    assert sf_faults.get("reset", 0) > 0
    assert sf_faults.get("expire_token", 0) > 0
    assert sf_faults.get("error", 0) > 0
    assert_equal_both_ways(flow, sf)
    again = dag_of(DAG_ID, retries=0).test()
    counts = flow.audit_counts(again.run_id)
    assert (counts.get("created", 0), counts.get("updated", 0)) == (0, 0), counts


CHILD = """
import json, sys
from airflow_provider_b1.operators.sync import SyncOperator
from airflow_provider_b1.salesforce.flow import SALESFORCE_TO_SAP_FLOW


class TaskInstance:
    dag_id, map_index = "sap_b1_salesforce", -1

    def __init__(self, task_id, run_id, try_number):
        self.task_id, self.run_id, self.try_number = task_id, run_id, try_number

    def xcom_pull(self, **kwargs):
        return None  # no earlier successful run: read everything


def run(stream, run_id, try_number):
    operator = SyncOperator(task_id=stream, flow=SALESFORCE_TO_SAP_FLOW, streams=[stream], options={})
    context = {"ti": TaskInstance(stream, run_id, try_number), "params": {}, "dag_run": None}
    return operator.execute(context)


if __name__ == "__main__":
    print(json.dumps(run("Opportunity", sys.argv[1], int(sys.argv[2]))))
"""


def test_posting_orders_killed_mid_way_and_run_again_posts_each_won_deal_once(
    flow, sf, tmp_path, monkeypatch
):
    from pathlib import Path

    from dag_helpers import kill_mid_load

    monkeypatch.setenv(
        "B1_SALESFORCE_MAPPING", str(Path(__file__).parents[2] / "dags" / "salesforce_mapping.yaml")
    )
    script = tmp_path / "post_orders.py"
    script.write_text(CHILD)
    namespace: dict = {}
    exec(compile(CHILD, str(script), "exec"), namespace)
    namespace["run"]("Account", "manual__killed", 1)  # partners first, as the DAG does

    flow.sap.control("POST", "cost", {"write_seconds": 0.1, "nodes": 1})  # posting takes its time
    kill_mid_load(script, "manual__killed", lambda: len(sap_orders()), at_least=8)
    flow.sap.control("POST", "cost", {})
    partial = len(sap_orders())
    deals = won(sf)
    assert 8 <= partial < len(deals)

    summary = namespace["run"]("Opportunity", "manual__killed", 2)
    assert summary["entities"]["Opportunity"]["failed"] == 0, [
        r["error"] for r in flow.audit_rows("action = 'failed'")
    ][:3]
    orders = sap_orders()
    assert {o["Id"]: len(orders.get(o["Id"], [])) for o in deals} == {o["Id"]: 1 for o in deals}
    audited = {
        r["key"]
        for r in flow.audit_rows("source_entity = 'Opportunity' AND action IN ('created', 'unchanged')")
    }
    assert audited == {o["Id"] for o in deals}  # every order SAP holds is in the trail
    numbers = {o["Id"]: o["SAP_Order_Number__c"] for o in won(sf)}
    assert all(numbers.values()), numbers  # and shows on its opportunity


def test_a_cleared_task_and_a_backfilled_window_change_nothing(flow, sf, dag_of):
    import datetime as dt

    dag = dag_of(DAG_ID, retries=0)
    first = dag.test()
    assert set(task_states(first).values()) == {"success"}
    before = (sap_writes(flow.sap), salesforce_writes(sf))
    for task_id in ("orders.Opportunity", "accounts.Account", "balances.Invoices"):
        assert rerun_task(dag, first, task_id) == "success"
    now = dt.datetime.now(dt.timezone.utc)
    window = dag_of(DAG_ID, retries=0).test(
        run_conf={"since": (now - dt.timedelta(days=800)).isoformat(), "until": now.isoformat()}
    )
    assert set(task_states(window).values()) == {"success"}, task_states(window)
    assert (sap_writes(flow.sap), salesforce_writes(sf)) == before
    assert_equal_both_ways(flow, sf)


def test_a_deal_sap_refuses_fails_alone_and_replay_posts_it_once_fixed(flow, sf, dag_of, capsys, monkeypatch):
    """A won deal sells a product SAP has no item for: its order fails with SAP's reason, the
    other deals go on. The product's code is fixed in Salesforce, which does not touch the
    opportunity (the incremental read cannot see it): b1_replay_failed reads it again by id and
    posts its order once; a second replay finds nothing to do."""
    from pathlib import Path

    # As a deployment sets it for every component, so that the replay maps as the DAG does.
    monkeypatch.setenv(
        "B1_SALESFORCE_MAPPING", str(Path(__file__).parents[2] / "dags" / "salesforce_mapping.yaml")
    )
    first = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(first).values()) == {"success"}
    account = next(a for a in sf.truth("Account") if a["AccountNumber"])
    product = sf.edit("Product2", None, Name="Mystery Widget", ProductCode="ZZ-404", IsActive=True)["id"]
    standard = next(p["Id"] for p in sf.truth("Pricebook2") if p.get("IsStandard"))
    sf.edit("PricebookEntry", None, Pricebook2Id=standard, Product2Id=product, UnitPrice=125.0, IsActive=True)
    deal = sf.edit(
        "Opportunity",
        None,
        Name="Mystery deal",
        AccountId=account["Id"],
        StageName="Closed Won",
        CloseDate="2026-11-20",
    )["id"]
    sf.edit("OpportunityLineItem", None, OpportunityId=deal, Product2Id=product, Quantity=2, UnitPrice=125.0)

    second = dag_of(DAG_ID, retries=0).test()
    states = task_states(second)
    assert (states["orders.Opportunity"], states["reconcile"]) == ("success", "failed")
    failed = {r["key"]: r["error"] for r in flow.audit_rows("action = 'failed'")}
    assert list(failed) == [deal]
    assert "ZZ-404" in failed[deal]
    assert f"opportunity {deal} ('Mystery deal') has no sales order" in capsys.readouterr().out

    sf.edit("Product2", product, ProductCode="A00001")
    for _attempt in (1, 2):  # a second replay finds nothing left to do
        replay = dag_of("b1_replay_failed").test(run_conf={"flow": "salesforce_to_sap_b1", "dry_run": False})
        assert replay.state == "success"
    created = flow.audit_rows("task_id = 'replay' AND action = 'created'")
    assert [(r["entity"], r["key"]) for r in created] == [("Opportunity", deal)]
    assert len(sap_orders()[deal]) == 1
    third = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(third).values()) == {"success"}, task_states(third)


def test_two_dags_posting_the_same_won_deals_at_once_order_each_once(flow, sf, tmp_path, monkeypatch, caplog):
    """The 10-minute DAG and the change-driven one sync the same new deals at the same moment:
    they take turns per org and stream, so the second finds the first's orders (SAP has no
    unique key for them) and each deal has one order."""
    import logging
    import threading
    from pathlib import Path

    monkeypatch.setenv(
        "B1_SALESFORCE_MAPPING", str(Path(__file__).parents[2] / "dags" / "salesforce_mapping.yaml")
    )
    namespace: dict = {}
    exec(compile(CHILD, "post_orders.py", "exec"), namespace)
    namespace["run"]("Account", "manual__accounts", 1)
    flow.sap.control("POST", "cost", {"write_seconds": 0.05, "nodes": 2})  # posting takes its time
    results: dict[str, dict] = {}

    def post(run_id: str) -> None:
        results[run_id] = namespace["run"]("Opportunity", run_id, 1)

    caplog.set_level(logging.INFO, logger="airflow_provider_b1.sync.pairs")
    threads = [threading.Thread(target=post, args=(f"manual__{dag}",)) for dag in ("polling", "changes")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    flow.sap.control("POST", "cost", {})
    deals = won(sf)
    orders = sap_orders()
    assert {o["Id"]: len(orders.get(o["Id"], [])) for o in deals} == {o["Id"]: 1 for o in deals}
    created = sorted(r["entities"]["Opportunity"]["created"] for r in results.values())
    assert created == [0, len(deals)]  # one wrote them all; the other found them
    assert "another task is writing it" in caplog.text


def test_an_invoice_falling_due_raises_its_accounts_overdue_balance_with_no_change_in_sap(
    flow, sf, dag_of, monkeypatch
):
    """Ten days pass and nothing changes in SAP: no incremental read sees the open invoices that
    fell due meanwhile. The overdue task finds them by due date and computes their accounts again;
    Salesforce then equals SAP judged on the new date, and the DAG's next run has nothing to add."""
    import datetime as dt

    from airflow_provider_b1.hooks.salesforce import SalesforceHook
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
    from airflow_provider_b1.operators.salesforce import SalesforceOverdueOperator
    from airflow_provider_b1.salesforce import values
    from airflow_provider_b1.salesforce.mapping import load_mapping
    from airflow_provider_b1.salesforce.reconcile import reconcile

    first = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(first).values()) == {"success"}
    mapping = load_mapping(MAPPING_FILE)
    later = values.utc_today() + dt.timedelta(days=10)
    salesforce, sap = SalesforceHook(), SapB1Hook()
    stale = reconcile(salesforce, sap, mapping, today=later)
    assert not stale.ok  # ten days on, what Salesforce shows is behind
    assert all("SAP_Overdue_Balance__c" in problem for problem in stale.problems), stale.problems
    before = {a["Id"]: a["SAP_Overdue_Balance__c"] or 0 for a in sf.truth("Account")}

    monkeypatch.setattr(values, "utc_today", lambda: later)

    class TaskInstance:
        dag_id, task_id, run_id, try_number, map_index = DAG_ID, "balances.overdue", "manual__later", 1, -1

        def xcom_pull(self, **kwargs):
            return None  # its first run: it looks back 30 days

    operator = SalesforceOverdueOperator(task_id="overdue", options={"mapping": MAPPING_FILE})
    result = operator.execute({"ti": TaskInstance(), "params": {}, "dag_run": None})
    assert result["through"] == later.isoformat()
    assert result["counts"].get("updated", 0) > 0, result
    assert result["counts"].get("failed", 0) == 0, result
    after = {a["Id"]: a["SAP_Overdue_Balance__c"] or 0 for a in sf.truth("Account")}
    assert any(after[i] > before[i] for i in after)
    assert reconcile(salesforce, sap, mapping, today=later).ok
    salesforce.close()
    sap.close()

    second = dag_of(DAG_ID, retries=0).test()
    assert set(task_states(second).values()) == {"success"}, task_states(second)
