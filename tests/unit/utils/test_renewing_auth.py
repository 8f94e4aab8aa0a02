"""The shared self-renewing auth against a token server on loopback: one login, skip-if-refreshed, one re-send."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from airflow_provider_b1.utils.auth import RenewingAuth, no_auth


class _TokenServer(ThreadingHTTPServer):
    """``POST /login`` issues a token (slowly, like real logins); ``GET /data`` wants a live one."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.numbers = itertools.count(1)
        self.live: set[str] = set()
        self.login_delay = 0.0
        self.refuse_all = False
        self.logins = 0
        self.data_requests = 0
        self.refusals = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def revoke_all(self) -> None:
        with self.lock:
            self.live.clear()


class _Handler(BaseHTTPRequestHandler):
    server: _TokenServer

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization"):
            return self._reply(400, b"a login carries no token")
        time.sleep(self.server.login_delay)
        with self.server.lock:
            token = f"token-{next(self.server.numbers)}"
            self.server.live.add(token)
            self.server.logins += 1
        return self._reply(200, token.encode())

    def do_GET(self):
        token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        with self.server.lock:
            self.server.data_requests += 1
            accepted = token in self.server.live and not self.server.refuse_all
            if not accepted:
                self.server.refusals += 1
        if accepted:
            return self._reply(200, f"data for {token}".encode())
        return self._reply(401, b"token refused")


class _ExampleAuth(RenewingAuth[str]):
    """What a hook writes for a token API: how to log in, when a token expires, where it goes."""

    def __init__(self, http: requests.Session, url: str, lifetime: float = 3600.0) -> None:
        super().__init__()
        self.http = http
        self.url = url
        self.lifetime = lifetime
        self.expires_at = 0.0
        self.accepted_with: list[str] = []

    def obtain(self, stale, *, refused):
        reply = self.http.post(self.url + "/login", timeout=5, auth=no_auth)
        reply.raise_for_status()
        self.expires_at = time.monotonic() + self.lifetime
        return reply.text

    def is_expired(self, credential):
        return time.monotonic() >= self.expires_at

    def apply(self, request, credential):
        request.headers["Authorization"] = f"Bearer {credential}"

    def accepted(self, credential, response):
        self.accepted_with.append(credential)


@pytest.fixture
def server() -> Iterator[_TokenServer]:
    server = _TokenServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def http(server) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = _ExampleAuth(session, server.url)
    yield session
    session.close()


def _get(http: requests.Session, server: _TokenServer) -> requests.Response:
    return http.get(server.url + "/data", timeout=5)


def test_concurrent_cold_start_performs_a_single_login(server, http):
    server.login_delay = 0.3
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(_get(http, server).status_code)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
    assert server.logins == 1


def test_a_refused_credential_is_renewed_and_the_request_sent_exactly_once_more(server, http):
    assert _get(http, server).text == "data for token-1"
    server.revoke_all()
    response = _get(http, server)
    assert response.status_code == 200
    assert response.text == "data for token-2"
    assert [r.status_code for r in response.history] == [401]
    assert (server.logins, server.data_requests) == (2, 3)
    assert http.auth.accepted_with == ["token-1", "token-2"]


def test_a_credential_refused_again_after_renewal_is_returned_not_sent_a_third_time(server, http):
    server.refuse_all = True
    response = _get(http, server)
    assert response.status_code == 401
    assert (server.logins, server.data_requests) == (2, 2)
    assert http.auth.accepted_with == []


def test_callers_refused_with_the_same_credential_renew_it_once(server, http):
    assert _get(http, server).ok
    server.revoke_all()
    server.login_delay = 0.2
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(_get(http, server).text)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each refused caller either renewed the token or found it already renewed by another.
    assert results == ["data for token-2"] * 6
    assert server.logins == 2


def test_renew_skips_the_login_when_the_refused_credential_is_no_longer_the_current_one(server, http):
    auth = http.auth
    first = auth.current()
    second = auth.renew(first)
    assert second != first
    assert auth.renew(first) == second  # a late caller with the old token: no new login
    assert server.logins == 2


def test_a_credential_about_to_expire_is_replaced_before_it_is_sent(server):
    session = requests.Session()
    session.auth = _ExampleAuth(session, server.url, lifetime=0.2)
    assert _get(session, server).text == "data for token-1"
    time.sleep(0.3)
    assert _get(session, server).text == "data for token-2"
    assert server.refusals == 0


def test_invalidate_forgets_only_the_credential_it_names(server, http):
    auth = http.auth
    token = auth.current()
    auth.invalidate("some older token")
    assert auth.held == token
    auth.invalidate(token)
    assert auth.held is None
    assert _get(http, server).text == "data for token-2"
