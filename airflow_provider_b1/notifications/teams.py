"""``TeamsNotifier``: a task's or a DAG run's outcome, or a human-in-the-loop request, as an
Adaptive Card in Microsoft Teams.

Usable wherever Airflow takes a notifier::

    on_failure_callback=TeamsNotifier(teams_conn_id="ops_alerts")          # a Workflows webhook
    on_failure_callback=TeamsNotifier(teams_conn_id="b1_teams_bot_default", to="ada@contoso.example")
    ApprovalOperator(..., notifiers=[TeamsNotifier(teams_conn_id="b1_teams_bot_default", to="19:...")])

The connection's type chooses the transport: ``b1_teams_webhook`` posts to the webhook's own
channel, ``b1_teams_bot`` to ``to`` (a channel's or chat's conversation id, or a user by UPN,
e-mail or object id, whose 1:1 chat is opened). The card names the DAG, task, run and try, links
the task's log and, for a human-in-the-loop request, its required-actions page; it says which
options there are and what is chosen if nobody answers in time.

Through a bot, the request of a task that asks for them (``teams_card_buttons = True``, as
:class:`~airflow_provider_b1.teams.approvals.SapApprovalOperator` does) also gets one
``Action.Submit`` button per option, answered by the webhook receiver's bot endpoint
(``POST /webhooks/teams/bot``). A Workflows webhook cannot call back: its cards link only.

A failed post is logged, never raised (unless ``fail_on_error``): an alert that cannot be sent
must not hide the failure it was sent for, nor fail a task that only wanted to tell someone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseHook, BaseNotifier

from airflow_provider_b1.connections import TEAMS_BOT, TEAMS_WEBHOOK
from airflow_provider_b1.hooks.teams import TeamsBotHook, TeamsHook, TeamsWebhookHook
from airflow_provider_b1.teams.cards import MISSING, failure_card, notice_card

DEFAULT_BASE_URL = "http://localhost:8080/"
"""Where links point when ``[api] base_url`` is unset (as the task's own ``log_url`` does)."""

HOOKS: dict[str, type[TeamsHook]] = {
    TEAMS_WEBHOOK["connection-type"]: TeamsWebhookHook,
    TEAMS_BOT["connection-type"]: TeamsBotHook,
}
"""Connection type → the hook posting through it."""

ACTIVITY_XCOM_KEY = "teams_activity"
"""XCom key under which a bot post of a human-in-the-loop request leaves ``{"conversation_id",
"activity_id"}``, so a later task can update that card (a webhook post has no id to keep)."""


def _api_base_url(base_url: str | None) -> str:
    if base_url:
        return base_url
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback=None) or DEFAULT_BASE_URL


def _is_hitl_task(task: Any) -> bool:
    try:
        from airflow.providers.standard.operators.hitl import HITLOperator
    except ImportError:  # the standard provider without HITL (Airflow before 3.1)
        return False
    return isinstance(task, HITLOperator)


def _state(ti: Any) -> str:
    state = getattr(ti, "state", None)
    return str(getattr(state, "value", state) or "")


def _when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _options(options: Sequence[str] | None) -> str:
    return ", ".join(str(o) for o in options or ()) or MISSING


class TeamsNotifier(BaseNotifier):
    """Post a card about a task, a DAG run or a human-in-the-loop request to Microsoft Teams.

    :param teams_conn_id: a ``b1_teams_webhook`` or ``b1_teams_bot`` connection (templated).
    :param to: for a bot connection, where to post: a conversation id (``19:...`` channel,
        ``a:...`` chat) or a user's UPN, e-mail or object id (templated); a webhook posts to its
        own channel and takes no ``to``.
    :param title: the card's title instead of the one derived from the event (templated).
    :param message: a text shown on the card, e.g. what to do next (templated).
    :param base_url: the Airflow UI's address for links; default ``[api] base_url``.
    :param fail_on_error: raise when the card cannot be posted, instead of logging it.
    """

    template_fields = ("teams_conn_id", "to", "title", "message")

    def __init__(
        self,
        *,
        teams_conn_id: str = TeamsWebhookHook.default_conn_name,
        to: str | None = None,
        title: str | None = None,
        message: str | None = None,
        base_url: str | None = None,
        fail_on_error: bool = False,
    ) -> None:
        super().__init__()
        self.teams_conn_id = teams_conn_id
        self.to = to
        self.title = title
        self.message = message
        self.base_url = base_url
        self.fail_on_error = fail_on_error
        self.last_post: dict[str, Any] | None = None
        """Where the last card went: ``{"conversation_id", "activity_id"}`` (bot) or ``{}`` (webhook)."""

    # -- the card ------------------------------------------------------------------------------

    def card(self, context: Mapping[str, Any], *, buttons: bool = False) -> dict[str, Any]:
        """The Adaptive Card for ``context``: a failure, a HITL request, a DAG run or a success.

        :param buttons: give a HITL request that asks for them one ``Action.Submit`` button per
            option (only a bot's cards can call back).
        """
        ti = context.get("ti") or context.get("task_instance")
        task = context.get("task")
        dag = context.get("dag")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or "?"
        run_id = getattr(ti, "run_id", None) or context.get("run_id") or "?"
        base = _api_base_url(self.base_url)
        run_url = f"{base.rstrip('/')}/dags/{dag_id}/runs/{run_id}"
        log_url = getattr(ti, "log_url", None) or run_url
        error = context.get("exception")
        # A DAG run's callback says why it ran ("success", "task_failure", "timed_out"...).
        reason = context.get("reason")
        run_failed = "reason" in context and reason != "success"
        if error is not None or run_failed or _state(ti) in ("failed", "up_for_retry"):
            if run_failed:
                ti, log_url = None, run_url
            return self._failure(ti, dag_id, run_id, log_url, error or reason)
        if ti is not None and _is_hitl_task(task) and _state(ti) in ("running", ""):
            return self._hitl_request(context, ti, task, dag_id, run_id, log_url, base, buttons=buttons)
        if ti is None or "reason" in context:
            title = self.title or f"DAG run succeeded: {dag_id}"
            facts = [("DAG", dag_id), ("Run", run_id)]
            return notice_card(title, facts, text=self.message, color="Good", links=[("Open run", run_url)])
        title = self.title or f"Task succeeded: {ti.task_id}"
        return notice_card(
            title,
            self._task_facts(ti, dag_id, run_id),
            text=self.message,
            color="Good",
            links=[("View log", log_url)],
        )

    def _task_facts(self, ti: Any, dag_id: str, run_id: str) -> list[tuple[str, Any]]:
        task_id = ti.task_id
        map_index = getattr(ti, "map_index", -1)
        if isinstance(map_index, int) and map_index >= 0:
            task_id = f"{task_id} [{map_index}]"
        return [("DAG", dag_id), ("Task", task_id), ("Run", run_id), ("Try", getattr(ti, "try_number", None))]

    def _failure(self, ti: Any, dag_id: str, run_id: str, log_url: str, error: Any) -> dict[str, Any]:
        if ti is None:
            facts = [("DAG", dag_id), ("Run", run_id)]
            return notice_card(
                self.title or f"DAG run failed: {dag_id}",
                facts,
                text="\n".join(str(x) for x in (error, self.message) if x),
                color="Attention",
                links=[("Open run", log_url)],
            )
        text = "\n".join(str(x) for x in (self.message, error) if x)
        return failure_card(
            dag_id=dag_id,
            task_id=self._task_facts(ti, dag_id, run_id)[1][1],
            run_id=run_id,
            try_number=getattr(ti, "try_number", None),
            max_tries=getattr(ti, "max_tries", None),
            log_url=log_url,
            error=text or None,
        )

    def _hitl_request(
        self,
        context: Mapping[str, Any],
        ti: Any,
        task: Any,
        dag_id: str,
        run_id: str,
        log_url: str,
        base: str,
        *,
        buttons: bool = False,
    ) -> dict[str, Any]:
        from airflow.providers.standard.operators.hitl import HITLOperator

        link = HITLOperator.generate_link_to_ui_from_context(context=context, base_url=base)  # type: ignore[arg-type]
        facts = self._task_facts(ti, dag_id, run_id)
        facts.append(("Options", _options(task.options)))
        timeout = getattr(task, "response_timeout", None)
        if timeout:
            deadline = dt.datetime.now(dt.timezone.utc) + timeout
            if task.defaults:
                note = f"If nobody answers by {_when(deadline)}, {_options(task.defaults)} is chosen."
            else:
                note = f"If nobody answers by {_when(deadline)}, the task fails."
        else:
            note = "This request waits until someone answers."
        text = "\n".join(str(x) for x in (task.body, self.message) if x)
        submits: list[tuple[str, dict[str, Any]]] = []
        if buttons and getattr(task, "teams_card_buttons", False) and not task.multiple and not task.params:
            # Names the request only: the bot endpoint checks the caller and the option itself.
            request = {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": ti.task_id,
                "map_index": getattr(ti, "map_index", -1),
            }
            submits = [(str(option), {**request, "option": str(option)}) for option in task.options]
        return notice_card(
            self.title or task.subject,
            facts,
            text=text,
            note=note,
            color="Accent",
            links=[("Answer in Airflow", link), ("View log", log_url)],
            submits=submits,
        )

    # -- posting -------------------------------------------------------------------------------

    def hook(self, connection: Any = None) -> TeamsHook:
        """The hook of the connection's type; ``connection``, when given, is used as read."""
        conn = connection or BaseHook.get_connection(self.teams_conn_id)
        try:
            hook_class = HOOKS[conn.conn_type]
        except KeyError:
            raise ValueError(
                f"Connection {self.teams_conn_id!r} has type {conn.conn_type!r}; TeamsNotifier needs one of "
                f"{', '.join(HOOKS)}."
            ) from None
        hook = hook_class(self.teams_conn_id)
        # The connection read here (maybe asynchronously) is the one the hook uses.
        hook.get_connection = lambda _conn_id: conn  # type: ignore[method-assign]
        return hook

    def post(self, card: Mapping[str, Any], context: Mapping[str, Any], connection: Any = None) -> str | None:
        """Post ``card`` through the connection; a bot post's activity id is returned (and, for a
        HITL request, kept in XCom under :data:`ACTIVITY_XCOM_KEY`)."""
        hook = self.hook(connection)
        try:
            if isinstance(hook, TeamsBotHook):
                if not self.to:
                    raise ValueError("A bot connection needs `to`: a conversation id or a user.")
                target = self.to.strip()
                conversation = target if target.startswith(("19:", "a:")) else hook.open_conversation(target)
                activity = hook.send(conversation, card)
                self.last_post = {"conversation_id": conversation, "activity_id": activity}
                ti = context.get("ti")
                if ti is not None and _is_hitl_task(context.get("task")):
                    ti.xcom_push(
                        key=ACTIVITY_XCOM_KEY,
                        value={"conversation_id": conversation, "activity_id": activity},
                    )
                return activity
            if self.to:
                raise ValueError("A Workflows webhook posts to its own channel; `to` is for bot connections.")
            hook.post_card(card)
            self.last_post = {}
            return None
        finally:
            hook.close()

    def _send(self, context: Mapping[str, Any], connection: Any = None) -> None:
        try:
            connection = connection or BaseHook.get_connection(self.teams_conn_id)
            buttons = connection.conn_type == TEAMS_BOT["connection-type"]
            self.post(self.card(context, buttons=buttons), context, connection)
        except Exception as exc:
            if self.fail_on_error:
                raise
            ti = context.get("ti")
            where = f"task {ti.task_id} of run {ti.run_id}" if ti is not None else "this DAG run"
            self.log.warning(
                "The Teams notification for %s was not sent (%s: %s); the run goes on as it was.",
                where,
                type(exc).__name__,
                exc,
            )

    def notify(self, context: Mapping[str, Any]) -> None:  # type: ignore[override]
        """Build the card and post it; a failure is logged (see ``fail_on_error``)."""
        self._send(context)

    async def async_notify(self, context: Mapping[str, Any]) -> None:  # type: ignore[override]
        """As :meth:`notify`, from the triggerer: the connection is read asynchronously and the
        post runs in a thread, leaving the event loop free."""
        try:
            connection = await BaseHook.aget_connection(self.teams_conn_id)
        except Exception as exc:
            if self.fail_on_error:
                raise
            self.log.warning(
                "The Teams notification was not sent: connection %r: %s", self.teams_conn_id, exc
            )
            return
        await asyncio.to_thread(self._send, context, connection)


__all__ = ["ACTIVITY_XCOM_KEY", "TeamsNotifier"]
