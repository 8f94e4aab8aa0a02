"""The Airflow UI path in a real browser: the provider's connection forms, their Test buttons, the
warehouse DAG's trigger form, a task's log, and clearing a task.

Debian's Chromium driven by Playwright against the session's live Airflow (``live_airflow``) and
the sandboxes. Each connection is added through the form, as a user would type it, and its Test
button pressed; the message Airflow shows is asserted on the page. Each step stores a screenshot
in ``test-artifacts/browser/`` (its path is printed at the end of the session).

Most connections are saved with the port left empty, as a user leaves it: Airflow 3.3.2's Test
button then sends port 0, which the provider's api-server plugin reads as the stored null
(``airflow_provider_b1.plugins.connection_test_port``); without it every such test answered
"Bad Request".
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from live_airflow import FINISHED_TI_STATES
from live_helpers import SAP_COMPANY, SAP_PASSWORD, SAP_USER, WAREHOUSE_DAG, unpaused
from playwright.sync_api import expect

from airflow_provider_b1.connections import CONNECTION_TYPES
from airflow_provider_b1.hooks.sap_b1 import TEST_AREAS

expect.set_options(timeout=30_000)  # a page's first paint (and its translations) on a busy machine

HOOK_NAMES = {c["connection-type"]: c["hook-name"] for c in CONNECTION_TYPES}
TEST_SECONDS = 60_000
"""Milliseconds a Test button may take (a login, a few reads) on a busy machine."""
TEST_ROUTE = re.compile(r"/api/v2/connections/test$")
RUN_SECONDS = 240
"""Seconds a task of the warehouse DAG may take to run in the live Airflow on a busy machine."""


def _connections_page(page: Any, airflow: Any) -> None:
    page.goto(f"{airflow.base_url}/connections")
    expect(page.get_by_role("button", name="Add Connection")).to_be_visible()


def _add_connection(
    page: Any,
    conn_id: str,
    connection: dict[str, Any],
    *,
    port: int | str | None = None,
    type_name: str | None = None,
) -> None:
    """Fill the Add Connection form as a user would: the type by its name, the standard fields
    the form shows (the port only when given: left empty, it is stored as null), the extras one by
    one; save."""
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill(conn_id)
    type_name = type_name or HOOK_NAMES[connection["conn_type"]]
    dialog.get_by_role("combobox").click()
    page.keyboard.type(type_name)
    page.get_by_role("option", name=type_name, exact=True).click()
    fields = {key: connection.get(key) for key in ("host", "login", "password", "schema")}
    fields["port"] = port
    for name, value in fields.items():
        if value is not None:
            dialog.locator(f"[name={name}]").fill(str(value))
    page.shot(f"form-{conn_id}")
    extra = connection.get("extra") or {}
    if extra:
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for name, value in extra.items():
        field = dialog.locator(f"[name=element_{name}]")
        if isinstance(value, bool):
            if field.is_checked() != value:
                dialog.locator(f"[id='switch:element_{name}']").click()
        elif field.get_attribute("type") == "hidden":  # a choice among the schema's enum
            dialog.locator(f"[id=element_{name}] [role=combobox]").click()
            page.get_by_role("option", name=str(value), exact=True).click()
        else:
            field.fill(str(value))
    if extra:
        page.shot(f"form-{conn_id}-extras")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(_row(page, conn_id)).to_be_visible()


def _row(page: Any, conn_id: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=conn_id, exact=True))


def _press_test(page: Any, conn_id: str) -> dict[str, Any]:
    """Press the row's Test button; return the API's answer once the page shows its message."""
    with page.expect_response(TEST_ROUTE, timeout=TEST_SECONDS) as answer:
        _row(page, conn_id).get_by_role("button", name="Test Connection").click()
    reply = answer.value
    assert reply.status == 200, f"Test of {conn_id}: {reply.status} {reply.text()}"
    result = reply.json()
    title = "Test Connection Successful" if result["status"] else "Test Connection Failed"
    toast = page.locator("[data-scope=toast][data-part=root]").filter(has_text=result["message"])
    expect(toast.last).to_contain_text(title)
    page.wait_for_timeout(500)  # the toast slides in
    page.shot(f"test-{conn_id}")
    _dismiss_toasts(page)
    return result


def _dismiss_toasts(page: Any) -> None:
    """Let the messages go before the next button is pressed, as a user would: they stack up from
    the bottom right over the rows' buttons, and a pointer resting on them (where the last button
    was pressed) holds them there. Closed with their close button where they have one."""
    page.mouse.move(0, 0)
    toasts = page.locator("[data-scope=toast][data-part=root]")
    closers = toasts.locator("[data-part=close-trigger]")
    while closers.count():
        closers.first.click()
        page.mouse.move(0, 0)
    expect(toasts).to_have_count(0, timeout=30_000)


@pytest.fixture(scope="module")
def connections_page(browser, live_airflow):
    browser.goto(f"{live_airflow.base_url}/dags")
    expect(browser.get_by_role("link", name=WAREHOUSE_DAG).first).to_be_visible()
    browser.shot("airflow-started")
    _connections_page(browser, live_airflow)
    return browser


def test_sap_connection_through_the_form_lists_its_readable_data_areas(
    connections_page, live_airflow, live_sap
):
    """Saved with the port left empty (the URL names it), the connection's Test button sends port 0
    for the stored null, and the test runs."""
    page, sap = connections_page, live_sap
    connection = {
        "conn_type": "sap_b1",
        "host": f"{sap.base_url}/b1s/v2/",
        "schema": SAP_COMPANY,
        "login": SAP_USER,
        "password": SAP_PASSWORD,
        "extra": {"ca_bundle": sap.ca_path, "timezone": "America/Chicago"},
    }
    _add_connection(page, "sap_ui", connection)
    assert live_airflow.api("GET", "/connections/sap_ui")["port"] is None
    with page.expect_request(TEST_ROUTE) as sent:
        answer = _press_test(page, "sap_ui")
    assert sent.value.post_data_json["port"] == 0
    assert answer["status"] is True, answer
    assert f"company {SAP_COMPANY} as {SAP_USER} (Service Layer v2)" in answer["message"]
    readable = answer["message"].split("Readable: ", 1)[1].split(".")[0].split(", ")
    assert set(readable) <= {area for area, _ in TEST_AREAS}, answer["message"]
    assert {"business partners", "items", "sales orders", "invoices"} <= set(readable), answer["message"]


def test_a_test_of_another_host_than_the_stored_one_is_still_refused(connections_page):
    """The stored password is reused for the stored host only. The connection list's Test button
    always sends the stored host, so the request of ``sap_ui``'s button (port 0, password masked)
    is sent with another host, as a changed form or a hand-written call would send it: Airflow
    refuses it and the page says so."""
    page = connections_page

    def to_another_host(route: Any) -> None:
        body = {**route.request.post_data_json, "host": "https://elsewhere.invalid/b1s/v2/"}
        assert (body["port"], body["password"]) == (0, "***"), body
        route.continue_(post_data=json.dumps(body))

    page.route(TEST_ROUTE, to_another_host)
    try:
        with page.expect_response(TEST_ROUTE, timeout=TEST_SECONDS) as answer:
            _row(page, "sap_ui").get_by_role("button", name="Test Connection").click()
    finally:
        page.unroute(TEST_ROUTE, to_another_host)
    reply = answer.value
    assert reply.status == 400, reply.text()
    assert "The host or port to test differs from the stored connection" in reply.json()["detail"]
    toast = page.locator("[data-scope=toast][data-part=root]").filter(has_text="Test Connection Failed")
    expect(toast.last).to_contain_text("Bad Request")
    page.wait_for_timeout(500)  # the toast slides in
    page.shot("test-sap_ui-another-host")


def test_every_other_connection_type_passes_its_test_button(
    connections_page, live_servicetitan, salesforce_sandbox, teams_sandbox, looker_sandbox
):
    page = connections_page
    st = live_servicetitan.config
    cases = {
        "servicetitan_ui": {
            "conn_type": "servicetitan",
            "login": st.client_id,
            "password": st.client_secret,
            "extra": {
                "environment": "integration",
                "tenant_id": st.tenant_id,
                "app_key": st.app_key,
                "api_url": live_servicetitan.base_url,
                "auth_url": live_servicetitan.base_url,
                "ca_bundle": live_servicetitan.ca_path,
            },
        },
        "salesforce_ui": salesforce_sandbox.connection(),
        "teams_webhook_ui": teams_sandbox.webhook_connection(),
        "teams_bot_ui": teams_sandbox.bot_connection(
            test_conversation_id=teams_sandbox.tenant()["channels"][0]["conversation_id"]
        ),
        "looker_ui": looker_sandbox.connection(),
    }
    assert {c["conn_type"] for c in cases.values()} | {"sap_b1"} == set(HOOK_NAMES)
    for conn_id, connection in cases.items():
        _add_connection(page, conn_id, connection)
    for conn_id in cases:
        answer = _press_test(page, conn_id)
        assert answer["status"] is True, (conn_id, answer)


def test_a_wrong_password_and_an_untrusted_certificate_say_how_to_fix_them(connections_page, live_sap):
    """Saved with the port typed, which the Test button sends back as it is."""
    page, sap = connections_page, live_sap
    port = sap.base_url.rsplit(":", 1)[1]
    base = {
        "conn_type": "sap_b1",
        "host": f"{sap.base_url}/b1s/v2/",
        "schema": SAP_COMPANY,
        "login": SAP_USER,
    }
    _add_connection(
        page,
        "sap_wrong_password",
        {**base, "password": "not-the-password", "extra": {"ca_bundle": sap.ca_path}},
        port=port,
    )
    answer = _press_test(page, "sap_wrong_password")
    assert answer["status"] is False
    assert "check the user name and password" in answer["message"]
    assert "not-the-password" not in answer["message"]
    _add_connection(page, "sap_untrusted", {**base, "password": SAP_PASSWORD}, port=port)
    answer = _press_test(page, "sap_untrusted")
    assert answer["status"] is False
    assert (
        "presented a certificate that is not trusted; trust the certificate with a CA bundle"
        in (answer["message"])
    )


def test_a_sqlite_connection_for_the_embedded_warehouse_through_the_form(connections_page, tmp_path):
    """The README's embedded warehouse and audit trail use ``sqlite`` connections: the type is
    installed with the provider, its form saves one and its Test button reaches the file."""
    page = connections_page
    database = tmp_path / "warehouse.db"
    database.touch()
    _add_connection(page, "warehouse_ui", {"conn_type": "sqlite", "host": str(database)}, type_name="Sqlite")
    answer = _press_test(page, "warehouse_ui")
    assert answer["status"] is True, answer


# -- the warehouse DAG ----------------------------------------------------------------------------


def _wait_for_try(airflow: Any, run_id: str, task_id: str, try_number: int) -> None:
    path = f"/dags/{WAREHOUSE_DAG}/dagRuns/{run_id}/taskInstances/{task_id}"

    def finished() -> dict[str, Any] | None:
        ti = airflow.api("GET", path)
        done = ti["try_number"] >= try_number and ti["state"] in ("success", "failed", "up_for_retry")
        return ti if done else None

    ti = airflow.wait(finished, timeout=RUN_SECONDS, interval=1.0, what=f"{task_id}, try {try_number}")
    assert ti["state"] == "success", ti
    assert ti["try_number"] == try_number, ti


def _skip_the_others(airflow: Any, run_id: str, task_id: str) -> None:
    """Skip every unfinished task of the run but ``task_id``: this test reads one task, and the
    rest of the DAG would only compete with it for the machine."""
    path = f"/dags/{WAREHOUSE_DAG}/dagRuns/{run_id}/taskInstances"
    for ti in airflow.api("GET", path, params={"limit": 100})["task_instances"]:
        if ti["task_id"] == task_id or ti["state"] in FINISHED_TI_STATES:
            continue
        target = f"{path}/{ti['task_id']}" + (f"/{ti['map_index']}" if ti["map_index"] >= 0 else "")
        airflow.api("PATCH", target, json={"new_state": "skipped"}, expect=(200, 404, 409))


def _task_log(page: Any, airflow: Any, run_id: str, task_id: str) -> list[str]:
    """The log lines of the task's latest try, as its page shows them."""
    page.goto(f"{airflow.base_url}/dags/{WAREHOUSE_DAG}/runs/{run_id}/tasks/{task_id}")
    expect(page.get_by_text(re.compile(r"\w+: done, ")).last).to_be_visible(timeout=60_000)
    return page.inner_text("body").splitlines()


def _done_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if re.search(r"\w+: done, [\d,]+ read in ", line)]


def test_trigger_a_window_read_its_log_and_clear_a_task(browser, live_airflow):
    """A window from the trigger form reaches the run; the log of ``load_master`` shows what it
    reads, a progress line and each entity's summary; cleared, it runs again and changes nothing."""
    page, airflow = browser, live_airflow
    since, until = "2024-01-01T00:00:00Z", "2030-01-01T00:00:00Z"
    with unpaused(airflow, WAREHOUSE_DAG):
        before = {run["dag_run_id"] for run in airflow.dag_runs(WAREHOUSE_DAG, run_type="manual")}
        page.goto(f"{airflow.base_url}/dags/{WAREHOUSE_DAG}")
        page.get_by_role("button", name="Trigger Dag").click()
        dialog = page.get_by_role("dialog")
        dialog.locator("input[name=element_since]").fill(since)
        dialog.locator("input[name=element_until]").fill(until)
        page.shot("trigger-form")
        dialog.get_by_role("button", name="Trigger", exact=True).click()
        expect(dialog).to_be_hidden()
        runs = airflow.wait_for_runs(WAREHOUSE_DAG, len(before) + 1, run_type="manual")
        (run,) = [r for r in runs if r["dag_run_id"] not in before]
        run_id = run["dag_run_id"]
        assert (run["conf"]["since"], run["conf"]["until"]) == (since, until)

        _wait_for_try(airflow, run_id, "load_master", 1)
        _skip_the_others(airflow, run_id, "load_master")
        lines = _task_log(page, airflow, run_id, "load_master")
        page.shot("log-load_master")
        assert any("BusinessPartners: window 2024-01-01T00:00:00+00:00 .. 2030-01-01" in x for x in lines)
        assert any(re.search(r"\w+: page \d+, [\d,]+ read in [\d.]+ s \([\d,]+/s\)", x) for x in lines), lines
        first = _done_lines(lines)
        assert {x.split(": done")[0].split()[-1] for x in first} >= {"BusinessPartners", "Items"}, first

        page.get_by_role("button", name="Press shift+c to clear").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("button", name="Downstream", exact=True).click()  # on by default
        expect(dialog.get_by_text("Affected Tasks: 1")).to_be_visible()
        page.shot("clear-load_master")
        dialog.get_by_role("button", name="Confirm").click()
        expect(dialog).to_be_hidden()
        _wait_for_try(airflow, run_id, "load_master", 2)
        lines = _task_log(page, airflow, run_id, "load_master")
        page.shot("log-load_master-try-2")
        again = _done_lines(lines)
        assert len(again) == len(first), (first, again)
        for line in again:
            read = re.search(r"done, ([\d,]+) read", line)[1]
            assert f"0 created, 0 updated, {read} unchanged, 0 skipped, 0 failed" in line, line
        airflow.close_active_runs(WAREHOUSE_DAG)
