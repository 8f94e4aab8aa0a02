"""The shared rate limiter on its own: one count for every user of a name, a window never overfilled."""

from __future__ import annotations

import bisect
import threading
import time

import pytest

from airflow_provider_b1.utils.ratelimit import (
    RateLimiterConfigError,
    RateLimiterError,
    SharedRateLimiter,
    redis_location,
    shared_limiter,
)


def _most_in_any_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    return max(bisect.bisect_left(stamps, t + window) - i for i, t in enumerate(stamps))


def test_two_limiters_of_one_name_share_one_count_and_never_overfill_a_window(tmp_path):
    # Two objects on one file stand for two task processes of a worker.
    # The default guard: a call admitted holds its place a little longer than the window, so a
    # thread that records its stamp late (a loaded machine) still never shows 11 in a window.
    limiters = [SharedRateLimiter("unit-share", 10, 0.5, directory=tmp_path) for _ in range(2)]
    stamps: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 1.2

    def spend(limiter: SharedRateLimiter) -> None:
        while time.monotonic() < deadline:
            limiter.acquire()
            with lock:
                stamps.append(time.monotonic())

    threads = [threading.Thread(target=spend, args=(limiter,)) for limiter in limiters for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for limiter in limiters:
        limiter.close()
    assert _most_in_any_window(stamps, 0.5) <= 10
    # 10 per 0.6 s (window + guard), over 1.2 s: about 20, never far fewer.
    assert len(stamps) >= 15
    assert sum(limiter.acquired for limiter in limiters) == len(stamps)


def test_the_process_keeps_one_limiter_per_name_and_settings(tmp_path):
    first = shared_limiter("unit-one", 5, directory=tmp_path)
    assert shared_limiter("unit-one", 5, directory=tmp_path) is first
    assert shared_limiter("unit-one", 6, directory=tmp_path) is not first


@pytest.mark.parametrize("name", ["", "../escape", "a b"])
def test_a_name_that_could_not_name_a_file_is_refused(tmp_path, name):
    with pytest.raises(RateLimiterConfigError, match="name must be"):
        SharedRateLimiter(name, 5, directory=tmp_path)


def test_a_rate_of_no_calls_is_refused(tmp_path):
    with pytest.raises(RateLimiterConfigError, match="at least 1 call"):
        SharedRateLimiter("unit-zero", 0, directory=tmp_path)


def test_redis_location_never_shows_the_password():
    assert redis_location("redis://:s3cret-pass@cache.internal:6380/2") == "cache.internal:6380/2"
    assert redis_location("rediss://user:s3cret-pass@cache") == "cache:6379"


def test_an_unreachable_redis_is_a_retryable_error_without_its_password():
    pytest.importorskip("redis")
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    with pytest.raises(RateLimiterError) as caught:
        SharedRateLimiter("unit-redis-down", 5, redis_url="redis://:s3cret-pass@127.0.0.1:1/0").acquire()
    assert "127.0.0.1:1/0" in str(caught.value)
    assert "s3cret-pass" not in str(caught.value)


@pytest.mark.parametrize("calls", [1, 2, 6, 9, 10, 11, 59, 60, 61, 100, 1000])
def test_any_rate_is_spread_over_tenths_of_its_window_at_the_same_pace(tmp_path, calls):
    limiter = SharedRateLimiter("unit-spread", calls, directory=tmp_path)
    rates = limiter.rates
    assert rates[-1].limit == calls
    assert rates[-1].interval == 1100  # one second and the guard
    if calls >= 2:
        share = rates[0]
        assert share.limit == max(1, calls // 10)
        assert share.limit / share.interval >= calls / 1100  # never stricter than the window
    limiter.close()


def test_a_redis_count_expires_once_nobody_uses_it(tmp_path):
    redis = pytest.importorskip("redis")
    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    limiter = SharedRateLimiter(f"unit-expiry-{time.time_ns()}", 5, redis_url=url)
    limiter.acquire()
    client = redis.Redis.from_url(url)
    key = f"b1:ratelimit:{limiter.name}"
    try:
        assert 0 < client.pttl(key) <= 60_000
    finally:
        client.delete(key)
