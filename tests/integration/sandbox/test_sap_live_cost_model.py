"""Issue 13: the cost model of every request, over real HTTP against the running sandbox.

Reads cost ``read_seconds + records x (per_record_seconds x width + lines x per_line_read)``,
a login ``login_seconds``; one session is served one request at a time, at most ``nodes``
requests at once. Times are tens of milliseconds, so the wall-clock bounds are loose; the exact
arithmetic is checked on the gate's own counters (``GET /_sandbox/cost``).
"""

from __future__ import annotations

import threading
import time

import pytest
import requests

READ = 0.12
FAST = {"read_seconds": READ, "nodes": 4}


@pytest.fixture
def control(sap_https):
    """``control(method, path, body)`` on the control plane; the cost model is off afterwards.
    These tests only read, so the company needs no reseeding."""

    def call(method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(
            method, f"{sap_https.base_url}/_sandbox/{path}", json=body, verify=sap_https.ca_path, timeout=60
        )

    yield call
    assert call("POST", "cost", {}).status_code == 200


@pytest.fixture
def cost(sap_http, control, sap_login):
    """``(root, new_session, set_model, stats)``."""

    def set_model(**settings) -> dict:
        r = control("POST", "cost", settings)
        assert r.status_code == 200, r.text
        return r.json()["cost"]

    def stats() -> dict:
        return control("GET", "cost").json()["cost"]

    def new_session() -> requests.Session:
        session = sap_login(sap_http.base_url, "v2")
        session.trust_env = False
        return session

    return f"{sap_http.base_url}/b1s/v2/", new_session, set_model, stats


def twin(session: requests.Session) -> requests.Session:
    """Another connection on the same Service Layer session (same cookies)."""
    other = requests.Session()
    other.trust_env = False
    other.cookies.update(session.cookies)
    return other


def together(*calls) -> float:
    """Run the calls at once; the seconds until the last one is done."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call) -> None:
        barrier.wait(timeout=10)
        try:
            assert call().status_code == 200
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return time.monotonic() - start


def small_read(session: requests.Session, root: str):
    return lambda: session.get(root + "Items?$select=ItemCode&$top=1", timeout=30)


def test_two_reads_on_one_session_queue_and_on_two_sessions_run_side_by_side(cost):
    root, new_session, set_model, stats = cost
    one, two = new_session(), new_session()
    set_model(**FAST)
    same = together(small_read(one, root), small_read(twin(one), root))
    assert same >= 2 * READ - 0.01
    assert stats()["max_concurrency"] == 1
    apart = together(small_read(one, root), small_read(two, root))
    assert apart < 0.8 * same  # about one read's time, against two
    assert stats()["max_concurrency"] == 2


def test_with_two_nodes_four_sessions_take_two_rounds(cost):
    root, new_session, set_model, stats = cost
    sessions = [new_session() for _ in range(4)]
    set_model(read_seconds=READ, nodes=2)
    elapsed = together(*(small_read(s, root) for s in sessions))
    assert 2 * READ - 0.01 <= elapsed < 3 * READ
    counted = stats()
    assert (counted["max_concurrency"], counted["reads"], counted["queued"]) == (2, 4, 2)


def test_the_http_and_https_servers_share_one_gate(cost, sap_https):
    root, new_session, set_model, stats = cost
    session = new_session()
    over_tls = twin(session)
    over_tls.verify = sap_https.ca_path
    tls_root = f"{sap_https.base_url}/b1s/v2/"
    set_model(**FAST)
    assert together(small_read(session, root), small_read(over_tls, tls_root)) >= 2 * READ - 0.01
    assert stats()["max_concurrency"] == 1


def test_a_select_of_few_fields_costs_less_than_whole_records(cost):
    root, new_session, set_model, stats = cost
    session = new_session()
    set_model(read_seconds=0.001, per_record_seconds=0.002, per_line_read_seconds=0.0005)
    page = "Invoices?$orderby=DocEntry&$top=20"
    whole = session.get(root + page, timeout=30).json()["value"]
    lines = sum(len(inv["DocumentLines"]) for inv in whole)
    full = stats()
    assert (full["records"], full["read_lines"], full["width"]) == (20, lines, 20)
    assert full["seconds_by_kind"]["read"] == pytest.approx(0.001 + 20 * 0.002 + lines * 0.0005, abs=2e-6)
    set_model(read_seconds=0.001, per_record_seconds=0.002, per_line_read_seconds=0.0005)
    fields = "DocEntry,DocNum,CardCode,DocTotal,UpdateDate"
    narrow = session.get(root + f"{page}&$select={fields}", timeout=30).json()["value"]
    assert len(narrow) == 20
    selected = stats()
    assert selected["read_lines"] == 0  # no DocumentLines asked for, none sent
    share = selected["width"] / 20
    assert 0 < share < 0.05  # 5 of the invoice's ~270 properties
    assert selected["seconds_by_kind"]["read"] == pytest.approx(0.001 + 20 * 0.002 * share, abs=2e-6)
    assert selected["seconds"] < full["seconds"] / 10


def test_page_size_sets_the_cost_per_record(cost):
    root, new_session, set_model, stats = cost
    session = new_session()

    def read_all(page_size: int) -> dict:
        set_model(read_seconds=0.005, per_record_seconds=0.0001)
        url = root + "Invoices?$select=DocEntry&$filter=DocEntry le 100"
        keys: list[int] = []
        while url:
            body = session.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"}, timeout=30).json()
            keys += [v["DocEntry"] for v in body["value"]]
            url = root + body["@odata.nextLink"] if "@odata.nextLink" in body else ""
        assert len(keys) == 100
        return stats()

    small, large = read_all(10), read_all(100)
    assert (small["reads"], large["reads"]) == (10, 1)
    assert small["seconds"] / 100 > 5 * large["seconds"] / 100
    assert large["width"] == pytest.approx(small["width"])  # the same records, as wide
    assert large["seconds"] == pytest.approx(0.005 + 0.0001 * large["width"], abs=2e-6)
    assert small["seconds"] == pytest.approx(10 * 0.005 + 0.0001 * small["width"], abs=2e-6)


def test_a_login_costs_its_time_and_takes_a_node(cost):
    root, new_session, set_model, stats = cost
    set_model(login_seconds=0.15, nodes=1)
    start = time.monotonic()
    session = new_session()
    assert time.monotonic() - start >= 0.15
    assert session.get(root + "Items/$count", timeout=30).status_code == 200
    counted = stats()
    assert (counted["logins"], counted["counts"], counted["requests"]) == (1, 1, 2)
    assert counted["seconds_by_kind"]["login"] == pytest.approx(0.15, abs=2e-6)


def test_with_the_model_off_nothing_costs_anything(cost, control):
    root, new_session, set_model, stats = cost
    assert stats() is None  # off unless switched on
    set_model(read_seconds=0.3, login_seconds=0.3)
    assert control("POST", "cost", {}).json() == {"cost": None}
    start = time.monotonic()
    session = new_session()
    for _ in range(5):
        assert session.get(root + "Invoices?$top=20", timeout=30).status_code == 200
    assert time.monotonic() - start < 0.3
    assert control("GET", "stats").json()["cost"] is None
