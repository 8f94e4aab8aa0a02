"""Issue 9: ServiceTitan's per-second limit per app and tenant, as a burst of real HTTPS calls
meets it, and the statistics that show how a client kept to it."""

from __future__ import annotations

import re
import threading
import time

import requests

TITLE = re.compile(r"^Rate limit is exceeded\. Try again in (\d+) seconds\.$")


def _burst(servicetitan, calls: int, threads: int = 6) -> list[requests.Response]:
    headers = {"Authorization": f"Bearer {servicetitan.token()}", "ST-App-Key": servicetitan.config.app_key}
    url = servicetitan.url("settings", "business-units")
    replies: list[requests.Response] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        with requests.Session() as session:
            session.trust_env = False
            session.verify = servicetitan.ca
            session.get(f"{servicetitan.base}/_sandbox/config", timeout=10)  # connect before the burst
            start.wait()
            for _ in range(n):
                reply = session.get(url, headers=headers, timeout=30)
                with lock:
                    replies.append(reply)

    share = [calls // threads + (1 if i < calls % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=worker, args=(n,)) for n in share]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return replies


def test_a_burst_over_the_limit_gets_429_with_retry_after_and_problem_json(servicetitan):
    servicetitan.control("POST", "config", {"rate_limit_per_second": 8})
    servicetitan.token()
    servicetitan.control("POST", "stats/reset")
    replies = _burst(servicetitan, 40)
    refused = [r for r in replies if r.status_code == 429]
    assert refused, [r.status_code for r in replies]
    assert {r.status_code for r in replies} == {200, 429}
    for reply in refused:
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        body = reply.json()
        assert body["status"] == 429
        assert body["traceId"]
        seconds = TITLE.match(body["title"])
        assert seconds, body["title"]
        assert int(reply.headers["Retry-After"]) == int(seconds.group(1)) >= 1
    stats = servicetitan.control("GET", "stats").json()
    assert stats["calls_throttled"] == len(refused) == stats["rate_limited"]
    assert stats["calls_admitted"] == len(replies) - len(refused)
    assert stats["peak_calls_per_second"] <= 8  # sliding windows: never more in any one second
    assert sum(s["throttled"] for s in stats["per_second"]) == len(refused)


def test_the_default_limit_is_sixty_calls_a_second_per_app_and_tenant(servicetitan):
    config = servicetitan.control("GET", "config").json()
    assert (config["rate_limit_per_second"], config["rate_limit_window"]) == (60, "sliding")
    servicetitan.token()
    servicetitan.control("POST", "stats/reset")
    began = time.monotonic()
    replies = _burst(servicetitan, 90)
    elapsed = time.monotonic() - began
    admitted = sum(r.status_code == 200 for r in replies)
    stats = servicetitan.control("GET", "stats").json()
    assert stats["peak_calls_per_second"] <= 60
    assert admitted == stats["calls_admitted"]
    if elapsed < 1.0:  # the whole burst fell within one second (a loaded machine may be slower)
        assert (admitted, stats["calls_throttled"]) == (60, 30)


def test_fixed_windows_are_a_setting_and_still_refuse_past_the_limit(servicetitan):
    servicetitan.control("POST", "config", {"rate_limit_per_second": 5, "rate_limit_window": "fixed"})
    servicetitan.token()
    replies = _burst(servicetitan, 30)
    assert any(r.status_code == 429 for r in replies)
    assert all(int(r.headers["Retry-After"]) == 1 for r in replies if r.status_code == 429)


def test_control_plane_and_token_endpoint_are_never_throttled(servicetitan):
    servicetitan.control("POST", "config", {"rate_limit_per_second": 1})
    servicetitan.token()
    assert servicetitan.get("settings", "business-units").status_code == 200
    assert servicetitan.get("settings", "business-units").status_code == 429
    assert all(servicetitan.control("GET", "stats").status_code == 200 for _ in range(5))
    assert servicetitan.request_token().status_code == 200


def test_injected_429s_count_as_rate_limited_answers(servicetitan):
    servicetitan.control("POST", "faults", {"rate_limit_rate": 1.0, "retry_after": 3})
    reply = servicetitan.get("crm", "customers")
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "3"
    assert TITLE.match(reply.json()["title"]).group(1) == "3"
    stats = servicetitan.control("GET", "stats").json()
    assert stats["faults_injected"] == {"rate_limit": 1}
    assert stats["rate_limited"] >= 1
