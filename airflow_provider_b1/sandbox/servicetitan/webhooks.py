"""Webhook deliveries (ServiceTitan v2 style) for the changes ``POST /_sandbox/mutate`` makes.

A registration (``POST /_sandbox/webhooks``) names an event type (or ``*``), a callback URL,
a key of 32-64 characters, the signature header (default ``X-ServiceTitan-Signature``) and its
encoding (``hex`` or ``base64``); the real header name and encoding are unconfirmed, so both are
settings. Each event is POSTed as ``{"eventId", "eventType", "timestamp", "data"}`` (``data`` is
the record after the change) with the header carrying HMAC-SHA256(key, raw body). A delivery
answered with anything but 2xx, or not answered, is retried after ``webhook_retry_seconds``
(10, 30, 60 and 300 s, times ``webhook_time_scale``); every attempt sends the same bytes (same
``eventId`` and ``timestamp``), so a receiver dedupes by ``eventId``.

Event types: ``customer.updated`` (deactivated), ``customer.merged``, ``invoice.updated``
(edited, paid, or moved by a merge), ``payment.created``, ``payment.updated`` (moved by a merge).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import threading
import time
import uuid
from typing import Any

import requests

from airflow_provider_b1.sandbox.servicetitan.data import fmt_ts
from airflow_provider_b1.sandbox.servicetitan.store import encode

EVENT_TYPES = ("customer.updated", "customer.merged", "invoice.updated", "payment.created", "payment.updated")
DEFAULT_HEADER = "X-ServiceTitan-Signature"


def sign(key: str, body: bytes, encoding: str) -> str:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


class Webhooks:
    """Registrations, the delivery queue and its worker thread (started on the first event)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.registrations: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def register(self, payload: dict[str, Any]) -> dict[str, Any]:
        event_type = payload.get("eventType", "*")
        if event_type != "*" and event_type not in EVENT_TYPES:
            raise ValueError(f"eventType: '*' or one of {list(EVENT_TYPES)}")
        url = payload.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError("url: an http(s) URL")
        key = payload.get("key")
        if not isinstance(key, str) or not 32 <= len(key) <= 64:
            raise ValueError("key: a string of 32 to 64 characters")
        header = payload.get("header", DEFAULT_HEADER)
        if not isinstance(header, str) or not header or any(c in header for c in ":\r\n "):
            raise ValueError("header: a header name")
        encoding = payload.get("encoding", "hex")
        if encoding not in ("hex", "base64"):
            raise ValueError("encoding: hex or base64")
        verify = payload.get("verify", True)
        if not isinstance(verify, (bool, str)):
            raise ValueError("verify: true, false or the path of a CA bundle")
        with self._cond:
            self.registrations[event_type] = {
                "eventType": event_type,
                "url": url,
                "key": key,
                "header": header,
                "encoding": encoding,
                "verify": verify,
            }
        return {"eventType": event_type, "url": url, "header": header, "encoding": encoding}

    def publish(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Queue one delivery per event and matching registration (bodies are fixed now)."""
        if not self.registrations or not events:
            return
        stamp = fmt_ts(self.sandbox.now_us())
        with self._cond:
            for event_type, record in events:
                target = self.registrations.get(event_type) or self.registrations.get("*")
                if target is None:
                    continue
                body = encode(
                    {
                        "eventId": str(uuid.uuid4()),
                        "eventType": event_type,
                        "timestamp": stamp,
                        "data": record,
                    }
                )
                delivery = {
                    "eventType": event_type,
                    "url": target["url"],
                    "body": body,
                    "headers": {
                        "Content-Type": "application/json; charset=utf-8",
                        "User-Agent": "ServiceTitan-Webhooks/2.0 (b1 sandbox)",
                        target["header"]: sign(target["key"], body, target["encoding"]),
                    },
                    "verify": target["verify"],
                    "attempts": [],
                    "state": "pending",
                }
                self.deliveries.append(delivery)
                heapq.heappush(self._queue, (time.monotonic(), next(self._order), delivery))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="st-sandbox-webhooks", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, delivery = heapq.heappop(self._queue)
            self._attempt(delivery)

    def _attempt(self, delivery: dict[str, Any]) -> None:
        cfg = self.sandbox.config
        try:
            reply = requests.post(
                delivery["url"],
                data=delivery["body"],
                headers=delivery["headers"],
                timeout=cfg.webhook_timeout_seconds,
                verify=delivery["verify"],
            )
            outcome: Any = reply.status_code
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        with self._cond:
            delivery["attempts"].append(outcome)
            if isinstance(outcome, int) and 200 <= outcome < 300:
                delivery["state"] = "delivered"
                return
            retries = list(cfg.webhook_retry_seconds)
            done = len(delivery["attempts"])
            if done > len(retries) or self._stopped:
                delivery["state"] = "failed"
                return
            due = time.monotonic() + retries[done - 1] * cfg.webhook_time_scale
            heapq.heappush(self._queue, (due, next(self._order), delivery))
            self._cond.notify_all()

    def stats(self) -> dict[str, int]:
        with self._cond:
            states = [d["state"] for d in self.deliveries]
            return {
                "registrations": len(self.registrations),
                "events": len(states),
                "delivered": states.count("delivered"),
                "pending": states.count("pending"),
                "failed": states.count("failed"),
                "attempts": sum(len(d["attempts"]) for d in self.deliveries),
            }

    def describe(self) -> dict[str, Any]:
        with self._cond:
            return {
                "registrations": [
                    {k: v for k, v in r.items() if k != "key"} for r in self.registrations.values()
                ],
                "deliveries": [
                    {
                        "eventType": d["eventType"],
                        "url": d["url"],
                        "state": d["state"],
                        "attempts": list(d["attempts"]),
                    }
                    for d in self.deliveries[-200:]
                ],
                **self.stats(),
            }
