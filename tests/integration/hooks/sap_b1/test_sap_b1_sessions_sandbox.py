"""SAP sessions against the sandbox over real HTTPS: shared across processes and threads, renewed, re-sent once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from sap_hook_helpers import FAST_RETRIES, keys_digest

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapB1SessionExpiredError
from airflow_provider_b1.utils.retry import RetryPolicy

# A task process: imports first (Airflow takes seconds to import), says "ready", waits for
# "go", then reads through the hook. Overlapping the imports keeps the tests fast while the
# reads themselves happen exactly when the test says.
_CHILD = """
import sys
from airflow_provider_b1.hooks.sap_b1 import SapB1Hook, SapB1SessionExpiredError
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
    assert keys_digest(keys) == sandbox.truth("Invoices")["keys_sha256"]
    assert sandbox.stats()["logins"] == 2


# -- the session as the hook's requests auth ---------------------------------------------------------


def test_threads_of_one_hook_starting_cold_together_share_one_login(sandbox, connect):
    connect()
    sandbox.faults(login_delay=0.5)
    hook = SapB1Hook()
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(hook.count("Invoices"))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [sandbox.truth("Invoices")["count"]] * 6
    assert sandbox.stats()["logins"] == 1
    assert hook.sap_session.logins == 1


def test_two_session_expiries_in_a_row_are_retried_with_a_fresh_session_and_the_call_succeeds(
    sandbox, connect
):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    hook.login()
    # The call's session is dropped, and so is the fresh one its re-send carries.
    sandbox.faults(script=[{"kind": "expire_session", "match": "GET Invoices", "times": 2}])
    assert hook.count("Invoices") == sandbox.truth("Invoices")["count"]
    stats = sandbox.stats()
    assert stats["faults_injected"] == {"expire_session": 2}
    assert stats["logins"] == 3  # the first session, the re-send's, the retry's


def test_two_session_expiries_in_a_row_on_a_write_are_retried_and_it_is_applied_once(sandbox, connect):
    connect()
    hook = SapB1Hook(retry_policy=FAST_RETRIES)
    code = hook.find_by("BusinessPartners", "CardType", "cCustomer", select="CardCode")["CardCode"]
    # A write whose rows would be added twice if it were ever applied twice: SAP refused it before doing anything.
    sandbox.faults(script=[{"kind": "expire_session", "match": "PATCH BusinessPartners", "times": 2}])
    hook.update("BusinessPartners", code, {"BPAddresses": [{"AddressName": "Twice?", "Street": "x"}]})
    addresses = hook.get("BusinessPartners", code, select="BPAddresses")["BPAddresses"]
    assert [a["AddressName"] for a in addresses].count("Twice?") == 1
    assert sandbox.stats()["faults_injected"] == {"expire_session": 2}


def test_a_server_that_expires_every_session_ends_with_a_clear_error_after_the_policys_attempts(
    sandbox, connect
):
    connect()
    policy = RetryPolicy(max_attempts=3, max_elapsed=60, initial_wait=0.01, max_wait=0.05)
    hook = SapB1Hook(retry_policy=policy)
    hook.login()
    sandbox.faults(session_expiry_rate=1.0)  # every call's session is dropped before it is handled
    with pytest.raises(SapB1SessionExpiredError, match="GET Invoices/\\$count even after a fresh login"):
        hook.count("Invoices")
    stats = sandbox.stats()
    # Each of the 3 attempts: the call, one fresh login, one re-send; then it stops.
    assert stats["requests"]["GET Invoices"] == 2 * policy.max_attempts
    assert stats["logins"] == 1 + policy.max_attempts


def test_get_conn_sends_with_the_session_and_logs_in_again_when_sap_dropped_it(sandbox, connect):
    connect()
    hook = SapB1Hook()
    conn = hook.get_conn()
    first = conn.get(hook.base_url + "Items?$top=1", timeout=30)
    assert first.status_code == 200
    assert len(first.json()["value"]) == 1
    sandbox.expire_sessions()
    again = conn.get(hook.base_url + "Items?$top=1", timeout=30)
    assert again.status_code == 200
    assert [r.status_code for r in again.history] == [401]
    assert sandbox.stats()["logins"] == 2
    hook.close()
    # closing the client does not end the shared session: a new hook of another task reuses it
    assert SapB1Hook().count("Items") > 0
    assert sandbox.stats()["logins"] == 2


def test_each_session_slot_logs_in_once_and_slots_never_share_a_session(sandbox, connect):
    """Writers side by side hold a session each (SAP serves a session's requests one at a time);
    task processes of a worker still share each slot's session through the cache."""
    connect()
    hook = SapB1Hook()
    hooks = [hook, hook.with_session(1), hook.with_session(2), SapB1Hook().with_session(1)]
    for each in hooks:
        assert each.count("Invoices") == sandbox.truth("Invoices")["count"]
    assert sandbox.stats()["logins"] == 3  # slots 0, 1 and 2; the second slot-1 hook reuses its cache
    ids = [each.sap_session.cache.load().session_id for each in hooks]
    assert len(set(ids[:3])) == 3
    assert ids[3] == ids[1]
    assert "slot=2" in repr(hooks[2].sap_session)
    assert ids[2] not in repr(hooks[2].sap_session)
    with pytest.raises(ValueError, match="session_slot"):
        SapB1Hook(session_slot=-1)
