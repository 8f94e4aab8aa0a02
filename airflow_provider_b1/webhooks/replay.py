"""Which events the receiver has already taken, for as long as a replay of them could still be accepted.

A signed delivery stays signed forever; what stops someone from sending it again is its time
(refused outside the replay window) and, inside the window, its event id: the first delivery
*claims* the id, a repeat finds it claimed. An id is remembered for twice the window (a time may
be up to one window early or late), then forgotten, since its delivery would be refused as stale.

Two stores: :class:`MemoryReplayStore` (one process, bounded) and :class:`RedisReplayStore`
(``SET NX`` with an expiry, so that several receiver replicas agree). When an event cannot be
recorded after all, its claim is released so that the sender's next attempt goes through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Protocol

from airflow_provider_b1.exceptions import RetryableError

log = logging.getLogger(__name__)


class ReplayStoreUnavailableError(RetryableError):
    """The shared store cannot be asked; deliveries are refused (503) rather than let through unchecked."""


class ReplayStore(Protocol):
    """Claims of event ids, each for a while."""

    def claim(self, key: str, ttl: float) -> bool:
        """Claim ``key`` for ``ttl`` seconds; ``False`` when it is already claimed."""

    def release(self, key: str) -> None:
        """Forget a claim (the event was not recorded after all)."""


class MemoryReplayStore:
    """Claims held in this process, at most ``capacity`` of them (the oldest are forgotten first).

    :param capacity: claims kept; past it the oldest is dropped and a warning logged, since a
        replay of that event inside the window would then get through.
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, capacity: int = 100_000, *, clock=time.monotonic) -> None:
        self.capacity = capacity
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._expiry)

    def _forget_expired(self, now: float) -> None:
        # Claims share one ttl per source, so the oldest claims expire first: stop at the first live one.
        while self._expiry:
            key, expiry = next(iter(self._expiry.items()))
            if expiry > now:
                break
            del self._expiry[key]

    def claim(self, key: str, ttl: float) -> bool:
        """Claim ``key`` unless a live claim holds it."""
        with self._lock:
            now = self._clock()
            self._forget_expired(now)
            expiry = self._expiry.get(key)
            if expiry is not None and expiry > now:
                return False
            self._expiry[key] = now + ttl
            self._expiry.move_to_end(key)
            while len(self._expiry) > self.capacity:
                self._expiry.popitem(last=False)
                self.evicted += 1
                if self.evicted in (1, 10, 100) or self.evicted % 1000 == 0:
                    log.warning(
                        "The replay store is full (%d event ids); the oldest are forgotten early (%d so far). "
                        "Raise B1_WEBHOOKS_REPLAY_CAPACITY or set B1_WEBHOOKS_REDIS_URL.",
                        self.capacity,
                        self.evicted,
                    )
            return True

    def release(self, key: str) -> None:
        """Forget ``key``'s claim."""
        with self._lock:
            self._expiry.pop(key, None)


class RedisReplayStore:
    """Claims in Redis: ``SET <prefix><key> 1 NX PX <ttl>``, one round trip, atomic across replicas.

    :param url: ``redis://[:password@]host:6379/0`` (``rediss://`` for TLS).
    :param prefix: key prefix in that database.
    :param client: a ready ``redis.Redis`` (tests).
    """

    def __init__(self, url: str | None = None, *, prefix: str = "b1-webhooks:seen:", client=None) -> None:
        if client is None:
            try:
                import redis
            except ImportError:  # pragma: no cover - redis ships with the [redis] extra and Airflow's image
                raise ReplayStoreUnavailableError(
                    "B1_WEBHOOKS_REDIS_URL is set but the redis package is not installed; "
                    "install airflow-provider-b1[redis]."
                ) from None
            client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._redis = client
        self.prefix = prefix

    def claim(self, key: str, ttl: float) -> bool:
        """Claim ``key`` unless a live claim holds it (in any replica)."""
        try:
            return bool(self._redis.set(self.prefix + key, b"1", nx=True, px=max(int(ttl * 1000), 1)))
        except Exception as exc:  # redis-py raises many types; none may let a delivery through unchecked
            raise ReplayStoreUnavailableError(
                f"The replay store (Redis) cannot be reached ({type(exc).__name__})."
            ) from None

    def release(self, key: str) -> None:
        """Forget ``key``'s claim (best effort: an expiry ends it anyway)."""
        try:
            self._redis.delete(self.prefix + key)
        except Exception as exc:
            log.warning(
                "Could not release an event id in Redis (%s); it expires on its own.", type(exc).__name__
            )
