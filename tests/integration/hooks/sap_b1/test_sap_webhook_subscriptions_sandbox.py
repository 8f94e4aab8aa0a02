"""``SapB1Hook.register_webhook`` / ``list_webhooks`` / ``delete_webhook`` against the sandbox's
``EventSubscriptions`` over real HTTPS: the handshake, one subscription per URL, and deliveries
signed with the secret the hook registered."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sap_hook_helpers import FAST_RETRIES, order_payloads

from airflow_provider_b1.hooks.sap_b1 import SapB1Error, SapB1Hook
from airflow_provider_b1.webhooks.signatures import signature_matches

SECRET = "sap-hook-webhook-secret-0123456789"


class Endpoint:
    """A loopback webhook endpoint answering SAP's handshake (unless ``refuse``) and recording deliveries."""

    def __init__(self) -> None:
        self.refuse = False
        self.handshakes = 0
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.handshakes += 1
                token = "" if endpoint.refuse else self.headers.get("X-B1-Webhook-Token", "")
                self._answer(json.dumps({"Challenge": token}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self._answer(b"")

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/sap-b1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, count: int, timeout: float = 15) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            assert time.monotonic() < deadline, f"{len(self.deliveries)} of {count} deliveries arrived"
            time.sleep(0.05)
        return self.deliveries


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint()
    yield e
    e.server.shutdown()
    e.server.server_close()


@pytest.fixture
def hook(sandbox, connect) -> Iterator[SapB1Hook]:
    connect()
    yield SapB1Hook(retry_policy=FAST_RETRIES)
    sandbox.control("DELETE", "webhooks")


def _posts(sandbox) -> int:
    return sandbox.stats()["requests"].get("POST EventSubscriptions", 0)


def test_register_list_and_delete_a_webhook(sandbox, hook, endpoint):
    created = hook.register_webhook(endpoint.url, [("Orders", "Created")], secret=SECRET)
    assert created.outcome == "created"
    assert isinstance(created.webhook_id, int)
    assert created.events == (("Orders", "Created"),)
    assert created.authentication_type == "HMAC"
    assert endpoint.handshakes == 1

    again = hook.register_webhook(endpoint.url, [("Orders", "Created")], secret=SECRET)
    assert again.outcome == "unchanged"
    assert again.webhook_id == created.webhook_id
    assert _posts(sandbox) == 1  # looked up, not sent twice

    (listed,) = hook.list_webhooks()
    assert listed.url == endpoint.url
    assert listed.webhook_id == created.webhook_id
    assert "AuthenticationCredentials" not in listed.record

    assert hook.delete_webhook(endpoint.url) is True
    assert hook.delete_webhook(endpoint.url) is False
    assert hook.list_webhooks() == []


def test_registered_events_are_delivered_signed_with_the_registered_secret(sandbox, hook, endpoint):
    hook.register_webhook(endpoint.url, [("Orders", "Created")], secret=SECRET)
    order = hook.create("Orders", order_payloads(hook, 1, "WEBHOOK")[0])
    ((headers, body),) = endpoint.wait(1)
    assert signature_matches(body, SECRET, headers["x-b1-webhook-signature"])
    (event,) = json.loads(body)
    assert event["type"] == "sap.b1.Orders.Created.v1"
    assert event["data"] == {"DocEntry": order["DocEntry"]}


def test_registering_other_events_replaces_the_collection_and_the_secret(sandbox, hook, endpoint):
    first = hook.register_webhook(endpoint.url, [("Orders", "Created")], secret=SECRET)
    changed = hook.register_webhook(
        endpoint.url, [("Orders", "Updated"), ("Invoices", "Created")], secret=SECRET + "-2"
    )
    assert changed.outcome == "updated"
    assert changed.webhook_id == first.webhook_id
    (listed,) = hook.list_webhooks()
    assert listed.events == (("Invoices", "Created"), ("Orders", "Updated"))
    assert _posts(sandbox) == 1
    payload = order_payloads(hook, 1, "WEBHOOK-UPD")[0]
    order = hook.create("Orders", payload)  # no longer subscribed
    hook.update("Orders", order["DocEntry"], {"Comments": "changed"})
    ((headers, body),) = endpoint.wait(1)
    assert [event["type"] for event in json.loads(body)] == ["sap.b1.Orders.Updated.v1"]
    assert signature_matches(body, SECRET + "-2", headers["x-b1-webhook-signature"])
    assert not signature_matches(body, SECRET, headers["x-b1-webhook-signature"])


def test_delete_by_id(hook, endpoint):
    created = hook.register_webhook(endpoint.url, [("BusinessPartners", "Created")], secret=SECRET)
    assert hook.delete_webhook(webhook_id=created.webhook_id) is True
    assert hook.delete_webhook(webhook_id=created.webhook_id) is False
    assert hook.list_webhooks() == []


def test_a_failed_handshake_is_an_error_and_stores_nothing(hook, endpoint):
    endpoint.refuse = True
    with pytest.raises(SapB1Error, match="Webhook URL validation failed"):
        hook.register_webhook(endpoint.url, [("Orders", "Created")], secret=SECRET)
    assert endpoint.handshakes == 1
    assert hook.list_webhooks() == []


def test_service_layer_v1_has_no_webhooks(sandbox, connect):
    connect("v1")
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    with pytest.raises(ValueError, match="v2"):
        hook.register_webhook("https://hooks.example.com/webhooks/sap-b1", [("Orders", "Created")])
