"""Failures a sandbox injects on purpose, switchable at run time (the ServiceTitan and Teams
sandboxes; each names its calls' labels in its own documentation).

Settings (``POST /_sandbox/faults``; a missing key is off):

- ``error_rate``: share of calls answered with a 5xx (``error_status``, default 503).
- ``reset_rate``: share of calls whose TCP connection is aborted without a reply.
- ``slow_rate`` / ``slow_seconds``: share delayed by that long before being handled.
- ``rate_limit_rate``: share answered 429 (``Retry-After: retry_after``, default 1) although
  under the limit, as when another integration of the same app shares the budget.
- ``token_expiry_rate``: share of calls that carry a token whose token is expired first (401);
  the client must fetch a new one. Never on a token endpoint, nor on a call that takes no token.
- ``seed``: makes the random draws repeatable.
- ``script``: ``[{"kind": ..., "match": "<METHOD> <path prefix>", "times": 1}, ...]`` consumed in
  order before the rates apply; ``kind`` is one of ``error reset slow rate_limit expire_token``;
  ``match`` is a prefix of the call's label.

The control plane (``/_sandbox/...``) is never faulted.
"""

from __future__ import annotations

import random
from typing import Any

KINDS = ("reset", "error", "rate_limit", "slow", "expire_token")
RATES = {
    "reset": "reset_rate",
    "error": "error_rate",
    "rate_limit": "rate_limit_rate",
    "slow": "slow_rate",
    "expire_token": "token_expiry_rate",
}
KNOWN = {*RATES.values(), "slow_seconds", "retry_after", "error_status", "seed", "script"}


class Faults:
    def __init__(self) -> None:
        self.injected: dict[str, int] = {}
        self.configure({})

    def configure(self, settings: dict[str, Any]) -> dict[str, Any]:
        unknown = set(settings) - KNOWN
        if unknown:
            raise ValueError(f"Unknown fault settings: {sorted(unknown)}; known: {sorted(KNOWN)}")
        rates = {kind: float(settings.get(name) or 0.0) for kind, name in RATES.items()}
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{RATES[kind]} must be between 0 and 1")
        status = int(settings.get("error_status") or 503)
        if not 500 <= status <= 599:
            raise ValueError("error_status must be a 5xx status")
        script = []
        for entry in settings.get("script") or []:
            if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
                raise ValueError(f"Every script entry needs a kind, one of {list(KINDS)}")
            script.append(
                {
                    "kind": entry["kind"],
                    "match": str(entry.get("match", "")),
                    "times": int(entry.get("times", 1)),
                }
            )
        self.settings = dict(settings)
        self.rates = rates
        self.error_status = status
        self.slow_seconds = float(settings.get("slow_seconds") or 0.0)
        self.retry_after = int(settings.get("retry_after") or 1)
        self.rng = random.Random(settings.get("seed", 0))
        self.script = script
        return self.settings

    def draw(self, label: str, *, takes_token: bool) -> str | None:
        """The fault to inject into this call, if any (``expire_token`` only where a token is sent)."""
        for entry in self.script:
            if label.startswith(entry["match"]) and (takes_token or entry["kind"] != "expire_token"):
                entry["times"] -= 1
                if entry["times"] <= 0:
                    self.script.remove(entry)
                return self._note(entry["kind"])
        for kind in KINDS:
            rate = self.rates[kind]
            if rate and (takes_token or kind != "expire_token") and self.rng.random() < rate:
                return self._note(kind)
        return None

    def _note(self, kind: str) -> str:
        self.injected[kind] = self.injected.get(kind, 0) + 1
        return kind
