"""Issue 9: webhook deliveries of the ServiceTitan sandbox to a real HTTP receiver: signed with
HMAC-SHA256 of the raw body, retried on non-2xx on a shrunken schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

KEY = "k" * 20 + "-webhook-secret-1234"  # 40 characters


class Receiver:
    """A loopback HTTP server recording deliveries, answering each with the next scripted status."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.event.set()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/servicetitan"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} deliveries arrived"
            self.event.wait(0.05)
            self.event.clear()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _wait_state(servicetitan, state: str, count: int, timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        deliveries = servicetitan.control("GET", "webhooks").json()["deliveries"]
        if sum(d["state"] == state for d in deliveries) >= count:
            return deliveries
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.05)


def test_mutations_are_delivered_signed_and_retried_until_accepted(servicetitan, receiver):
    servicetitan.control("POST", "config", {"webhook_time_scale": 0.002})  # 10 s -> 20 ms
    reply = servicetitan.control(
        "POST", "webhooks", {"eventType": "invoice.updated", "url": receiver.url, "key": KEY}
    )
    assert reply.status_code == 200, reply.text
    assert "key" not in reply.json()
    receiver.statuses = [500, 503]
    touched = servicetitan.control("POST", "mutate", {"edit_invoices": 1}).json()
    receiver.wait_for(3)
    deliveries = _wait_state(servicetitan, "delivered", 1)
    assert deliveries[0]["attempts"] == [500, 503, 200]
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1  # every attempt sends the same bytes
    headers, body = receiver.received[-1]
    expected = hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-servicetitan-signature"], expected)
    event = json.loads(body)
    assert set(event) == {"eventId", "eventType", "timestamp", "data"}
    assert event["eventType"] == "invoice.updated"
    assert event["data"]["id"] == touched["invoices"][0]


def test_header_name_and_base64_encoding_are_settings(servicetitan, receiver):
    servicetitan.control(
        "POST",
        "webhooks",
        {"eventType": "*", "url": receiver.url, "key": KEY, "header": "ST-Signature", "encoding": "base64"},
    )
    servicetitan.control("POST", "mutate", {"deactivate_customers": 1})
    receiver.wait_for(1)
    headers, body = receiver.received[0]
    expected = base64.b64encode(hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
    assert headers["st-signature"] == expected
    assert json.loads(body)["eventType"] == "customer.updated"


def test_a_receiver_that_keeps_failing_gets_five_attempts_then_the_delivery_fails(servicetitan, receiver):
    servicetitan.control("POST", "config", {"webhook_time_scale": 0.001})
    servicetitan.control(
        "POST", "webhooks", {"eventType": "payment.created", "url": receiver.url, "key": KEY}
    )
    receiver.statuses = [500] * 10
    servicetitan.control("POST", "mutate", {"add_payments": 1})
    deliveries = _wait_state(servicetitan, "failed", 1)
    assert deliveries[0]["attempts"] == [500] * 5
    assert servicetitan.control("GET", "stats").json()["webhooks"]["failed"] == 1


@pytest.mark.parametrize(
    "registration",
    [
        {"url": "http://127.0.0.1:9/x", "key": "short"},
        {"url": "http://127.0.0.1:9/x", "key": "k" * 65},
        {"url": "ftp://example/x", "key": KEY},
        {"url": "http://127.0.0.1:9/x", "key": KEY, "encoding": "hex2"},
        {"url": "http://127.0.0.1:9/x", "key": KEY, "eventType": "job.created"},
    ],
)
def test_invalid_registrations_are_refused(servicetitan, registration):
    assert servicetitan.control("POST", "webhooks", registration).status_code == 400
