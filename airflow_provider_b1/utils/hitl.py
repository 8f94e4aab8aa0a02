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


def answer(ti: Any, chosen: list[str], *, user: str, params_input: dict | None = None) -> Any:
    """Answer one parked request as the REST API's ``PATCH .../hitlDetails`` does, as ``user``;
    returns the API's response model."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    with create_session() as session:
        return update_hitl_detail(
            dag_id=ti.dag_id,
            dag_run_id=ti.run_id,
            task_id=ti.task_id,
            update_hitl_detail_payload=UpdateHITLDetailPayload(
                chosen_options=chosen, params_input=params_input or {}
            ),
            user=_User(user, user),
            session=session,
            map_index=ti.map_index,
        )
