"""Rate limits shared by every process that spends one allowance (ServiceTitan's 60 calls/s).

An API that allows N calls per second *per app and tenant* counts every call of every task on
every worker against the same allowance, so a limit kept inside one process is no limit at all:
twenty tasks would each keep to 60/s and send 1,200. :class:`SharedRateLimiter` keeps the count
where all of them see it, through `pyrate-limiter <https://pypi.org/project/pyrate-limiter/>`_'s
sliding-window log (at most ``calls`` in *any* window of ``period`` seconds, not just in
aligned seconds):

* **One worker** (the default): a SQLite file in :func:`default_directory`, every check and
  insert under a file lock, so the task processes of a worker share one count.
* **Several workers**: with ``redis_url`` (the Celery deployment has a Redis), the count lives
  in a Redis sorted set, checked and updated atomically by a Lua script, so workers share it
  too. Timestamps come from each worker's clock: keep the workers' clocks in sync (NTP).

A call waits (sleeps) until it fits; it never fails for being over the limit. Each attempt is
stamped with the clock read while the count is held (under the file lock, or inside Redis's
atomic script), so a process that overslept never records a call earlier than it was let
through. What the counter cannot see, a call's time between being let through and reaching the
server (the network, the server's queue), is covered by ``guard``: each call occupies the
window for ``period + guard`` seconds.

pyrate-limiter's buckets do the counting; its ``Limiter`` front is not used, because it stamps a
retried attempt with the time it *meant* to wake up rather than the time it did, and runs a
clean-up thread per limiter. Here old entries are cleared every few seconds by whoever acquires.

Secrets: a Redis URL may carry a password; it is registered with the log masker and messages
name only the Redis host and port.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pyrate_limiter import AbstractBucket, Rate, RateItem, RedisBucket, SQLiteBucket

from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.utils.secrets import mask
from airflow_provider_b1.utils.tls import TlsAdapter

log = logging.getLogger(__name__)

DEFAULT_MAX_WAIT = 300.0
"""Seconds a call may wait for room before giving up (only a stuck store makes it wait that long)."""

DEFAULT_GUARD = 0.1
"""Seconds added to each call's stay in the window: the time from being counted to reaching the server.

Measured against the sandbox on a loaded 2-core machine, 50 ms let one call in a few hundred
through as the 61st of a second; 100 ms keeps 91 % of the allowance (54.5 of 60 calls/s)."""

REDIS_IDLE_EXPIRY_MS = 60_000
"""A Redis count unused this long is dropped (every use sets it anew, at most every few seconds)."""

SMOOTHING = 10
"""Parts of the window over which the calls are spread (see :attr:`SharedRateLimiter.rates`)."""

LEAK_EVERY = 5.0
"""Seconds between clean-ups of entries that have left the window (each process does its own)."""


class RateLimiterError(RetryableError):
    """The limiter's store did not answer (Redis down or unreachable, SQLite file unusable)."""


class RateLimiterConfigError(PermanentError, ValueError):
    """The limiter cannot be set up as asked (a bad Redis URL, the redis package missing, a bad rate)."""


class RateLimitWaitTimeout(RetryableError):
    """A call waited longer than ``max_wait`` for room under the limit."""


def default_directory() -> Path:
    """Directory of the per-worker SQLite counters.

    ``B1_RATE_LIMIT_DIR`` when set, else ``$AIRFLOW_HOME/b1_rate_limits`` (``~/airflow`` when
    ``AIRFLOW_HOME`` is unset): every task process of a worker sees the same directory.
    """
    configured = os.environ.get("B1_RATE_LIMIT_DIR")
    if configured:
        return Path(configured)
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return Path(home) / "b1_rate_limits"


def redis_location(redis_url: str) -> str:
    """``host:port/db`` of a Redis URL, for messages: never its user or password."""
    parts = urlsplit(redis_url)
    try:
        port = parts.port
    except ValueError:
        port = None
    where = f"{parts.hostname or '?'}:{port or 6379}"
    database = parts.path.strip("/")
    return f"{where}/{database}" if database else where


class SharedRateLimiter:
    """At most ``calls`` calls in any ``period`` seconds under ``name``, counted across processes.

    Thread-safe. Build it once per process and key (:func:`shared_limiter` does, and rebuilds
    it after a fork) and call :meth:`acquire` before each call.

    :param name: the allowance's key, e.g. a hash of (API, app, tenant); the same name shares
        one count. Letters, digits, ``-``, ``_`` and ``.`` only (it names a file).
    :param calls: calls allowed per ``period``.
    :param period: the window in seconds.
    :param directory: where the SQLite counter lives (:func:`default_directory` when ``None``);
        ignored with ``redis_url``.
    :param redis_url: count in this Redis instead (``redis://[:password@]host:6379/0``,
        ``rediss://`` for TLS), shared by every worker that uses the same URL and name.
    :param guard: seconds added to each call's stay in the window (see the module's documentation).
    :param max_wait: seconds a call may wait for room before :class:`RateLimitWaitTimeout`.
    """

    def __init__(
        self,
        name: str,
        calls: int,
        period: float = 1.0,
        *,
        directory: Path | str | None = None,
        redis_url: str | None = None,
        guard: float = DEFAULT_GUARD,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise RateLimiterConfigError(
                f"A rate limiter's name must be letters, digits, '-', '_' or '.', not {name!r}."
            )
        if int(calls) < 1 or period <= 0 or guard < 0:
            raise RateLimiterConfigError(
                f"A rate limit needs at least 1 call in a positive period, not {calls} calls per {period} s."
            )
        self.name = name
        self.calls = int(calls)
        self.period = float(period)
        self.guard = float(guard)
        self.max_wait = float(max_wait)
        self.window_ms = round((self.period + self.guard) * 1000)
        self._redis_url = redis_url
        self.backend = "redis" if redis_url else "sqlite"
        self.location = redis_location(redis_url) if redis_url else None
        self.directory = None if redis_url else Path(directory) if directory else default_directory()
        self.waited = 0.0
        """Seconds this object's callers spent waiting for room (observability and tests)."""
        self.acquired = 0
        """Calls this object let through."""
        self._lock = threading.Lock()
        self._leaked_at = 0.0
        if redis_url:
            mask(urlsplit(redis_url).password)
        self._bucket: AbstractBucket = self._redis_bucket() if redis_url else self._sqlite_bucket()

    def __repr__(self) -> str:  # never show a Redis password
        where = self.location if self.backend == "redis" else str(self.directory)
        return f"SharedRateLimiter({self.name!r}, {self.calls}/{self.period:g}s, {self.backend} {where})"

    @property
    def rates(self) -> list[Rate]:
        """The pyrate-limiter rates: ``calls`` per ``period + guard``, and the same pace over a tenth of it.

        The second rate spreads the calls over the window instead of letting them all go at its
        start: a server that queues a burst of 60 would otherwise stamp its last calls late, and
        the next window's first calls (let through a window later, unqueued) would crowd them.
        """
        rates = [Rate(self.calls, self.window_ms)]
        share = max(1, self.calls // SMOOTHING)
        if share < self.calls:
            # Rounded down, so that it is never stricter than the window itself (pyrate-limiter insists).
            rates.insert(0, Rate(share, max(1, self.window_ms * share // self.calls)))
        return rates

    def _sqlite_bucket(self) -> SQLiteBucket:
        assert self.directory is not None
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            return SQLiteBucket.init_from_file(
                self.rates,
                table="calls",
                db_path=str(self.directory / f"{self.name}.sqlite"),
                use_file_lock=True,
            )
        except (OSError, sqlite3.Error) as exc:
            raise RateLimiterConfigError(
                f"The rate limit counter in {self.directory} cannot be opened ({type(exc).__name__}: {exc}); "
                "make the directory writable for the worker or set B1_RATE_LIMIT_DIR."
            ) from None

    def _redis_bucket(self) -> RedisBucket:
        try:
            import redis
        except ImportError:
            raise RateLimiterConfigError(
                "A Redis rate limit needs the redis package: install airflow-provider-b1[redis] on every worker."
            ) from None
        assert self._redis_url is not None
        try:
            client = redis.Redis.from_url(self._redis_url, socket_timeout=10, socket_connect_timeout=10)
        except ValueError:
            raise RateLimiterConfigError(
                "The Redis URL of the rate limit cannot be read; write it as redis://[:password@]host:6379/0 "
                "(rediss:// for TLS)."
            ) from None
        try:
            return RedisBucket.init(self.rates, client, f"b1:ratelimit:{self.name}")
        except redis.RedisError as exc:
            raise self._store_error(exc) from None

    def _store_error(self, exc: BaseException) -> RateLimiterError:
        if self.backend == "redis":
            return RateLimiterError(
                f"The shared rate limit's Redis at {self.location} did not answer ({type(exc).__name__}); "
                "calls wait for it, and if it persists check that Redis runs and the connection's redis_url."
            )
        return RateLimiterError(
            f"The rate limit counter in {self.directory} failed ({type(exc).__name__}: {exc}); "
            "check the disk and the directory's permissions."
        )

    def _attempt(self) -> int | None:
        """Count one call if it fits now: ``None`` when it did, else the milliseconds until it may."""
        bucket = self._bucket
        # One thread of this process at a time (a bucket keeps its last verdict); for SQLite also
        # one process at a time, the clock read inside the file lock.
        with self._lock, bucket.lock if isinstance(bucket, SQLiteBucket) else contextlib.nullcontext():
            now = bucket.now()
            decision = bucket.put_decision(RateItem(self.name, now))
            if decision.allowed and time.monotonic() - self._leaked_at >= LEAK_EVERY:
                self._leaked_at = time.monotonic()
                bucket.leak(now)
                if isinstance(bucket, RedisBucket):
                    # A count nobody uses any more leaves Redis a minute later.
                    bucket.redis.pexpire(bucket.bucket_key, REDIS_IDLE_EXPIRY_MS)
        if decision.allowed:
            return None
        wait = decision.retry_after_ms
        return max(int(wait), 1) if wait is not None and wait >= 0 else 10

    def acquire(self) -> float:
        """Wait until one more call fits under the limit, and count it.

        :return: seconds waited.
        :raises RateLimitWaitTimeout: after ``max_wait`` seconds without room.
        :raises RateLimiterError: when the store (Redis, the SQLite file) fails.
        """
        started = time.monotonic()
        deadline = started + self.max_wait
        reloaded = False
        while True:
            try:
                wait_ms = self._attempt()
            except (sqlite3.Error, OSError) as exc:
                raise self._store_error(exc) from None
            except Exception as exc:
                if type(exc).__module__.split(".", 1)[0] != "redis":
                    raise
                if type(exc).__name__ != "NoScriptError" or reloaded:
                    raise self._store_error(exc) from None
                # Redis restarted and forgot the bucket's script: load it again (once per call).
                reloaded = True
                self._bucket = self._redis_bucket()
                continue
            if wait_ms is None:
                break
            if time.monotonic() + wait_ms / 1000 > deadline:
                raise RateLimitWaitTimeout(
                    f"Waited {time.monotonic() - started:.0f} s for room under the rate limit of {self.calls} calls "
                    f"per {self.period:g} s ({self.backend}); something holds the counter, or far more tasks share it "
                    "than it allows."
                )
            time.sleep(wait_ms / 1000)
        waited = time.monotonic() - started
        with self._lock:
            self.acquired += 1
            self.waited += waited
        return waited

    def close(self) -> None:
        """Close the limiter's store (its SQLite connection or Redis pool)."""
        with contextlib.suppress(Exception):
            self._bucket.close()


_LIMITERS: dict[tuple[Any, ...], SharedRateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(
    name: str,
    calls: int,
    period: float = 1.0,
    *,
    directory: Path | str | None = None,
    redis_url: str | None = None,
    guard: float = DEFAULT_GUARD,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> SharedRateLimiter:
    """The process's one :class:`SharedRateLimiter` for these settings (built on first use).

    Every hook of a process then shares one store connection and one clean-up thread; a
    forked child builds its own (a SQLite connection or a thread does not survive a fork).
    Parameters as :class:`SharedRateLimiter`'s.
    """
    resolved = None if redis_url else str(Path(directory) if directory else default_directory())
    key = (os.getpid(), name, int(calls), float(period), resolved, redis_url, float(guard), float(max_wait))
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            for stale in [k for k in _LIMITERS if k[0] != key[0]]:
                del _LIMITERS[stale]  # inherited from the parent process: never used here
            limiter = SharedRateLimiter(
                name,
                calls,
                period,
                directory=directory,
                redis_url=redis_url,
                guard=guard,
                max_wait=max_wait,
            )
            _LIMITERS[key] = limiter
        return limiter


class RateLimitedAdapter(TlsAdapter):
    """A :class:`~airflow_provider_b1.utils.tls.TlsAdapter` that waits for room under a limiter before each send.

    Mount it where the limited API lives (``session.mount(api_root, adapter)``): every request
    sent through it counts, the re-send after a renewed credential included (that one goes
    through the adapter too). TLS options as :class:`TlsAdapter`'s.

    :param limiter: the allowance the calls spend.
    """

    def __init__(self, limiter: SharedRateLimiter, **tls: Any) -> None:
        super().__init__(**tls)
        self.limiter = limiter

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.limiter.acquire()
        return super().send(request, **kwargs)
