"""The webhook receiver: signed deliveries from ServiceTitan and SAP Business One become Airflow Asset events.

Routes (``create_app(settings)``):

* ``POST /webhooks/servicetitan/{topic}``: a ServiceTitan v2 delivery; ``topic`` names the event
  (``invoices``, ``payments``, ``customers``, singular or ``invoice.created`` alike), since
  ServiceTitan takes a callback URL per event. ``POST /webhooks/servicetitan`` reads the topic
  from the body's event type instead.
* ``GET /webhooks/sap-b1``: SAP's handshake; ``X-B1-Webhook-Token: t`` is answered ``{"Challenge": "t"}``.
* ``POST /webhooks/sap-b1``: a SAP delivery, an array of events; one Asset event per business
  object named in it.
* ``GET /healthz``: liveness.

Every delivery goes through the same gate, in this order, before anything is recorded:
size (413), HMAC-SHA256 of the raw body in constant time (401), readable JSON (400), its time
inside the replay window (401), its event ids not taken before (409). Then the Asset event is
recorded through Airflow's REST API and the sender gets 200; if Airflow cannot be reached
within a few seconds the claims are released and the sender gets 503 with ``Retry-After``, so its
own retry delivers the event again. Polling stays the flows' default: a lost webhook only delays
a run until the next poll.

Nothing a sender signs with, no signature and no Airflow token is ever logged or answered.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from airflow_provider_b1.exceptions import B1ProviderError, RetryableError
from airflow_provider_b1.utils.retry import RetryPolicy
from airflow_provider_b1.webhooks.assets_client import AirflowAssetsClient, AssetNotFoundError
from airflow_provider_b1.webhooks.events import (
    DeliveryError,
    SapEvent,
    parse_timestamp,
    read_sap,
    read_servicetitan,
    servicetitan_topic,
)
from airflow_provider_b1.webhooks.replay import (
    MemoryReplayStore,
    RedisReplayStore,
    ReplayStore,
    ReplayStoreUnavailableError,
)
from airflow_provider_b1.webhooks.settings import SAP_B1, SERVICETITAN, SourceSettings, WebhookSettings
from airflow_provider_b1.webhooks.signatures import signature_matches
from airflow_provider_b1.webhooks.teams_bot import (
    RESPONDER_PARAM,
    BotAuthError,
    BotTokenVerifier,
    ButtonPress,
    read_press,
    reply,
)

log = logging.getLogger(__name__)

SAP_TOKEN_HEADER = "X-B1-Webhook-Token"
MAX_CHALLENGE = 1024
RETRY_AFTER_SECONDS = 30
MAX_LISTED = 100
"""At most this many event ids and keys go into one Asset event's ``extra``."""


class AssetRecorder(Protocol):
    """What the receiver needs from Airflow: record one event of an Asset URI, return its id."""

    def record_event(self, uri: str, extra: dict[str, Any]) -> int: ...


class HitlAnswerer(Protocol):
    """What the Teams bot's endpoint needs from Airflow: read and answer a HITL request."""

    def hitl_request(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]: ...

    def answer_hitl(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        *,
        chosen_options: list[str],
        params_input: dict[str, Any] | None = None,
    ) -> bool: ...


@dataclass
class _Refusal(Exception):
    status: int
    detail: str
    headers: dict[str, str] = field(default_factory=dict)


def _answer(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers or {})


def build_recorder(settings: WebhookSettings) -> AirflowAssetsClient:
    """The Airflow client the settings describe."""
    return AirflowAssetsClient(
        settings.airflow_url,
        username=settings.airflow_username,
        password=settings.airflow_password,
        token=settings.airflow_token,
        verify=settings.airflow_verify,
        timeout=settings.airflow_timeout,
        retry_policy=RetryPolicy(
            max_attempts=settings.airflow_attempts,
            max_elapsed=settings.airflow_max_elapsed,
            initial_wait=0.25,
            max_wait=2.0,
        ),
    )


def build_bot_verifier(settings: WebhookSettings) -> BotTokenVerifier | None:
    """The Bot Framework token check the settings describe (``None``: the bot endpoint is off)."""
    if not settings.teams_bot_app_id:
        return None
    return BotTokenVerifier(
        settings.teams_bot_app_id,
        openid_url=settings.teams_bot_openid_url,
        verify=settings.teams_bot_verify,
        timeout=settings.airflow_timeout,
    )


def build_replay_store(settings: WebhookSettings) -> ReplayStore:
    """Redis when ``redis_url`` is set (replicas agree), else a bounded store in this process."""
    if settings.redis_url:
        return RedisReplayStore(settings.redis_url)
    return MemoryReplayStore(settings.replay_capacity)


class _Gate:
    """The checks and the recording shared by both senders."""

    def __init__(
        self,
        settings: WebhookSettings,
        recorder: AssetRecorder,
        replay: ReplayStore,
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings
        self.recorder = recorder
        self.replay = replay
        self.clock = clock

    async def body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refusal(413, f"The delivery is larger than {limit} bytes.")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _Refusal(413, f"The delivery is larger than {limit} bytes.")
            chunks.append(chunk)
        return b"".join(chunks)

    def verify(self, name: str, source: SourceSettings, request: Request, body: bytes) -> None:
        presented = request.headers.get(source.signature_header)
        if not signature_matches(body, source.secret, presented, source.encoding):
            log.warning(
                "Refused a %s delivery from %s: %s signature (%d bytes).",
                name,
                _client(request),
                "missing" if presented is None else "invalid",
                len(body),
            )
            raise _Refusal(401, "Invalid signature.")

    def check_time(
        self, name: str, source: SourceSettings, timestamp: float | None, request: Request
    ) -> None:
        if timestamp is None:
            if source.require_timestamp:
                log.warning("Refused a %s delivery from %s: it carries no time.", name, _client(request))
                raise _Refusal(401, "The delivery carries no time; it cannot be told from a replay.")
            return
        skew = self.clock() - timestamp
        if abs(skew) > self.settings.replay_window:
            log.warning(
                "Refused a %s delivery from %s: its time is %.0f s %s now, outside the %.0f s window.",
                name,
                _client(request),
                abs(skew),
                "before" if skew > 0 else "after",
                self.settings.replay_window,
            )
            raise _Refusal(401, "The delivery is outside the replay window.")

    def claim(self, key: str) -> bool:
        return self.replay.claim(key, 2 * self.settings.replay_window)

    def release(self, keys: list[str]) -> None:
        for key in keys:
            self.replay.release(key)

    def record(self, uri: str, extra: dict[str, Any]) -> int:
        return self.recorder.record_event(uri, extra)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def create_app(
    settings: WebhookSettings,
    *,
    recorder: AssetRecorder | None = None,
    replay_store: ReplayStore | None = None,
    clock: Callable[[], float] = time.time,
    hitl: HitlAnswerer | None = None,
    bot_verifier: BotTokenVerifier | None = None,
) -> FastAPI:
    """Build the receiver.

    :param settings: see :class:`~airflow_provider_b1.webhooks.settings.WebhookSettings`.
    :param recorder: what records Asset events (default: Airflow's REST API per ``settings``).
    :param replay_store: where event ids are claimed (default per ``settings``).
    :param clock: Unix seconds now (tests move it).
    :param hitl: what answers HITL requests (default: the recorder when it can, else Airflow's
        REST API per ``settings``).
    :param bot_verifier: the Bot Framework token check (default per ``settings``).
    """
    recorder = recorder or build_recorder(settings)
    gate = _Gate(settings, recorder, replay_store or build_replay_store(settings), clock)
    verifier = bot_verifier or build_bot_verifier(settings)
    answerer: HitlAnswerer | None = hitl or (
        recorder if hasattr(recorder, "answer_hitl") else None  # type: ignore[assignment]
    )
    app = FastAPI(title="airflow-provider-b1 webhooks", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gate = gate

    @app.exception_handler(_Refusal)
    async def refused(_request: Request, exc: _Refusal) -> JSONResponse:
        return _answer(exc.status, {"detail": exc.detail}, exc.headers)

    @app.exception_handler(Exception)
    async def failed(_request: Request, exc: Exception) -> JSONResponse:
        # The type only: an unexpected exception's text might quote what it was handling.
        log.error("The receiver failed unexpectedly (%s).", type(exc).__name__)
        return _answer(500, {"detail": "Internal error."})

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        health = {
            "status": "ok",
            "servicetitan": settings.servicetitan is not None,
            "sap_b1": settings.sap is not None,
        }
        if verifier is not None:
            health["teams_bot"] = True
        return health

    @app.post("/webhooks/teams/bot")
    async def teams_bot(request: Request) -> JSONResponse:
        if verifier is None:
            raise _Refusal(404, "The Teams bot endpoint is not enabled on this receiver.")
        body = await gate.body(request)
        try:
            activity = json.loads(body)
        except ValueError:
            activity = None
        if not isinstance(activity, dict):
            activity = {}
        try:
            await run_in_threadpool(verifier.verify_request, request.headers.get("authorization"), activity)
        except BotAuthError as exc:
            log.warning("Refused a Teams bot call from %s: %s.", _client(request), exc)
            raise _Refusal(401, "Unauthorized.") from None
        try:
            press = read_press(activity)
        except ValueError as exc:
            raise _Refusal(400, str(exc)) from None
        if press is None:
            log.info("Ignored a Teams %s activity without a button press.", activity.get("type"))
            return _answer(200, {})
        nonlocal answerer
        if answerer is None:
            answerer = build_recorder(settings)
        return await run_in_threadpool(_press, settings, answerer, press)

    @app.post("/webhooks/servicetitan")
    @app.post("/webhooks/servicetitan/{topic}")
    async def servicetitan(request: Request, topic: str | None = None) -> JSONResponse:
        source = settings.servicetitan
        if source is None:
            raise _Refusal(404, "ServiceTitan webhooks are not enabled on this receiver.")
        body = await gate.body(request)
        gate.verify(SERVICETITAN, source, request, body)
        try:
            event = read_servicetitan(body, request.headers, source)
        except DeliveryError as exc:
            raise _Refusal(400, str(exc)) from None
        gate.check_time(SERVICETITAN, source, event.timestamp, request)
        topics = settings.servicetitan_topics()
        named = servicetitan_topic(topic, topics) if topic else servicetitan_topic(event.event_type, topics)
        uri = settings.servicetitan_uri(named) if named else None
        if uri is None:
            log.info(
                "Ignored ServiceTitan event %s: no Asset for %r.", event.event_id, topic or event.event_type
            )
            return _answer(200, {"status": "ignored", "recorded": 0})
        claim = f"{SERVICETITAN}:{event.event_id}"
        if not await run_in_threadpool(_claim_or_refuse, gate, claim):
            log.warning("Refused a repeated ServiceTitan event %s from %s.", event.event_id, _client(request))
            raise _Refusal(409, "This event was already delivered.")
        extra: dict[str, Any] = {"source": SERVICETITAN, "topic": named, "event_id": event.event_id}
        if event.event_type:
            extra["event_type"] = event.event_type
        if event.entity_id:
            extra["entity_id"] = event.entity_id
        event_id = await run_in_threadpool(_record_or_release, gate, uri, extra, [claim])
        log.info(
            "ServiceTitan %s event %s recorded as Asset event %s of %s.", named, event.event_id, event_id, uri
        )
        return _answer(200, {"status": "recorded", "recorded": 1})

    @app.get("/webhooks/sap-b1")
    async def sap_handshake(request: Request) -> JSONResponse:
        if settings.sap is None:
            raise _Refusal(404, "SAP Business One webhooks are not enabled on this receiver.")
        token = request.headers.get(SAP_TOKEN_HEADER)
        if not token or len(token) > MAX_CHALLENGE:
            raise _Refusal(
                400, f"The handshake needs a {SAP_TOKEN_HEADER} header (at most {MAX_CHALLENGE} characters)."
            )
        log.info("Answered SAP Business One's webhook handshake from %s.", _client(request))
        return _answer(200, {"Challenge": token})

    @app.post("/webhooks/sap-b1")
    async def sap_delivery(request: Request) -> JSONResponse:
        source = settings.sap
        if source is None:
            raise _Refusal(404, "SAP Business One webhooks are not enabled on this receiver.")
        body = await gate.body(request)
        gate.verify(SAP_B1, source, request, body)
        try:
            events = read_sap(body, source)
        except DeliveryError as exc:
            raise _Refusal(400, str(exc)) from None
        times = [event.timestamp for event in events if event.timestamp is not None]
        if source.timestamp_header:
            header_time = parse_timestamp(request.headers.get(source.timestamp_header))
            if header_time is not None:
                times = [header_time]
        # The newest time decides: a replay repeats every time in the body, the newest included.
        gate.check_time(SAP_B1, source, max(times) if times else None, request)
        return await run_in_threadpool(_record_sap, gate, events, request)

    return app


def _press(settings: WebhookSettings, answerer: HitlAnswerer, press: ButtonPress) -> JSONResponse:
    """Answer the HITL request a button names, after checking that the button may."""
    who = press.user_name or press.user_id or "someone"
    what = f"{press.dag_id} {press.run_id} {press.task_id}[{press.map_index}]"
    refusal = None
    if press.dag_id not in settings.teams_bot_dag_ids:
        refusal = "not a DAG the bot answers for"
    elif (
        settings.teams_bot_tenant_id
        and (press.tenant_id or "").lower() != settings.teams_bot_tenant_id.lower()
    ):
        refusal = f"from tenant {press.tenant_id}, not the bot's"
    elif settings.teams_bot_users and (press.user_id or "").lower() not in settings.teams_bot_users:
        refusal = "not one of the users who may answer"
    if refusal:
        log.warning(
            "Refused a Teams button for %s pressed by %s (%s): %s.", what, who, press.user_id, refusal
        )
        return _answer(200, reply(press, "You cannot answer this request from Teams.", status=403))
    try:
        request = answerer.hitl_request(press.dag_id, press.run_id, press.task_id, press.map_index)
        if request.get("response_received"):
            log.info("Teams button %s for %s pressed by %s: it was already decided.", press.option, what, who)
            return _answer(200, reply(press, "This request was already decided."))
        if press.option not in (request.get("options") or []):
            log.warning(
                "Refused a Teams button for %s pressed by %s: %r is not offered.", what, who, press.option
            )
            return _answer(200, reply(press, "That choice is not offered.", status=400))
        responder = {"id": press.user_id, "name": press.user_name, "via": "teams"}
        # Airflow compares a request's params with params_input key by key: only a request
        # without params can carry the responder.
        params = {} if request.get("params") else {RESPONDER_PARAM: responder}
        answered = answerer.answer_hitl(
            press.dag_id,
            press.run_id,
            press.task_id,
            press.map_index,
            chosen_options=[press.option],
            params_input=params,
        )
    except B1ProviderError as exc:
        log.error("Teams button %s for %s pressed by %s was not passed on: %s", press.option, what, who, exc)
        status = 503 if isinstance(exc, RetryableError) else 502
        return _answer(
            200, reply(press, "Airflow could not take the answer; try again later.", status=status)
        )
    if not answered:
        log.info("Teams button %s for %s pressed by %s: it was already decided.", press.option, what, who)
        return _answer(200, reply(press, "This request was already decided."))
    log.info("Teams button %s for %s pressed by %s (%s): answered.", press.option, what, who, press.user_id)
    return _answer(200, reply(press, f"{press.option}: recorded. The card shows the outcome shortly."))


def _claim_or_refuse(gate: _Gate, key: str) -> bool:
    try:
        return gate.claim(key)
    except ReplayStoreUnavailableError as exc:
        log.error("%s Deliveries are refused with 503 until it answers.", exc)
        raise _Refusal(503, "Try again later.", {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None


def _record_or_release(gate: _Gate, uri: str, extra: dict[str, Any], claims: list[str]) -> int:
    try:
        return gate.record(uri, extra)
    except B1ProviderError as exc:
        gate.release(claims)
        kind = "for now" if isinstance(exc, RetryableError) else "until this is fixed"
        log.error(
            "Could not record an Asset event of %s (%s); the sender is told to retry %s.", uri, exc, kind
        )
        raise _Refusal(
            503, "Not recorded; deliver again later.", {"Retry-After": str(RETRY_AFTER_SECONDS)}
        ) from None


def _record_sap(gate: _Gate, events: list[SapEvent], request: Request) -> JSONResponse:
    settings = gate.settings
    fresh: dict[str, list[tuple[SapEvent, str]]] = {}
    repeated = ignored = 0
    for event in events:
        uri = settings.sap_uri(event.business_object) if event.business_object else None
        if uri is None:
            ignored += 1
            log.info(
                "Ignored SAP Business One event %s of type %r: no Asset for it.",
                event.event_id,
                event.event_type,
            )
            continue
        claim = f"{SAP_B1}:{event.event_id}"
        if not _claim_or_refuse(gate, claim):
            repeated += 1
            continue
        fresh.setdefault(uri, []).append((event, claim))
    if repeated and not fresh:
        log.warning(
            "Refused a repeated SAP Business One delivery (%d events) from %s.", repeated, _client(request)
        )
        raise _Refusal(409, "These events were already delivered.")
    recorded = 0
    pending = list(fresh.items())
    for index, (uri, taken) in enumerate(pending):
        first = taken[0][0]
        extra: dict[str, Any] = {
            "source": SAP_B1,
            "business_object": first.business_object,
            "transactions": sorted({event.transaction for event, _ in taken if event.transaction}),
            "event_ids": [event.event_id for event, _ in taken[:MAX_LISTED]],
            "keys": [event.key for event, _ in taken[:MAX_LISTED] if event.key is not None],
            "events": len(taken),
        }
        try:
            event_id = gate.record(uri, extra)
        except AssetNotFoundError:
            # No DAG is scheduled on this business object: a retry would meet the same answer, so
            # the events are acknowledged and dropped (SAP would otherwise resend them for ever).
            ignored += len(taken)
            log.warning(
                "Ignored %d SAP Business One %s event(s): no DAG declares the Asset %s.",
                len(taken),
                first.business_object,
                uri,
            )
            continue
        except B1ProviderError as exc:
            # This object and the ones not reached yet are released; those recorded stay claimed,
            # so the sender's retry records only what is missing.
            gate.release([claim for _, rest in pending[index:] for _, claim in rest])
            kind = "for now" if isinstance(exc, RetryableError) else "until this is fixed"
            log.error(
                "Could not record an Asset event of %s (%s); the sender is told to retry %s.", uri, exc, kind
            )
            raise _Refusal(
                503, "Not recorded; deliver again later.", {"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        recorded += 1
        log.info(
            "SAP Business One %s: %d event(s) recorded as Asset event %s of %s.",
            first.business_object,
            len(taken),
            event_id,
            uri,
        )
    return _answer(
        200,
        {
            "status": "recorded" if recorded else "ignored",
            "recorded": recorded,
            "repeated": repeated,
            "ignored": ignored,
        },
    )
