"""Tasks that refresh Looker after a warehouse load: trigger datagroups, rebuild PDTs.

A refused client id or secret, a missing permission or an untrusted certificate fails the task at
once (:class:`~airflow_provider_b1.operators.sync.PermanentFailures`); 429s and 5xx keep the task's
retries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_b1.hooks.looker import LookerHook, LookerPdtBuildError, LookerTimeoutError
from airflow_provider_b1.operators.sync import PermanentFailures
from airflow_provider_b1.triggers.looker import LookerPdtBuildTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


def _as_list(value: Any) -> list[str]:
    """Accept a list, a JSON list, or comma-separated text (what a rendered template may give)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("["):
        return _as_list(json.loads(text.replace("'", '"')))
    return [part.strip() for part in text.split(",") if part.strip()]


class LookerTriggerDatagroupOperator(PermanentFailures, BaseOperator):
    """Trigger one or more Looker datagroups so dashboards built on them refresh.

    Each datagroup is an id (``"42"``) or ``"model::datagroup_name"``. Returns
    ``[{"datagroup_id", "field", "value"}]``.

    :param datagroups: datagroup references (list, or comma-separated text). Templated.
    :param mode: ``triggered_at`` (rebuild caches and PDTs of the datagroup) or
        ``stale_before`` (only mark older cache entries stale).
    :param looker_conn_id: Airflow connection id of type ``looker_api``.
    """

    template_fields: Sequence[str] = ("datagroups", "mode")

    def __init__(
        self,
        *,
        datagroups: str | Sequence[str],
        mode: str = "triggered_at",
        looker_conn_id: str = LookerHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.datagroups = datagroups
        self.mode = mode
        self.looker_conn_id = looker_conn_id

    def run(self, context: Context) -> list[dict[str, Any]]:
        if self.mode not in ("triggered_at", "stale_before"):
            raise ValueError(f"mode must be 'triggered_at' or 'stale_before', not {self.mode!r}")
        refs = _as_list(self.datagroups)
        if not refs:
            self.log.info("No Looker datagroup configured; nothing to trigger.")
            return []
        hook = LookerHook(self.looker_conn_id)
        done = []
        try:
            for ref in refs:
                datagroup_id = hook.resolve_datagroup_id(ref)
                if self.mode == "triggered_at":
                    group = hook.trigger_datagroup(datagroup_id)
                else:
                    group = hook.set_datagroup_stale_before(datagroup_id)
                done.append({"datagroup_id": datagroup_id, "field": self.mode, "value": group.get(self.mode)})
        finally:
            hook.close()
        return done


class LookerBuildPdtOperator(PermanentFailures, BaseOperator):
    """Rebuild a Looker persistent derived table and wait until it is complete.

    Waits in the triggerer when ``deferrable`` (no worker slot held), otherwise polls from the
    worker. Returns ``{"materialization_id", "status"}``.

    :param model: LookML model of the PDT. Templated.
    :param view: PDT view name. Templated.
    :param force_rebuild: rebuild even when Looker considers the table current.
    :param deferrable: wait in the triggerer instead of the worker.
    :param poll_interval: seconds between status polls.
    :param timeout: seconds to wait for the build (``None``: no limit); the build is stopped when it passes.
    :param looker_conn_id: Airflow connection id of type ``looker_api``.
    """

    template_fields: Sequence[str] = ("model", "view")

    def __init__(
        self,
        *,
        model: str,
        view: str,
        force_rebuild: bool = True,
        deferrable: bool = False,
        poll_interval: float = 10.0,
        timeout: float | None = 3600.0,
        looker_conn_id: str = LookerHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.view = view
        self.force_rebuild = force_rebuild
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.looker_conn_id = looker_conn_id
        self.materialization_id: str | None = None

    def run(self, context: Context) -> dict[str, Any]:
        hook = LookerHook(self.looker_conn_id)
        try:
            self.materialization_id = hook.start_pdt_build(self.model, self.view, self.force_rebuild)
            if self.deferrable:
                self.defer(
                    trigger=LookerPdtBuildTrigger(
                        materialization_id=self.materialization_id,
                        looker_conn_id=self.looker_conn_id,
                        poll_interval=self.poll_interval,
                        deadline=None if self.timeout is None else time.time() + self.timeout,
                    ),
                    method_name="execute_complete",
                )
            status = hook.wait_for_pdt_build(
                self.materialization_id, poll_interval=self.poll_interval, timeout=self.timeout
            )
        finally:
            hook.close()
        return {"materialization_id": self.materialization_id, "status": status["status"]}

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Resume after :class:`LookerPdtBuildTrigger` fired; raise unless the build completed."""
        materialization_id = event.get("materialization_id")
        if event.get("status") == "success":
            self.log.info(
                "Looker PDT %s.%s rebuilt (materialization %s).", self.model, self.view, materialization_id
            )
            return {"materialization_id": materialization_id, "status": event.get("pdt_status")}
        if event.get("status") == "timeout":
            hook = LookerHook(self.looker_conn_id)
            try:
                hook.stop_pdt_build(str(materialization_id))
            except Exception:
                self.log.warning("Could not stop Looker PDT materialization %s.", materialization_id)
            finally:
                hook.close()
            raise LookerTimeoutError(
                f"Looker PDT {self.model}.{self.view} (materialization {materialization_id}) did not finish "
                f"within {self.timeout} s and was stopped; raise the timeout or look at its build log in Looker."
            )
        detail = f": {event['message']}" if event.get("message") else ""
        raise LookerPdtBuildError(
            f"Looker PDT {self.model}.{self.view} (materialization {materialization_id}) did not complete "
            f"({event.get('pdt_status') or event.get('status')}){detail}; fix it in Looker and re-run the task.",
            pdt_status=event.get("pdt_status"),
        )

    def on_kill(self) -> None:
        if self.materialization_id:
            hook = LookerHook(self.looker_conn_id)
            try:
                hook.stop_pdt_build(self.materialization_id)
            except Exception:
                self.log.warning("Could not stop Looker PDT materialization %s.", self.materialization_id)
            finally:
                hook.close()
