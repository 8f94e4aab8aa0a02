"""Webhooks of the SAP sandbox (10.0 FP 2602+, v2): ``EventSubscriptions`` with the handshake, and
deliveries of the writes a subscription names, signed, sent in the background and retried, to a
loopback receiver and to the provider's own ``b1-webhooks`` receiver."""

from __future__ import annotations

import base64
import importlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from airflow_provider_b1.webhooks.signatures import signature_matches

SECRET = "sap-sandbox-webhook-secret-0123"
ORDER = {
    "CardCode": "C00002",
    "DocDueDate": "2024-05-31",
    "DocumentLines": [{"ItemCode": "A00001", "Quantity": 2, "UnitPrice": 10.5}],
}
DEFAULTS = {
    "webhooks_enabled": True,
    "webhook_secret": None,
    "webhook_signature_encoding": "hex",
    "webhook_retry_seconds": [10, 30, 60, 120],
    "webhook_time_scale": 1.0,
    "webhook_timeout_seconds": 10.0,
    "webhook_ca_bundle": None,
}


class Receiver:
    """A loopback webhook endpoint: answers the handshake as ``handshake`` says (``echo``,
    ``wrong`` or an HTTP status) and each delivery with the next of ``statuses`` (200 when none is
    left), after ``delay`` seconds."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.tokens: list[str] = []
        self.statuses: list[int] = []
        self.handshake: str | int = "echo"
        self.delay = 0.0
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = self.headers.get("X-B1-Webhook-Token", "")
                receiver.tokens.append(token)
                if isinstance(receiver.handshake, int):
                    self._answer(receiver.handshake, b"{}")
                    return
                challenge = token if receiver.handshake == "echo" else "not-the-token"
                self._answer(200, json.dumps({"Challenge": challenge}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if 200 <= status < 300:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self._answer(status, b"")
                receiver.arrived.set()

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/webhooks/sap-b1"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        return [event for _, body in self.received for event in json.loads(body)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


class Sap:
    """The sandbox over plain HTTP: a v2 session (``api``), its root, and the control plane."""

    def __init__(self, base: str, session: requests.Session) -> None:
        self.base = base
        self.root = f"{base}/b1s/v2/"
        self.api = session

    def control(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{self.base}/_sandbox/{path}", json=body, timeout=60)

    def config(self, **settings: Any) -> None:
        reply = self.control("POST", "config", settings)
        assert reply.status_code == 200, reply.text

    def subscribe(self, url: str, *events: tuple[str, str], **fields: Any) -> requests.Response:
        body = {
            "WebhookURL": url,
            "EventCollection": [{"BusinessObject": bo, "TransactionType": tx} for bo, tx in events],
            **fields,
        }
        return self.api.post(self.root + "EventSubscriptions", json=body, timeout=30)

    def create(self, entity: str, payload: dict) -> dict:
        reply = self.api.post(self.root + entity, json=payload, timeout=30)
        assert reply.status_code == 201, reply.text
        return reply.json()

    def webhooks(self) -> dict:
        return self.control("GET", "webhooks").json()

    def wait(self, state: str, count: int = 1, timeout: float = 15) -> list[dict]:
        """The deliveries, once ``count`` of them are in ``state``."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.webhooks()["deliveries"]
            if sum(d["state"] == state for d in deliveries) >= count:
                return deliveries
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.05)


@pytest.fixture
def sap(sap_http, v2) -> Iterator[Sap]:
    """The sandbox with fast retries; afterwards no subscription, default settings, a reseeded company."""
    client = Sap(sap_http.base_url, v2)
    client.config(webhook_retry_seconds=[0.05, 0.05, 0.1, 0.1], webhook_timeout_seconds=5.0)
    yield client
    client.control("DELETE", "webhooks")
    client.config(**DEFAULTS)
    assert client.control("POST", "reset").status_code == 200


def test_v1_has_no_event_subscriptions(sap_http, v1):
    root = f"{sap_http.base_url}/b1s/v1/"
    for reply in (
        v1.get(root + "EventSubscriptions", timeout=10),
        v1.post(root + "EventSubscriptions", json={"WebhookURL": "http://127.0.0.1:9/x"}, timeout=10),
    ):
        assert reply.status_code == 404
        assert reply.json()["error"]["code"] == -1000


@pytest.mark.parametrize("handshake", ["wrong", 404, "down"])
def test_a_refused_handshake_stores_no_subscription(sap, receiver, handshake):
    if handshake == "down":
        receiver.stop()
    else:
        receiver.handshake = handshake
    reply = sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "-10"
    assert error["message"].startswith("Webhook URL validation failed")
    if handshake != "down":
        assert len(receiver.tokens) == 1
        assert len(receiver.tokens[0]) >= 16
    assert sap.api.get(sap.root + "EventSubscriptions", timeout=10).json()["value"] == []
    counts = sap.control("GET", "stats").json()["webhooks"]
    assert counts["subscriptions"] == 0
    assert counts["handshakes_refused"] == 1
    sap.create("Orders", ORDER)
    time.sleep(0.3)
    assert receiver.received == []


def test_subscriptions_are_an_entity_set(sap, receiver):
    created = sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET)
    assert created.status_code == 201, created.text
    record = created.json()
    webhook_id = record["WebhookID"]
    assert isinstance(webhook_id, int)
    assert record["AuthenticationType"] == "HMAC"
    assert "AuthenticationCredentials" not in record  # a secret is never served back
    assert created.headers["Location"] == f"{sap.root}EventSubscriptions({webhook_id})"
    assert receiver.tokens  # the handshake came first
    one = f"{sap.root}EventSubscriptions({webhook_id})"
    assert sap.api.get(one, timeout=10).json()["WebhookURL"] == receiver.url
    found = sap.api.get(
        sap.root + "EventSubscriptions",
        params={"$filter": f"WebhookURL eq '{receiver.url}'", "$select": "WebhookID,WebhookURL"},
        timeout=10,
    ).json()["value"]
    assert [r["WebhookID"] for r in found] == [webhook_id]
    again = sap.subscribe(receiver.url, ("Invoices", "Created"), AuthenticationCredentials=SECRET)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "-2035"  # one subscription per URL

    added = sap.api.patch(
        one, json={"EventCollection": [{"BusinessObject": "Invoices", "TransactionType": "U"}]}, timeout=10
    )
    assert added.status_code == 204
    events = sap.api.get(one, timeout=10).json()["EventCollection"]
    assert [(e["BusinessObject"], e["TransactionType"]) for e in events] == [
        ("Orders", "Created"),
        ("Invoices", "U"),
    ]
    twice = sap.api.patch(
        one, json={"EventCollection": [{"BusinessObject": "Orders", "TransactionType": "A"}]}, timeout=10
    )
    assert twice.status_code == 400
    assert twice.json()["error"]["code"] == "-2035"
    replaced = sap.api.patch(
        one,
        json={"EventCollection": [{"BusinessObject": "Orders", "TransactionType": "Updated"}]},
        headers={"B1S-ReplaceCollectionsOnPatch": "true"},
        timeout=10,
    )
    assert replaced.status_code == 204
    assert replaced.headers["ETag"] != created.headers["ETag"]
    assert len(sap.api.get(one, timeout=10).json()["EventCollection"]) == 1

    for wrong in (
        {"EventCollection": [{"BusinessObject": "Nothing", "TransactionType": "Created"}]},
        {"EventCollection": [{"BusinessObject": "Orders", "TransactionType": "Exploded"}]},
        {"AuthenticationType": "Basic"},
        {"WebhookURL": "ftp://example/x"},
    ):
        assert sap.api.patch(one, json=wrong, timeout=10).status_code == 400, wrong
    assert sap.api.patch(one, json={"Secret": "x"}, timeout=10).json()["error"]["code"] == "-1000"

    assert sap.api.delete(one, timeout=10).status_code == 204
    gone = sap.api.get(one, timeout=10)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "-2028"
    assert sap.control("GET", "stats").json()["webhooks"]["subscriptions"] == 0


def test_a_created_document_is_delivered_signed_without_slowing_the_write(sap, receiver):
    assert sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET).ok
    receiver.delay = 1.5  # a slow receiver
    started = time.monotonic()
    order = sap.create("Orders", ORDER)
    assert time.monotonic() - started < 1.0  # the write does not wait for the delivery
    (delivery,) = sap.wait("delivered")
    assert delivery["attempts"] == [200]
    assert delivery["types"] == ["sap.b1.Orders.Created.v1"]
    ((headers, body),) = receiver.received
    assert headers["content-type"].startswith("application/json")
    assert signature_matches(body, SECRET, headers["x-b1-webhook-signature"], "hex")
    assert not signature_matches(body, SECRET + "x", headers["x-b1-webhook-signature"])
    (event,) = json.loads(body)
    assert event["type"] == "sap.b1.Orders.Created.v1"
    assert event["data"] == {"DocEntry": order["DocEntry"]}
    assert event["subject"] == f"Orders({order['DocEntry']})"
    assert event["source"] == "/b1s/v2/SBODEMOUS"
    assert event["time"].endswith("Z")
    assert event["specversion"] == "1.0"
    assert uuid.UUID(event["id"])
    assert delivery["event_ids"] == [event["id"]]


def test_every_business_object_a_flow_writes_is_announced_batch_included(sap, receiver):
    supplier = {**ORDER, "CardCode": "V00001"}
    cash = {"DocDate": "2026-11-05", "CashSum": 10.0, "CashAccount": "111001"}
    writes = {
        "Invoices": ORDER,
        "CreditNotes": ORDER,
        "PurchaseOrders": supplier,
        "PurchaseInvoices": supplier,
        "IncomingPayments": {"CardCode": "C00002", **cash},
        "VendorPayments": {"CardCode": "V00001", **cash},
    }
    assert sap.subscribe(
        receiver.url, *[(name, "Created") for name in [*writes, "Orders"]], AuthenticationCredentials=SECRET
    ).ok
    created = {name: sap.create(name, payload)["DocEntry"] for name, payload in writes.items()}
    part = (
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n"
        f"POST Orders HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{json.dumps(ORDER)}\r\n"
    )
    batch = f"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\n{part}--cs--\r\n--b--\r\n"
    reply = sap.api.post(
        sap.root + "$batch",
        data=batch.encode(),
        headers={"Content-Type": "multipart/mixed; boundary=b"},
        timeout=10,
    )
    assert "201 Created" in reply.text
    sap.wait("delivered", len(writes) + 1)
    announced = {e["type"].split(".")[2]: e["data"]["DocEntry"] for e in receiver.events()}
    assert announced.pop("Orders") > 0
    assert announced == created


def test_updates_actions_and_batch_writes_are_delivered_and_rolled_back_ones_are_not(sap, receiver):
    first = sap.create("Orders", ORDER)["DocEntry"]
    second = sap.create("Orders", ORDER)["DocEntry"]
    assert sap.subscribe(
        receiver.url,
        ("Orders", "Updated"),
        ("Orders", "Closed"),
        ("Orders", "C"),
        ("BusinessPartners", "Created"),
        ("BusinessPartners", "Deleted"),
        AuthenticationCredentials=SECRET,
    ).ok
    assert sap.api.patch(f"{sap.root}Orders({first})", json={"Comments": "x"}, timeout=10).status_code == 204
    assert sap.api.post(f"{sap.root}Orders({first})/Close", timeout=10).status_code == 204
    assert sap.api.post(f"{sap.root}Orders({second})/Cancel", timeout=10).status_code == 204
    code, lost = f"W{uuid.uuid4().hex[:8]}", f"L{uuid.uuid4().hex[:8]}"

    def part(method: str, target: str, body: str | None, content_id: str) -> str:
        request = f"{method} {target} HTTP/1.1\r\n"
        request += f"Content-Type: application/json\r\n\r\n{body}\r\n" if body else "\r\n"
        return (
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {content_id}\r\n\r\n{request}"
        )

    def changeset(*parts: str) -> str:
        inner = "".join(f"--cs\r\n{p}" for p in parts)
        return f"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n{inner}--cs--\r\n"

    batch = (
        changeset(part("POST", "BusinessPartners", json.dumps({"CardCode": code}), "1"))
        + changeset(
            part("POST", "BusinessPartners", json.dumps({"CardCode": lost}), "1"),
            part("POST", "BusinessPartners", json.dumps({"CardCode": lost}), "2"),  # fails: rolled back
        )
        + "--b--\r\n"
    )
    reply = sap.api.post(
        sap.root + "$batch",
        data=batch.encode(),
        headers={"Content-Type": "multipart/mixed; boundary=b"},
        timeout=10,
    )
    assert reply.status_code == 200
    assert "already assigned" in reply.text
    assert sap.api.delete(f"{sap.root}BusinessPartners('{code}')", timeout=10).status_code == 204
    sap.wait("delivered", 5)
    announced = [(e["type"], next(iter(e["data"].values()))) for e in receiver.events()]
    assert sorted(announced, key=str) == sorted(
        [
            ("sap.b1.Orders.Updated.v1", first),
            ("sap.b1.Orders.Closed.v1", first),
            ("sap.b1.Orders.Cancelled.v1", second),
            ("sap.b1.BusinessPartners.Created.v1", code),
            ("sap.b1.BusinessPartners.Deleted.v1", code),
        ],
        key=str,
    )
    assert {tuple(e["data"]) for e in receiver.events() if "BusinessPartners" in e["type"]} == {("CardCode",)}


def test_a_mutation_by_another_user_is_an_update(sap, receiver):
    assert sap.subscribe(receiver.url, ("Invoices", "Updated"), AuthenticationCredentials=SECRET).ok
    keys = sap.control("POST", "mutate", {"entity": "Invoices", "count": 2}).json()["keys"]
    (delivery,) = sap.wait("delivered")
    assert len(delivery["event_ids"]) == 2  # one request's events travel as one array
    assert sorted(e["data"]["DocEntry"] for e in receiver.events()) == sorted(keys)


def test_no_delivery_for_what_no_subscription_names(sap, receiver):
    assert sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET).ok
    order = sap.create("Orders", ORDER)["DocEntry"]
    sap.wait("delivered")
    sap.create("Invoices", ORDER)
    sap.create("PurchaseOrders", {**ORDER, "CardCode": "V00001"})
    assert sap.api.patch(f"{sap.root}Orders({order})", json={"Comments": "y"}, timeout=10).status_code == 204
    sap.create("Orders", ORDER)  # announced after the others: had they been sent, they came first
    deliveries = sap.wait("delivered", 2)
    assert len(deliveries) == 2
    assert {e["type"] for e in receiver.events()} == {"sap.b1.Orders.Created.v1"}
    assert sap.control("GET", "stats").json()["webhooks"]["events"] == 2


def test_a_failed_delivery_is_retried_until_the_receiver_answers(sap, receiver):
    assert sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET).ok
    receiver.statuses = [503, 500]
    sap.create("Orders", ORDER)
    (delivery,) = sap.wait("delivered")
    assert delivery["attempts"] == [503, 500, 200]
    assert len(receiver.received) == 1


def test_a_receiver_that_is_down_gets_the_delivery_when_it_is_back(sap, receiver):
    assert sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET).ok
    sap.config(webhook_retry_seconds=[0.3] * 10)
    receiver.stop()
    order = sap.create("Orders", ORDER)["DocEntry"]
    deadline = time.monotonic() + 10
    while not sap.webhooks()["deliveries"][0]["attempts"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    back = Receiver(receiver.port)
    try:
        (delivery,) = sap.wait("delivered")
        assert delivery["attempts"][0] == "ConnectionError"
        assert delivery["attempts"][-1] == 200
        assert [e["data"]["DocEntry"] for e in back.events()] == [order]
        counts = sap.control("GET", "stats").json()["webhooks"]
        assert counts["failed_attempts"] == len(delivery["attempts"]) - 1 >= 1
        assert counts["delivered"] == 1
    finally:
        back.stop()


def test_a_delivery_is_given_up_after_the_schedule(sap, receiver):
    assert sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET).ok
    sap.config(webhook_retry_seconds=[0.01, 0.01])
    receiver.statuses = [500] * 10
    sap.create("Orders", ORDER)
    (delivery,) = sap.wait("failed")
    assert delivery["attempts"] == [500, 500, 500]
    counts = sap.control("GET", "stats").json()["webhooks"]
    assert (counts["failed"], counts["attempts"], counts["failed_attempts"]) == (1, 3, 3)


def test_the_server_secret_signs_subscriptions_without_one(sap, receiver):
    refused = sap.subscribe(receiver.url, ("Orders", "Created"))
    assert refused.status_code == 400
    assert "secret" in refused.json()["error"]["message"]
    assert receiver.tokens == []  # refused before any handshake
    sap.config(webhook_secret=SECRET, webhook_signature_encoding="base64")
    assert sap.control("GET", "config").json()["webhook_secret_set"] is True
    assert SECRET not in sap.control("GET", "config").text
    assert sap.subscribe(receiver.url, ("Orders", "Created")).status_code == 201
    assert sap.webhooks()["subscriptions"][0]["secret"] == "server"
    sap.create("Orders", ORDER)
    sap.wait("delivered")
    ((headers, body),) = receiver.received
    signature = headers["x-b1-webhook-signature"]
    assert len(base64.b64decode(signature, validate=True)) == 32
    assert signature_matches(body, SECRET, signature, "base64")


@pytest.mark.parametrize(
    "settings",
    [
        {"webhook_signature_encoding": "hex2"},
        {"webhook_retry_seconds": "10"},
        {"webhook_retry_seconds": [-1]},
        {"webhook_timeout_seconds": 0},
        {"webhooks_enabled": "yes"},
        {"webhook_secret": ""},
    ],
)
def test_bad_webhook_settings_are_refused(sap_http, settings):
    reply = requests.post(f"{sap_http.base_url}/_sandbox/config", json=settings, timeout=10)
    assert reply.status_code == 400
    current = requests.get(f"{sap_http.base_url}/_sandbox/config", timeout=10).json()
    assert current["webhook_retry_seconds"] == DEFAULTS["webhook_retry_seconds"]


def test_webhooks_switched_off_answer_as_an_unknown_entity_set(sap, receiver):
    sap.config(webhooks_enabled=False)
    reply = sap.subscribe(receiver.url, ("Orders", "Created"), AuthenticationCredentials=SECRET)
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "-1000"


# -- the provider's receiver, recording Asset events in a fake Airflow ------------------------------


@pytest.fixture
def fakes(monkeypatch, request):
    """``tests/integration/webhooks/webhook_fakes.py``: the fake Airflow api-server and its helpers."""
    monkeypatch.syspath_prepend(str(request.path.parents[1] / "webhooks"))
    return importlib.import_module("webhook_fakes")


@pytest.fixture
def fake_airflow(fakes) -> Iterator[Any]:
    from airflow_provider_b1.sandbox.server import serve_in_thread

    specs = {"core": fakes.load_spec(fakes.CORE_SPEC), "auth": fakes.load_spec(fakes.AUTH_SPEC)}
    fake = fakes.FakeAirflow(specs=specs)
    fake.served = serve_in_thread(fakes.fake_airflow_app(fake), tls=False)
    yield fake
    fake.served.stop()
    assert fake.problems == []


def test_the_provider_receiver_records_an_asset_event_for_a_sandbox_delivery(sap, fakes, fake_airflow):
    from airflow_provider_b1.sandbox.server import serve_in_thread
    from airflow_provider_b1.webhooks import WebhookSettings, create_app

    orders = "b1-webhook://sap_b1/Orders"
    fake_airflow.declare(orders)
    settings = WebhookSettings(
        airflow_url=fake_airflow.url,
        airflow_username=fake_airflow.username,
        airflow_password=fake_airflow.password,
        sap=fakes.sap_source(),
    )
    served = serve_in_thread(create_app(settings), tls=True)
    try:
        sap.config(webhook_ca_bundle=served.ca_path)  # the receiver's self-signed certificate
        subscribed = sap.subscribe(
            f"{served.base_url}/webhooks/sap-b1",
            ("Orders", "Created"),
            AuthenticationCredentials=fakes.SAP_SECRET,
        )
        assert subscribed.status_code == 201, subscribed.text
        order = sap.create("Orders", ORDER)["DocEntry"]
        (delivery,) = sap.wait("delivered")
        assert delivery["attempts"] == [200]
    finally:
        served.stop()
    (event,) = fake_airflow.events_of(orders)
    assert event["extra"]["source"] == "sap_b1"
    assert event["extra"]["business_object"] == "Orders"
    assert event["extra"]["transactions"] == ["Created"]
    assert event["extra"]["keys"] == [order]
    assert event["extra"]["event_ids"] == delivery["event_ids"]
