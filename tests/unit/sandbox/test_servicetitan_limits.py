"""Issue 9: the ServiceTitan sandbox's throttles, on a clock the test moves."""

from __future__ import annotations

import pytest

from airflow_provider_b1.sandbox.faults import Faults
from airflow_provider_b1.sandbox.servicetitan import limits
from airflow_provider_b1.sandbox.servicetitan.limits import CallLimiter, TokenLimiter

KEY = ("ak1.key", "1000001")


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


@pytest.fixture
def clock(monkeypatch) -> FakeTime:
    fake = FakeTime()
    monkeypatch.setattr(limits, "time", fake)
    return fake


def test_sliding_windows_admit_sixty_in_any_second_then_ask_to_wait(clock):
    limiter = CallLimiter()
    for n in range(60):
        clock.now = 1000.0 + n * 0.01
        assert limiter.admit(KEY, 60, "sliding", 60) is None
    clock.now = 1000.7
    assert limiter.admit(KEY, 60, "sliding", 60) == 1
    clock.now = 1001.0  # the first call is a second old
    assert limiter.admit(KEY, 60, "sliding", 60) is None
    stats = limiter.stats(60)
    assert (stats["calls_admitted"], stats["calls_throttled"], stats["peak_calls_per_second"]) == (61, 1, 60)


def test_fixed_windows_reset_on_the_second_and_let_a_boundary_burst_through(clock):
    limiter = CallLimiter()
    clock.now = 1000.5
    assert all(limiter.admit(KEY, 60, "fixed", 60) is None for _ in range(60))
    assert limiter.admit(KEY, 60, "fixed", 60) == 1
    clock.now = 1001.0
    assert all(limiter.admit(KEY, 60, "fixed", 60) is None for _ in range(60))
    # 120 calls within half a second: the peak shows what fixed windows allow.
    assert limiter.stats(60)["peak_calls_per_second"] == 120


def test_limits_are_per_app_key_and_tenant(clock):
    limiter = CallLimiter()
    assert limiter.admit(KEY, 1, "sliding", 60) is None
    assert limiter.admit(KEY, 1, "sliding", 60) == 1
    assert limiter.admit(("ak1.key", "2000002"), 1, "sliding", 60) is None
    assert limiter.admit(("ak1.other", "1000001"), 1, "sliding", 60) is None


def test_zero_means_no_limit(clock):
    limiter = CallLimiter()
    assert all(limiter.admit(KEY, 0, "sliding", 60) is None for _ in range(500))


def test_per_second_counts_keep_only_the_recent_seconds(clock):
    limiter = CallLimiter()
    for second in range(10):
        clock.now = 1000.0 + second
        limiter.admit(KEY, 1, "sliding", 5)
        limiter.admit(KEY, 1, "sliding", 5)
    seconds = limiter.stats(5)["per_second"]
    assert len(seconds) == 5
    assert all((s["admitted"], s["throttled"]) == (1, 1) for s in seconds)


def test_token_requests_are_limited_per_client_and_minute(clock):
    tokens = TokenLimiter()
    assert all(tokens.admit("b1-client", 3) is None for _ in range(3))
    clock.now += 20
    assert tokens.admit("b1-client", 3) == 40
    assert tokens.admit("other-client", 3) is None
    clock.now += 40
    assert tokens.admit("b1-client", 3) is None
    assert tokens.throttled == 1


def test_scripted_faults_come_first_and_token_expiry_skips_the_token_endpoint():
    faults = Faults()
    faults.configure(
        {"script": [{"kind": "expire_token", "match": "", "times": 1}, {"kind": "error", "match": "GET crm"}]}
    )
    assert faults.draw("POST connect/token", takes_token=False) is None
    assert faults.draw("GET accounting/invoices", takes_token=True) == "expire_token"
    assert faults.draw("GET crm/customers", takes_token=True) == "error"
    assert faults.draw("GET crm/customers", takes_token=True) is None
    assert faults.injected == {"expire_token": 1, "error": 1}


def test_fault_rates_are_repeatable_with_a_seed():
    def draws() -> list:
        faults = Faults()
        faults.configure({"error_rate": 0.5, "seed": 9})
        return [faults.draw("GET crm/customers", takes_token=True) for _ in range(40)]

    first = draws()
    assert first == draws()
    assert 5 < first.count("error") < 35
