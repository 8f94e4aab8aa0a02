"""The encrypted, cross-process SAP session cache and the session's renewal margin, without a server."""

from __future__ import annotations

import os
import stat
import time

from airflow_provider_b1.hooks.sap_b1 import SessionCache, SessionState


def test_session_cache_is_encrypted_private_and_bound_to_the_password(tmp_path):
    cache = SessionCache(tmp_path / "c", "https://h/b1s/v2/", "SBODEMOUS", "manager", "secret-1")
    state = SessionState(
        cookies={"B1SESSION": "sess-abcdef-123", "ROUTEID": ".node1"}, timeout=1800, login_at=1.0
    )
    cache.store(state)
    raw = cache.path.read_bytes()
    assert b"sess-abcdef-123" not in raw
    assert b"node1" not in raw
    assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache.directory).st_mode) == 0o700
    loaded = cache.load()
    assert loaded.cookies == state.cookies
    assert loaded.cookie_header() == "B1SESSION=sess-abcdef-123; ROUTEID=.node1"
    other = SessionCache(tmp_path / "c", "https://h/b1s/v2/", "SBODEMOUS", "manager", "another-password")
    assert other.path == cache.path
    assert other.load() is None


def test_session_last_use_is_shared_through_the_file_time(tmp_path):
    cache = SessionCache(tmp_path, "https://h/b1s/v2/", "C", "u", "p")
    now = time.time()
    state = SessionState(cookies={"B1SESSION": "x" * 10}, timeout=60, login_at=now - 100, last_used=now - 100)
    cache.store(state)
    assert not cache.load().is_fresh(now)
    state.last_used = now - 1
    cache.touch(state)
    assert cache.load().is_fresh(now)


def test_sessions_are_renewed_a_margin_before_the_idle_timeout():
    state = SessionState(cookies={"B1SESSION": "x"}, timeout=1800, login_at=0, last_used=1000)
    assert state.is_fresh(1000 + 1700)
    assert not state.is_fresh(1000 + 1750)  # within the 60 s margin
    short = SessionState(cookies={"B1SESSION": "x"}, timeout=2, login_at=0, last_used=1000)
    assert short.is_fresh(1001.5)
    assert not short.is_fresh(1001.9)
