"""Waiting for a Looker PDT rebuild in the triggerer instead of a worker slot."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseHook
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_b1.exceptions import B1ProviderError
from airflow_provider_b1.hooks.looker import PDT_DONE_STATE, PDT_FAILED_STATES, LookerHook


class LookerPdtBuildTrigger(BaseTrigger):
    """Poll a Looker PDT materialization until it completes, fails or runs out of time.

    Fires one event ``{"status": "success" | "error" | "timeout", "materialization_id", "pdt_status",
    "message"}`` of primitives only. The connection is fetched asynchronously; the blocking HTTP
    calls run in a thread, through one hook so the Looker token is reused across polls.

    :param materialization_id: id returned by Looker when the build started.
    :param looker_conn_id: Airflow connection id of type ``looker_api``.
    :param poll_interval: seconds between polls.
    :param deadline: Unix time after which the trigger gives up (``None``: never).
    """

    def __init__(
        self,
        materialization_id: str,
        looker_conn_id: str = LookerHook.default_conn_name,
        poll_interval: float = 10.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.materialization_id = str(materialization_id)
        self.looker_conn_id = looker_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__qualname__}",
            {
                "materialization_id": self.materialization_id,
                "looker_conn_id": self.looker_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
            },
        )

    def _event(self, status: str, pdt_status: str | None, message: str | None) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "materialization_id": self.materialization_id,
                "pdt_status": pdt_status,
                "message": message,
            }
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook: LookerHook | None = None
        try:
            connection = await BaseHook.aget_connection(self.looker_conn_id)
            hook = LookerHook(self.looker_conn_id, connection=connection)
            while True:
                status = await asyncio.to_thread(hook.pdt_build_status, self.materialization_id)
                state = status["status"]
                if state == PDT_DONE_STATE:
                    yield self._event("success", state, status.get("message"))
                    return
                if state in PDT_FAILED_STATES:
                    yield self._event("error", state, status.get("message"))
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event("timeout", state, f"still {state!r} at the deadline")
                    return
                self.log.info("Looker PDT materialization %s is %s.", self.materialization_id, state)
                await asyncio.sleep(self.poll_interval)
        except B1ProviderError as exc:
            # Already one sentence with cause and fix, and free of secrets.
            yield self._event("error", None, str(exc))
        finally:
            if hook is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(hook.close)
