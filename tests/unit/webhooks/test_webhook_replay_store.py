"""Event ids claimed once within the window: in memory (bounded) and in Redis (shared by replicas)."""

from __future__ import annotations

import pytest

from airflow_provider_b1.webhooks.replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStoreUnavailableError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_claimed_once_until_its_claim_expires():
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    assert store.claim("a", 600)
    assert not store.claim("a", 600)
    clock.now += 601
    assert store.claim("a", 600)


def test_a_released_claim_can_be_taken_again():
    store = MemoryReplayStore()
    assert store.claim("a", 600)
    store.release("a")
    assert store.claim("a", 600)


def test_the_memory_store_stays_bounded_and_says_so(caplog):
    store = MemoryReplayStore(capacity=3, clock=Clock())
    for key in "abcde":
        assert store.claim(key, 600)
    assert len(store) == 3
    assert store.evicted == 2
    assert store.claim("a", 600)  # forgotten early: the warning tells how to avoid it
    assert "B1_WEBHOOKS_REPLAY_CAPACITY" in caplog.text


def test_expired_claims_are_dropped_as_new_ones_come():
    clock = Clock()
    store = MemoryReplayStore(clock=clock)
    for n in range(100):
        store.claim(str(n), 10)
    clock.now += 11
    store.claim("new", 10)
    assert len(store) == 1


class FakeRedis:
    def __init__(self, fail: bool = False) -> None:
        self.values: dict[str, tuple[bytes, int]] = {}
        self.fail = fail

    def set(self, key, value, nx, px):
        if self.fail:
            raise ConnectionError("down")
        assert nx is True
        assert px > 0
        if key in self.values:
            return None
        self.values[key] = (value, px)
        return True

    def delete(self, key):
        if self.fail:
            raise ConnectionError("down")
        self.values.pop(key, None)


def test_redis_claims_are_set_nx_with_an_expiry_in_milliseconds():
    fake = FakeRedis()
    store = RedisReplayStore(client=fake)
    assert store.claim("servicetitan:1", 600)
    assert not store.claim("servicetitan:1", 600)
    assert fake.values == {"b1-webhooks:seen:servicetitan:1": (b"1", 600_000)}
    store.release("servicetitan:1")
    assert fake.values == {}


def test_an_unreachable_redis_refuses_instead_of_letting_through():
    store = RedisReplayStore(client=FakeRedis(fail=True))
    with pytest.raises(ReplayStoreUnavailableError):
        store.claim("x", 600)
    store.release("x")  # best effort, never raises
