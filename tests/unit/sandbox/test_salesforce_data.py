"""The seeded Salesforce org: deterministic, sized as asked, tied to the SAP sandbox's codes."""

from __future__ import annotations

import datetime as dt

from airflow_provider_b1.sandbox.salesforce.data import seed_org
from airflow_provider_b1.sandbox.salesforce.schema import build_schema
from airflow_provider_b1.sandbox.salesforce.store import Store


def build(seed: int = 1, accounts: int = 60, opportunities: int = 120, custom_fields: bool = True) -> Store:
    store = Store(build_schema(custom_fields=custom_fields))
    seed_org(
        store,
        seed=seed,
        accounts=accounts,
        opportunities=opportunities,
        products=60,
        anchor=dt.date(2025, 6, 1),
        custom_fields=custom_fields,
    )
    return store


def test_same_seed_same_org_other_seed_other_org():
    assert build().tables == build().tables
    assert build(seed=2).tables["Account"] != build().tables["Account"]


def test_shape_of_the_default_org():
    store = build()
    accounts = list(store.tables["Account"].values())
    assert len(accounts) == 60
    numbers = [a["AccountNumber"] for a in accounts]
    assert 2 <= numbers.count(None) <= 12
    unknown = [n for n in numbers if n and n.startswith("C09")]
    assert 1 <= len(unknown) <= 10
    known = sorted(n for n in numbers if n and not n.startswith("C09"))
    assert known == [f"C{i:05d}" for i in range(1, len(known) + 1)]
    opps = list(store.tables["Opportunity"].values())
    assert len(opps) == 120
    won = sum(o["StageName"] == "Closed Won" for o in opps)
    assert 25 <= won <= 60
    lines = list(store.tables["OpportunityLineItem"].values())
    with_lines = {line["OpportunityId"] for line in lines}
    assert 40 <= len(with_lines) <= 90
    for opp_id in with_lines:
        total = round(sum(line["TotalPrice"] for line in lines if line["OpportunityId"] == opp_id), 2)
        assert store.get("Opportunity", opp_id)["Amount"] == total
    codes = {p["ProductCode"] for p in store.tables["Product2"].values()}
    assert codes == {f"A{i:05d}" for i in range(1, 61)}


def test_ids_follow_creation_order_and_stamps_lie_before_the_anchor():
    store = build()
    anchor_ms = int(dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)
    for table in ("Account", "Opportunity"):
        records = list(store.tables[table].values())
        assert [r["CreatedDate"] for r in records] == sorted(r["CreatedDate"] for r in records)
        assert all(r["CreatedDate"] <= r["SystemModstamp"] < anchor_ms for r in records)


def test_large_orgs_keep_unknown_codes_apart_from_known_ones():
    store = build(accounts=9500, opportunities=10)
    numbers = [a["AccountNumber"] for a in store.tables["Account"].values() if a["AccountNumber"]]
    assert len(numbers) == len(set(numbers))


def test_an_org_without_custom_fields():
    store = build(custom_fields=False)
    account = next(iter(store.tables["Account"].values()))
    assert not [k for k in account if k.endswith("__c")]
