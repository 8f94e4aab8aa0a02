"""The CeleryExecutor deployment of ``docker-compose.yaml``, started natively, runs the warehouse
and Teams DAGs.

PostgreSQL (metadata and warehouse), Redis as the broker, api-server, scheduler, dag-processor,
triggerer and two Celery workers with a session cache each (:mod:`celery_stack`). A manual run of
``sap_b1_to_warehouse`` goes through the workers to success; the warehouse then equals SAP; a run
of ``sap_b1_to_teams`` sends each SAP document its routing names one card per destination, the
bot's calls counted in Redis, and a second run sends none; the SAP sandbox counted exactly one
login per worker although each worker ran several tasks that call SAP; and stopping the topology
leaves no process behind. Under ``CI=true`` a topology that
cannot start (no PostgreSQL, no Redis) fails the test; elsewhere it is skipped.

It starts a whole deployment of its own (six Airflow processes) and takes about two minutes on
two cores, so the suite runs it only when asked: ``B1_CELERY_TOPOLOGY=1 ./run tests
tests/integration/live/test_celery_topology.py``. ``./run celery`` starts the same topology for
people and runs every flow through it.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest
import redis
from celery_stack import REDIS_URL, SHARED_SETTINGS, TEAMS_DAG, WAREHOUSE_DAG, WORKERS, celery_topology
from live_airflow import LiveAirflowError, ci_requires_it

pytestmark = pytest.mark.skipif(
    os.environ.get("B1_CELERY_TOPOLOGY") != "1",
    reason="the Celery deployment test runs when asked (B1_CELERY_TOPOLOGY=1), or use ./run celery",
)

SAP_TASKS = {"load_master", "check_deletions", "reconcile"}
"""Tasks of the warehouse DAG that call SAP whatever the DAG's partitioning."""


def test_the_warehouse_and_teams_dags_run_through_two_celery_workers_with_one_sap_login_each():
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            topology = stack.enter_context(celery_topology(("warehouse", "teams")))
        except LiveAirflowError as exc:
            if ci_requires_it():
                pytest.fail(f"The Celery topology is required under CI=true and did not start:\n{exc}")
            pytest.skip(f"The Celery topology could not be started here:\n{exc}")
        ready = time.monotonic() - started
        settings = topology.settings()
        assert settings["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        for key, value in SHARED_SETTINGS.items():
            assert value is None or settings[key] == value, key

        run = topology.run_dag(WAREHOUSE_DAG)
        instances = topology.task_instances(WAREHOUSE_DAG, run["dag_run_id"])
        states = {task: ti["state"] for task, ti in instances.items()}
        assert run["state"] == "success", f"{states}\n{topology.airflow.log_tails(20)}"
        ran = {task for task, state in states.items() if state == "success"}
        assert set(states.values()) <= {"success", "skipped"}, states
        assert ran >= SAP_TASKS, states
        # Every task went through the Celery queue to a worker, each one to exactly one worker.
        assert {instances[task]["queue"] for task in ran} == {topology.queue}
        handed = {worker.name: worker.task_ids(run["dag_run_id"]) for worker in topology.workers}
        assert sorted(task for tasks in handed.values() for task in tasks) == sorted(ran), handed
        assert all(handed.values()), f"a worker ran no task: {handed}"

        assert topology.warehouse_differences() == {}

        # Teams: every card the routing names for SAP's documents, each once, and no more.
        teams_run = topology.run_dag(TEAMS_DAG)
        assert teams_run["state"] == "success", topology.airflow.log_tails(20)
        cards = topology.teams_cards()
        assert {d: (c["expected"], c["received"]) for d, c in cards.items()} == {
            d: (c["expected"], c["expected"]) for d, c in cards.items()
        }
        assert not [c for c in cards.values() if c.get("missing") or c.get("duplicated")], cards
        assert {"webhook:b1_teams_webhook_default"} < set(cards)  # and the bot's chat(s)
        assert topology.teams("stats")["rate_limited"] == 0
        assert redis.Redis.from_url(REDIS_URL).keys("b1:ratelimit:teams-bot-*")  # one count for all workers
        posts = topology.teams("stats")["posts"]
        assert topology.run_dag(TEAMS_DAG)["state"] == "success"
        assert topology.teams("stats")["posts"] == posts

        # One login per worker, kept in that worker's cache, shared by all of its tasks.
        stats = topology.sap("stats")
        assert stats["failed_logins"] == 0
        assert stats["logins"] == len(WORKERS), (stats["logins"], handed)
        assert stats["live_sessions"] == len(WORKERS)
        assert [len(worker.session_files()) for worker in topology.workers] == [1] * len(WORKERS)
        assert max(len(tasks) for tasks in handed.values()) >= 2, handed  # a login served several tasks

        stopping = time.monotonic()
        statuses = topology.stop()
        assert topology.running_processes() == [], "processes of the topology outlived stop()"
        stopped = time.monotonic() - stopping
    print(
        f"celery topology: ready {ready:.1f} s, run {run['state']}, stopped in {stopped:.1f} s, "
        f"{time.monotonic() - started:.1f} s in all; tasks per worker {handed}; SAP logins {stats['logins']}; "
        f"exit statuses {statuses}"
    )
