"""Records deleted in SAP: marked ``deleted_at`` by the deletion check, restored by the next load.

Against the HTTPS SAP sandbox, on PostgreSQL and on SQLite: a partner and an item are created,
loaded, then deleted through the Service Layer (``DELETE``) as a user would; the check marks both
(never removing a row), logs them, audits them as ``deleted`` (in an audit trail of its own
database: written right after the marking), and reconciliation still passes; a second check
changes nothing; re-created with the same keys, they are restored by the next incremental load,
audited as ``restored``. The guard refuses to mark anything against an SAP that returns far fewer
keys than the warehouse holds. Where the audit trail shares the warehouse's database, a marking
and its audit row commit together or not at all.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from wh_records import partner

from airflow_provider_b1.hooks.sap_b1.literals import entity_path
from airflow_provider_b1.sources.sap_b1 import SapB1Source
from airflow_provider_b1.sync import SyncWindow, sync_stream
from airflow_provider_b1.sync.outcomes import Action
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.utils.sql import transaction
from airflow_provider_b1.warehouse.deletions import DeletionGuardError, check_deletions
from airflow_provider_b1.warehouse.entities import DELETABLE, ENTITIES
from airflow_provider_b1.warehouse.flow import WAREHOUSE_FLOW
from airflow_provider_b1.warehouse.loader import open_loader
from airflow_provider_b1.warehouse.reconcile import reconcile

FAST_RETRIES = RetryPolicy(max_attempts=5, max_elapsed=30, initial_wait=0.02, max_wait=0.3)
PARTNER = {"CardCode": "CDEL-01", "CardName": "Deleted Partner Ltd", "CardType": "cCustomer"}
ITEM = {"ItemCode": "IDEL-01", "ItemName": "Deleted item"}
MASTER = ("BusinessPartners", "Items")


@pytest.fixture(scope="module")
def served_sap() -> Iterator[Any]:
    """A small SAP company of its own: master data and a few documents."""
    from airflow_provider_b1.sandbox.sap import SapSandboxConfig, create_app
    from airflow_provider_b1.sandbox.server import serve_in_thread

    served = serve_in_thread(create_app(SapSandboxConfig(invoices=20, timezone="America/Chicago")), tls=True)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def hook(served_sap, monkeypatch, tmp_path):
    import requests

    from airflow_provider_b1.hooks.sap_b1 import SapB1Hook

    requests.post(
        f"{served_sap.base_url}/_sandbox/reset",
        json={"invoices": 20},
        verify=str(served_sap.ca_path),
        timeout=60,
    ).raise_for_status()
    monkeypatch.setenv("B1_SESSION_CACHE_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv(
        "AIRFLOW_CONN_SAP_B1_DEFAULT",
        json.dumps(
            {
                "conn_type": "sap_b1",
                "host": f"{served_sap.base_url}/b1s/v2",
                "schema": "SBODEMOUS",
                "login": "manager",
                "password": "manager-secret-1",
                "extra": {
                    "ca_bundle": str(served_sap.ca_path),
                    "page_size": 250,
                    "timezone": "America/Chicago",
                },
            }
        ),
    )
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    yield hook
    hook.close()


def _load(hook, loader, session, window: SyncWindow) -> dict[str, Any]:
    source = SapB1Source(hook, select={e: ENTITIES[e].select() for e in MASTER})
    return {
        entity: sync_stream(WAREHOUSE_FLOW, WAREHOUSE_FLOW.stream(entity), source, loader, session, window)
        for entity in MASTER
    }


def _deleted_at(loader, entity: str, key: str) -> Any:
    spec = ENTITIES[entity]
    mark = "%s" if loader.dialect == "postgres" else "?"
    rows = loader.execute(
        f"SELECT deleted_at FROM {loader.table_name(spec)} WHERE {spec.key_column} = {mark}", (key,)
    )
    loader.rollback()
    assert rows, f"{entity} {key} is no longer in the warehouse"
    return rows[0][0]


def _log(loader) -> list[tuple[str, str, str, str | None]]:
    table = f"{loader.schema}.deletion_log" if loader.dialect == "postgres" else "deletion_log"
    rows = loader.execute(f"SELECT entity, record_key, action, run_id FROM {table} ORDER BY id")
    loader.rollback()
    return [tuple(r) for r in rows]


def test_deleted_partner_and_item_are_marked_audited_reconciled_and_restored_by_the_next_load(
    hook, loader, session
):
    hook.create("BusinessPartners", dict(PARTNER))
    hook.create("Items", dict(ITEM))
    first = _load(hook, loader, session, SyncWindow("full"))
    assert _deleted_at(loader, "BusinessPartners", "CDEL-01") is None
    live = {e: len(list(loader.keys(ENTITIES[e]))) for e in DELETABLE}

    # deleted in SAP through the Service Layer, as a user would
    hook.request("DELETE", entity_path("BusinessPartners", "CDEL-01"))
    hook.request("DELETE", entity_path("Items", "IDEL-01"))

    trail = session.trail
    with trail.session(WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "check-1", "check_deletions", 1) as check:
        checks = {c.entity: c for c in check_deletions(hook, loader, audit=check)}
    assert check.counts == {"deleted": 2}
    assert set(checks) == set(DELETABLE)
    assert checks["BusinessPartners"].marked == ["CDEL-01"]
    assert checks["Items"].marked == ["IDEL-01"]
    assert checks["ChartOfAccounts"].marked == checks["ProfitCenters"].marked == []
    # marked, never removed; no longer among the live keys
    assert _deleted_at(loader, "BusinessPartners", "CDEL-01") is not None
    assert _deleted_at(loader, "Items", "IDEL-01") is not None
    assert "CDEL-01" not in set(loader.keys(ENTITIES["BusinessPartners"]))
    assert loader.deleted_keys(ENTITIES["Items"]) == ["IDEL-01"]
    assert {e: len(list(loader.keys(ENTITIES[e]))) for e in DELETABLE} == {
        **live,
        "BusinessPartners": live["BusinessPartners"] - 1,
        "Items": live["Items"] - 1,
    }
    assert _log(loader) == [
        ("BusinessPartners", "CDEL-01", "deleted", "check-1"),
        ("Items", "IDEL-01", "deleted", "check-1"),
    ]
    # the audit trail: one deleted row each, with the check's run and the reason
    for entity, key in (("BusinessPartners", "CDEL-01"), ("Items", "IDEL-01")):
        *_, deleted = trail.history(WAREHOUSE_FLOW.name, entity, key)
        assert (deleted["action"], deleted["source_system"], deleted["run_id"], deleted["task_id"]) == (
            "deleted",
            "sap_b1",
            "check-1",
            "check_deletions",
        )
        assert (deleted["target_key"], deleted["target_entity"]) == (key, loader.table_name(ENTITIES[entity]))
        n = checks[entity].sap_keys
        assert re.fullmatch(
            rf"not among SAP's {n:,} keys at \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC", deleted["error"]
        )
    # reconciliation counts the warehouse's live rows: SAP and the warehouse agree again
    assert all(r.ok for r in reconcile(hook, loader, MASTER))

    # a second check finds nothing more to mark
    with trail.session(WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "check-2", "check_deletions", 1) as check:
        again = check_deletions(hook, loader, audit=check)
    assert [c.marked for c in again] == [[], [], [], []]
    assert len(_log(loader)) == 2
    assert trail.counts_for_run("sap_b1_to_warehouse", "check-2")["deleted"] == 0

    # re-created in SAP with the same keys: the next incremental load brings them back
    hook.create("BusinessPartners", {**PARTNER, "CardName": "Deleted Partner Ltd (again)"})
    hook.create("Items", dict(ITEM))  # the very same payload: still restored
    # reconciled before that load, the difference says what it is and what comes next
    between = reconcile(hook, loader, MASTER, raise_on_difference=False, audit=trail)
    assert {d.key: d.reason for r in between for d in r.differences} == dict.fromkeys(
        ("CDEL-01", "IDEL-01"),
        "in SAP again after the warehouse marked it deleted; the next load reading it restores it",
    )
    cursors = {e: s.cursor for e, s in first.items()}
    restored = {
        entity: sync_stream(
            WAREHOUSE_FLOW,
            WAREHOUSE_FLOW.stream(entity),
            SapB1Source(hook, select={entity: ENTITIES[entity].select()}),
            loader,
            session,
            SyncWindow("incremental", cursor=cursors[entity], previous_cursor=cursors[entity]),
        )
        for entity in MASTER
    }
    assert (restored["BusinessPartners"].restored, restored["Items"].restored) == (1, 1)
    assert (restored["BusinessPartners"].created, restored["Items"].created) == (0, 0)
    assert (restored["Items"].to_xcom()["restored"], restored["Items"].written) == (1, 1)
    assert "deleted" not in restored["Items"].to_xcom()
    assert _deleted_at(loader, "BusinessPartners", "CDEL-01") is None
    assert _deleted_at(loader, "Items", "IDEL-01") is None
    assert loader.deleted_keys(ENTITIES["BusinessPartners"]) == []
    assert [r[:3] for r in _log(loader)[2:]] == [
        ("BusinessPartners", "CDEL-01", "restored"),
        ("Items", "IDEL-01", "restored"),
    ]
    assert all(r.ok for r in reconcile(hook, loader, MASTER))
    # the trail of each: created by the first load, deleted by the check, restored by the load
    for entity, key in (("BusinessPartners", "CDEL-01"), ("Items", "IDEL-01")):
        history = trail.history(WAREHOUSE_FLOW.name, entity, key)
        assert [r["action"] for r in history] == ["created", "deleted", "restored"]
        assert [r["attempt"] for r in history] == [1, 2, 3]
        assert re.fullmatch(
            r"SAP holds it again; it was marked deleted at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
            history[-1]["error"],
        )
    # neither is offered to replay, nor waits for anything
    assert trail.records_for_replay(WAREHOUSE_FLOW.name) == []

    # a marked row whose record comes back exactly as stored (same payload hash) is restored too
    item = ENTITIES["Items"]
    record = hook.get("Items", "IDEL-01", select=item.select())
    loader.load_page(item, [record])  # the row now holds exactly this record
    assert loader.load_page(item, [record]).counts["unchanged"] == 1
    assert loader.mark_deleted(item, ["IDEL-01"]) == ["IDEL-01"]
    assert loader.load_page(item, [record]).counts["restored"] == 1
    assert _deleted_at(loader, "Items", "IDEL-01") is None
    assert [r[2] for r in _log(loader)[4:]] == ["deleted", "restored"]

    assert [c.marked for c in check_deletions(hook, loader)] == [[], [], [], []]


class _NoKeys:
    """An SAP that answers every read with no records: a wrong company, or a user who may not see them."""

    def iter_pages(self, entity: str, **_options: Any) -> Iterator[list]:
        yield []


def test_the_guard_refuses_to_mark_when_sap_returns_far_fewer_keys(hook, loader, session):
    _load(hook, loader, session, SyncWindow("full"))
    live = {e: sorted(map(str, loader.keys(ENTITIES[e]))) for e in MASTER}

    with pytest.raises(DeletionGuardError, match=r"Nothing was marked.*right company"):
        check_deletions(_NoKeys(), loader, MASTER)
    assert {e: sorted(map(str, loader.keys(ENTITIES[e]))) for e in MASTER} == live
    assert _log(loader) == []

    # over the share allowed: nothing marked; the share raised for one run: marked
    keys = live["Items"]
    for key in keys[: len(keys) // 2 + 1]:
        hook.request("DELETE", entity_path("Items", key))
    with pytest.raises(DeletionGuardError, match="Items"):
        check_deletions(hook, loader, ["Items"])
    assert _log(loader) == []
    (check,) = check_deletions(hook, loader, ["Items"], max_share=1.0)
    assert len(check.marked) == len(keys) // 2 + 1


def test_a_marking_whose_audit_row_failed_is_audited_by_the_next_check(hook, loader, session, monkeypatch):
    from airflow_provider_b1.sync.audit import AuditSession
    from airflow_provider_b1.warehouse.deletions import LATE_REASON

    hook.create("BusinessPartners", dict(PARTNER))
    hook.create("Items", dict(ITEM))
    _load(hook, loader, session, SyncWindow("full"))
    hook.request("DELETE", entity_path("BusinessPartners", "CDEL-01"))
    hook.request("DELETE", entity_path("Items", "IDEL-01"))
    trail = session.trail  # a database of its own: the markings commit before their audit rows

    def unwritable(self, records, cursor=None, *, counted=True):
        raise OSError("the audit database went away")

    with monkeypatch.context() as patched:
        patched.setattr(AuditSession, "write", unwritable)
        with (
            trail.session(
                WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "check-1", "check_deletions", 1
            ) as check,
            pytest.raises(OSError, match="went away"),
        ):
            check_deletions(hook, loader, MASTER, audit=check)
    # the partner's marking committed, its audit row failed, the task stopped before the items
    assert _deleted_at(loader, "BusinessPartners", "CDEL-01") is not None
    assert _deleted_at(loader, "Items", "IDEL-01") is None
    assert trail.history(WAREHOUSE_FLOW.name, "BusinessPartners", "CDEL-01")[-1]["action"] == "created"

    # the retry audits the marking that lacks its row, then marks (and audits) what is left
    with trail.session(WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "check-1", "check_deletions", 2) as check:
        again = check_deletions(hook, loader, MASTER, audit=check)
    assert [c.marked for c in again] == [[], ["IDEL-01"]]
    *_, late = trail.history(WAREHOUSE_FLOW.name, "BusinessPartners", "CDEL-01")
    assert (late["action"], late["error"], late["try_number"]) == ("deleted", LATE_REASON, 2)
    *_, item = trail.history(WAREHOUSE_FLOW.name, "Items", "IDEL-01")
    assert (item["action"], item["error"].startswith("not among SAP's")) == ("deleted", True)
    # audited once: a later check writes nothing more
    with trail.session(WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "check-2", "check_deletions", 1) as check:
        check_deletions(hook, loader, MASTER, audit=check)
    assert trail.counts_for_run("sap_b1_to_warehouse", "check-2")["deleted"] == 0

    # a load after the marking that failed the record (SAP re-created it, its restore failed): its
    # failure is its latest word, which replay offers; the check does not audit it deleted again
    time.sleep(1.1)  # past the marking's second (SQLite keeps deleted_at in whole seconds)
    (record,) = loader.deletion_records(ENTITIES["BusinessPartners"], ["CDEL-01"], None)
    with trail.session(WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "load-3", "load_master", 1) as load:
        load.write([dataclasses.replace(record, action=Action.FAILED, error="could not be restored")])
    with trail.session(WAREHOUSE_FLOW.name, "sap_b1_to_warehouse", "check-3", "check_deletions", 1) as check:
        check_deletions(hook, loader, MASTER, audit=check)
    assert trail.history(WAREHOUSE_FLOW.name, "BusinessPartners", "CDEL-01")[-1]["action"] == "failed"
    assert trail.counts_for_run("sap_b1_to_warehouse", "check-3")["deleted"] == 0


def test_a_check_refuses_an_audit_session_of_another_company(hook, loader, session):
    with (
        session.trail.session(
            f"{WAREHOUSE_FLOW.name}@sap_b1_eu", "sap_b1_to_warehouse", "check-1", "check_deletions", 1
        ) as check,
        pytest.raises(ValueError, match=r"company sap_b1_default audits into the flow 'sap_b1_to_warehouse'"),
    ):
        check_deletions(hook, loader, MASTER, audit=check)


def test_entities_sap_cannot_delete_are_refused(hook, loader):
    with pytest.raises(ValueError, match="SAP does not delete Invoices"):
        check_deletions(hook, loader, ["Invoices"])


@pytest.fixture(params=["postgres", "sqlite"])
def shared(request, tmp_path, monkeypatch) -> Iterator[tuple[Any, Any]]:
    """A warehouse and an audit trail in one database, both opened from one Airflow connection."""
    from airflow_provider_b1.sync import AuditTrail

    conn_id = f"b1_shared_{secrets.token_hex(3)}"
    warehouse_schema, audit_schema = "sap_b1", "b1_audit"
    if request.param == "postgres":
        pg = request.getfixturevalue("pg_database")
        conn = {"conn_type": "postgres", "host": pg["host"], "port": pg["port"], "login": pg["user"]}
        conn["schema"] = pg["dbname"]
        warehouse_schema = request.getfixturevalue("pg_schema")
        audit_schema = f"audit_{secrets.token_hex(4)}"
    else:
        conn = {"conn_type": "sqlite", "host": str(tmp_path / "shared.db")}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    loader = open_loader(conn_id, schema=warehouse_schema)
    loader.ensure_schema()
    trail = AuditTrail(conn_id, schema=audit_schema)
    trail.ensure_schema()
    try:
        yield loader, trail
    finally:
        if trail.dialect == "postgres":
            with transaction(trail.connection()) as cursor:
                cursor.execute(f"DROP SCHEMA IF EXISTS {audit_schema} CASCADE")
        trail.close()
        loader.close()


def _refuse_deleted_audit_rows(trail, refuse: bool) -> None:
    """A trigger that makes the audit trail refuse ``deleted`` rows: the database itself fails the write."""
    with transaction(trail.connection()) as cursor:
        if trail.dialect == "sqlite":
            cursor.execute(
                "CREATE TRIGGER refuse_deleted BEFORE INSERT ON audit_record WHEN NEW.action = 'deleted' "
                "BEGIN SELECT RAISE(ABORT, 'audit refused'); END"
                if refuse
                else "DROP TRIGGER refuse_deleted"
            )
        elif refuse:
            cursor.execute(
                f"CREATE FUNCTION {trail.schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
            )
            cursor.execute(
                f"CREATE TRIGGER refuse_deleted BEFORE INSERT ON {trail.table} FOR EACH ROW "
                f"WHEN (NEW.action = 'deleted') EXECUTE FUNCTION {trail.schema}.refuse()"
            )
        else:
            cursor.execute(f"DROP TRIGGER refuse_deleted ON {trail.table}")


def test_where_the_trail_shares_the_warehouse_database_a_marking_and_its_audit_row_commit_together(shared):
    loader, trail = shared
    spec = ENTITIES["BusinessPartners"]
    loader.load_page(spec, [partner("CSH-1"), partner("CSH-2")])
    reason = "not among SAP's 1 keys at 2026-01-01 00:00:00 UTC"

    # the audit row cannot be written: the marking is rolled back with it
    _refuse_deleted_audit_rows(trail, True)
    with (
        trail.session(WAREHOUSE_FLOW.name, "dag", "check-1", "check_deletions", 1) as session,
        pytest.raises(Exception, match="audit refused"),
    ):
        loader.mark_deleted(spec, ["CSH-1"], audit=session, reason=reason)
    assert loader.deleted_keys(spec) == []
    assert _log(loader) == []
    assert session.counts == {}

    _refuse_deleted_audit_rows(trail, False)
    with trail.session(WAREHOUSE_FLOW.name, "dag", "check-2", "check_deletions", 1) as session:
        assert loader.mark_deleted(spec, ["CSH-1"], audit=session, reason=reason) == ["CSH-1"]
    assert session.counts == {"deleted": 1}
    assert loader.deleted_keys(spec) == ["CSH-1"]
    assert _log(loader) == [("BusinessPartners", "CSH-1", "deleted", "check-2")]
    ((action, run_id, error),) = [
        (r["action"], r["run_id"], r["error"])
        for r in trail.history(WAREHOUSE_FLOW.name, "BusinessPartners", "CSH-1")
    ]
    assert (action, run_id, error) == ("deleted", "check-2", reason)
