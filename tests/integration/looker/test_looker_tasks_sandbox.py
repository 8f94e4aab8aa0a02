"""Looker operators, trigger and sandbox behaviour over real HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests
from airflow.exceptions import TaskDeferred

from airflow_provider_b1.hooks.looker import LookerPdtBuildError
from airflow_provider_b1.operators.looker import LookerBuildPdtOperator, LookerTriggerDatagroupOperator
from airflow_provider_b1.triggers.looker import LookerPdtBuildTrigger


def _verify(sandbox):
    return sandbox.ca_path or True


def _token(sandbox) -> str:
    return requests.post(
        f"{sandbox.base_url}/api/4.0/login",
        data={"client_id": "looker-client-id", "client_secret": "looker-client-secret-1"},
        verify=_verify(sandbox),
        timeout=5,
    ).json()["access_token"]


def test_sandbox_accepts_token_and_bearer_and_rejects_unknown(sandbox):
    token = _token(sandbox)
    url = f"{sandbox.base_url}/api/4.0/datagroups"
    for scheme in ("token", "Bearer"):
        assert requests.get(
            url, headers={"Authorization": f"{scheme} {token}"}, verify=_verify(sandbox), timeout=5
        ).ok
    bad = requests.get(url, headers={"Authorization": "token nope"}, verify=_verify(sandbox), timeout=5)
    assert bad.status_code == 401
    assert sandbox.stats()["auth_schemes"] == {"token": 1, "Bearer": 1}


def test_sandbox_wrong_credentials_answer_404_like_looker(sandbox):
    answer = requests.post(
        f"{sandbox.base_url}/api/4.0/login",
        data={"client_id": "x", "client_secret": "y"},
        verify=_verify(sandbox),
        timeout=5,
    )
    assert answer.status_code == 404
    assert answer.json()["message"] == "Not found"


@pytest.mark.parametrize("status", [422, 400])
def test_sandbox_rejects_future_datagroup_times(sandbox, status):
    sandbox.control("config", {"future_status": status})
    answer = requests.patch(
        f"{sandbox.base_url}/api/4.0/datagroups/1",
        json={"stale_before": int(time.time()) + 600},
        headers={"Authorization": f"token {_token(sandbox)}"},
        verify=_verify(sandbox),
        timeout=5,
    )
    assert answer.status_code == status
    assert answer.json()["errors"][0]["field"] == "stale_before"


def test_sandbox_token_expires_after_configured_seconds(sandbox):
    sandbox.control("config", {"token_expiry_seconds": 1})
    token = _token(sandbox)
    time.sleep(1.05)
    answer = requests.get(
        f"{sandbox.base_url}/api/4.0/user",
        headers={"Authorization": f"token {token}"},
        verify=_verify(sandbox),
        timeout=5,
    )
    assert answer.status_code == 401


def test_trigger_operator_triggers_by_model_and_name(sandbox, looker_conn):
    op = LookerTriggerDatagroupOperator(
        task_id="t", datagroups=["b1_warehouse::b1_warehouse_datagroup", "2"], looker_conn_id=looker_conn
    )
    done = op.execute({})
    assert [d["datagroup_id"] for d in done] == ["1", "2"]
    assert [t["id"] for t in sandbox.stats()["datagroup_triggers"]] == ["1", "2"]
    assert sandbox.stats()["logins"] == 1


def test_build_operator_polls_until_complete(sandbox, looker_conn):
    op = LookerBuildPdtOperator(
        task_id="b",
        model="b1_warehouse",
        view="gl_account_monthly",
        poll_interval=0.01,
        looker_conn_id=looker_conn,
    )
    result = op.execute({})
    assert result["status"] == "complete"


def test_build_operator_fails_on_failed_build(sandbox, looker_conn):
    sandbox.control("config", {"failing_pdts": ["gl_account_monthly"]})
    op = LookerBuildPdtOperator(
        task_id="b", model="b1_warehouse", view="gl_account_monthly", poll_interval=0.01
    )
    with pytest.raises(LookerPdtBuildError):
        op.execute({})


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload
    return None


def test_deferrable_build_defers_and_trigger_reports_completion(sandbox, looker_conn):
    sandbox.control("config", {"pdt_build_polls": 3})
    op = LookerBuildPdtOperator(
        task_id="b",
        model="b1_warehouse",
        view="revenue_by_profit_center",
        deferrable=True,
        poll_interval=0.01,
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, LookerPdtBuildTrigger)
    _, kwargs = trigger.serialize()
    event = asyncio.run(_first_event(LookerPdtBuildTrigger(**kwargs)))
    assert event["status"] == "success"
    assert event["pdt_status"] == "complete"
    assert op.execute_complete({}, event)["status"] == "complete"


def test_trigger_reports_failed_build_and_times_out(sandbox, looker_conn):
    sandbox.control("config", {"failing_pdts": ["gl_account_monthly"]})
    from airflow_provider_b1.hooks.looker import LookerHook

    hook = LookerHook()
    failing = hook.start_pdt_build("b1_warehouse", "gl_account_monthly")
    event = asyncio.run(_first_event(LookerPdtBuildTrigger(failing, poll_interval=0.01)))
    assert (event["status"], event["pdt_status"]) == ("error", "error")

    sandbox.control("config", {"pdt_build_polls": 1000, "failing_pdts": []})
    slow = hook.start_pdt_build("b1_warehouse", "gl_account_monthly")
    event = asyncio.run(
        _first_event(LookerPdtBuildTrigger(slow, poll_interval=0.01, deadline=time.time() + 0.1))
    )
    assert event["status"] == "timeout"
