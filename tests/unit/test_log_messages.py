"""What users read in task logs: cursors, the start of a read, the session cache, a failed task."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from airflow_provider_b1.connections import CONNECTION_TYPES
from airflow_provider_b1.hooks.sap_b1.reads import SapCursor
from airflow_provider_b1.sync.cursors import KeysetCursor, StampCursor, TokenCursor
from airflow_provider_b1.sync.engine import choose_start
from airflow_provider_b1.utils.credential_cache import CredentialFile


@pytest.mark.parametrize(
    ("cursor", "text"),
    [
        (SapCursor("2024-05-01", "12:00:00"), "UpdateDate 2024-05-01 12:00:00"),
        (SapCursor("2024-05-01"), "UpdateDate 2024-05-01"),
        (
            SapCursor("2024-05-01", "12:00:00", ["A1", "A2"]),
            "UpdateDate 2024-05-01 12:00:00 (2 records at that stamp already read)",
        ),
        (
            KeysetCursor(("2024-05-01T12:00:00.000Z", "001xx0000001")),
            "SystemModstamp 2024-05-01T12:00:00.000Z, Id 001xx0000001",
        ),
        (StampCursor(("2024-05-01",), (7,)), "2024-05-01 (1 record at that stamp already read)"),
        (TokenCursor("abc"), "token abc"),
    ],
)
def test_a_cursor_prints_readably_wherever_a_log_line_names_it(cursor, text):
    assert cursor.describe() == text
    assert f"{cursor}" == text
    assert "%s" % cursor == text  # noqa: UP031 - as logging formats it
    _, reason, _ = choose_start(cursor, cursor, stream="Invoices")
    assert reason == f"continuing from cursor {text}"
    assert "{" not in reason
    assert "Cursor(" not in reason


def test_a_real_first_run_keeps_its_message():
    assert choose_start(None, None, stream="Invoices")[1] == (
        "first run: no earlier successful run returned a cursor, reading everything"
    )


def test_no_form_stores_a_value_that_airflow_warns_about_as_too_short():
    """Airflow's masker warns "Skipping masking for a secret as it's too short" for every extra
    string under five characters; a form default or choice of that length would put the warning
    in every task log."""
    short = [
        (declaration["connection-type"], name)
        for declaration in CONNECTION_TYPES
        for name, field in declaration["conn-fields"].items()
        for value in [field["schema"].get("default"), *(field["schema"].get("enum") or [])]
        if isinstance(value, str) and len(value) < 5
    ]
    assert short == []


class _Cache(CredentialFile):
    what = "SAP session cache"
    instead = "logging in"
    secret_name = "password"


def test_a_session_cached_under_another_password_is_explained_once(tmp_path, caplog):
    _Cache(tmp_path, ("https://sap/b1s/v2", "SBODEMOUS", "manager"), "old-password").write({"cookies": {}})
    cache = _Cache(tmp_path, ("https://sap/b1s/v2", "SBODEMOUS", "manager"), "new-password")
    caplog.set_level(logging.DEBUG)
    assert cache.read(dict) is None
    assert cache.read(dict) is None  # the re-read under the login lock
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert said == [
        (
            logging.INFO,
            "The SAP session cache entry was made with another password (changed since, or mistyped now): "
            "logging in again.",
        ),
        (
            logging.DEBUG,
            "The SAP session cache entry was made with another password (changed since, or mistyped now): "
            "logging in again.",
        ),
    ]
    assert "decrypt" not in caplog.text


class _NoCheckpoints:
    """A target with a database that keeps no checkpoint yet."""

    database = "target"
    page_limit = None

    def target_entity(self, stream):
        return stream.name

    def read_checkpoint(self, flow, stream):
        return None


def _start_of(stream_name, cursor=None):
    from airflow_provider_b1.sources.sap_b1 import SapB1Source
    from airflow_provider_b1.sync.engine import _start, _StreamRun
    from airflow_provider_b1.sync.flows import Flow, Stream
    from airflow_provider_b1.sync.window import SyncWindow

    class _Hook:  # cursor_at of a stamped entity needs the server's zone, nothing else
        server_tz = dt.timezone.utc

    stream = Stream(stream_name, cursor=SapCursor)
    flow = Flow(
        name="f",
        source_system="sap_b1",
        target_system="t",
        streams=(stream,),
        open_source=lambda options: None,
        open_sink=lambda options: None,
    )
    run = _StreamRun(None, stream, SapB1Source(_Hook()), _NoCheckpoints(), None)
    run.flow = flow
    window = SyncWindow(
        "incremental", cursor=cursor, previous_cursor=cursor, reason="first run: no earlier successful run"
    )
    return _start(run, window)


def test_an_entity_without_update_stamp_says_full_read_not_first_run():
    start, _, description, reason = _start_of("ChartOfAccounts")
    assert start is None
    assert (description, reason) == (
        "full read",
        "sap_b1 keeps no update stamp for ChartOfAccounts: every run reads it in full",
    )


def test_a_stamped_entity_on_its_first_run_still_says_first_run():
    start, _, description, reason = _start_of("Invoices")
    assert start is None
    assert description == "incremental from the beginning until now"
    assert reason == "first run: no earlier successful run returned a cursor, reading everything"


def test_a_stamped_entity_continues_from_a_readable_cursor():
    cursor = SapCursor("2024-05-01", "12:00:00").to_xcom()
    _start, _, description, reason = _start_of("Invoices", cursor)
    assert description == "incremental from UpdateDate 2024-05-01 12:00:00 until now"
    assert "{" not in reason
