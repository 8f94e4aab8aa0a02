"""The SAP hook against the SAP sandbox over real HTTPS: sessions, reads, faults, writes, TLS, secrets."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time

import msgspec
import pytest

from airflow_provider_b1.hooks.sap_b1 import (
    SapB1Hook,
    SapB1LoginError,
    SapB1TLSError,
    SapB1UnreachableError,
    SapB1UserLockedError,
    SapCursor,
    odata_eq,
)
from airflow_provider_b1.hooks.sap_b1_session import SessionCache
from airflow_provider_b1.utils.retry import RetryPolicy

# The sandbox's seeded company and user (set in conftest.py).
COMPANY, USER, PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"
FAST_RETRIES = RetryPolicy(max_attempts=12, max_elapsed=60, initial_wait=0.02, max_wait=0.3)


def _keys_digest(keys) -> str:
    return hashlib.sha256("\n".join(str(k) for k in sorted(keys)).encode()).hexdigest()


def _read_all(hook: SapB1Hook, **kwargs) -> list[int]:
    return [
        r["DocEntry"]
        for page in hook.iter_pages("Invoices", select="DocEntry,DocTotal", **kwargs)
        for r in page
    ]


# -- reads and sessions --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_reading_10000_invoices_in_pages_of_500_costs_at_most_21_requests_and_one_login(
    sandbox, connect, version
):
    sandbox.reset(invoices=10_000)
    connect(version)
    hook = SapB1Hook()
    keys = _read_all(hook, page_size=500)
    stats = sandbox.stats()
    truth = sandbox.truth("Invoices")
    assert len(keys) == len(set(keys)) == truth["count"] == 10_000
    assert _keys_digest(keys) == truth["keys_sha256"]
    assert stats["logins"] == 1
    assert stats["requests_total"] <= 21


@pytest.mark.parametrize(("version", "style"), [("v1", "path"), ("v2", "url"), ("v2", "relative")])
def test_next_links_of_every_style_are_followed_as_given(sandbox, connect, version, style):
    connect(version)
    sandbox.config(next_link_style=style)
    keys = _read_all(SapB1Hook(), page_size=700)
    assert _keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]


def test_prefetching_reader_returns_the_same_records(sandbox, connect):
    connect()
    keys = _read_all(SapB1Hook(prefetch=True), page_size=300)
    assert _keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]
    assert sandbox.stats()["logins"] == 1


# A task process: imports first (Airflow takes seconds to import), says "ready", waits for
# "go", then reads through the hook. Overlapping the imports keeps the tests fast while the
# reads themselves happen exactly when the test says.
_CHILD = """
import sys
from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
print("ready", flush=True)
sys.stdin.readline()
hook = SapB1Hook()
print(sum(len(page) for page in hook.iter_pages("Invoices", select="DocEntry", top=5)), flush=True)
"""


def _start_children(connection: str, cache_dir, count: int) -> list[subprocess.Popen]:
    env = os.environ.copy()
    env["AIRFLOW_CONN_SAP_B1_DEFAULT"] = connection
    env["B1_SESSION_CACHE_DIR"] = str(cache_dir)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for child in children:
        line = child.stdout.readline()
        assert line.strip() == "ready", child.stderr.read()[-2000:]
    return children


def _finish(child: subprocess.Popen) -> None:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-2000:]
    assert out.strip().splitlines()[-1] == "5"


def test_three_task_processes_in_a_row_share_one_login(sandbox, connect):
    children = _start_children(connect(), connect.cache_dir, 3)
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
        _finish(child)  # the next process starts its read only after this one is done
    assert sandbox.stats()["logins"] == 1


def test_concurrent_cold_start_of_three_processes_performs_a_single_login(sandbox, connect):
    children = _start_children(connect(), connect.cache_dir, 3)
    # A slow login (as real ones are) keeps the other two waiting inside the login window.
    sandbox.faults(login_delay=1.0)
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    for child in children:
        _finish(child)
    assert sandbox.stats()["logins"] == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("prefetch", [False, True])
def test_idle_timeout_expiring_mid_read_returns_every_invoice_once_with_one_extra_login(
    sandbox, connect, version, prefetch
):
    connect(version)
    sandbox.config(session_timeout_seconds=3)
    hook = SapB1Hook()
    keys = []
    # 4 pages: with prefetch the second is already fetched when the caller dawdles, the third is not.
    pages = hook.iter_pages("Invoices", select="DocEntry", page_size=500, prefetch=prefetch)
    for number, page in enumerate(pages):
        keys.extend(r["DocEntry"] for r in page)
        if number == 0:
            time.sleep(4)  # the caller is slow: the server forgets the idle session
    assert len(keys) == len(set(keys)) == sandbox.truth("Invoices")["count"]
    assert sandbox.stats()["logins"] == 2


@pytest.mark.parametrize(("version", "code"), [("v1", 301), ("v2", 301), ("v1", -5002), ("v2", -5002)])
def test_session_killed_on_the_server_is_replaced_once_and_the_call_repeated(sandbox, connect, version, code):
    connect(version)
    sandbox.config(expired_session_code=code)
    hook = SapB1Hook()
    keys = []
    for number, page in enumerate(hook.iter_pages("Invoices", select="DocEntry", page_size=500)):
        keys.extend(r["DocEntry"] for r in page)
        if number == 0:
            sandbox.expire_sessions()
    assert _keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]
    assert sandbox.stats()["logins"] == 2


def test_incremental_read_then_nothing_new(sandbox, connect):
    connect()
    hook = SapB1Hook()
    first = hook.read_incremental("Invoices", None, select=["DocTotal"])
    keys = [r["DocEntry"] for page in first for r in page]
    assert _keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]
    cursor = SapCursor.from_dict(json.loads(json.dumps(first.cursor.to_dict())))
    second = hook.read_incremental("Invoices", cursor, select=["DocTotal"])
    # Only records stamped within the last seconds of the server clock may come again.
    assert sum(len(page) for page in second) <= len(keys) // 100
    assert second.cursor is not None


def test_raw_reads_yield_the_records_as_sent_with_the_same_cursor(sandbox, connect):
    connect()
    hook = SapB1Hook()
    as_dicts = hook.read_incremental("Invoices", None, select=["DocTotal"], page_size=300)
    dict_records = [r for page in as_dicts for r in page]
    as_sent = hook.read_incremental("Invoices", None, select=["DocTotal"], page_size=300, raw=True)
    raw_records = [r for page in as_sent for r in page]
    assert all(isinstance(r, msgspec.Raw) for r in raw_records)
    assert [msgspec.json.decode(r) for r in raw_records] == dict_records
    assert as_sent.cursor == as_dicts.cursor
    # From a cursor, the raw read drops what the cursor has seen, as the dict read does.
    again = hook.read_incremental("Invoices", as_dicts.cursor, select=["DocTotal"], raw=True)
    assert [msgspec.json.decode(r) for page in again for r in page] == [
        r for page in hook.read_incremental("Invoices", as_dicts.cursor, select=["DocTotal"]) for r in page
    ]


# -- faults ----------------------------------------------------------------------------------------


def test_reads_under_503s_and_resets_return_exactly_the_source(sandbox, connect):
    connect()
    sandbox.faults(error_rate=0.1, reset_rate=0.05, seed=7)
    keys = _read_all(SapB1Hook(retry_policy=FAST_RETRIES), page_size=100)
    sandbox.faults()
    truth = sandbox.truth("Invoices")
    assert len(keys) == len(set(keys)) == truth["count"]
    assert _keys_digest(keys) == truth["keys_sha256"]


def _order_payloads(hook: SapB1Hook, count: int, prefix: str) -> list[dict]:
    customer = hook.find_by("BusinessPartners", "CardType", "cCustomer", select="CardCode")
    item = next(hook.iter_records("Items", select="ItemCode", top=1))
    return [
        {
            "CardCode": customer["CardCode"],
            "DocDate": "2024-05-01",
            "DocDueDate": "2024-05-31",
            "NumAtCard": f"{prefix}-{i:03d}",
            "DocumentLines": [{"ItemCode": item["ItemCode"], "Quantity": 1 + i % 3, "UnitPrice": 10.5}],
        }
        for i in range(count)
    ]


def test_batch_creates_under_faults_make_exactly_one_document_per_input(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = _order_payloads(hook, 50, "BATCH")
    before = sandbox.truth("Orders")["count"]
    sandbox.faults(
        error_rate=0.1, reset_rate=0.05, reset_after_write_rate=0.1, error_after_write_rate=0.05, seed=11
    )
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard", chunk_size=10)
    # Again: everything is already there, so nothing is created twice.
    again = hook.create_many("Orders", payloads, dedupe_field="NumAtCard", chunk_size=10)
    sandbox.faults()
    assert [r.outcome for r in results] == ["created"] * 50
    assert [r.outcome for r in again] == ["skipped"] * 50
    assert sandbox.truth("Orders")["count"] == before + 50
    for payload in payloads[::7]:
        assert hook.count("Orders", odata_eq("NumAtCard", payload["NumAtCard"])) == 1


def test_single_creates_under_faults_are_never_duplicated(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = _order_payloads(hook, 20, "ONE")
    before = sandbox.truth("Orders")["count"]
    sandbox.faults(
        error_rate=0.1, reset_rate=0.05, reset_after_write_rate=0.15, error_after_write_rate=0.05, seed=3
    )
    created = [hook.create_if_absent("Orders", p, dedupe_field="NumAtCard")[1] for p in payloads]
    sandbox.faults()
    assert all(created)
    assert sandbox.truth("Orders")["count"] == before + 20
    assert hook.count("Orders", "startswith(NumAtCard, 'ONE-')") == 20


def test_one_bad_record_fails_alone_in_its_batch(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    payloads = _order_payloads(hook, 6, "MIX")
    payloads[2]["CardCode"] = "NO-SUCH-PARTNER"
    results = hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    assert [r.outcome for r in results] == ["created", "created", "failed", "created", "created", "created"]
    assert results[2].error
    assert results[2].code is not None


# -- TLS -------------------------------------------------------------------------------------------


def test_self_signed_server_is_refused_without_ca_bundle_or_pin(sandbox, connect):
    connect(extra={"timezone": "America/Chicago"})
    with pytest.raises(SapB1TLSError) as caught:
        SapB1Hook().count("Invoices")
    message = str(caught.value)
    assert "CA bundle" in message
    assert "fingerprint" in message
    assert "urllib3" not in message
    assert sandbox.stats()["logins"] == 0


def test_pinned_fingerprint_accepts_the_server_and_a_wrong_pin_is_refused(sandbox, connect):
    connect(extra={"cert_fingerprint": sandbox.cert_sha256})
    assert SapB1Hook().count("Invoices") == sandbox.truth("Invoices")["count"]
    wrong = "00" * 32
    connect(extra={"cert_fingerprint": wrong})
    with pytest.raises(SapB1TLSError):
        SapB1Hook().count("Invoices")


def test_verification_off_works_and_warns(sandbox, connect, caplog):
    connect(extra={"verify_tls": False})
    caplog.set_level(logging.WARNING)
    assert SapB1Hook().count("Invoices") == sandbox.truth("Invoices")["count"]
    assert "verification is switched off" in caplog.text


# -- login errors and the connection test ----------------------------------------------------------


def test_wrong_password_is_a_login_error(sandbox, connect):
    connect(password="not-the-password")
    with pytest.raises(SapB1LoginError) as caught:
        SapB1Hook().count("Invoices")
    assert "password" in str(caught.value)
    assert "not-the-password" not in str(caught.value)


def test_wrong_company_says_names_are_case_sensitive(sandbox, connect):
    connect(schema=COMPANY.lower())
    with pytest.raises(SapB1LoginError) as caught:
        SapB1Hook().count("Invoices")
    assert "case-sensitive" in str(caught.value)


def test_locked_user_is_told_an_administrator_must_unlock_it(sandbox, connect):
    sandbox.config(lock_after_failures=2)
    connect(password="wrong-password-x")
    for _ in range(2):
        with pytest.raises(SapB1LoginError):
            SapB1Hook().count("Invoices")
    connect()
    with pytest.raises(SapB1UserLockedError) as caught:
        SapB1Hook().count("Invoices")
    assert "an administrator must unlock the user in SAP" in str(caught.value)
    assert caught.value.code == 10000962


def test_unreachable_service_layer_names_the_service_manager_and_port(connect):
    connect(host="https://127.0.0.1:9/b1s/v2/")
    with pytest.raises(SapB1UnreachableError) as caught:
        SapB1Hook(retry_policy=RetryPolicy(max_attempts=2, initial_wait=0, max_wait=0)).count("Invoices")
    assert "Service Manager" in str(caught.value)
    assert "port 50000" in str(caught.value)


def test_connection_test_reports_readable_areas(sandbox, connect):
    connect()
    ok, message = SapB1Hook().test_connection()
    assert ok, message
    assert "invoices" in message
    assert "business partners" in message
    assert PASSWORD not in message


def test_connection_test_explains_a_failed_login(sandbox, connect):
    connect(password="wrong-password-x")
    ok, message = SapB1Hook().test_connection()
    assert not ok
    assert "wrong-password-x" not in message


# -- secrets -----------------------------------------------------------------------------------------


def test_no_password_or_session_id_in_any_log_line_or_error_of_a_full_run(sandbox, connect, caplog, capfd):
    connect()
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_b1", "filelock"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    errors: list[str] = []
    session_ids: set[str] = set()

    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    cache = SessionCache(connect.cache_dir, hook.base_url, COMPANY, USER, PASSWORD)
    hook.count("Invoices")
    session_ids.update(cache.load().cookies.values())
    sandbox.expire_sessions()
    list(hook.iter_pages("Invoices", select="DocEntry", page_size=500))
    session_ids.update(cache.load().cookies.values())
    sandbox.faults(error_rate=0.1, reset_rate=0.05, reset_after_write_rate=0.1, seed=5)
    payloads = _order_payloads(hook, 10, "LOG")
    hook.create_many("Orders", payloads, dedupe_field="NumAtCard")
    sandbox.faults()
    for bad in ({"password": "wrong-password-x"}, {"schema": "nope"}):
        connect(**bad)
        try:
            SapB1Hook().count("Invoices")
        except Exception as exc:
            errors.append(str(exc))
            errors.append(repr(exc))
    connect(extra={})
    try:
        SapB1Hook().count("Invoices")
    except Exception as exc:
        errors.append(str(exc))
    captured = capfd.readouterr()
    everything = "\n".join([caplog.text, captured.out, captured.err, *errors])
    assert len(session_ids) >= 2
    assert PASSWORD not in everything
    assert "wrong-password-x" not in everything
    for session_id in session_ids:
        if len(session_id) >= 5:
            assert session_id not in everything
