"""The hook's settings, HTTP client and public API, without a server."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapSession
from airflow_provider_b1.utils.auth import RenewingAuth


@pytest.fixture
def connect(sap_connection):
    def _connect(**extra) -> SapB1Hook:
        sap_connection(**extra)
        return SapB1Hook()

    return _connect


@pytest.mark.parametrize(
    ("host", "port", "version", "expected"),
    [
        ("https://h:50000/b1s/v2/", None, None, ("https://h:50000/b1s/v2/", "v2")),
        ("https://h:50000/b1s/v1", None, None, ("https://h:50000/b1s/v1/", "v1")),
        ("https://h:50000", None, "v1", ("https://h:50000/b1s/v1/", "v1")),
        ("h", 50000, None, ("https://h:50000/b1s/v2/", "v2")),
        ("https://h:50000/b1s", None, None, ("https://h:50000/b1s/v2/", "v2")),
    ],
)
def test_service_root_accepts_what_users_type(host, port, version, expected):
    assert SapB1Hook._service_root(host, port, version) == expected


def test_service_root_refuses_conflicting_versions():
    with pytest.raises(ValueError, match="make them agree"):
        SapB1Hook._service_root("https://h/b1s/v1/", None, "v2")


def test_an_unknown_word_in_verify_tls_is_refused_with_the_fields_name(connect):
    with pytest.raises(ValueError, match="verify_tls must be true or false, not 'flase'"):
        _ = connect(verify_tls="flase").settings
    ok, message = connect(verify_tls="maybe").test_connection()
    assert not ok
    assert "verify_tls" in message


@pytest.mark.parametrize(
    ("value", "verify"), [("no", False), ("Off", False), ("yes", True), ("", True), (None, True)]
)
def test_verify_tls_reads_yes_and_no_words_and_blank_means_the_default(connect, value, verify):
    assert connect(verify_tls=value).settings.verify is verify


def test_blank_extras_count_as_not_set(connect):
    settings = connect(ca_bundle="  ", timezone="", page_size="", language=" ").settings
    assert (settings.ca_bundle, settings.timezone, settings.page_size, settings.language) == (
        None,
        "UTC",
        500,
        None,
    )


def test_reads_start_no_thread_unless_asked(connect):
    assert connect().prefetch is False


def test_get_conn_is_the_configured_session_with_the_sap_session_as_its_auth(connect):
    hook = connect()
    conn = hook.get_conn()
    assert isinstance(conn, requests.Session)
    assert conn is hook.get_conn()
    assert isinstance(conn.auth, SapSession)
    assert isinstance(conn.auth, RenewingAuth)
    assert conn.auth is hook.sap_session
    assert "pw-123456" not in repr(conn.auth)


def test_close_closes_the_client_without_logging_out(connect, monkeypatch):
    hook = connect()
    hook.close()  # nothing built yet: nothing to close
    closed = []
    monkeypatch.setattr(hook.get_conn(), "close", lambda: closed.append(True))
    monkeypatch.setattr(hook.sap_session, "logout", lambda: pytest.fail("close() must not log out"))
    hook.close()
    assert closed == [True]


def test_request_follows_the_typed_calls_rules(connect, monkeypatch):
    hook = connect()
    calls = []
    monkeypatch.setattr(hook, "_call", lambda method, path, **kwargs: calls.append((method, path, kwargs)))
    hook.request("POST", "Orders(5)/Close")
    hook.request("GET", "Orders/$count", params={"$filter": "DocTotal gt 5"}, headers={"X": "1"})
    assert calls == [
        ("POST", "Orders(5)/Close", {"params": None, "json_body": None, "headers": None, "repeatable": None}),
        (
            "GET",
            "Orders/$count",
            {
                "params": {"$filter": "DocTotal gt 5"},
                "json_body": None,
                "headers": {"X": "1"},
                "repeatable": None,
            },
        ),
    ]


@pytest.mark.parametrize(("value", "sessions"), [(None, 4), ("", 4), ("2", 2), (8, 8)])
def test_the_sessions_of_a_partitioned_load_come_from_the_connection(connect, value, sessions):
    assert connect(max_sessions=value).max_sessions == sessions


@pytest.mark.parametrize("value", ["0", "two", -1])
def test_a_max_sessions_that_is_no_count_of_sessions_is_refused_by_name(connect, value):
    with pytest.raises(ValueError, match="max_sessions must be a whole number of sessions, 1 or more"):
        _ = connect(max_sessions=value).max_sessions
