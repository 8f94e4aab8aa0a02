"""Answering human-in-the-loop requests while ``dag.test()`` waits for them.

On Airflow 3.3 a HITL operator stores its request and parks the task in ``awaiting_input``;
``dag.test()`` then waits (polling the metadata database once a second) for something outside to
resume it. Two things do that in a deployment, and these helpers run each of them from a thread
of the test, against the same metadata database:

- :func:`answer` calls the function behind the REST API's
  ``PATCH .../taskInstances/{task_id}/{map_index}/hitlDetails`` (``update_hitl_detail``) with a
  user, exactly as the API server does after authenticating the caller: the answer is validated,
  written, and the task resumed through ``handle_event_submit``;
- :func:`time_out` runs the scheduler's ``check_awaiting_input_timeouts`` sweep once the request's
  deadline has passed: the defaults are written as the answer (or the task fails without them).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_b1.utils.hitl import answer, waiting


def fail_waiting(dag_id: str) -> None:
    """Fail every request of ``dag_id`` still waiting, so a ``dag.test()`` waiting for it ends."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.AWAITING_INPUT
        ).update({TaskInstance.state: TaskInstanceState.FAILED}, synchronize_session=False)


def answer_now(ti: Any, chosen: list[str], *, user: str = "ada", params_input: dict | None = None) -> Any:
    """Answer one parked request as the REST API's PATCH does; returns the API's response model."""
    return answer(ti, chosen, user=user, params_input=params_input)


def time_out_now() -> None:
    """One pass of the scheduler's sweep of HITL requests past their deadline."""
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    runner = SchedulerJobRunner.__new__(SchedulerJobRunner)  # the sweep needs only its logger
    SchedulerJobRunner.check_awaiting_input_timeouts(runner)


@dataclass
class Responder:
    """A thread that answers (or times out) the requests of one DAG as they appear.

    ``decide(ti)`` returns the options to choose for a parked task instance, or ``None`` to let
    it time out; ``before(ti)`` runs once for each request first (a test changes SAP there). ``expected`` requests are handled, then the thread ends; ``handled`` lists
    ``(task_id, map_index, choice)``.
    """

    dag_id: str
    decide: Callable[[Any], list[str] | None]
    expected: int = 1
    deadline: float = 60.0
    before: Callable[[Any], None] | None = None
    handled: list[tuple[str, int, Any]] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"hitl-{self.dag_id}")

    def __enter__(self) -> Responder:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._thread.join(timeout=self.deadline)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        done: set[tuple[str, int]] = set()
        seen: set[tuple[str, int]] = set()
        end = time.monotonic() + self.deadline
        try:
            while len(self.handled) < self.expected and time.monotonic() < end:
                overdue = []
                for ti in waiting(self.dag_id):
                    key = (ti.task_id, ti.map_index)
                    if key in done:
                        continue
                    if self.before is not None and key not in seen:
                        self.before(ti)
                    seen.add(key)
                    choice = self.decide(ti)
                    if choice is None:
                        if ti.trigger_timeout is not None and ti.trigger_timeout <= _now():
                            overdue.append(ti)
                        continue
                    answer_now(ti, choice)
                    done.add(key)
                    self.handled.append((ti.task_id, ti.map_index, choice))
                if overdue:
                    time_out_now()
                    for ti in overdue:
                        done.add((ti.task_id, ti.map_index))
                        self.handled.append((ti.task_id, ti.map_index, None))
                time.sleep(0.2)
            if len(self.handled) < self.expected:
                self.error = AssertionError(
                    f"{self.expected} requests expected within {self.deadline} s, {len(self.handled)} handled"
                )
                fail_waiting(self.dag_id)  # dag.test() would wait for them for ever
        except BaseException as exc:  # reported when the block ends
            self.error = exc
            fail_waiting(self.dag_id)


def _now() -> Any:
    from airflow.sdk import timezone

    return timezone.utcnow()
