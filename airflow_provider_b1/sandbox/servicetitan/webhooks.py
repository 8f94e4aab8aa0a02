"""Webhook deliveries (ServiceTitan v2 style) for the changes ``POST /_sandbox/mutate`` makes.

A registration (``POST /_sandbox/webhooks``) names an event type (or ``*``), a callback URL,
a key of 32-64 characters, the signature header (default ``X-ServiceTitan-Signature``) and its
encoding (``hex`` or ``base64``); the real header name and encoding are unconfirmed, so both are
settings. Each event is POSTed as ``{"eventId", "eventType", "timestamp", "data"}`` (``data`` is
the record after the change) with the header carrying HMAC-SHA256(key, raw body). A delivery
answered with anything but 2xx, or not answered, is retried after ``webhook_retry_seconds``
(10, 30, 60 and 300 s, times ``webhook_time_scale``); every attempt sends the same bytes (same
``eventId`` and ``timestamp``), so a receiver dedupes by ``eventId``. Signing, the queue, the
retries and the counts are :mod:`airflow_provider_b1.sandbox.webhook_sender`'s, shared with the SAP
sandbox.

Event types: ``customer.updated`` (deactivated), ``customer.merged``, ``invoice.updated``
(edited, paid, or moved by a merge), ``payment.created``, ``payment.updated`` (moved by a merge).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from airflow_provider_b1.sandbox.servicetitan.data import fmt_ts
from airflow_provider_b1.sandbox.servicetitan.store import encode
from airflow_provider_b1.sandbox.webhook_sender import SIGNATURE_ENCODINGS, WebhookSender, sign

EVENT_TYPES = ("customer.updated", "customer.merged", "invoice.updated", "payment.created", "payment.updated")
DEFAULT_HEADER = "X-ServiceTitan-Signature"

__all__ = ["DEFAULT_HEADER", "EVENT_TYPES", "Webhooks", "sign"]


class Webhooks:
    """Registrations and their deliveries (signed and retried by :class:`~..webhook_sender.WebhookSender`)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.registrations: dict[str, dict[str, Any]] = {}
        self.sender = WebhookSender(lambda: sandbox.config, name="st-sandbox-webhooks")
        self._lock = threading.Lock()

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
        if encoding not in SIGNATURE_ENCODINGS:
            raise ValueError("encoding: hex or base64")
        verify = payload.get("verify", True)
        if not isinstance(verify, (bool, str)):
            raise ValueError("verify: true, false or the path of a CA bundle")
        with self._lock:
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
        with self._lock:
            registrations = dict(self.registrations)
        for event_type, record in events:
            target = registrations.get(event_type) or registrations.get("*")
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
            self.sender.send(
                target["url"],
                body,
                {
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "ServiceTitan-Webhooks/2.0 (b1 sandbox)",
                    target["header"]: sign(target["key"], body, target["encoding"]),
                },
                verify=target["verify"],
                eventType=event_type,
            )

    def stop(self) -> None:
        self.sender.stop()

    def stats(self) -> dict[str, int]:
        counts = self.sender.counts()
        return {
            "registrations": len(self.registrations),
            "events": counts["deliveries"],
            "delivered": counts["delivered"],
            "pending": counts["pending"],
            "failed": counts["failed"],
            "attempts": counts["attempts"],
        }

    def describe(self) -> dict[str, Any]:
        with self._lock:
            registrations = [{k: v for k, v in r.items() if k != "key"} for r in self.registrations.values()]
        deliveries = [
            {"eventType": d["eventType"], "url": d["url"], "state": d["state"], "attempts": d["attempts"]}
            for d in self.sender.recent(200)
        ]
        # The counts first: the lists keep their names (``registrations`` is a count in ``stats``).
        return {**self.stats(), "registrations": registrations, "deliveries": deliveries}
