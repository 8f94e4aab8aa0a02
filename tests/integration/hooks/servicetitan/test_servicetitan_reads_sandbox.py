"""ServiceTitan reads against the sandbox over real HTTPS: exports with continuation, lists, lookups by id, money, faults."""

from __future__ import annotations

from decimal import Decimal

import pytest
from st_sandbox_helpers import FAST_RETRIES

from airflow_provider_b1.hooks.servicetitan import ServiceTitanHook, ServiceTitanPagingError, money
from airflow_provider_b1.sources.servicetitan import ServiceTitanSource
from airflow_provider_b1.sync.cursors import TokenCursor
from airflow_provider_b1.sync.flows import Stream


def _ids(pages) -> list[int]:
    return [record["id"] for page in pages for record in page.records]


def test_an_export_follows_continue_from_to_every_invoice_once(sandbox, connect):
    connect()
    pages = list(ServiceTitanHook().iter_export("invoices"))
    ids = _ids(pages)
    assert len(ids) == len(set(ids)) == sandbox.truth()["totals"]["invoices"]
    assert len(pages) >= 6  # 200 a page
    assert all(p.has_more for p in pages[:-1])
    assert not pages[-1].has_more
    assert len({p.continue_from for p in pages}) == len(pages)
    assert sandbox.stats()["requests"]["GET accounting/export/invoices"] == len(pages)


def test_the_last_token_of_an_export_reads_only_what_changed_since(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    last = list(hook.iter_export("invoices"))[-1].continue_from
    touched = sandbox.mutate(edit_invoices=3)["invoices"]
    try:
        # Within ServiceTitan's 15-minute lag the changes are not in the feed yet...
        assert _ids(hook.iter_export("invoices", last)) == []
        # ...unless recent changes are asked for.
        recent = list(hook.iter_export("invoices", last, include_recent_changes=True))
        assert sorted(_ids(recent)) == sorted(touched)
    finally:
        sandbox.reseed()


def test_an_export_starts_at_a_date(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    everything = _ids(hook.iter_export("customers"))
    far_future = _ids(hook.iter_export("customers", "2999-01-01"))
    assert len(everything) == sandbox.truth()["totals"]["customers"]
    assert far_future == []


def test_payments_and_customers_exports_read_in_full(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    totals = sandbox.truth()["totals"]
    assert len(set(_ids(hook.iter_export("payments")))) == totals["payments"]
    # Exports include inactive and merged customers.
    assert len(set(_ids(hook.iter_export("customers")))) == totals["customers"] > totals["active_customers"]


def test_a_list_is_read_page_by_page_until_has_more_ends(sandbox, connect):
    connect()
    hook = ServiceTitanHook(page_size=70)
    pages = list(hook.iter_list("crm/customers", {"active": "Any"}))
    assert [len(p) for p in pages[:-1]] == [70] * (len(pages) - 1)
    ids = [r["id"] for p in pages for r in p]
    assert len(ids) == len(set(ids)) == sandbox.truth()["totals"]["customers"]
    active = [r for p in hook.iter_list("crm/customers") for r in p]
    assert len(active) == sandbox.truth()["totals"]["active_customers"]


def test_records_are_looked_up_by_id_fifty_at_a_time(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    wanted = _ids(hook.iter_export("invoices"))[:120]
    found = hook.get_by_ids("invoices", [*wanted, 999_999_999, wanted[0]])
    assert sorted(r["id"] for r in found) == sorted(wanted)
    assert sandbox.stats()["requests"]["GET accounting/invoices"] == 3


def test_money_adds_up_to_the_cent_as_decimals(sandbox, connect):
    connect()
    hook = ServiceTitanHook()
    total = sum(
        (record["total"] for page in hook.iter_export("invoices", decimals=True) for record in page.records),
        Decimal(0),
    )
    assert total == Decimal(sandbox.truth()["totals"]["invoice_total"])
    invoice = hook.get_by_ids("invoices", [_ids(hook.iter_export("invoices"))[0]], decimals=True)[0]
    assert isinstance(invoice["subTotal"], Decimal)
    assert sum((item["total"] for item in invoice["items"]), Decimal(0)) == invoice["subTotal"]
    assert money("120.00") == Decimal("120.00")


def test_an_export_read_through_5xx_and_resets_returns_every_record_once(sandbox, connect):
    connect()
    hook = ServiceTitanHook(retry_policy=FAST_RETRIES)
    hook.get_token()
    sandbox.faults(error_rate=0.25, reset_rate=0.15, seed=3)
    ids = _ids(hook.iter_export("invoices"))
    assert len(ids) == len(set(ids)) == sandbox.truth()["totals"]["invoices"]
    injected = sandbox.stats()["faults_injected"]
    assert injected.get("error", 0) >= 1
    assert injected.get("reset", 0) >= 1


def test_a_bad_parameter_is_a_clear_permanent_error(sandbox, connect):
    connect()
    from airflow_provider_b1.hooks.servicetitan import ServiceTitanBadRequestError

    with pytest.raises(ServiceTitanBadRequestError, match="modifiedOnOrAfter"):
        ServiceTitanHook().get_json("crm/customers", {"modifiedOnOrAfter": "yesterday"})


def test_a_page_cap_stops_a_read_that_goes_on_longer(sandbox, connect):
    connect()
    with pytest.raises(ServiceTitanPagingError, match="still had more pages"):
        list(ServiceTitanHook().iter_export("invoices", max_pages=2))


# -- the sync engine's source ------------------------------------------------------------------


def test_the_source_hands_each_page_with_its_cursor_and_resumes_from_the_last(sandbox, connect):
    connect()
    source = ServiceTitanSource(ServiceTitanHook())
    stream = Stream("payments", cursor=TokenCursor, target="IncomingPayments")
    pages = list(source.read(stream, None, until=None))
    assert all(isinstance(p.reached, TokenCursor) and p.resumable for p in pages)
    keys = [source.key_of(stream, r) for p in pages for r in p.records]
    assert len(keys) == len(set(keys)) == sandbox.truth()["totals"]["payments"]
    # Resuming after the second page reads exactly the rest.
    rest = [
        source.key_of(stream, r) for p in source.read(stream, pages[1].reached, until=None) for r in p.records
    ]
    assert rest == keys[len(pages[0].records) + len(pages[1].records) :]
    # Replay re-reads by id.
    replayed = [r["id"] for p in source.read_keys(stream, [str(k) for k in keys[:60]]) for r in p.records]
    assert sorted(replayed) == sorted(keys[:60])
    source.close()
