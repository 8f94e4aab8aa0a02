"""Issue 9: the per-write cost model. A document write takes ``write_seconds + per_line_seconds x
lines``; a session is served one request at a time; sessions run side by side up to ``nodes``.

Over HTTPS to the running sandbox; every test reseeds the company afterwards (``sap_control``),
which also switches the model off again. Times are small: the assertions are lower bounds and
the gate's own counters, never tight upper bounds.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

WRITE, LINE = 0.2, 0.05


@pytest.fixture
def costly(sap_https, sap_control, sap_login):
    """``(root, new_session(), control)`` with the cost model on (two nodes)."""
    r = sap_control("POST", "cost", {"write_seconds": WRITE, "per_line_seconds": LINE, "nodes": 2})
    assert r.status_code == 200, r.text
    assert r.json()["cost"]["nodes"] == 2

    def new_session() -> requests.Session:
        session = sap_login(sap_https.base_url, "v2", verify=sap_https.ca_path)
        session.trust_env = False
        return session

    return f"{sap_https.base_url}/b1s/v2/", new_session, sap_control


def invoice(lines: int = 2) -> dict:
    return {
        "CardCode": "C00002",
        "DocType": "dDocument_Service",
        "NumAtCard": uuid.uuid4().hex,
        "DocumentLines": [{"AccountCode": "421001", "LineTotal": 10.0} for _ in range(lines)],
    }


def twin(session: requests.Session) -> requests.Session:
    """Another connection on the same Service Layer session (same cookies)."""
    other = requests.Session()
    other.verify, other.trust_env = session.verify, False
    other.cookies.update(session.cookies)
    return other


def run_together(*calls) -> list[float]:
    """Start the calls at once; each one's elapsed seconds."""
    took = [0.0] * len(calls)

    def run(i: int) -> None:
        start = time.monotonic()
        calls[i]()
        took[i] = time.monotonic() - start

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # in this order
    for thread in threads:
        thread.join(timeout=30)
    return took


def test_a_write_takes_its_cost_and_a_read_on_the_same_session_waits_behind_it(costly):
    root, new_session, control = costly
    session, other = new_session(), new_session()
    start = time.monotonic()
    assert session.post(root + "Invoices", json=invoice(4), timeout=30).status_code == 201
    assert time.monotonic() - start >= WRITE + 4 * LINE
    took = run_together(
        lambda: session.post(root + "Invoices", json=invoice(2), timeout=30),
        lambda: twin(session).get(root + "Items('A00001')?$select=ItemCode", timeout=30),
        lambda: other.get(root + "Items('A00001')?$select=ItemCode", timeout=30),
    )
    # The same session's read queued behind the write (started 0.05 s after it).
    assert took[1] >= WRITE + 2 * LINE - 0.05 - 0.01
    assert took[2] < took[1]  # another session's read did not
    stats = control("GET", "stats").json()["cost"]
    assert (stats["writes"], stats["lines"]) == (2, 6)
    assert stats["seconds"] == pytest.approx(2 * WRITE + 6 * LINE)
    assert stats["max_concurrency"] == 2


def test_sessions_run_side_by_side_up_to_the_nodes(costly):
    root, new_session, control = costly
    sessions = [new_session() for _ in range(3)]
    start = time.monotonic()
    run_together(*(lambda s=s: s.post(root + "Invoices", json=invoice(2), timeout=30) for s in sessions))
    elapsed = time.monotonic() - start
    one = WRITE + 2 * LINE
    assert elapsed >= 2 * one  # three writes on two nodes: two rounds
    stats = control("GET", "cost").json()["cost"]
    assert (stats["max_concurrency"], stats["writes"], stats["max_waiting"]) == (2, 3, 1)


def test_a_batch_costs_the_sum_of_its_documents(costly):
    root, new_session, control = costly
    session = new_session()
    parts = "".join(
        f"--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: {n}\r\n\r\n"
        f"POST /b1s/v2/Invoices HTTP/1.1\r\nContent-Type: application/json\r\n\r\n"
        f'{{"CardCode": "C00002", "DocType": "dDocument_Service", "NumAtCard": "B{n}-{uuid.uuid4().hex[:6]}", '
        f'"DocumentLines": [{{"AccountCode": "421001", "LineTotal": 5.0}}, {{"AccountCode": "421001", "LineTotal": 6.0}}]}}\r\n'
        for n in range(1, 4)
    )
    body = f"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n{parts}--cs--\r\n--b--\r\n".encode()
    start = time.monotonic()
    r = session.post(
        root + "$batch", data=body, headers={"Content-Type": "multipart/mixed; boundary=b"}, timeout=30
    )
    assert r.text.count("HTTP/1.1 201 Created") == 3, r.text
    assert time.monotonic() - start >= 3 * WRITE + 6 * LINE
    stats = control("GET", "cost").json()["cost"]
    # The login took a node too; the batch was one request.
    assert (stats["requests"], stats["logins"], stats["writes"], stats["lines"]) == (2, 1, 3, 6)
    assert stats["seconds"] == pytest.approx(3 * WRITE + 6 * LINE)


def test_the_cost_model_switches_off_and_refuses_bad_settings(costly):
    root, new_session, control = costly
    for bad in ({"nodes": 0}, {"write_seconds": -1}, {"per_line_seconds": "x"}, {"colour": 1}):
        assert control("POST", "cost", bad).status_code == 400, bad
    assert control("POST", "cost", {}).json() == {"cost": None}
    assert control("GET", "stats").json()["cost"] is None
    session = new_session()
    start = time.monotonic()
    assert session.post(root + "Invoices", json=invoice(20), timeout=30).status_code == 201
    assert time.monotonic() - start < WRITE + 20 * LINE
