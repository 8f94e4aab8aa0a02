"""The client-credentials token shared by a worker's processes, as Salesforce's and ServiceTitan's auths use it."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from filelock import Timeout

from airflow_provider_b1.exceptions import PermanentError, RetryableError
from airflow_provider_b1.utils import auth as auth_module
from airflow_provider_b1.utils.auth import ClientCredentialsAuth, SharedTokenCache, worker_cache_dir
from airflow_provider_b1.utils.retry import RetryPolicy

TOKEN_URL = "https://auth.example/oauth/token"
CLIENT_ID = "example-client"
CLIENT_SECRET = "example-client-secret-value"
FAST = RetryPolicy(max_attempts=3, max_elapsed=5, initial_wait=0.001, max_wait=0.01)

log = logging.getLogger("tests.example_auth")


@dataclass
class ExampleToken:
    value: str = field(repr=False)
    expires_at: float

    def to_payload(self) -> dict[str, Any]:
        return {"token": self.value, "expires_at": self.expires_at}

    @classmethod
    def from_payload(cls, document: dict[str, Any]) -> ExampleToken | None:
        if not document.get("token"):
            return None
        return cls(value=str(document["token"]), expires_at=float(document["expires_at"]))


class ExampleError(Exception):
    pass


class ExamplePermanentError(ExampleError, PermanentError):
    pass


class ExampleRetryableError(ExampleError, RetryableError):
    pass


class ExampleCache(SharedTokenCache[ExampleToken]):
    suffix = ".extoken"
    what = "Example token cache"
    logger = log
    token_type = ExampleToken


class ExampleAuth(ClientCredentialsAuth[ExampleToken]):
    """What an API adds: its names, its errors, how its reply reads and when a token expires."""

    service = "Example"
    error = ExampleError
    logger = log
    cache_type = ExampleCache

    @staticmethod
    def default_cache_dir() -> Path:
        return worker_cache_dir("B1_EXAMPLE_CACHE_DIR", "example_tokens")

    def is_expired(self, credential: ExampleToken) -> bool:
        return self._clock() >= credential.expires_at

    def transport_error(self, exc: requests.RequestException) -> Exception:
        return ExampleRetryableError(f"no answer ({type(exc).__name__})")

    def token_error(self, response: requests.Response) -> Exception:
        if response.status_code >= 500:
            return ExampleRetryableError(f"server error {response.status_code}")
        return ExamplePermanentError(f"refused ({response.status_code})")

    def read_token(self, response: requests.Response, started: float) -> ExampleToken:
        body = response.json()
        return ExampleToken(value=body["access_token"], expires_at=started + float(body["expires_in"]))


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _response(status: int, body: dict[str, Any]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = requests.compat.json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    return response


class TokenEndpoint:
    """Stands in for the session's ``post``: numbered tokens, or the replies (or errors) it was given first."""

    def __init__(self, *replies: requests.Response | Exception) -> None:
        self.calls: list[dict[str, Any]] = []
        self.replies = list(replies)

    def post(self, url: str, *, data: dict, **kwargs: Any) -> requests.Response:
        assert url == TOKEN_URL
        self.calls.append({"data": dict(data), **kwargs})
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply
        return _response(200, {"access_token": f"token-{len(self.calls)}", "expires_in": 600})


def _auth(endpoint: TokenEndpoint, cache_dir: Path, clock: Clock | None = None) -> ExampleAuth:
    return ExampleAuth(
        endpoint,  # type: ignore[arg-type]
        TOKEN_URL,
        CLIENT_ID,
        CLIENT_SECRET,
        retry_policy=FAST,
        cache_dir=cache_dir,
        clock=clock or Clock(),
    )


def test_the_cache_directory_is_the_variable_or_a_folder_of_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("B1_EXAMPLE_CACHE_DIR", str(tmp_path / "configured"))
    assert worker_cache_dir("B1_EXAMPLE_CACHE_DIR", "example_tokens") == tmp_path / "configured"
    monkeypatch.delenv("B1_EXAMPLE_CACHE_DIR")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert worker_cache_dir("B1_EXAMPLE_CACHE_DIR", "example_tokens") == tmp_path / "home" / "example_tokens"
    monkeypatch.delenv("AIRFLOW_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert (
        worker_cache_dir("B1_EXAMPLE_CACHE_DIR", "example_tokens") == tmp_path / "airflow" / "example_tokens"
    )


def test_without_a_directory_the_subclass_default_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("B1_EXAMPLE_CACHE_DIR", str(tmp_path))
    auth = ExampleAuth(TokenEndpoint(), TOKEN_URL, CLIENT_ID, CLIENT_SECRET)  # type: ignore[arg-type]
    assert auth.cache.directory == tmp_path
    assert auth.cache.path.suffix == ".extoken"


def test_the_request_is_a_client_credentials_form_sent_without_the_sessions_auth(tmp_path):
    endpoint = TokenEndpoint()
    auth = _auth(endpoint, tmp_path)
    request = auth(requests.Request("GET", "https://api.example/things").prepare())
    assert request.headers["Authorization"] == "Bearer token-1"
    (call,) = endpoint.calls
    assert call["data"] == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert call["auth"] is auth_module.no_auth
    assert call["headers"] == {"Accept": "application/json"}
    assert auth.token_requests == 1


def test_a_second_process_adopts_the_cached_token(tmp_path):
    endpoint = TokenEndpoint()
    first, second = _auth(endpoint, tmp_path), _auth(endpoint, tmp_path)
    assert first.current().value == second.current().value == "token-1"
    assert (first.token_requests, second.token_requests) == (1, 0)


def test_an_expired_cached_token_is_not_adopted(tmp_path):
    clock = Clock()
    endpoint = TokenEndpoint()
    _auth(endpoint, tmp_path, clock).current()
    clock.now += 600
    late = _auth(endpoint, tmp_path, clock)
    assert late.current().value == "token-2"
    assert late.token_requests == 1


def test_a_refused_token_is_never_taken_back_from_the_cache(tmp_path):
    endpoint = TokenEndpoint()
    processes = [_auth(endpoint, tmp_path) for _ in range(3)]
    refused = processes[0].current()
    # The first to be refused asks for a new token; the others, refused with the same one, adopt it.
    assert [auth.renew(refused).value for auth in processes] == ["token-2"] * 3
    assert [auth.token_requests for auth in processes] == [2, 0, 0]


def test_a_token_cached_while_waiting_for_the_lock_is_taken_and_said(tmp_path, caplog, monkeypatch):
    other = _auth(TokenEndpoint(), tmp_path)
    other.current()
    endpoint = TokenEndpoint()
    auth = _auth(endpoint, tmp_path)
    # The first read (before the lock) misses it; the one under the lock finds it.
    reads = iter([lambda: None])
    load = auth.cache.load
    monkeypatch.setattr(auth.cache, "load", lambda: next(reads, load)())
    with caplog.at_level(logging.DEBUG, logger=log.name):
        assert auth.current().value == "token-1"
    assert endpoint.calls == []
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == [
        "Using the Example token another task obtained."
    ]


def test_waiting_too_long_for_another_tasks_request_is_the_apis_error(tmp_path, monkeypatch):
    auth = _auth(TokenEndpoint(), tmp_path)

    @contextlib.contextmanager
    def busy():
        raise Timeout(str(auth.cache.lock_path))
        yield

    monkeypatch.setattr(auth.cache, "lock", busy)
    with pytest.raises(ExampleError, match="Waited 120 s for another task's Example token request") as raised:
        auth.current()
    assert raised.value.__suppress_context__


def test_a_failure_on_the_way_is_retried_and_then_marked_exhausted(tmp_path):
    endpoint = TokenEndpoint(*(requests.ConnectionError("reset") for _ in range(3)))
    with pytest.raises(ExampleRetryableError, match="no answer") as raised:
        _auth(endpoint, tmp_path).current()
    assert len(endpoint.calls) == FAST.max_attempts
    assert raised.value.exhausted is True  # type: ignore[attr-defined]


def test_a_server_error_is_retried_and_then_succeeds(tmp_path):
    endpoint = TokenEndpoint(_response(503, {}))
    auth = _auth(endpoint, tmp_path)
    assert auth.current().value == "token-2"
    assert auth.token_requests == 1


def test_a_refusal_is_the_apis_error_and_not_retried(tmp_path):
    endpoint = TokenEndpoint(_response(401, {"error": "invalid_client"}))
    with pytest.raises(ExamplePermanentError, match="refused"):
        _auth(endpoint, tmp_path).current()
    assert len(endpoint.calls) == 1


def test_forget_drops_the_token_here_and_in_the_cache(tmp_path):
    endpoint = TokenEndpoint()
    auth = _auth(endpoint, tmp_path)
    auth.current()
    auth.forget()
    assert auth.held is None
    assert not auth.cache.path.exists()
    assert auth.current().value == "token-2"


def test_no_secret_or_token_in_the_cache_file_or_reprs(tmp_path):
    auth = _auth(TokenEndpoint(), tmp_path)
    auth.current()
    raw = auth.cache.path.read_bytes()
    assert b"token-1" not in raw
    assert CLIENT_SECRET.encode() not in raw
    assert repr(auth.cache) == f"ExampleCache({str(auth.cache.path)!r})"
    for text in (repr(auth.held), repr(auth.cache)):
        assert "token-1" not in text
        assert CLIENT_SECRET not in text
