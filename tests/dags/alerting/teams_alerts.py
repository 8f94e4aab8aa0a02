"""DAGs of the TeamsNotifier tests: a task that fails, and an approval asked in Teams.

Each is built by a function taking the notifier, so a test chooses the connection and the
destination; the module-level DAGs let ``dag.test()`` find the ids in this bundle.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import dag, task

from airflow_provider_b1.notifications.teams import TeamsNotifier

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def failing_alert(notifier: TeamsNotifier | None = None):
    notifier = notifier or TeamsNotifier()

    @dag(dag_id="teams_failing_alert", schedule=None, start_date=START, catchup=False)
    def build():
        @task(retries=0, on_failure_callback=notifier)
        def load_orders() -> None:
            raise RuntimeError("SAP refused the order: *CardCode* [C1](x) does not exist")

        load_orders()

    return build()


def approval_asked(notifier: TeamsNotifier | None = None, *, timeout_seconds: float = 600):
    notifier = notifier or TeamsNotifier()

    @dag(dag_id="teams_approval_asked", schedule=None, start_date=START, catchup=False)
    def build():
        ApprovalOperator(
            task_id="approve_payment_run",
            subject="Release the payment run?",
            body="12 vendor payments, 48,200.00 USD",
            defaults="Reject",
            response_timeout=dt.timedelta(seconds=timeout_seconds),
            notifiers=[notifier],
        )

    return build()


failing_alert()
approval_asked()
