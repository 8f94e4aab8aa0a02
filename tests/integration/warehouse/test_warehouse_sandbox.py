"""SAP sandbox -> warehouse end to end, over real HTTPS and a real PostgreSQL.

The warehouse must equal SAP (counts and DocTotal sums per entity, as the sandbox's truth
endpoint reports them) after a load, after a load under faults, and after bad records are
repaired and replayed; loading again, or over overlapping windows, must change nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Iterator
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_b1.sources.sap_b1 import SapB1Source
from airflow_provider_b1.sync import SyncWindow, replay_failed, sync_stream
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.warehouse.entities import ENTITIES
from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW
from airflow_provider_b1.warehouse.loader import PostgresLoader
from airflow_provider_b1.warehouse.reconcile import (
    AMOUNT,
    EXTRA,
    FAILED,
    MISSING,
    UNREADABLE,
    ReconciliationError,
    reconcile,
)

FLOW = WAREHOUSE_FLOW.name

INVOICES = 400
FAST_RETRIES = RetryPolicy(max_attempts=15, max_elapsed=60, initial_wait=0.02, max_wait=0.3)


class Sandbox:
    def __init__(self, served: Any) -> None:
        self.base_url = served.base_url
        self.ca_path = str(served.ca_path)

    def control(self, method: str, path: str, body: dict | None = None) -> Any:
        response = requests.request(
            method, f"{self.base_url}/_sandbox/{path}", json=body, verify=self.ca_path, timeout=60
        )
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.fixture(scope="module")
def sap_sandbox() -> Iterator[Sandbox]:
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    served = serve_in_thread(
        create_app(SapSandboxConfig(invoices=INVOICES, timezone="America/Chicago")), tls=True
    )
    try:
        yield Sandbox(served)
    finally:
        served.stop()


@pytest.fixture
def sandbox(sap_sandbox: Sandbox, monkeypatch, tmp_path) -> Iterator[Sandbox]:
    sap_sandbox.control("POST", "faults", {})
    sap_sandbox.control("POST", "reset", {"invoices": INVOICES})
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SAP_B1_DEFAULT",
        json.dumps(
            {
                "conn_type": "sap_b1",
                "host": f"{sap_sandbox.base_url}/b1s/v2",
                "schema": "SBODEMOUS",
                "login": "manager",
                "password": "manager-secret-1",
                "extra": {"ca_bundle": sap_sandbox.ca_path, "page_size": 250, "timezone": "America/Chicago"},
            }
        ),
    )
    yield sap_sandbox
    sap_sandbox.control("POST", "faults", {})


@pytest.fixture
def hook(sandbox):
    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    return SapB1Hook(retry_policy=FAST_RETRIES)


@pytest.fixture
def warehouse(postgres_loader) -> PostgresLoader:
    return postgres_loader


def _load_all(hook, warehouse, audit, window: SyncWindow, entities=tuple(ENTITIES)) -> dict[str, Any]:
    source = SapB1Source(hook, select={e: spec.select() for e, spec in ENTITIES.items()})
    with audit.session(FLOW, "dag", f"run-{secrets.token_hex(3)}", "load", 1) as session:
        return {
            entity: sync_stream(
                WAREHOUSE_FLOW, WAREHOUSE_FLOW.stream(entity), source, warehouse, session, window
            )
            for entity in entities
        }


def _assert_equals_truth(sandbox: Sandbox, warehouse: PostgresLoader) -> None:
    for entity, spec in ENTITIES.items():
        truth = sandbox.control("GET", f"truth/{entity}")
        count, total = warehouse.stats(spec)
        assert count == truth["count"], entity
        if spec.amount_column:
            assert total.quantize(Decimal("0.01")) == Decimal(truth["doc_total_sum"]), entity


def test_warehouse_equals_sap_and_a_second_load_changes_nothing(sandbox, hook, warehouse, audit):
    first = _load_all(hook, warehouse, audit, SyncWindow("full"))
    assert sum(s.failed for s in first.values()) == 0
    assert first["Invoices"].created == INVOICES
    _assert_equals_truth(sandbox, warehouse)
    results = reconcile(hook, warehouse, list(ENTITIES))
    assert all(r.ok for r in results)

    again = _load_all(hook, warehouse, audit, SyncWindow("full"))
    for entity, summary in again.items():
        assert (summary.created, summary.updated, summary.failed) == (0, 0, 0), entity
        assert summary.unchanged == first[entity].created, entity
    stats = sandbox.control("GET", "stats")
    assert stats["logins"] == 1


def test_overlapping_windows_and_increments_change_only_what_changed(sandbox, hook, warehouse, audit):
    first = _load_all(hook, warehouse, audit, SyncWindow("full"), entities=("BusinessPartners", "Invoices"))
    cursor = first["Invoices"].cursor
    assert cursor is not None

    now = dt.datetime.now(dt.timezone.utc)
    for since in (now - dt.timedelta(days=40), now - dt.timedelta(days=20)):
        window = SyncWindow("window", since=since, until=now, previous_cursor=cursor)
        summary = _load_all(hook, warehouse, audit, window, entities=("Invoices",))["Invoices"]
        assert (summary.created, summary.updated, summary.failed) == (0, 0, 0)
        assert summary.cursor == cursor  # a window never moves the cursor

    changed = sandbox.control("POST", "mutate", {"entity": "Invoices", "count": 3})["keys"]
    incremental = SyncWindow("incremental", cursor=cursor, previous_cursor=cursor)
    summary = _load_all(hook, warehouse, audit, incremental, entities=("Invoices",))["Invoices"]
    assert summary.updated == 3
    assert summary.created == 0
    assert summary.read < INVOICES
    rows = warehouse.conn.execute(
        f"SELECT doc_entry, comments FROM {warehouse.schema}.fact_sales_invoice WHERE doc_entry = ANY(%s)",
        (changed,),
    ).fetchall()
    warehouse.conn.rollback()
    assert all(comment.startswith("Changed") for _, comment in rows)
    assert len(rows) == 3


def test_a_load_under_faults_still_equals_sap(sandbox, hook, warehouse, audit):
    sandbox.control("POST", "faults", {"error_rate": 0.1, "reset_rate": 0.05, "seed": 7})
    sandbox.control("POST", "expire-sessions")
    summaries = _load_all(hook, warehouse, audit, SyncWindow("full"))
    sandbox.control("POST", "faults", {})
    assert sum(s.failed for s in summaries.values()) == 0
    _assert_equals_truth(sandbox, warehouse)
    assert all(r.ok for r in reconcile(hook, warehouse, list(ENTITIES)))


def test_bad_records_are_audited_and_replayed_once_repaired(sandbox, hook, warehouse, audit, monkeypatch):
    for key, kind in ((11, "missing_partner"), (12, "null_amount"), (13, "bad_date")):
        sandbox.control("POST", "corrupt", {"entity": "Invoices", "keys": [key], "kind": kind})
    loaded = _load_all(hook, warehouse, audit, SyncWindow("full"), entities=("BusinessPartners", "Invoices"))
    summary = loaded["Invoices"]
    assert (summary.created, summary.failed) == (INVOICES - 2, 2)
    failed = {r.source_key: r.error for r in audit.records_for_replay(FLOW, None, None)}
    assert failed.keys() == {"12", "13"}
    assert failed["12"] == "DocTotal is null"
    assert failed["13"].startswith("DocDate '2024-13-45")
    assert failed["13"].endswith("is not a date")
    inferred = warehouse.conn.execute(
        f"SELECT card_code FROM {warehouse.schema}.dim_business_partner WHERE is_inferred"
    ).fetchall()
    warehouse.conn.rollback()
    assert inferred == [("ZZ-GONE-11",)]
    with pytest.raises(Exception, match=r"Invoices .* SAP 400 records, warehouse 398"):
        reconcile(hook, warehouse, ["Invoices"])

    sandbox.control("POST", "repair", {"entity": "Invoices"})
    conn = json.dumps(
        {
            "conn_type": "postgres",
            "host": warehouse.conn.info.host,
            "port": warehouse.conn.info.port,
            "login": warehouse.conn.info.user,
            "schema": warehouse.conn.info.dbname,
        }
    )
    monkeypatch.setenv("AIRFLOW_CONN_B1_WAREHOUSE_REPLAY", conn)
    # The flow's own source and sink, opened with these options: no replayer written by hand.
    replayed = replay_failed(
        audit,
        FLOW,
        options={"warehouse_conn_id": "b1_warehouse_replay", "warehouse_schema": warehouse.schema},
        session_info={"dag_id": "replay", "run_id": "r1"},
    )
    assert replayed.counts["created"] == 2
    assert audit.records_for_replay(FLOW, None, None) == []
    assert all(r.ok for r in reconcile(hook, warehouse, ["Invoices"]))


def test_operator_loads_a_group_into_sqlite_and_returns_cursors(sandbox, tmp_path, monkeypatch):
    from airflow_provider_b1.transfers.sap_b1_to_warehouse import SapB1ToWarehouseOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_B1_WAREHOUSE_DEFAULT",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_B1_AUDIT_DEFAULT",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "audit.db")}),
    )
    previous: dict[str, Any] = {}
    ti = SimpleNamespace(
        task_id="load_sales",
        dag_id="sap_b1_to_warehouse",
        run_id="manual_1",
        try_number=1,
        map_index=-1,
        xcom_pull=lambda **_: previous.get("value"),
    )
    context = {"ti": ti, "params": {}, "dag_run": SimpleNamespace(run_type="manual")}
    operator = SapB1ToWarehouseOperator(
        task_id="load_sales", group="sales", extra_select={"Invoices": ["U_ExternalId"]}
    )
    first = operator.execute(context)
    invoices = first["entities"]["Invoices"]
    assert invoices["created"] == INVOICES
    assert invoices["failed"] == 0
    assert invoices["cursor"]["update_date"]
    assert json.loads(json.dumps(first)) == first  # primitives only

    previous["value"] = first
    second = operator.execute(context)
    assert second["entities"]["Invoices"]["created"] == 0
    assert second["entities"]["Invoices"]["updated"] == 0


def test_reconcile_names_every_difference_with_its_key_and_reason(sandbox, hook, warehouse, audit):
    sandbox.control("POST", "corrupt", {"entity": "Invoices", "keys": [12], "kind": "null_amount"})
    sandbox.control("POST", "corrupt", {"entity": "Invoices", "keys": [13], "kind": "bad_date"})
    _load_all(hook, warehouse, audit, SyncWindow("full"), entities=("BusinessPartners", "Invoices"))
    table = f"{warehouse.schema}.fact_sales_invoice"
    with warehouse.conn.cursor() as cur:
        # A record lost for no recorded reason, one SAP does not hold, one whose amount drifted.
        cur.execute(f"DELETE FROM {warehouse.schema}.fact_sales_invoice_line WHERE doc_entry = 20")
        cur.execute(f"DELETE FROM {table} WHERE doc_entry = 20")
        cur.execute(
            f"INSERT INTO {table} (doc_entry, card_code, doc_total, raw, payload_hash) "
            f"SELECT 9999, card_code, 1, raw, payload_hash FROM {table} WHERE doc_entry = 21"
        )
        cur.execute(f"UPDATE {table} SET doc_total = doc_total + 1 WHERE doc_entry = 22")
    warehouse.conn.commit()

    with pytest.raises(ReconciliationError) as raised:
        reconcile(hook, warehouse, ["BusinessPartners", "Invoices"], audit=audit)
    (result,) = [r for r in reconcile(hook, warehouse, ["Invoices"], audit=audit, raise_on_difference=False)]
    found = {d.key: (d.kind, d.reason) for d in result.differences}
    sap_total, stored = re.fullmatch(r"DocTotal SAP (\S+), warehouse (\S+)", found.pop("22")[1]).groups()
    assert Decimal(stored) - Decimal(sap_total) == 1
    assert found.pop("13")[1].startswith("DocDate '2024-13-45")
    assert found == {
        "12": (FAILED, "DocTotal is null"),
        "20": (MISSING, "in SAP, not in the warehouse (its latest attempt: created)"),
        "9999": (EXTRA, "in the warehouse, not in SAP: deleted in SAP, or outside its window there"),
    }
    assert [d.kind for d in result.differences] == [FAILED, FAILED, MISSING, EXTRA, AMOUNT]
    assert result.counts() == {FAILED: 2, MISSING: 1, EXTRA: 1, AMOUNT: 1, UNREADABLE: 0}
    message = str(raised.value)
    assert "Invoices (all records): SAP 400 records, warehouse 398" in message
    assert (
        "2 recorded as failed, 1 missing for no recorded reason, 1 only in the warehouse, 1 amount differs"
        in message
    )
    assert "12: recorded as failed: DocTotal is null" in message
    assert "BusinessPartners" not in message


# Issue 8's hostile page: what a record may hold that no load may stop on or change silently.
_LONG_KEY = "K" * 600
_BACKSLASH_U = "C:\\u0000 is six characters, no NUL"
_BAD_INVOICES = {
    11: {"DocTotal": "abc"},
    12: {"DocTotal": "12,50"},
    13: {"DocTotal": "Infinity"},
    14: {"DocTotal": "1e309"},
    15: {"DocTotal": 99999999999999999999.99},
    16: {"DocDate": "2024-02-30"},
}


def _seed(sandbox: Sandbox, entity: str, records: list[dict]) -> None:
    sandbox.control("POST", "seed", {"entity": entity, "records": records})


@pytest.mark.parametrize("dialect", ["postgres", "sqlite"])
def test_a_hostile_page_loads_every_good_record_once_fails_each_bad_one_and_replays_the_fixed(
    dialect, request, sandbox, hook, audit, monkeypatch
):
    warehouse = request.getfixturevalue(f"{dialect}_loader")
    originals = {
        r["DocEntry"]: r
        for page in hook.iter_pages(
            "Invoices", select=["DocEntry", "DocTotal", "DocDate"], filter="DocEntry le 20"
        )
        for r in page
    }
    _seed(sandbox, "Invoices", [{"DocEntry": key, **change} for key, change in _BAD_INVOICES.items()])
    _seed(
        sandbox,
        "Invoices",
        [
            {"DocEntry": 17, "Comments": "before\x00after"},
            {"DocEntry": 18, "Comments": _BACKSLASH_U},
        ],
    )
    _seed(
        sandbox,
        "BusinessPartners",
        [
            {"CardCode": "NUL\x00KEY", "CardName": "a NUL in the key", "CardType": "cCustomer"},
            {"CardCode": _LONG_KEY, "CardName": "a key of 600 characters", "CardType": "cCustomer"},
            {"CardCode": "NULNAME", "CardName": "a NUL\x00in the name", "CardType": "cCustomer"},
        ],
    )
    partners = sandbox.control("GET", "truth/BusinessPartners")["count"]

    loaded = _load_all(hook, warehouse, audit, SyncWindow("full"), entities=("BusinessPartners", "Invoices"))

    # Every good record loaded once; every bad one failed with its reason.
    nul_fails = dialect == "postgres"  # SQLite stores a NUL as it is
    failed = {(r.source_entity, r.source_key): r.error for r in audit.records_for_replay(FLOW, None, None)}
    expected_invoices = {str(key) for key in _BAD_INVOICES} | ({"17"} if nul_fails else set())
    assert {key for entity, key in failed if entity == "Invoices"} == expected_invoices
    assert failed["Invoices", "11"] == "DocTotal 'abc' is not a number"
    assert failed["Invoices", "12"] == "DocTotal '12,50' is not a number"
    assert failed["Invoices", "13"] == "DocTotal 'Infinity' is not a finite number"
    assert failed["Invoices", "14"].startswith("DocTotal '1e309' is too large")
    assert failed["Invoices", "15"].startswith("DocTotal 1E+20 is too large")
    assert (
        failed["Invoices", "16"] == "DocDate '2024-02-30T00:00:00Z' is not a date"
    )  # as a v2 server sends it
    bad_partners = {key for entity, key in failed if entity == "BusinessPartners"}
    assert bad_partners == {"NUL\\0KEY", "K" * 493 + "...(600 characters)"} | (
        {"NULNAME"} if nul_fails else set()
    )
    if nul_fails:
        assert failed["Invoices", "17"].startswith("Comments holds a NUL character (U+0000)")
    assert (loaded["Invoices"].created, loaded["Invoices"].failed) == (
        INVOICES - len(expected_invoices),
        len(expected_invoices),
    )
    assert warehouse.stats(ENTITIES["Invoices"])[0] == INVOICES - len(expected_invoices)
    assert warehouse.stats(ENTITIES["BusinessPartners"])[0] == partners - len(bad_partners)
    kept = {k: v for k, v in warehouse.amounts(ENTITIES["Invoices"]) if str(k) in {"18"}}
    assert kept.keys() == {18}

    # Reconcile finishes with its report: the flow's own failures, by key, with their reasons.
    results = reconcile(
        hook, warehouse, ["BusinessPartners", "Invoices"], audit=audit, raise_on_difference=False
    )
    by_entity = {r.entity: r for r in results}
    invoices = {d.key: (d.kind, d.reason) for d in by_entity["Invoices"].differences}
    assert invoices == {key: (FAILED, failed["Invoices", key]) for key in expected_invoices}
    assert by_entity["BusinessPartners"].counts()[FAILED] == len(bad_partners)

    # Fixed in SAP, replayed: each fixed record loads once; the keys no trail can hold stay failed.
    _seed(
        sandbox,
        "Invoices",
        [
            {"DocEntry": key, "DocTotal": originals[key]["DocTotal"], "DocDate": originals[key]["DocDate"]}
            for key in _BAD_INVOICES
        ]
        + [{"DocEntry": 17, "Comments": "before after"}],
    )
    _seed(sandbox, "BusinessPartners", [{"CardCode": "NULNAME", "CardName": "a NUL in the name"}])
    conn = (
        {"conn_type": "sqlite", "host": warehouse.database.path if warehouse.database else None}
        if dialect == "sqlite"
        else {
            "conn_type": "postgres",
            "host": warehouse.conn.info.host,
            "port": warehouse.conn.info.port,
            "login": warehouse.conn.info.user,
            "schema": warehouse.conn.info.dbname,
        }
    )
    if dialect == "sqlite":
        conn["host"] = warehouse.conn.execute("PRAGMA database_list").fetchone()[2]
    monkeypatch.setenv("AIRFLOW_CONN_B1_WAREHOUSE_REPLAY", json.dumps(conn))
    options = {
        "warehouse_conn_id": "b1_warehouse_replay",
        "warehouse_schema": getattr(warehouse, "schema", None) or "sap_b1",
    }
    info = {"dag_id": "replay", "run_id": "r1"}
    replayed = replay_failed(audit, FLOW, options=options, session_info=info)
    fixed = len(expected_invoices) + (1 if nul_fails else 0)
    assert replayed.counts["created"] == fixed
    assert {(r.source_entity, r.source_key) for r in audit.records_for_replay(FLOW, None, None)} == {
        ("BusinessPartners", "NUL\\0KEY"),
        ("BusinessPartners", "K" * 493 + "...(600 characters)"),
    }
    again = replay_failed(audit, FLOW, options=options, session_info={**info, "run_id": "r2"})
    assert again.counts["created"] == 0
    final = reconcile(hook, warehouse, ["Invoices"], audit=audit)
    assert final[0].ok
    assert warehouse.stats(ENTITIES["Invoices"])[0] == INVOICES
