"""The SAP hook's EventSubscriptions helpers, with a stubbed transport: the payloads SAP receives.

The same helpers against the SAP sandbox over HTTPS: tests/integration/hooks/sap_b1/test_sap_webhook_subscriptions_sandbox.py.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapB1NotFoundError
from airflow_provider_b1.hooks.sap_b1.errors import SapB1AmbiguousWriteError
from airflow_provider_b1.utils.retry import RetryPolicy

URL = "https://hooks.example.com/webhooks/sap-b1"
SECRET = "sap-webhook-secret-0123456789"


def _reply(status: int, document=None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(document).encode() if document is not None else b""
    return response


class FakeServiceLayer:
    """EventSubscriptions as the stubbed ``_call`` sees them; every call is kept."""

    def __init__(self, subscriptions=None) -> None:
        self.subscriptions = list(subscriptions or [])
        self.calls: list[dict] = []
        self.fail_next_post = False

    def __call__(self, method, target, **kwargs):
        self.calls.append({"method": method, "target": target, **kwargs})
        if method == "GET":
            query = parse_qs(urlsplit(target).query)
            found = self.subscriptions
            if "$filter" in query:
                wanted = query["$filter"][0].split(" eq ", 1)[1].strip("'").replace("''", "'")
                found = [s for s in found if s["WebhookURL"] == wanted]
            return _reply(200, {"value": found})
        if method == "POST":
            record = {"WebhookID": f"WH{len(self.subscriptions) + 1}", **kwargs["json_body"]}
            self.subscriptions.append(record)
            if self.fail_next_post:
                self.fail_next_post = False
                raise SapB1AmbiguousWriteError("reset after send")
            return _reply(201, record)
        if method == "PATCH":
            return _reply(204)
        if method == "DELETE":
            key = unquote(target).split("('", 1)[1].rstrip("')")
            before = len(self.subscriptions)
            self.subscriptions = [s for s in self.subscriptions if s["WebhookID"] != key]
            if len(self.subscriptions) == before:
                raise SapB1NotFoundError("No matching records found", status=404, code="-2028")
            return _reply(204)
        raise AssertionError(method)

    def writes(self) -> list[dict]:
        return [call for call in self.calls if call["method"] != "GET"]


@pytest.fixture
def sap_connection(monkeypatch):
    """``sap_connection(host=...)`` points ``sap_b1_default`` at a Service Layer nothing is sent to."""

    def _set(host: str = "https://sap.example:50000/b1s/v2/") -> None:
        connection = {
            "conn_type": "sap_b1",
            "host": host,
            "schema": "SBODEMOUS",
            "login": "manager",
            "password": "pw-123456",
        }
        monkeypatch.setenv("AIRFLOW_CONN_SAP_B1_DEFAULT", json.dumps(connection))

    return _set


@pytest.fixture
def hook(sap_connection, tmp_path):
    sap_connection()
    return SapB1Hook(
        session_cache_dir=str(tmp_path), retry_policy=RetryPolicy(max_attempts=3, initial_wait=0, max_wait=0)
    )


@pytest.fixture
def sap(hook, monkeypatch) -> FakeServiceLayer:
    fake = FakeServiceLayer()
    monkeypatch.setattr(hook, "_call", fake)
    return fake


def test_register_posts_the_subscription_sap_expects(hook, sap):
    subscription = hook.register_webhook(
        URL, [("Orders", "Created"), ("Invoices", "Created"), ("Orders", "Updated")], secret=SECRET
    )
    (post,) = sap.writes()
    assert post["method"] == "POST"
    assert post["target"] == "EventSubscriptions"
    assert post["json_body"] == {
        "WebhookURL": URL,
        "AuthenticationType": "HMAC",
        "EventCollection": [
            {"BusinessObject": "Invoices", "TransactionType": "Created"},
            {"BusinessObject": "Orders", "TransactionType": "Created"},
            {"BusinessObject": "Orders", "TransactionType": "Updated"},
        ],
        "AuthenticationCredentials": SECRET,
    }
    assert subscription.outcome == "created"
    assert subscription.webhook_id == "WH1"
    assert subscription.events == (("Invoices", "Created"), ("Orders", "Created"), ("Orders", "Updated"))


def test_register_looks_the_url_up_first_and_sends_nothing_when_it_is_there(hook, sap):
    hook.register_webhook(URL, [("Orders", "Created")], secret=SECRET)
    again = hook.register_webhook(URL, [("Orders", "Created")], secret=SECRET)
    assert again.outcome == "unchanged"
    assert len(sap.writes()) == 1
    lookups = [call["target"] for call in sap.calls if call["method"] == "GET"]
    assert all("WebhookURL eq " in unquote(target) for target in lookups)


def test_register_with_other_events_replaces_the_collection_of_the_existing_one(hook, sap):
    hook.register_webhook(URL, [("Orders", "Created")], secret=SECRET)
    changed = hook.register_webhook(URL, [("Orders", "Created"), ("Invoices", "Created")])
    patch = sap.writes()[-1]
    assert patch["method"] == "PATCH"
    assert unquote(patch["target"]) == "EventSubscriptions('WH1')"
    assert patch["headers"] == {"B1S-ReplaceCollectionsOnPatch": "true"}
    assert patch["json_body"] == {
        "EventCollection": [
            {"BusinessObject": "Invoices", "TransactionType": "Created"},
            {"BusinessObject": "Orders", "TransactionType": "Created"},
        ]
    }
    assert changed.outcome == "updated"
    assert len(sap.subscriptions) == 1


def test_a_create_whose_outcome_is_unknown_is_looked_up_not_sent_twice(hook, sap):
    sap.fail_next_post = True
    subscription = hook.register_webhook(URL, [("Orders", "Created")], secret=SECRET)
    assert [call["method"] for call in sap.writes()] == ["POST"]
    assert subscription.webhook_id == "WH1"
    assert len(sap.subscriptions) == 1


def test_the_secret_is_never_returned_or_listed(hook, sap):
    sap.subscriptions.append(
        {"WebhookID": "WH9", "WebhookURL": URL, "AuthenticationCredentials": SECRET, "EventCollection": []}
    )
    created = hook.register_webhook("https://other.example/hook", [("Orders", "Created")], secret=SECRET)
    listed = hook.list_webhooks()
    for subscription in [created, *listed]:
        assert SECRET not in repr(subscription)
        assert "AuthenticationCredentials" not in subscription.record
    assert [s.url for s in listed] == [URL, "https://other.example/hook"]


def test_delete_by_url_or_by_id_and_twice_is_harmless(hook, sap):
    hook.register_webhook(URL, [("Orders", "Created")])
    hook.register_webhook("https://other.example/hook", [("Orders", "Created")])
    assert hook.delete_webhook(URL) is True
    assert hook.delete_webhook(URL) is False
    assert hook.delete_webhook(webhook_id="WH2") is True
    assert hook.delete_webhook(webhook_id="WH2") is False
    assert sap.subscriptions == []


def test_a_url_with_a_quote_is_escaped_in_the_lookup(hook, sap):
    odd = "https://hooks.example.com/it's"
    hook.register_webhook(odd, [("Orders", "Created")])
    assert hook.register_webhook(odd, [("Orders", "Created")]).outcome == "unchanged"


@pytest.mark.parametrize(
    "events",
    [[], [("Orders",)], [("Orders", "Created; DROP")], [("../x", "Created")], ["OrdersCreated"]],
)
def test_malformed_events_are_refused_before_anything_is_sent(hook, sap, events):
    with pytest.raises(ValueError):
        hook.register_webhook(URL, events)
    assert sap.calls == []


def test_webhooks_need_service_layer_v2(sap_connection, tmp_path):
    sap_connection(host="https://sap.example:50000/b1s/v1/")
    hook = SapB1Hook(session_cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="v2"):
        hook.register_webhook(URL, [("Orders", "Created")])
