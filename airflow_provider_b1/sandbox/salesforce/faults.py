"""Failures the Salesforce sandbox injects on purpose, switchable at run time.

``POST /_sandbox/faults`` replaces the settings (a missing key is off); these are faults:

- ``error_rate`` / ``error_every``: a share of calls, or every Nth call, answered with a 5xx
  (``error_status``, default 503 ``SERVER_UNAVAILABLE``; 500 answers ``UNKNOWN_EXCEPTION``).
- ``reset_rate`` / ``reset_every``: the TCP connection is reset without a reply.
- ``slow_rate`` / ``slow_seconds``: delayed by that long (at most 30 s) before being handled.
- ``token_expiry_rate``: the caller's session expires just before the call (401
  ``INVALID_SESSION_ID``).
- ``script``: ``[{"kind": "error"|"reset"|"slow"|"expire_token", "match": "PATCH
  collections_upsert", "times": 1}, ...]`` consumed in order before the rates apply.
- ``target``: rates and ``*_every`` apply only to calls whose label starts with it or whose
  URL path contains it. A call's label is ``"<METHOD> <kind>"``, the kind being the one
  ``/_sandbox/stats`` counts (``GET query``, ``PATCH collections_upsert``, ``POST token``...).
  Without a target the token endpoint is spared (a target of ``"POST token"`` reaches it).
- ``max_faults``: no more than this many faults in all, after which the settings stay but
  inject nothing (so a client's retry loop always ends).
- ``seed``: makes the random draws repeatable.

and these act once, when posted, and are not kept: ``expire_tokens`` (every issued token
expires now), ``session_timeout_seconds``, ``token_delay`` (seconds every token request takes,
at most 30), ``api_usage`` / ``api_limit`` (the daily count and limit; a usage at the limit
answers 403 ``REQUEST_LIMIT_EXCEEDED``).

The control plane (``/_sandbox/...``) is never faulted.
"""

from __future__ import annotations

import random
from typing import Any

KINDS = ("reset", "error", "slow", "expire_token")
RATES = {
    "reset": "reset_rate",
    "error": "error_rate",
    "slow": "slow_rate",
    "expire_token": "token_expiry_rate",
}
EVERY = {"reset": "reset_every", "error": "error_every"}
ACTIONS = {"expire_tokens", "session_timeout_seconds", "token_delay", "api_usage", "api_limit"}
KNOWN = {
    *RATES.values(),
    *EVERY.values(),
    "slow_seconds",
    "error_status",
    "seed",
    "script",
    "target",
    "max_faults",
}
MAX_DELAY = 30.0


class Faults:
    def __init__(self) -> None:
        self.injected: dict[str, int] = {}
        self.configure({})

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Validate and keep the standing fault settings (actions are the caller's business)."""
        unknown = set(settings) - KNOWN - ACTIONS
        if unknown:
            raise ValueError(f"Unknown fault settings: {sorted(unknown)}; known: {sorted(KNOWN | ACTIONS)}")
        kept = {k: v for k, v in settings.items() if k in KNOWN}
        rates = {kind: float(kept.get(name) or 0.0) for kind, name in RATES.items()}
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{RATES[kind]} must be between 0 and 1")
        every = {kind: int(kept.get(name) or 0) for kind, name in EVERY.items()}
        if any(n < 0 for n in every.values()):
            raise ValueError("*_every must be a positive number of calls")
        status = int(kept.get("error_status") or 503)
        if not 500 <= status <= 599:
            raise ValueError("error_status must be a 5xx status")
        slow = float(kept.get("slow_seconds") or 0.0)
        if not 0.0 <= slow <= MAX_DELAY:
            raise ValueError(f"slow_seconds must be between 0 and {MAX_DELAY}")
        max_faults = kept.get("max_faults")
        script = []
        for entry in kept.get("script") or []:
            if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
                raise ValueError(f"Every script entry needs a kind, one of {list(KINDS)}")
            times = int(entry.get("times", 1))
            if times < 1:
                raise ValueError("A script entry's times is at least 1")
            script.append({"kind": entry["kind"], "match": str(entry.get("match", "")), "times": times})
        self.settings = kept
        self.rates = rates
        self.every = every
        self.error_status = status
        self.slow_seconds = slow
        self.target = kept.get("target")
        self.max_faults = None if max_faults is None else int(max_faults)
        self.rng = random.Random(kept.get("seed", 0))
        self.script = script
        self.calls = 0
        self.total = 0
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {
            **self.settings,
            "script_left": [dict(e) for e in self.script],
            "injected": dict(self.injected),
        }

    def draw(self, label: str, path: str) -> str | None:
        """The fault to inject into this call (``None`` mostly)."""
        if self.max_faults is not None and self.total >= self.max_faults:
            return None
        token = label.endswith(" token")
        for entry in self.script:
            if label.startswith(entry["match"]) and not (token and entry["kind"] == "expire_token"):
                entry["times"] -= 1
                if entry["times"] <= 0:
                    self.script.remove(entry)
                return self._note(entry["kind"])
        if self.target:
            if not (label.startswith(self.target) or self.target in path):
                return None
        elif token:
            return None
        self.calls += 1
        for kind, n in self.every.items():
            if n and self.calls % n == 0:
                return self._note(kind)
        for kind in KINDS:
            rate = self.rates[kind]
            if rate and not (token and kind == "expire_token") and self.rng.random() < rate:
                return self._note(kind)
        return None

    def _note(self, kind: str) -> str:
        self.total += 1
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind
