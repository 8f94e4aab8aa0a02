"""Pure logic of the Looker hook, trigger and operators."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_b1.hooks.looker import (
    LookerAuthError,
    LookerHook,
    LookerPdtBuildError,
    LookerRateLimitedError,
    LookerTLSError,
    LookerTokenAuth,
    LookerUnreachableError,
    LookerValidationError,
    _error_for,
    _transport_errors,
    check_pdt_status,
    parse_pdt_status,
)
from airflow_provider_b1.operators.looker import LookerBuildPdtOperator, _as_list
from airflow_provider_b1.triggers.looker import LookerPdtBuildTrigger


def _response(status: int, body: bytes = b"{}", headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers.update(headers or {})
    return response


def test_status_nested_as_json_text_is_read():
    body = {"materialization_id": "9", "resp_text": '{"status": "running", "message": "building"}'}
    assert parse_pdt_status("9", body) == {
        "materialization_id": "9",
        "status": "running",
        "message": "building",
    }


def test_status_at_top_level_is_read_too():
    assert parse_pdt_status("9", {"status": "complete"})["status"] == "complete"


def test_unreadable_status_counts_as_unknown_and_fails():
    status = parse_pdt_status("9", {"resp_text": "garbage"})
    assert status["status"] == "unknown"
    with pytest.raises(LookerPdtBuildError):
        check_pdt_status(status)


def test_429_carries_retry_after():
    error = _error_for(_response(429, headers={"Retry-After": "7"}), what="x")
    assert isinstance(error, LookerRateLimitedError)
    assert error.retry_after == 7


def test_422_lists_the_fields():
    body = b'{"message": "Validation Failed", "errors": [{"field": "triggered_at", "message": "cannot be in the future"}]}'
    error = _error_for(_response(422, body), what="setting triggered_at of datagroup")
    assert isinstance(error, LookerValidationError)
    assert "triggered_at: cannot be in the future" in str(error)


def test_token_counts_as_expired_inside_the_margin():
    now = [100.0]
    auth = LookerTokenAuth(
        "https://l", "id", "secret", session=requests.Session(), margin=10, clock=lambda: now[0]
    )
    assert auth.is_token_expired()
    auth._credential, auth._expires_at = "t", 200.0
    assert not auth.is_token_expired()
    now[0] = 191.0
    assert auth.is_token_expired()
    assert "secret" not in repr(auth)


def test_invalidate_skips_a_token_already_replaced():
    auth = LookerTokenAuth("https://l", "id", "secret", session=requests.Session())
    auth._credential, auth._expires_at = "new", 1e12
    auth.invalidate("old")
    assert auth.held == "new"
    auth.invalidate("new")
    assert auth.held is None


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("https://co.looker.com/", None, "https://co.looker.com"),
        ("https://co.looker.com/api/4.0", None, "https://co.looker.com"),
        ("co.looker.com", 19999, "https://co.looker.com:19999"),
    ],
)
def test_base_url_is_normalised(monkeypatch, host, port, expected):
    from airflow.sdk import Connection

    conn = Connection(conn_id="x", conn_type="looker_api", host=host, port=port, login="a", password="b")
    assert LookerHook("x", connection=conn).base_url == expected


def test_an_unknown_word_in_verify_tls_is_refused_with_the_fields_name():
    from airflow.sdk import Connection

    conn = Connection(
        conn_id="x",
        conn_type="looker_api",
        host="https://co.looker.com",
        login="a",
        password="b",
        extra='{"verify_tls": "flase"}',
    )
    with pytest.raises(ValueError, match="verify_tls must be true or false, not 'flase'"):
        _ = LookerHook("x", connection=conn).session
    off = Connection(
        conn_id="y", conn_type="looker_api", host="h", extra='{"verify_tls": "no", "ca_bundle": " "}'
    )
    adapter = LookerHook("y", connection=off).session.get_adapter("https://h")
    assert (adapter.mode, adapter.ca_bundle) == ("off", None)


def test_refused_secret_permission_and_untrusted_certificate_are_permanent_not_retryable():
    from airflow_provider_b1.exceptions import PermanentError, RetryableError

    assert issubclass(LookerAuthError, PermanentError)
    assert isinstance(_error_for(_response(403), what="x"), PermanentError)
    assert issubclass(LookerTLSError, PermanentError)
    for error in (_error_for(_response(429), what="x"), _error_for(_response(503), what="x")):
        assert isinstance(error, RetryableError)
        assert not isinstance(error, PermanentError)


def test_a_connection_dropped_mid_tls_is_unreachable_not_an_untrusted_certificate():
    import ssl

    with pytest.raises(LookerUnreachableError), _transport_errors("https://l", what="x"):
        raise requests.exceptions.SSLError(ssl.SSLEOFError(8, "EOF occurred in violation of protocol"))
    with pytest.raises(LookerTLSError), _transport_errors("https://l", what="x"):
        raise requests.exceptions.SSLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))


def test_hook_identity_and_forms():
    assert (LookerHook.conn_type, LookerHook.default_conn_name, LookerHook.hook_name) == (
        "looker_api",
        "looker_default",
        "Looker API 4.0",
    )
    assert "password" not in LookerHook.get_ui_field_behaviour()["hidden-fields"]


def test_trigger_serializes_primitives_only():
    trigger = LookerPdtBuildTrigger("12", looker_conn_id="lk", poll_interval=2, deadline=123.5)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_b1.triggers.looker.LookerPdtBuildTrigger"
    assert kwargs == {
        "materialization_id": "12",
        "looker_conn_id": "lk",
        "poll_interval": 2.0,
        "deadline": 123.5,
    }
    assert LookerPdtBuildTrigger(**kwargs).serialize() == (path, kwargs)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(["1", "m::d"], ["1", "m::d"]), ("1, 2", ["1", "2"]), ("['m::d']", ["m::d"]), (None, [])],
)
def test_datagroup_references_accept_rendered_templates(value, expected):
    assert _as_list(value) == expected


def test_failed_trigger_event_fails_the_task():
    op = LookerBuildPdtOperator(task_id="t", model="m", view="v")
    with pytest.raises(LookerPdtBuildError, match="did not complete"):
        op.execute_complete(
            {}, {"status": "error", "materialization_id": "5", "pdt_status": "error", "message": "boom"}
        )
    assert op.execute_complete(
        {}, {"status": "success", "materialization_id": "5", "pdt_status": "complete"}
    ) == {
        "materialization_id": "5",
        "status": "complete",
    }
