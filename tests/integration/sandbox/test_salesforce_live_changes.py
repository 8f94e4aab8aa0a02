"""The Salesforce sandbox's change log (the source of a later CDC / Pub/Sub imitation): what API
writes and UI edits record, in order, with transaction keys and users; its Python API
(``changes_after``, ``wait_for_change``) and its retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests
from simple_salesforce import Salesforce


@pytest.fixture
def org(salesforce_sandbox) -> Iterator:
    yield salesforce_sandbox
    salesforce_sandbox.restore()


@pytest.fixture
def sf(org) -> Iterator[Salesforce]:
    http = requests.Session()
    http.verify = org.ca_path
    http.trust_env = False
    token = org.token()
    yield Salesforce(
        instance_url=token["instance_url"], session_id=token["access_token"], version="62.0", session=http
    )
    http.close()


def changes(org, after: int, objects: str = "") -> list[dict]:
    query = f"changes?after={after}" + (f"&objects={objects}" if objects else "")
    return org.control("GET", query)["changes"]


def test_api_writes_are_logged_in_order_with_the_integration_user(sf, org):
    start = org.control("GET", "changes")["last_seq"]
    account = org.truth("Account")[0]
    sf.Account.update(account["Id"], {"Phone": "(512) 555-0142"})
    created = sf.Account.create({"Name": "Logged Co"})
    logged = changes(org, start)
    assert [c["seq"] for c in logged] == [start + 1, start + 2]
    update, create = logged
    assert update["change_type"] == "UPDATE"
    assert update["record_ids"] == [account["Id"]]
    assert update["changed_fields"] == ["Phone", "LastModifiedDate"]
    assert update["origin"] == "api"
    assert update["record"]["Phone"] == "(512) 555-0142"
    assert update["record"]["SystemModstamp"] == sf.Account.get(account["Id"])["SystemModstamp"]
    assert create["change_type"] == "CREATE"
    assert create["record_ids"] == [created["id"]]
    assert "Name" in create["changed_fields"]
    assert create["commit_user"] == update["commit_user"]
    assert create["commit_timestamp"] > update["commit_timestamp"]
    assert create["transaction_key"] != update["transaction_key"]


def test_ui_edits_name_the_ui_user_and_move_the_stamp(sf, org):
    integration_user = org.token()["id"].rsplit("/", 1)[1]
    start = org.control("GET", "changes")["last_seq"]
    opp = org.truth("Opportunity")[0]
    edited = org.edit("Opportunity", opp["Id"], StageName="Negotiation/Review", Description="called them")
    assert edited["record"]["SystemModstamp"] > opp["SystemModstamp"]
    ui_user = edited["record"]["LastModifiedById"]
    assert ui_user.startswith("005")
    assert ui_user != integration_user
    (change,) = changes(org, start)
    assert change["origin"] == "ui"
    assert change["commit_user"] == ui_user
    assert {"StageName", "Description", "Probability", "LastModifiedDate"} <= set(change["changed_fields"])
    sf.Opportunity.update(opp["Id"], {"Description": "and again"})
    (api_change,) = changes(org, start + 1)
    assert api_change["origin"] == "api"
    assert api_change["commit_user"] == integration_user
    assert sf.Opportunity.get(opp["Id"])["LastModifiedById"] == integration_user


def test_one_call_is_one_transaction_and_line_items_move_the_opportunity(sf, org):
    start = org.control("GET", "changes")["last_seq"]
    opps = [o for o in org.truth("Opportunity") if not o["IsClosed"]][:2]
    product = org.truth("Product2")[0]
    sf.restful(
        "composite/sobjects",
        method="POST",
        json={
            "records": [
                {
                    "attributes": {"type": "OpportunityLineItem"},
                    "OpportunityId": o["Id"],
                    "Product2Id": product["Id"],
                    "Quantity": 1,
                    "UnitPrice": 5,
                }
                for o in opps
            ]
        },
    )
    logged = changes(org, start)
    assert {c["object"] for c in logged} == {"Opportunity"}  # line items are not in the log
    assert {c["record_ids"][0] for c in logged} == {o["Id"] for o in opps}
    assert len({c["transaction_key"] for c in logged}) == 1
    assert [c["sequence_number"] for c in logged] == [1, 2]
    assert all(c["changed_fields"] == ["Amount", "LastModifiedDate"] for c in logged)


def test_deleting_an_account_deletes_its_opportunities_and_undelete_restores_them(sf, org):
    start = org.control("GET", "changes")["last_seq"]
    opp = next(o for o in org.truth("Opportunity") if o["AccountId"])
    account_id = opp["AccountId"]
    children = {o["Id"] for o in org.truth("Opportunity") if o["AccountId"] == account_id}
    sf.Account.delete(account_id)
    logged = changes(org, start)
    assert {(c["object"], c["change_type"]) for c in logged} == {
        ("Account", "DELETE"),
        ("Opportunity", "DELETE"),
    }
    assert {c["record_ids"][0] for c in logged if c["object"] == "Opportunity"} == children
    assert not children & {o["Id"] for o in org.truth("Opportunity")}
    org.control("POST", "edit", {"object": "Account", "id": account_id, "action": "undelete"})
    restored = changes(org, start + len(logged))
    assert {c["change_type"] for c in restored} == {"UNDELETE"}
    assert children <= {o["Id"] for o in org.truth("Opportunity")}


def test_filter_by_object(sf, org):
    start = org.control("GET", "changes")["last_seq"]
    sf.Account.create({"Name": "Only Accounts"})
    sf.Opportunity.create({"Name": "Only Opps", "StageName": "Prospecting", "CloseDate": "2030-01-01"})
    assert [c["object"] for c in changes(org, start, "Opportunity")] == ["Opportunity"]


def test_wait_for_change_wakes_a_streaming_thread(sf, org):
    store = org.app.state.sandbox.store
    seq = store.last_seq
    woke: list[bool] = []
    waiter = threading.Thread(target=lambda: woke.append(store.wait_for_change(seq, timeout=10)))
    waiter.start()
    time.sleep(0.05)
    sf.Account.create({"Name": "Wake Up Co"})
    waiter.join(timeout=10)
    assert woke == [True]
    (change,) = store.changes_after(seq)
    assert change.record["Name"] == "Wake Up Co"
    assert store.wait_for_change(store.last_seq, timeout=0.05) is False


def test_old_changes_are_dropped_after_the_retention(sf, org):
    org.control("POST", "config", {"change_retention_seconds": 0.3})
    sf.Account.create({"Name": "Soon Forgotten"})
    seq = org.control("GET", "changes")["last_seq"]
    assert changes(org, seq - 1)
    time.sleep(0.4)
    after = org.control("GET", "changes?after=0")
    assert after["changes"] == []
    assert after["first_retained_seq"] == seq + 1


def test_the_sequence_goes_on_across_resets(sf, org):
    sf.Account.create({"Name": "Before Reset"})
    seq = org.control("GET", "changes")["last_seq"]
    org.restore()
    assert org.control("GET", "changes")["last_seq"] == seq
    sf.Account.create({"Name": "After Reset"})
    assert changes(org, seq)[0]["seq"] == seq + 1
