"""Answering Airflow's human-in-the-loop requests in process, where no api-server runs.

A HITL operator stores its request and parks its task instance in ``awaiting_input``; in a
deployment the answer comes through the api-server (the UI, or ``PATCH .../hitlDetails``), which
validates it, writes it and resumes the task. Under ``dag.test()`` (the demo, tests) nothing
listens: :func:`answer` calls the same function the api-server's route calls, with a named user,
against the same metadata database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class _User:
    id: str
    name: str

    def get_id(self) -> str:
        return self.id

    def get_name(self) -> str:
        return self.name


def waiting(dag_id: str, task_id: str | None = None) -> list[Any]:
    """Task instances of ``dag_id`` parked in ``awaiting_input`` (detached from their session)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    with create_session() as session:
        query = session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.state == TaskInstanceState.AWAITING_INPUT
        )
        if task_id:
            query = query.filter(TaskInstance.task_id == task_id)
        found = query.all()
        for ti in found:
            session.expunge(ti)
        return found


def respond(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    payload: dict[str, Any],
    *,
    user: str,
    session: Any = None,
) -> Any:
    """Answer the request of one task instance with ``payload`` (``chosen_options``,
    ``params_input``) as the api-server's ``PATCH .../hitlDetails`` route does, as ``user``;
    returns the route's response model, or raises its ``HTTPException`` (409: answered already)."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    if session is None:
        with create_session() as own:
            return respond(dag_id, run_id, task_id, map_index, payload, user=user, session=own)
    return update_hitl_detail(
        dag_id=dag_id,
        dag_run_id=run_id,
        task_id=task_id,
        update_hitl_detail_payload=UpdateHITLDetailPayload(**payload),
        user=_User(user, user),
        session=session,
        map_index=map_index,
    )


def answer(ti: Any, chosen: list[str], *, user: str, params_input: dict | None = None) -> Any:
    """Answer one parked request (a task instance from :func:`waiting`) as ``user``."""
    payload = {"chosen_options": chosen, "params_input": params_input or {}}
    return respond(ti.dag_id, ti.run_id, ti.task_id, ti.map_index, payload, user=user)
