"""Failures the sandbox injects on purpose, switchable at run time.

Settings (``POST /_sandbox/faults``; a missing key is off):

- ``error_rate``: share of requests answered 503 (an HTML page from the load balancer).
- ``reset_rate``: share of requests whose TCP connection is aborted without a reply.
- ``rate_limit_rate``: share answered 429 with ``Retry-After: retry_after`` (seconds, default 1).
- ``slow_rate`` / ``slow_seconds``: share delayed by that long before being handled.
- ``session_expiry_rate``: share whose session is dropped first (401/301); never on Login.
- ``reset_after_write_rate`` / ``error_after_write_rate``: share of successful writes (POST,
  PATCH, PUT, DELETE) whose reply is replaced by a connection reset or a 503 *after* the write
  is done: the nasty case for a client that retries POSTs.
- ``login_delay``: seconds every successful Login takes (overrides the configured delay).
- ``seed``: makes the random draws repeatable.
- ``script``: a list of ``{"kind": ..., "match": "POST Invoices", "times": 1}`` consumed in
  order before the rates apply; ``kind`` is one of ``reset error rate_limit slow expire_session
  reset_after_write error_after_write``; ``match`` is a prefix of ``"<METHOD> <Resource>"``.
"""

from __future__ import annotations

import random
from typing import Any

BEFORE = ("reset", "error", "rate_limit", "slow", "expire_session")
AFTER = ("reset_after_write", "error_after_write")
WRITES = ("POST", "PATCH", "PUT", "DELETE", "MERGE")


class Faults:
    def __init__(self) -> None:
        self.configure({})
        self.injected: dict[str, int] = {}

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        known = {
            "error_rate",
            "reset_rate",
            "slow_rate",
            "slow_seconds",
            "rate_limit_rate",
            "retry_after",
            "reset_after_write_rate",
            "error_after_write_rate",
            "session_expiry_rate",
            "login_delay",
            "seed",
            "script",
        }
        unknown = set(settings) - known
        if unknown:
            raise ValueError(f"Unknown fault settings: {sorted(unknown)}")
        self.settings = dict(settings)
        self.rates = {
            "reset": float(settings.get("reset_rate") or 0.0),
            "error": float(settings.get("error_rate") or 0.0),
            "rate_limit": float(settings.get("rate_limit_rate") or 0.0),
            "slow": float(settings.get("slow_rate") or 0.0),
            "expire_session": float(settings.get("session_expiry_rate") or 0.0),
            "reset_after_write": float(settings.get("reset_after_write_rate") or 0.0),
            "error_after_write": float(settings.get("error_after_write_rate") or 0.0),
        }
        self.slow_seconds = float(settings.get("slow_seconds") or 0.0)
        self.retry_after = int(settings.get("retry_after") or 1)
        self.login_delay = settings.get("login_delay")
        self.rng = random.Random(settings.get("seed", 0))
        self.script: list[dict[str, Any]] = []
        for entry in settings.get("script") or []:
            kind = entry.get("kind")
            if kind not in BEFORE + AFTER:
                raise ValueError(f"Unknown fault kind '{kind}'")
            self.script.append(
                {"kind": kind, "match": entry.get("match", ""), "times": int(entry.get("times", 1))}
            )
        return self.settings

    def _scripted(self, label: str, kinds: tuple[str, ...]) -> str | None:
        for entry in self.script:
            if entry["kind"] in kinds and label.startswith(entry["match"]):
                entry["times"] -= 1
                if entry["times"] <= 0:
                    self.script.remove(entry)
                return entry["kind"]
        return None

    def _note(self, kind: str | None) -> str | None:
        if kind:
            self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind

    def before(self, label: str, *, login: bool) -> str | None:
        """The fault to inject before handling a request, if any."""
        kind = self._scripted(label, BEFORE)
        if kind == "expire_session" and login:
            kind = None
        if kind:
            return self._note(kind)
        for kind in BEFORE:
            rate = self.rates[kind]
            if rate and self.rng.random() < rate and not (kind == "expire_session" and login):
                return self._note(kind)
        return None

    def after(self, label: str, method: str, status: int) -> str | None:
        """The fault replacing a successful write's reply, if any ("reset" or "error")."""
        if method not in WRITES or status >= 400:
            return None
        kind = self._scripted(label, AFTER)
        if kind is None:
            for candidate in AFTER:
                rate = self.rates[candidate]
                if rate and self.rng.random() < rate:
                    kind = candidate
                    break
        self._note(kind)
        return {"reset_after_write": "reset", "error_after_write": "error", None: None}[kind]
