"""Issue 9: the ServiceTitan sandbox's export feeds (continuation tokens, the 15-minute lag,
``includeRecentChanges``), over HTTPS as a third-party client would read them."""

from __future__ import annotations

import datetime as dt


def _when(stamp: str) -> dt.datetime:
    head, _, frac = stamp.rstrip("Z").partition(".")
    moment = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return moment + dt.timedelta(microseconds=int((frac or "0")[:6].ljust(6, "0")))


def _walk(servicetitan, resource, start=None, **params):
    """Every page from ``start`` until ``hasMore`` is false: (records, tokens seen, last token)."""
    module = "crm" if resource == "customers" else "accounting"
    records, tokens, token = [], [], start
    for _ in range(1000):
        query = dict(params)
        if token is not None:
            query["from"] = token
        body = servicetitan.ok(module, f"export/{resource}", **query)
        assert set(body) == {"hasMore", "continueFrom", "data"}
        records += body["data"]
        token = body["continueFrom"]
        tokens.append(token)
        if not body["hasMore"]:
            return records, tokens, token
    raise AssertionError("the export never ended")


def test_export_walks_every_invoice_once_through_continuation_tokens(servicetitan):
    servicetitan.control("POST", "config", {"export_page_size": 128})
    records, tokens, _ = _walk(servicetitan, "invoices")
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 600
    assert len(tokens) == 5
    assert len(set(tokens)) == len(tokens)
    stamps = [_when(r["modifiedOn"]) for r in records]
    assert stamps == sorted(stamps)  # oldest change first


def test_export_includes_inactive_and_merged_customers(servicetitan):
    records, _, _ = _walk(servicetitan, "customers")
    assert len(records) == 120
    assert any(not c["active"] for c in records)
    assert any(c["mergedToId"] is not None for c in records)


def test_rereading_from_an_old_token_returns_the_same_records_again(servicetitan):
    servicetitan.control("POST", "config", {"export_page_size": 50})
    first = servicetitan.ok("accounting", "export/payments")
    token = first["continueFrom"]
    once = servicetitan.ok("accounting", "export/payments", **{"from": token})
    twice = servicetitan.ok("accounting", "export/payments", **{"from": token})
    assert once == twice
    assert {p["id"] for p in once["data"]}.isdisjoint(p["id"] for p in first["data"])


def test_changes_reach_the_export_only_after_fifteen_minutes(servicetitan):
    _, _, cursor = _walk(servicetitan, "invoices")
    changed = servicetitan.control("POST", "mutate", {"edit_invoices": 2}).json()["invoices"]
    assert len(changed) == 2
    lagged = servicetitan.ok("accounting", "export/invoices", **{"from": cursor})
    assert (lagged["data"], lagged["hasMore"], lagged["continueFrom"]) == ([], False, cursor)
    # Fourteen minutes on: still settling.
    servicetitan.control("POST", "clock", {"advance_seconds": 14 * 60})
    assert servicetitan.ok("accounting", "export/invoices", **{"from": cursor})["data"] == []
    servicetitan.control("POST", "clock", {"advance_seconds": 2 * 60})
    servicetitan.token(fresh=True)  # the advanced clock is also the tokens' clock
    settled, _, _ = _walk(servicetitan, "invoices", cursor)
    assert sorted(r["id"] for r in settled) == sorted(changed)


def test_list_endpoints_show_changes_at_once(servicetitan):
    changed = servicetitan.control("POST", "mutate", {"edit_invoices": 1}).json()["invoices"]
    served = servicetitan.ok("accounting", "invoices", ids=str(changed[0]))["data"][0]
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    assert served["modifiedOn"].startswith(today) or served["modifiedOn"] > today


def test_include_recent_changes_returns_them_now_and_again_on_the_next_read(servicetitan):
    _, _, cursor = _walk(servicetitan, "payments")
    touched = servicetitan.control("POST", "mutate", {"add_payments": 2}).json()
    new_payments = touched["payments"]
    recent, _, after_recent = _walk(servicetitan, "payments", cursor, includeRecentChanges="true")
    assert sorted(r["id"] for r in recent) == sorted(new_payments)
    # The next read repeats them (ServiceTitan: "may cause the same results appearing multiple
    # times"), and once they have settled the plain feed delivers them exactly once more.
    again, _, _ = _walk(servicetitan, "payments", after_recent, includeRecentChanges="true")
    assert sorted(r["id"] for r in again) == sorted(new_payments)
    assert _walk(servicetitan, "payments", after_recent)[0] == []
    servicetitan.control("POST", "clock", {"advance_seconds": 16 * 60})
    servicetitan.token(fresh=True)
    settled, _, final = _walk(servicetitan, "payments", after_recent)
    assert sorted(r["id"] for r in settled) == sorted(new_payments)
    assert _walk(servicetitan, "payments", final)[0] == []


def test_export_lag_is_a_setting(servicetitan):
    _, _, cursor = _walk(servicetitan, "customers")
    servicetitan.control("POST", "config", {"export_lag_seconds": 0})
    changed = servicetitan.control("POST", "mutate", {"deactivate_customers": 1}).json()["customers"]
    records, _, _ = _walk(servicetitan, "customers", cursor)
    assert [r["id"] for r in records] == changed
    assert records[0]["active"] is False


def test_export_from_a_date_starts_with_records_changed_since(servicetitan):
    every, _, _ = _walk(servicetitan, "invoices")
    moment = sorted(r["modifiedOn"] for r in every)[500][:10]  # a day
    since, _, _ = _walk(servicetitan, "invoices", moment)
    expected = {r["id"] for r in every if r["modifiedOn"][:10] >= moment}
    assert {r["id"] for r in since} == expected


def test_tokens_of_another_feed_or_edited_tokens_are_refused(servicetitan):
    customer_token = servicetitan.ok("crm", "export/customers")["continueFrom"]
    reply = servicetitan.get("accounting", "export/invoices", **{"from": customer_token})
    assert reply.status_code == 400
    assert "from" in reply.json()["errors"]
    edited = customer_token[:-2] + ("AA" if not customer_token.endswith("AA") else "BB")
    assert servicetitan.get("crm", "export/customers", **{"from": edited}).status_code == 400
