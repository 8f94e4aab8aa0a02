"""Signed webhook deliveries with retries, shared by the sandboxes that send webhooks.

A sandbox decides what to send and to whom (ServiceTitan: :mod:`.servicetitan.webhooks`; SAP
Business One: :mod:`.sap.webhooks`); this module signs and delivers. Every delivery is POSTed
from one background thread per sender, never from the request that caused it, so a write is
never slowed by a receiver. A delivery answered with anything but 2xx, or not answered, is tried
again after each delay of ``webhook_retry_seconds`` in turn (times ``webhook_time_scale``, which
tests shrink), then given up; every attempt sends the same bytes. One attempt may take
``webhook_timeout_seconds``. The three settings are read from the sandbox's config at each
attempt, so ``POST /_sandbox/config`` changes them at run time.

Counts (:meth:`WebhookSender.counts`) and the latest deliveries (:meth:`WebhookSender.recent`)
feed each sandbox's control plane.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

SIGNATURE_ENCODINGS = ("hex", "base64")
KEPT = 1000
"""Deliveries kept for the control plane (the oldest finished ones are forgotten first)."""


def sign(key: str | bytes, body: bytes, encoding: str = "hex") -> str:
    """HMAC-SHA256 of the raw ``body`` under ``key``, as ``hex`` (lower case) or ``base64`` (padded)."""
    secret = key.encode() if isinstance(key, str) else key
    digest = hmac.new(secret, body, hashlib.sha256).digest()
    if encoding == "hex":
        return digest.hex()
    if encoding == "base64":
        return base64.b64encode(digest).decode()
    raise ValueError(f"encoding: one of {list(SIGNATURE_ENCODINGS)}")


class WebhookSender:
    """The delivery queue and its worker thread (started with the first delivery).

    :param config: returns the object holding ``webhook_retry_seconds``, ``webhook_time_scale``
        and ``webhook_timeout_seconds`` (the sandbox's config), read at every attempt.
    :param name: the worker thread's name.
    """

    def __init__(self, config: Callable[[], Any], name: str = "sandbox-webhooks") -> None:
        self._config = config
        self._name = name
        self.deliveries: list[dict[str, Any]] = []
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._order = itertools.count(1)
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._forgotten = {"delivered": 0, "failed": 0, "attempts": 0, "failed_attempts": 0}

    def send(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        verify: bool | str = True,
        **meta: Any,
    ) -> dict[str, Any]:
        """Queue one delivery (due now); ``meta`` is shown with it on the control plane."""
        delivery: dict[str, Any] = {
            "id": next(self._order),
            **meta,
            "url": url,
            "state": "pending",
            "attempts": [],
            "_body": body,
            "_headers": dict(headers),
            "_verify": verify,
        }
        with self._cond:
            if self._stopped:
                delivery["state"] = "failed"
                delivery["attempts"].append("Stopped")
                self._keep(delivery)
                return delivery
            self._keep(delivery)
            heapq.heappush(self._queue, (time.monotonic(), delivery["id"], delivery))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return delivery

    def refuse(self, url: str, reason: str, **meta: Any) -> dict[str, Any]:
        """Record a delivery that could not even be attempted (``reason`` is its one attempt)."""
        delivery = {"id": next(self._order), **meta, "url": url, "state": "failed", "attempts": [reason]}
        with self._cond:
            self._keep(delivery)
        return delivery

    def stop(self) -> None:
        """Stop the worker; deliveries still waiting are not attempted again."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _keep(self, delivery: dict[str, Any]) -> None:
        self.deliveries.append(delivery)
        if len(self.deliveries) > KEPT:
            for old in [d for d in self.deliveries if d["state"] != "pending"][: len(self.deliveries) - KEPT]:
                self.deliveries.remove(old)
                self._forgotten[old["state"]] += 1
                self._forgotten["attempts"] += len(old["attempts"])
                self._forgotten["failed_attempts"] += sum(not _ok(a) for a in old["attempts"])

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
        cfg = self._config()
        try:
            reply = requests.post(
                delivery["url"],
                data=delivery["_body"],
                headers=delivery["_headers"],
                timeout=cfg.webhook_timeout_seconds,
                verify=delivery["_verify"],
                allow_redirects=False,
            )
            outcome: Any = reply.status_code
            reply.close()
        except requests.RequestException as exc:
            outcome = type(exc).__name__
        with self._cond:
            delivery["attempts"].append(outcome)
            if _ok(outcome):
                delivery["state"] = "delivered"
                return
            retries = list(cfg.webhook_retry_seconds)
            done = len(delivery["attempts"])
            if done > len(retries) or self._stopped:
                delivery["state"] = "failed"
                return
            due = time.monotonic() + float(retries[done - 1]) * float(cfg.webhook_time_scale)
            heapq.heappush(self._queue, (due, delivery["id"], delivery))
            self._cond.notify_all()

    def counts(self) -> dict[str, int]:
        """``deliveries`` (ever queued), ``delivered``, ``pending``, ``failed``, ``attempts`` and
        ``failed_attempts`` (attempts not answered with 2xx)."""
        with self._cond:
            states = [d["state"] for d in self.deliveries]
            attempts = [a for d in self.deliveries for a in d["attempts"]]
            gone = self._forgotten
            return {
                "deliveries": len(states) + gone["delivered"] + gone["failed"],
                "delivered": states.count("delivered") + gone["delivered"],
                "pending": states.count("pending"),
                "failed": states.count("failed") + gone["failed"],
                "attempts": len(attempts) + gone["attempts"],
                "failed_attempts": sum(not _ok(a) for a in attempts) + gone["failed_attempts"],
            }

    def recent(self, limit: int = 200) -> list[dict[str, Any]]:
        """The latest deliveries, oldest first: ``meta``, ``url``, ``state``, ``attempts`` (an HTTP
        status or an exception's name per attempt)."""
        with self._cond:
            return [
                {k: (list(v) if k == "attempts" else v) for k, v in d.items() if not k.startswith("_")}
                for d in self.deliveries[-limit:]
            ]


def _ok(outcome: Any) -> bool:
    return isinstance(outcome, int) and 200 <= outcome < 300
