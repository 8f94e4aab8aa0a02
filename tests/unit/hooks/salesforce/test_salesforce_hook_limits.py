"""The org's API usage from Sforce-Limit-Info, and the guard that stops before a connection's share."""

from __future__ import annotations

import pytest
from sf_unit_helpers import response

from airflow_provider_b1.exceptions import PermanentError
from airflow_provider_b1.hooks.salesforce import ApiLimitGuard, ApiUsage, SalesforceApiLimitReached
from airflow_provider_b1.hooks.salesforce.limits import parse_limit_info


@pytest.mark.parametrize(
    ("header", "usage"),
    [
        ("api-usage=18/5000", ApiUsage(18, 5000)),
        ("api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", ApiUsage(25, 5000)),
        ("per-app-api-usage=17/250(appName=x); api-usage=30/100", ApiUsage(30, 100)),
        ("", None),
        (None, None),
        ("api-usage=lots", None),
    ],
)
def test_the_org_usage_is_read_from_the_header_and_per_app_usage_ignored(header, usage):
    assert parse_limit_info(header) == usage


def test_every_reply_updates_the_usage_and_a_reply_without_the_header_keeps_it():
    guard = ApiLimitGuard(0.8)
    assert guard.usage is None
    guard.observe(response(200, {}, headers={"Sforce-Limit-Info": "api-usage=10/100"}))
    guard.observe(response(200, {}))
    assert guard.usage == (10, 100)
    assert guard.usage.remaining == 90


def test_the_guard_lets_calls_through_up_to_the_share_and_stops_the_one_past_it():
    guard = ApiLimitGuard(0.8)
    guard.check()  # nothing known yet: no reason to stop
    guard.observe(response(200, {}, headers={"Sforce-Limit-Info": "api-usage=79999/100000"}))
    guard.check()  # the 80,000th request is still within 80 %
    with pytest.raises(SalesforceApiLimitReached) as raised:
        guard.check(2)
    assert "would take it past the 80% this connection allows (api_limit_share)" in str(raised.value)
    assert raised.value.used == 79999
    assert raised.value.limit == 100000


def test_over_the_share_the_message_says_where_the_org_is():
    guard = ApiLimitGuard(0.8)
    guard.observe(response(200, {}, headers={"Sforce-Limit-Info": "api-usage=80100/100000"}))
    with pytest.raises(SalesforceApiLimitReached) as raised:
        guard.check(what="GET /services/data/v62.0/query")
    message = str(raised.value)
    assert message.startswith(
        "Salesforce org at 80.1% of its daily API requests (80100/100000), over the 80% this connection "
        "allows (api_limit_share); stopping before GET /services/data/v62.0/query"
    )
    assert "org's own users" in message
    assert isinstance(raised.value, PermanentError)


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share):
    with pytest.raises(ValueError, match="api_limit_share"):
        ApiLimitGuard(share)
