"""Clients of Salesforce's Pub/Sub API: ``GetTopic``, ``GetSchema`` and ``Subscribe``.

Both clients take the Salesforce connection's id and use its
:class:`~airflow_provider_b1.hooks.salesforce.SalesforceHook` for the session: the access
token, the instance URL and the org id travel as the gRPC metadata ``accesstoken``,
``instanceurl`` and ``tenantid`` on every call. A call refused with ``UNAUTHENTICATED`` gets a
new token once (the hook's token is shared by the worker's tasks, and renewing skips the request
when another task already replaced the refused one) and is made again; a second refusal is a
:class:`~.errors.PubSubAuthError`.

The endpoint is ``api.pubsub.salesforce.com:7443`` unless the connection's extra
``pubsub_endpoint`` says otherwise (``host:port``); the server's certificate is checked against
the extra ``pubsub_ca_bundle``, else the connection's ``ca_bundle``, else the system's roots.
``pubsub_tls: false`` talks plaintext (a local sandbox only).

``Subscribe`` is a pull stream: the first ``FetchRequest`` names the topic, where to start
(:class:`ReplayPreset` ``LATEST``, ``EARLIEST``, or ``CUSTOM`` after a replay id) and how many
events the client can take (``num_requested``); each later request asks for more. The clients ask
again when half of what they asked for has arrived, so a busy stream never stalls, and never
have more than ``num_requested`` events in flight. Salesforce sends an empty response (a
keepalive carrying ``latest_replay_id``) at least every 270 s when there is nothing to deliver.
:meth:`SalesforcePubSubClient.fetch` yields every response as a :class:`FetchBatch` (keepalives
included), :meth:`~SalesforcePubSubClient.subscribe` only the events. Both go on after a broken
stream (``UNAVAILABLE``, a reset) from the last event delivered, with backoff, at most
``max_attempts`` times in a row; a refused replay id (:class:`~.errors.ReplayIdExpiredError`) or a
topic the org does not offer (:class:`~.errors.TopicUnavailableError`) ends them at once.

Payloads are decoded with the schema ``GetSchema`` answers for the event's schema id, fetched
once per id (:class:`~.events.EventDecoder`); header bitmaps become field names.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import queue
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from airflow_provider_b1.hooks.salesforce.pubsub.errors import (
    INSTALL_HINT,
    CdcDependencyError,
    PubSubAuthError,
    PubSubError,
    PubSubStreamError,
    from_rpc_error,
)
from airflow_provider_b1.hooks.salesforce.pubsub.events import ChangeEvent, EventDecoder
from airflow_provider_b1.utils.params import blank_to_none, parse_bool

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "api.pubsub.salesforce.com:7443"
DEFAULT_CONN_ID = "b1_salesforce_default"
DEFAULT_NUM_REQUESTED = 100
#: Salesforce's largest ``num_requested`` per ``FetchRequest``.
MAX_NUM_REQUESTED = 100
#: Events of up to 1 MB each, up to ``num_requested`` of them in one response.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024


class ReplayPreset(enum.IntEnum):
    """Where a subscription starts (``eventbus.v1.ReplayPreset``)."""

    LATEST = 0
    EARLIEST = 1
    CUSTOM = 2


@dataclasses.dataclass(frozen=True)
class Topic:
    """``GetTopic``'s answer.

    :param name: the topic.
    :param schema_id: the schema its events are written with (empty for ``/data/ChangeEvents``,
        whose events each name their own).
    :param can_subscribe: / :param can_publish: what this user may do.
    :param tenant_guid: the org.
    """

    name: str
    schema_id: str
    can_subscribe: bool
    can_publish: bool
    tenant_guid: str


@dataclasses.dataclass(frozen=True)
class FetchBatch:
    """One ``FetchResponse``: decoded events, or none (a keepalive).

    :param topic: the subscription's topic.
    :param events: the events, oldest first.
    :param latest_replay_id: where the stream stands: after the last event of a batch, or (a
        keepalive) the newest position with nothing undelivered before it. Storing it keeps a
        quiet topic's position inside the retention window.
    :param pending_num_requested: events the server still owes the client.
    :param rpc_id: Salesforce's id of the response, for its support.
    """

    topic: str
    events: tuple[ChangeEvent, ...]
    latest_replay_id: bytes
    pending_num_requested: int
    rpc_id: str

    @property
    def keepalive(self) -> bool:
        return not self.events

    @property
    def resume_after(self) -> bytes | None:
        """The replay id to subscribe after to go on from here."""
        if self.events:
            return self.events[-1].replay_id
        return self.latest_replay_id or None


def _grpc() -> Any:
    try:
        import grpc
        import grpc.aio  # loaded here so the async client finds it
    except ImportError as exc:
        raise CdcDependencyError(
            f"Salesforce Change Data Capture needs grpcio and protobuf, which are not installed: {INSTALL_HINT}."
        ) from exc
    return grpc


def _stubs() -> tuple[Any, Any]:
    _grpc()
    try:
        from airflow_provider_b1.hooks.salesforce.pubsub import pubsub_api_pb2, pubsub_api_pb2_grpc
    except ImportError as exc:
        raise CdcDependencyError(
            f"Salesforce Change Data Capture needs protobuf, which is not installed: {INSTALL_HINT}."
        ) from exc
    return pubsub_api_pb2, pubsub_api_pb2_grpc


@dataclasses.dataclass(frozen=True)
class PubSubSettings:
    """Where and how to reach the Pub/Sub API.

    :param endpoint: ``host:port``.
    :param tls: TLS (always, except against a local plaintext sandbox).
    :param ca_bundle: PEM file of the roots to trust; ``None``: the system's.
    """

    endpoint: str = DEFAULT_ENDPOINT
    tls: bool = True
    ca_bundle: str | None = None

    @classmethod
    def from_extra(
        cls,
        extra: Mapping[str, Any],
        *,
        endpoint: str | None = None,
        ca_bundle: str | None = None,
        tls: bool | None = None,
    ) -> PubSubSettings:
        """The settings of a connection's extras, overridden by what the caller gives."""
        chosen = endpoint or blank_to_none(extra.get("pubsub_endpoint")) or DEFAULT_ENDPOINT
        chosen = str(chosen).strip()
        for scheme in ("https://", "http://", "grpcs://", "grpc://"):
            if chosen.startswith(scheme):
                chosen = chosen[len(scheme) :]
        chosen = chosen.rstrip("/")
        if ":" not in chosen.rsplit("]", 1)[-1]:
            chosen += ":443"
        if tls is None:
            tls = parse_bool(extra.get("pubsub_tls"), default=True, name="Extra 'pubsub_tls'")
        bundle = (
            ca_bundle or blank_to_none(extra.get("pubsub_ca_bundle")) or blank_to_none(extra.get("ca_bundle"))
        )
        return cls(endpoint=chosen, tls=tls, ca_bundle=str(bundle) if bundle else None)

    def channel_credentials(self) -> Any:
        grpc = _grpc()
        roots = Path(self.ca_bundle).read_bytes() if self.ca_bundle else None
        return grpc.ssl_channel_credentials(root_certificates=roots)

    def channel_options(self) -> list[tuple[str, Any]]:
        return [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]


@dataclasses.dataclass(frozen=True)
class Session:
    """What the gRPC metadata carries: a Salesforce session."""

    token: str = dataclasses.field(repr=False)
    instance_url: str
    org_id: str
    user_id: str | None = None

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("accesstoken", self.token), ("instanceurl", self.instance_url), ("tenantid", self.org_id))


class HookSessions:
    """Sessions from a :class:`~airflow_provider_b1.hooks.salesforce.SalesforceHook`'s token.

    The hook's token is the one its REST calls use, cached for every task process of the worker;
    renewing it after a refusal skips the token request when another caller has already replaced
    the refused token.

    :param hook: the hook.
    """

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def _session(self, token: Any) -> Session:
        org_id = token.org_id or self.hook.org_id
        return Session(
            token=token.value,
            instance_url=token.instance_url.rstrip("/"),
            org_id=org_id,
            user_id=getattr(token, "user_id", None),
        )

    def current(self) -> Session:
        """The session to send (the hook's token, obtained when there is none yet)."""
        return self._session(self.hook.token())

    def renew(self, refused: Session) -> Session:
        """A new session instead of a refused one (unless another caller already replaced it)."""
        auth = self.hook.auth
        held = auth.token()
        if held.value != refused.token:
            return self._session(held)
        return self._session(auth.renew(held))


def _backoff(attempt: int, base: float, ceiling: float) -> float:
    return min(ceiling, base * 2 ** max(0, attempt - 1)) * (0.5 + random.random() / 2)


class _Client:
    """What both clients share: settings, sessions, schemas, the resubscribe rule."""

    def __init__(
        self,
        salesforce_conn_id: str = DEFAULT_CONN_ID,
        *,
        hook: Any = None,
        connection: Any = None,
        sessions: Any = None,
        endpoint: str | None = None,
        ca_bundle: str | None = None,
        tls: bool | None = None,
        num_requested: int = DEFAULT_NUM_REQUESTED,
        max_attempts: int = 5,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        call_timeout: float = 60.0,
    ) -> None:
        if not 1 <= num_requested <= MAX_NUM_REQUESTED:
            raise ValueError(f"num_requested must be between 1 and {MAX_NUM_REQUESTED}, not {num_requested}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self.salesforce_conn_id = salesforce_conn_id
        self._hook = hook
        self._connection = connection
        self._sessions = sessions
        self._overrides = {"endpoint": endpoint, "ca_bundle": ca_bundle, "tls": tls}
        self.num_requested = num_requested
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.call_timeout = call_timeout
        self._settings: PubSubSettings | None = None
        self.decoder = EventDecoder()
        self.sessions_renewed = 0

    # -- configuration ---------------------------------------------------------------------

    @property
    def hook(self) -> Any:
        """The Salesforce hook the session comes from (built on first use)."""
        if self._hook is None:
            from airflow_provider_b1.hooks.salesforce import SalesforceHook

            self._hook = SalesforceHook(self.salesforce_conn_id)
        return self._hook

    @property
    def sessions(self) -> Any:
        if self._sessions is None:
            self._sessions = HookSessions(self.hook)
        return self._sessions

    @property
    def settings(self) -> PubSubSettings:
        if self._settings is None:
            connection = self._connection
            if connection is None:
                from airflow.sdk import BaseHook

                connection = BaseHook.get_connection(self.salesforce_conn_id)
            extra = connection.extra_dejson or {}
            self._settings = PubSubSettings.from_extra(extra, **self._overrides)
        return self._settings

    def _first_request(self, pb2: Any, topic: str, preset: ReplayPreset, position: bytes | None) -> Any:
        return pb2.FetchRequest(
            topic_name=topic,
            replay_preset=int(preset),
            replay_id=position or b"",
            num_requested=self.num_requested,
        )

    @staticmethod
    def _start(
        replay_id: bytes | None, preset: ReplayPreset | str | None
    ) -> tuple[ReplayPreset, bytes | None]:
        if isinstance(preset, str):
            preset = ReplayPreset[preset.upper()]
        if replay_id:
            if preset not in (None, ReplayPreset.CUSTOM):
                raise ValueError(f"A replay id starts a CUSTOM subscription, not {preset.name}")
            return ReplayPreset.CUSTOM, bytes(replay_id)
        if preset == ReplayPreset.CUSTOM:
            raise ValueError("A CUSTOM subscription needs a replay id")
        return preset or ReplayPreset.LATEST, None

    def _batch(self, topic: str, response: Any, events: list[ChangeEvent]) -> FetchBatch:
        return FetchBatch(
            topic=topic,
            events=tuple(events),
            latest_replay_id=bytes(response.latest_replay_id),
            pending_num_requested=int(response.pending_num_requested),
            rpc_id=response.rpc_id,
        )

    def _give_up(self, error: PubSubError, attempts: int) -> bool:
        return not error.retryable or attempts >= self.max_attempts

    @staticmethod
    def _topic(response: Any) -> Topic:
        return Topic(
            name=response.topic_name,
            schema_id=response.schema_id,
            can_subscribe=response.can_subscribe,
            can_publish=response.can_publish,
            tenant_guid=response.tenant_guid,
        )


class SalesforcePubSubClient(_Client):
    """A blocking Pub/Sub API client (for workers, scripts and tests).

    :param salesforce_conn_id: the Salesforce connection (its hook gives the session; its extras
        ``pubsub_endpoint``, ``pubsub_ca_bundle``/``ca_bundle`` and ``pubsub_tls`` the endpoint).
    :param hook: a Salesforce hook to take the session from instead of building one.
    :param connection: the connection (for its extras), when the caller already fetched it; a
        trigger passes the one ``await BaseHook.aget_connection(...)`` gave.
    :param sessions: any object with ``current()`` and ``renew(refused)`` returning a
        :class:`Session` (instead of the hook's).
    :param endpoint: / :param ca_bundle: / :param tls: override the connection's extras.
    :param num_requested: events in flight per subscription (1 to 100).
    :param max_attempts: subscribe attempts in a row after a broken stream before giving up.
    :param backoff_seconds: / :param max_backoff_seconds: pause before a new attempt (doubling,
        with jitter).
    :param call_timeout: seconds a ``GetTopic`` or ``GetSchema`` call may take.
    """

    def __init__(self, salesforce_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(salesforce_conn_id, **kwargs)
        self._channel: Any = None
        self._stub: Any = None
        self.decoder = EventDecoder(self.get_schema)

    def __enter__(self) -> SalesforcePubSubClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def stub(self) -> Any:
        if self._stub is None:
            grpc = _grpc()
            _, pb2_grpc = _stubs()
            settings = self.settings
            if settings.tls:
                channel = grpc.secure_channel(
                    settings.endpoint, settings.channel_credentials(), options=settings.channel_options()
                )
            else:
                channel = grpc.insecure_channel(settings.endpoint, options=settings.channel_options())
            self._channel = channel
            self._stub = pb2_grpc.PubSubStub(channel)
        return self._stub

    def close(self) -> None:
        """Close the channel (open subscriptions end)."""
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            channel.close()

    def _unary(self, call: str, method: Callable[..., Any], request: Any, topic: str | None = None) -> Any:
        grpc = _grpc()
        session = self.sessions.current()
        renewed = False
        while True:
            try:
                return method(request, metadata=session.metadata(), timeout=self.call_timeout)
            except grpc.RpcError as exc:
                error = from_rpc_error(exc, call=call, topic=topic)
                if isinstance(error, PubSubAuthError) and not renewed:
                    renewed = True
                    self.sessions_renewed += 1
                    log.info(
                        "Salesforce Pub/Sub API refused the session token on %s; renewing it once.", call
                    )
                    session = self.sessions.renew(session)
                    continue
                raise error from None

    def get_topic(self, topic: str) -> Topic:
        """``GetTopic``: whether the org offers the topic, and its schema id.

        :raises TopicUnavailableError: when the org offers no such topic (CDC off for the object).
        """
        pb2, _ = _stubs()
        return self._topic(
            self._unary("GetTopic", self.stub.GetTopic, pb2.TopicRequest(topic_name=topic), topic)
        )

    def get_schema(self, schema_id: str) -> str:
        """``GetSchema``: the Avro schema (JSON text) of a schema id."""
        pb2, _ = _stubs()
        return self._unary(
            "GetSchema", self.stub.GetSchema, pb2.SchemaRequest(schema_id=schema_id)
        ).schema_json

    def subscribe(
        self,
        topic: str,
        replay_id: bytes | None = None,
        preset: ReplayPreset | str | None = None,
    ) -> Iterator[ChangeEvent]:
        """The topic's events, decoded, as they come (blocks while there are none).

        :param topic: ``/data/AccountChangeEvent``, ``/data/ChangeEvents``...
        :param replay_id: start after this event (``CUSTOM``).
        :param preset: ``LATEST`` (default without a replay id) or ``EARLIEST``.
        """
        for batch in self.fetch(topic, replay_id=replay_id, preset=preset):
            yield from batch.events

    def fetch(
        self,
        topic: str,
        *,
        replay_id: bytes | None = None,
        preset: ReplayPreset | str | None = None,
    ) -> Iterator[FetchBatch]:
        """Every response of a subscription, keepalives included (see :class:`FetchBatch`).

        Goes on after a broken stream from the last position seen; ends only when the caller
        stops iterating or an error is final.
        """
        grpc = _grpc()
        preset, position = self._start(replay_id, preset)
        session = self.sessions.current()
        renewed = False
        attempts = 0
        while True:
            stream = self._fetch_once(topic, preset, position, session)
            try:
                for batch in stream:
                    attempts, renewed = 0, False
                    if batch.resume_after:
                        preset, position = ReplayPreset.CUSTOM, batch.resume_after
                    yield batch
                error: PubSubError = PubSubStreamError(
                    f"Salesforce ended the subscription to {topic}.", topic=topic
                )
            except grpc.RpcError as exc:
                error = from_rpc_error(exc, call="Subscribe", topic=topic)
            finally:
                stream.close()
            if isinstance(error, PubSubAuthError) and not renewed:
                renewed = True
                self.sessions_renewed += 1
                log.info(
                    "Salesforce Pub/Sub API refused the session token on Subscribe %s; renewing it once.",
                    topic,
                )
                session = self.sessions.renew(session)
                continue
            attempts += 1
            if self._give_up(error, attempts):
                if attempts > 1 and error.retryable:
                    raise PubSubStreamError(
                        f"{error} Gave up after {attempts} attempts in a row.", **_error_fields(error)
                    ) from None
                raise error
            pause = _backoff(attempts, self.backoff_seconds, self.max_backoff_seconds)
            log.warning(
                "%s Subscribing again in %.1f s (attempt %d of %d).",
                error,
                pause,
                attempts + 1,
                self.max_attempts,
            )
            time.sleep(pause)

    def _fetch_once(
        self, topic: str, preset: ReplayPreset, position: bytes | None, session: Session
    ) -> Iterator[FetchBatch]:
        pb2, _ = _stubs()
        outgoing: queue.Queue[Any] = queue.Queue()
        outgoing.put(self._first_request(pb2, topic, preset, position))

        def requests() -> Iterator[Any]:
            while True:
                item = outgoing.get()
                if item is None:
                    return
                yield item

        call = self.stub.Subscribe(requests(), metadata=session.metadata())
        in_flight = self.num_requested
        try:
            for response in call:
                events = [self.decoder.decode(topic, event) for event in response.events]
                in_flight -= len(events)
                if in_flight <= self.num_requested // 2:
                    outgoing.put(
                        pb2.FetchRequest(topic_name=topic, num_requested=self.num_requested - in_flight)
                    )
                    in_flight = self.num_requested
                yield self._batch(topic, response, events)
        finally:
            outgoing.put(None)
            call.cancel()


class AsyncSalesforcePubSubClient(_Client):
    """The asyncio Pub/Sub API client, for triggers (runs in the triggerer's event loop).

    Takes the same arguments as :class:`SalesforcePubSubClient`. The session comes from the
    hook in a thread (its token request is blocking HTTP); pass ``connection`` (from
    ``await BaseHook.aget_connection(...)``) so nothing blocking runs in the loop. Use it as an
    async context manager, or ``await client.close()``.
    """

    def __init__(self, salesforce_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(salesforce_conn_id, **kwargs)
        self._channel: Any = None
        self._stub: Any = None

    async def __aenter__(self) -> AsyncSalesforcePubSubClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _stub_async(self) -> Any:
        if self._stub is None:
            grpc = _grpc()
            _, pb2_grpc = _stubs()
            settings = await asyncio.to_thread(lambda: self.settings)
            if settings.tls:
                credentials = await asyncio.to_thread(settings.channel_credentials)
                channel = grpc.aio.secure_channel(
                    settings.endpoint, credentials, options=settings.channel_options()
                )
            else:
                channel = grpc.aio.insecure_channel(settings.endpoint, options=settings.channel_options())
            self._channel = channel
            self._stub = pb2_grpc.PubSubStub(channel)
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()

    async def _current(self) -> Session:
        return await asyncio.to_thread(self.sessions.current)

    async def run_as_user(self) -> str | None:
        """The id of the user the session acts as (the connected app's run-as user): the
        ``commitUser`` of every change the flows themselves write."""
        return (await self._current()).user_id

    async def _renew(self, session: Session) -> Session:
        self.sessions_renewed += 1
        return await asyncio.to_thread(self.sessions.renew, session)

    async def _unary(self, call: str, name: str, request: Any, topic: str | None = None) -> Any:
        grpc = _grpc()
        stub = await self._stub_async()
        session = await self._current()
        renewed = False
        while True:
            try:
                return await getattr(stub, name)(
                    request, metadata=session.metadata(), timeout=self.call_timeout
                )
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc, call=call, topic=topic)
                if isinstance(error, PubSubAuthError) and not renewed:
                    renewed = True
                    log.info(
                        "Salesforce Pub/Sub API refused the session token on %s; renewing it once.", call
                    )
                    session = await self._renew(session)
                    continue
                raise error from None

    async def get_topic(self, topic: str) -> Topic:
        """``GetTopic`` (see :meth:`SalesforcePubSubClient.get_topic`)."""
        pb2, _ = _stubs()
        return self._topic(
            await self._unary("GetTopic", "GetTopic", pb2.TopicRequest(topic_name=topic), topic)
        )

    async def get_schema(self, schema_id: str) -> str:
        """``GetSchema`` (see :meth:`SalesforcePubSubClient.get_schema`)."""
        pb2, _ = _stubs()
        return (
            await self._unary("GetSchema", "GetSchema", pb2.SchemaRequest(schema_id=schema_id))
        ).schema_json

    async def _decode(self, topic: str, events: Any) -> list[ChangeEvent]:
        for event in events:
            schema_id = event.event.schema_id
            if not self.decoder.known(schema_id):
                self.decoder.add_schema(schema_id, await self.get_schema(schema_id))
        return [self.decoder.decode(topic, event) for event in events]

    async def subscribe(
        self,
        topic: str,
        replay_id: bytes | None = None,
        preset: ReplayPreset | str | None = None,
    ) -> AsyncIterator[ChangeEvent]:
        """The topic's events, decoded (see :meth:`SalesforcePubSubClient.subscribe`)."""
        async for batch in self.fetch(topic, replay_id=replay_id, preset=preset):
            for event in batch.events:
                yield event

    async def fetch(
        self,
        topic: str,
        *,
        replay_id: bytes | None = None,
        preset: ReplayPreset | str | None = None,
    ) -> AsyncIterator[FetchBatch]:
        """Every response of a subscription (see :meth:`SalesforcePubSubClient.fetch`)."""
        grpc = _grpc()
        preset, position = self._start(replay_id, preset)
        session = await self._current()
        renewed = False
        attempts = 0
        while True:
            stream = self._fetch_once(topic, preset, position, session)
            try:
                async for batch in stream:
                    attempts, renewed = 0, False
                    if batch.resume_after:
                        preset, position = ReplayPreset.CUSTOM, batch.resume_after
                    yield batch
                error: PubSubError = PubSubStreamError(
                    f"Salesforce ended the subscription to {topic}.", topic=topic
                )
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc, call="Subscribe", topic=topic)
            finally:
                await stream.aclose()
            if isinstance(error, PubSubAuthError) and not renewed:
                renewed = True
                log.info(
                    "Salesforce Pub/Sub API refused the session token on Subscribe %s; renewing it once.",
                    topic,
                )
                session = await self._renew(session)
                continue
            attempts += 1
            if self._give_up(error, attempts):
                if attempts > 1 and error.retryable:
                    raise PubSubStreamError(
                        f"{error} Gave up after {attempts} attempts in a row.", **_error_fields(error)
                    ) from None
                raise error
            pause = _backoff(attempts, self.backoff_seconds, self.max_backoff_seconds)
            log.warning(
                "%s Subscribing again in %.1f s (attempt %d of %d).",
                error,
                pause,
                attempts + 1,
                self.max_attempts,
            )
            await asyncio.sleep(pause)

    async def _fetch_once(
        self, topic: str, preset: ReplayPreset, position: bytes | None, session: Session
    ) -> AsyncIterator[FetchBatch]:
        grpc = _grpc()
        pb2, _ = _stubs()
        stub = await self._stub_async()
        call = stub.Subscribe(metadata=session.metadata())
        try:
            await call.write(self._first_request(pb2, topic, preset, position))
            in_flight = self.num_requested
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                events = await self._decode(topic, response.events)
                in_flight -= len(events)
                if in_flight <= self.num_requested // 2:
                    await call.write(
                        pb2.FetchRequest(topic_name=topic, num_requested=self.num_requested - in_flight)
                    )
                    in_flight = self.num_requested
                yield self._batch(topic, response, events)
        finally:
            call.cancel()


def _error_fields(error: PubSubError) -> dict[str, Any]:
    return {
        "status": error.status,
        "error_code": error.error_code,
        "rpc_id": error.rpc_id,
        "topic": error.topic,
    }
