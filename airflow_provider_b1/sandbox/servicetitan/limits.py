"""ServiceTitan's throttles and the counters that show how a client kept to them.

- API calls: at most ``limit`` a second per (app key, tenant), in ``sliding`` windows (any
  one-second span) or ``fixed`` ones (each whole second of the monotonic clock). A refused call
  gets ``Retry-After``: the whole seconds until a call would be admitted (at least 1).
- Token requests: at most ``limit`` a minute per client id, sliding.

Admitted and refused calls are counted per wall-clock second for the last ``window`` seconds;
the peak is the largest number of calls admitted within any one second (a sliding measure,
whatever the enforcement: fixed windows let up to twice the limit through across a boundary,
and the peak shows it).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any


class CallLimiter:
    """The per-second limit on API calls, and its statistics."""

    def __init__(self) -> None:
        self.admitted_at: dict[Any, deque[float]] = {}  # admitted calls of the last second, per key
        self.fixed: dict[Any, tuple[int, int]] = {}  # key -> (window second, calls admitted)
        self.peak = 0
        self.peak_by_key: dict[Any, int] = {}
        self.throttled = 0
        self.admitted = 0
        self.per_second: dict[int, list[int]] = {}  # wall second -> [admitted, throttled]

    def admit(self, key: Any, limit: int, mode: str, history_seconds: int) -> int | None:
        """Admit one call for ``key``: None, or the seconds to wait (the call is refused)."""
        now = time.monotonic()
        recent = self.admitted_at.setdefault(key, deque())
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        wait: float | None = None
        if limit > 0:
            if mode == "fixed":
                second = math.floor(now)
                window, count = self.fixed.get(key, (second, 0))
                if window != second:
                    window, count = second, 0
                if count >= limit:
                    wait = window + 1 - now
                else:
                    self.fixed[key] = (window, count + 1)
            elif len(recent) >= limit:
                wait = recent[len(recent) - limit] + 1.0 - now
        bucket = self._bucket(history_seconds)
        if wait is not None:
            self.throttled += 1
            bucket[1] += 1
            return max(1, math.ceil(wait))
        recent.append(now)
        self.admitted += 1
        bucket[0] += 1
        self.peak = max(self.peak, len(recent))
        self.peak_by_key[key] = max(self.peak_by_key.get(key, 0), len(recent))
        return None

    def _bucket(self, history_seconds: int) -> list[int]:
        second = int(time.time())
        bucket = self.per_second.get(second)
        if bucket is None:
            bucket = self.per_second[second] = [0, 0]
            for old in [s for s in self.per_second if s <= second - history_seconds]:
                del self.per_second[old]
        return bucket

    def stats(self, history_seconds: int) -> dict[str, Any]:
        now = int(time.time())
        return {
            "calls_admitted": self.admitted,
            "calls_throttled": self.throttled,
            "peak_calls_per_second": self.peak,
            # Keyed "<app key's first 8 characters>...|<tenant>": the stats never show a whole key.
            "peak_calls_per_second_by_key": {
                f"{str(k[0])[:8]}...|{k[1]}": v for k, v in self.peak_by_key.items()
            },
            "per_second": [
                {"second": s, "admitted": v[0], "throttled": v[1]}
                for s, v in sorted(self.per_second.items())
                if s > now - history_seconds
            ],
        }


class TokenLimiter:
    """The per-minute limit on token requests per client id (sliding)."""

    def __init__(self) -> None:
        self.requests: dict[str, deque[float]] = {}
        self.throttled = 0

    def admit(self, client_id: str, limit: int) -> int | None:
        """None, or the seconds until this client may ask for a token again."""
        now = time.monotonic()
        recent = self.requests.setdefault(client_id, deque())
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if limit > 0 and len(recent) >= limit:
            self.throttled += 1
            return max(1, math.ceil(recent[len(recent) - limit] + 60.0 - now))
        recent.append(now)
        return None
