"""The Salesforce Pub/Sub API (``eventbus.v1.PubSub``) over the REST sandbox's change log.

A gRPC server on loopback, TLS with a freshly generated self-signed certificate (as
:mod:`airflow_provider_b1.sandbox.server` does for HTTPS) or plaintext. It streams the committed
changes of the REST sandbox's :class:`~airflow_provider_b1.sandbox.salesforce.store.Store` as
Change Data Capture events, the way Salesforce's event bus does:

* **Authentication** by gRPC metadata ``accesstoken``, ``instanceurl`` and ``tenantid`` on every
  call, the token being one the REST sandbox issued and still honours. Anything else ends the call
  with ``UNAUTHENTICATED`` and the trailer ``error-code:
  sfdc.platform.eventbus.grpc.service.auth.error``.
* **Topics** ``/data/<Object>ChangeEvent`` for each object the store logs changes of
  (``Store.cdc_objects``: Account and Opportunity by default) and ``/data/ChangeEvents`` (all of
  them). ``GetTopic`` answers the topic's schema id (empty for ``/data/ChangeEvents``, whose events
  each carry their object's); ``can_publish`` is false, as for every change event channel, and
  ``Publish``/``PublishStream`` are not offered. A topic of an object not selected, or any change
  event topic while CDC is switched off (:attr:`PubSubSandboxConfig.cdc_enabled`), is refused as
  Salesforce refuses it: ``GetTopic`` with ``NOT_FOUND`` "The topic information for org
  CORE/prod/<org id> and topic <topic> not found. Ensure the topic name is correct and that the
  topic exists." (recorded from a real org), ``Subscribe`` with
  :attr:`~PubSubSandboxConfig.subscribe_denied_status` (``PERMISSION_DENIED`` by default, and "An
  error occurred while getting the metadata for org ... Ensure the credentials and topic name are
  correct."; which status Salesforce uses there is *unconfirmed*, so it is configurable).
* **Schemas** (``GetSchema``): the Avro record ``com.sforce.eventbus.<Object>ChangeEvent`` built
  from the object's declared fields, as Salesforce derives it from object metadata: first
  ``ChangeEventHeader`` (``entityName, recordIds, changeType, changeOrigin, transactionKey,
  sequenceNumber, commitTimestamp, commitNumber, commitUser, nulledFields, diffFields,
  changedFields``), then every field except ``Id``, ``IsDeleted``, ``SystemModstamp`` and fields
  the org calculates, each a nullable union with a null default; ``Billing*``/``Shipping*``/...
  parts become one compound ``<Prefix>Address`` record field. Dates are ``int`` days and
  date-times ``long`` milliseconds since the epoch. The schema id is a fingerprint of the schema.
* **Subscribe**: the first ``FetchRequest`` names the topic and where to start: ``LATEST`` (after
  the newest change), ``EARLIEST`` (the oldest retained) or ``CUSTOM`` with a ``replay_id`` (start
  after it). Replay ids are opaque to clients; here they are the change's sequence number as 8
  big-endian bytes. Flow control is by ``num_requested``: each request adds to the events still
  owed, no response carries more than owed (nor more than :attr:`~PubSubSandboxConfig.max_batch`),
  and ``pending_num_requested`` says what is still owed. Each event is the change Avro-encoded
  (schemaless binary), with ``changedFields``/``nulledFields`` as Salesforce's hex bitmaps of
  schema field positions (``["0x0A"]``, compound parts as ``"7-0x02"``). An idle stream gets an
  empty response (a keepalive) with ``latest_replay_id`` every
  :attr:`~PubSubSandboxConfig.keepalive_seconds` (Salesforce: within 270 s). A replay id whose
  successors are no longer retained (the store drops changes older than its retention, 72 h by
  default: so the position is older than the retention too) or that was never issued ends the call with ``INVALID_ARGUMENT`` "The Replay ID
  validation failed." and ``error-code: sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted``;
  ``CUSTOM`` without a replay id with ``...fetch.replayid.validation.failed``.
  Every error's details end with `` rpcId: <uuid>``, also sent as the ``rpc-id`` trailer.

The message classes come from the sandbox's own compiled copy of ``pubsub_api.proto``
(:mod:`.pubsub_proto`, a private descriptor pool); nothing is shared with the hooks.

Start it next to a running REST sandbox (``b1-sandbox`` does, and prints the extras)::

    app = create_app(SalesforceSandboxConfig())             # the REST sandbox
    served = serve_pubsub(app, certificate=(cert, key))     # or a new certificate, or tls=False
    served.endpoint, served.ca_path                         # "127.0.0.1:PORT", PEM to trust
    connection_extra(served)                                # {"pubsub_endpoint": ..., ...}
    served.sandbox.configure(keepalive_seconds=0.5, cdc_enabled=False)
    served.stop()

    serve_next_to(app, rest_served.ca_path)                 # the REST sandbox's certificate, or None
                                                            # without the cdc extra

Tokens are the REST sandbox's: a session that expired there (idle timeout, ``expire_tokens``) is
refused here too. Which objects have topics is its ``cdc_objects`` setting (``POST
/_sandbox/config {"cdc_objects": []}`` leaves none), and its ``change_retention_seconds`` how far
back a replay id may go.

Needs grpcio and protobuf (the ``cdc`` extra) and, for Avro, fastavro.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from airflow_provider_b1.sandbox.salesforce.pubsub_proto import SERVICE, messages
from airflow_provider_b1.sandbox.salesforce.schema import SObject, parse_datetime
from airflow_provider_b1.sandbox.server import LOOPBACK, generate_certificate

log = logging.getLogger(__name__)

ALL_CHANGES = "/data/ChangeEvents"
NAMESPACE = "com.sforce.eventbus"
AUTH_ERROR = "sfdc.platform.eventbus.grpc.service.auth.error"
REPLAY_CORRUPTED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
REPLAY_VALIDATION_FAILED = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
REQUESTED_EVENTS_INVALID = "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid"
TOPIC_NOT_FOUND = "sfdc.platform.eventbus.grpc.topic.notfound"  # *unconfirmed* code
API_VERSION = "62.0"

CHANGE_TYPES = [
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
    "SNAPSHOT",
]
HEADER_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "ChangeEventHeader",
    "namespace": NAMESPACE,
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {
            "name": "changeType",
            "type": {"type": "enum", "name": "ChangeType", "namespace": NAMESPACE, "symbols": CHANGE_TYPES},
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}

ADDRESS_PARTS = (
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
)
ADDRESS_PREFIXES = ("Billing", "Shipping", "Mailing", "Other")
_AVRO_TYPES = {
    "boolean": "boolean",
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
}
_DOCS = {
    "id": "EntityId",
    "reference": "EntityId",
    "boolean": "Boolean",
    "int": "Int",
    "double": "Double",
    "currency": "Currency",
    "percent": "Percent",
    "date": "Date",
    "datetime": "DateTime",
    "picklist": "DynamicEnum",
    "textarea": "Text",
}
_LEFT_OUT = {"Id", "IsDeleted", "SystemModstamp"}
EPOCH_DAY = dt.date(1970, 1, 1)


def _fastavro() -> Any:
    import fastavro

    return fastavro


def _grpc() -> Any:
    import grpc

    return grpc


def encode_replay_id(seq: int) -> bytes:
    """A change's sequence number as its replay id (8 bytes, big-endian)."""
    return int(seq).to_bytes(8, "big")


def decode_replay_id(replay_id: bytes) -> int | None:
    """The sequence number of a replay id this server issued, else ``None``."""
    if len(replay_id) != 8:
        return None
    return int.from_bytes(replay_id, "big")


# -- schemas ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class EventSchema:
    """An object's change event schema and how its record's fields map onto it."""

    entity: str
    schema: dict[str, Any]
    schema_id: str
    json: str
    positions: dict[str, int]  # top-level Avro field -> position
    compound: dict[str, tuple[str, str]]  # REST field (BillingCity) -> (Avro field, part)
    kinds: dict[str, str]  # REST field -> sandbox field type
    parsed: Any = None


def _schema_id(text: str) -> str:
    """A fingerprint of the schema, written as Salesforce writes schema ids (22 URL-safe characters)."""
    return base64.urlsafe_b64encode(hashlib.md5(text.encode()).digest()).decode().rstrip("=")  # noqa: S324


def build_event_schema(sobject: SObject) -> EventSchema:
    """The Avro schema of ``sobject``'s change events (see the module documentation)."""
    fields: list[dict[str, Any]] = [
        {"name": "ChangeEventHeader", "type": HEADER_SCHEMA, "doc": "Data:ChangeEventHeader"}
    ]
    compound: dict[str, tuple[str, str]] = {}
    kinds: dict[str, str] = {}
    address_defined = False
    declared = {f.name for f in sobject.fields.values()}
    for f in sobject.fields.values():
        if f.name in _LEFT_OUT or f.calculated:
            continue
        prefix = next(
            (p for p in ADDRESS_PREFIXES if f.name.startswith(p) and f.name[len(p) :] in ADDRESS_PARTS), None
        )
        if prefix is not None and {f"{prefix}Street", f"{prefix}City"} & declared:
            name = f"{prefix}Address"
            compound[f.name] = (name, f.name[len(prefix) :])
            kinds[f.name] = f.type
            if any(existing["name"] == name for existing in fields):
                continue
            if address_defined:
                record: Any = f"{NAMESPACE}.Address"
            else:
                address_defined = True
                record = {
                    "type": "record",
                    "name": "Address",
                    "namespace": NAMESPACE,
                    "fields": [
                        {
                            "name": part,
                            "type": ["null", "double" if part in ("Latitude", "Longitude") else "string"],
                            "doc": "Data:Double" if part in ("Latitude", "Longitude") else "Data:Text",
                            "default": None,
                        }
                        for part in ADDRESS_PARTS
                    ],
                }
            fields.append({"name": name, "type": ["null", record], "doc": "Data:Address", "default": None})
            continue
        kinds[f.name] = f.type
        avro = (
            "long"
            if f.type == "datetime"
            else "int"
            if f.type == "date"
            else _AVRO_TYPES.get(f.type, "string")
        )
        doc = ("Data:" if f.name not in ("CreatedDate", "LastModifiedDate") else f"{f.name}:") + _DOCS.get(
            f.type, "Text"
        )
        fields.append({"name": f.name, "type": ["null", avro], "doc": doc, "default": None})
    schema = {
        "type": "record",
        "name": f"{sobject.name}ChangeEvent",
        "namespace": NAMESPACE,
        "fields": fields,
    }
    text = json.dumps(schema, separators=(",", ":"))
    positions = {field["name"]: i for i, field in enumerate(fields)}
    return EventSchema(sobject.name, schema, _schema_id(text), text, positions, compound, kinds)


def _avro_value(kind: str, value: Any) -> Any:
    """A printed REST value as its Avro value."""
    if value is None:
        return None
    if kind == "datetime":
        return parse_datetime(value) if isinstance(value, str) else int(value)
    if kind == "date":
        return (dt.date.fromisoformat(str(value)[:10]) - EPOCH_DAY).days
    if kind in ("double", "currency", "percent"):
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "boolean":
        return bool(value)
    return str(value)


def _bitmap(bits: Iterable[int]) -> str:
    value = 0
    for bit in bits:
        value |= 1 << bit
    digits = max(1, (value.bit_length() + 7) // 8) * 2
    return f"0x{value:0{digits}X}"


def _bitmaps(es: EventSchema, names: Iterable[str]) -> list[str]:
    """Salesforce's bitmap list of these REST field names (unknown ones, as SystemModstamp, left out)."""
    top: set[int] = set()
    nested: dict[int, set[int]] = {}
    for name in names:
        if name in es.compound:
            avro, part = es.compound[name]
            nested.setdefault(es.positions[avro], set()).add(ADDRESS_PARTS.index(part))
        elif name in es.positions:
            top.add(es.positions[name])
    out = [_bitmap(top)] if top or nested else []
    return out + [f"{pos}-{_bitmap(bits)}" for pos, bits in sorted(nested.items())]


def event_record(es: EventSchema, change: Any) -> dict[str, Any]:
    """The Avro record (as a dict) of a change from the store's log."""
    kind = change.change_type
    record = change.record or {}
    if kind == "UPDATE":
        carried = [n for n in change.changed_fields if n in es.kinds]
    elif kind in ("CREATE", "UNDELETE"):
        carried = [n for n in es.kinds if record.get(n) is not None]
    else:
        carried = []
    body: dict[str, Any] = {name: None for name in es.positions if name != "ChangeEventHeader"}
    for name in carried:
        value = _avro_value(es.kinds[name], record.get(name))
        if name in es.compound:
            avro, part = es.compound[name]
            body[avro] = body[avro] or dict.fromkeys(ADDRESS_PARTS)
            body[avro][part] = value
        else:
            body[name] = value
    nulled = [n for n in carried if record.get(n) is None] if kind == "UPDATE" else []
    header = {
        "entityName": change.object,
        "recordIds": list(change.record_ids),
        "changeType": kind,
        "changeOrigin": f"com/salesforce/api/rest/{API_VERSION}" if change.origin == "api" else "",
        "transactionKey": change.transaction_key,
        "sequenceNumber": int(change.sequence_number),
        "commitTimestamp": int(change.commit_timestamp),
        "commitNumber": int(change.commit_timestamp),
        "commitUser": change.commit_user or "",
        "nulledFields": _bitmaps(es, nulled),
        "diffFields": [],
        "changedFields": _bitmaps(es, change.changed_fields) if kind == "UPDATE" else [],
    }
    return {"ChangeEventHeader": header, **body}


def encode_event(es: EventSchema, change: Any) -> bytes:
    """A change as Salesforce sends it: the Avro record, schemaless binary."""
    fastavro = _fastavro()
    if es.parsed is None:
        es.parsed = fastavro.parse_schema(es.schema)
    out = io.BytesIO()
    fastavro.schemaless_writer(out, es.parsed, event_record(es, change))
    return out.getvalue()


# -- the service -----------------------------------------------------------------------------------


@dataclasses.dataclass
class PubSubSandboxConfig:
    """How the Pub/Sub imitation behaves.

    :param keepalive_seconds: an idle subscription gets an empty response this often (Salesforce:
        within 270 s).
    :param cdc_enabled: Change Data Capture for the org; off, every change event topic is refused.
    :param max_batch: at most this many events per response.
    :param subscribe_denied_status: the gRPC status name that refuses ``Subscribe`` to a topic the org
        does not offer (``PERMISSION_DENIED`` or ``NOT_FOUND``).
    """

    keepalive_seconds: float = 270.0
    cdc_enabled: bool = True
    max_batch: int = 100
    subscribe_denied_status: str = "PERMISSION_DENIED"


class _Refused(Exception):
    def __init__(self, status: str, message: str, error_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code


def session_valid(org: Any, token: str) -> bool:
    """Whether the REST sandbox honours an access token now, as its API would answer a call.

    A session ends ``session_timeout_seconds`` after its last use or when expired through the
    control plane; a call with a live one counts as a use. Uses the org's own check when it has
    one (``session_valid``), else reads its token table the way its API does.
    """
    own = getattr(org, "session_valid", None)
    if callable(own):
        return bool(own(token))
    entry = getattr(org, "tokens", {}).get(token)
    if entry is None or entry.get("expired"):
        return False
    now = time.monotonic()
    if now - entry["last"] > org.config.session_timeout_seconds:
        entry["expired"] = True
        return False
    entry["last"] = now
    return True


class PubSubSandbox:
    """The ``eventbus.v1.PubSub`` service over a Salesforce sandbox org.

    :param org: the REST sandbox's live state (``app.state.sandbox``): its ``store`` (read anew on
        every use, since a reset replaces it), ``org_id``, ``tokens`` and ``config``. Anything with
        ``store`` and ``org_id`` will do when ``authenticate`` is given.
    :param authenticate: answers whether an access token is good now (default: the org's own
        sessions, see :func:`session_valid`).
    :param instance_url: the instance URL a call's ``instanceurl`` must equal (``None``: any, as
        long as there is one; the sandbox's URL depends on how a client reached it).
    :param config: behaviour (keepalives, CDC on or off...).
    """

    def __init__(
        self,
        org: Any,
        *,
        authenticate: Callable[[str], bool] | None = None,
        instance_url: str | None = None,
        config: PubSubSandboxConfig | None = None,
    ) -> None:
        self.org = org
        self.authenticate = authenticate or (lambda token: session_valid(org, token))
        self.config = config or PubSubSandboxConfig()
        self.instance_url = instance_url.rstrip("/") if instance_url else None
        self._schemas: dict[tuple[int, str], EventSchema] = {}
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {}
        self.active_subscriptions = 0
        self._stopping = threading.Event()

    @property
    def store(self) -> Any:
        """The org's store now (``/_sandbox/reset`` replaces it)."""
        return self.org.store

    @property
    def org_id(self) -> str:
        return str(self.org.org_id)

    # -- configuration and introspection ----------------------------------------------------------

    def configure(self, **changes: Any) -> PubSubSandboxConfig:
        """Change settings of the running service (``keepalive_seconds=0.2, cdc_enabled=False``)."""
        with self._lock:
            self.config = dataclasses.replace(self.config, **changes)
        return self.config

    def event_schema(self, entity: str) -> EventSchema:
        """The change event schema of an object (built once per store: a reset may change fields)."""
        store = self.store
        key = (id(store.schema), entity)
        with self._lock:
            found = self._schemas.get(key)
            if found is None:
                found = self._schemas[key] = build_event_schema(store.schema[entity])
            return found

    def topic_objects(self, topic: str) -> list[str] | None:
        """The objects whose changes a topic carries, or ``None`` when the org offers no such topic."""
        if not self.config.cdc_enabled:
            return None
        selected = [o for o in self.store.schema if o in self.store.cdc_objects]
        if topic == ALL_CHANGES:
            return selected or None
        if topic.startswith("/data/") and topic.endswith("ChangeEvent"):
            entity = topic[len("/data/") : -len("ChangeEvent")]
            return [entity] if entity in selected else None
        return None

    # -- gRPC plumbing ---------------------------------------------------------------------------

    def _rpc_id(self) -> str:
        return str(uuid.uuid4())

    def _abort(self, context: Any, refused: _Refused) -> None:
        grpc = _grpc()
        rpc_id = self._rpc_id()
        trailers = [("rpc-id", rpc_id)]
        if refused.error_code:
            trailers.append(("error-code", refused.error_code))
        context.set_trailing_metadata(trailers)
        self._count(f"refused {refused.status}")
        context.abort(getattr(grpc.StatusCode, refused.status), f"{refused.message} rpcId: {rpc_id}")

    def _check_auth(self, context: Any) -> None:
        metadata = {k: v for k, v in context.invocation_metadata()}
        token = metadata.get("accesstoken", "")
        tenant = metadata.get("tenantid", "")
        instance = (metadata.get("instanceurl") or "").rstrip("/")
        if (
            not token
            or not self.authenticate(token)
            or tenant != self.org_id
            or not instance
            or (self.instance_url is not None and instance != self.instance_url)
        ):
            raise _Refused(
                "UNAUTHENTICATED",
                "An authentication exception occurred. Provide valid authentication via metadata headers.",
                AUTH_ERROR,
            )

    def _denied(self, topic: str, status: str) -> _Refused:
        if status == "NOT_FOUND":
            return _Refused(
                "NOT_FOUND",
                f"The topic information for org CORE/prod/{self.org_id} and topic {topic} not found. "
                "Ensure the topic name is correct and that the topic exists.",
                TOPIC_NOT_FOUND,
            )
        return _Refused(
            status,
            f"An error occurred while getting the metadata for org CORE/prod/{self.org_id} and topic {topic}. "
            "Ensure the credentials and topic name are correct.",
            TOPIC_NOT_FOUND,
        )

    def GetTopic(self, request: Any, context: Any) -> Any:
        m = messages()
        try:
            self._check_auth(context)
            self._count("GetTopic")
            objects = self.topic_objects(request.topic_name)
            if objects is None:
                raise self._denied(request.topic_name, "NOT_FOUND")
            schema_id = "" if request.topic_name == ALL_CHANGES else self.event_schema(objects[0]).schema_id
            return m.TopicInfo(
                topic_name=request.topic_name,
                tenant_guid=self.org_id,
                can_publish=False,
                can_subscribe=True,
                schema_id=schema_id,
                rpc_id=self._rpc_id(),
            )
        except _Refused as refused:
            self._abort(context, refused)

    def GetSchema(self, request: Any, context: Any) -> Any:
        m = messages()
        try:
            self._check_auth(context)
            self._count("GetSchema")
            for entity in self.store.schema:
                if entity not in self.store.cdc_objects:
                    continue
                es = self.event_schema(entity)
                if es.schema_id == request.schema_id:
                    return m.SchemaInfo(schema_json=es.json, schema_id=es.schema_id, rpc_id=self._rpc_id())
            raise _Refused(
                "INVALID_ARGUMENT",
                "Schema validation failed. The schema ID can't be blank."
                if not request.schema_id
                else f"The schema ID {request.schema_id} wasn't found.",
            )
        except _Refused as refused:
            self._abort(context, refused)

    def Subscribe(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        try:
            self._check_auth(context)
            first = next(request_iterator, None)
            if first is None:
                return
            yield from self._stream(first, request_iterator, context)
        except _Refused as refused:
            self._abort(context, refused)

    # -- the subscription ------------------------------------------------------------------------

    def _start(self, first: Any) -> tuple[list[str], int]:
        m = messages()
        topic = first.topic_name
        objects = self.topic_objects(topic)
        if objects is None:
            raise self._denied(topic, self.config.subscribe_denied_status)
        if first.num_requested <= 0:
            raise _Refused(
                "INVALID_ARGUMENT",
                "The number of events requested must be greater than zero.",
                REQUESTED_EVENTS_INVALID,
            )
        store = self.store
        preset = first.replay_preset
        if preset == m.ReplayPreset["CUSTOM"]:
            if not first.replay_id:
                raise _Refused(
                    "INVALID_ARGUMENT",
                    "The Replay ID validation failed. A CUSTOM replay preset needs a replay ID.",
                    REPLAY_VALIDATION_FAILED,
                )
            seq = decode_replay_id(bytes(first.replay_id))
            with store.lock:
                oldest, last = store.first_retained_seq(), store.last_seq
            if seq is None or seq < oldest - 1 or seq > last:
                raise _Refused("INVALID_ARGUMENT", "The Replay ID validation failed.", REPLAY_CORRUPTED)
            return objects, seq
        with store.lock:
            if preset == m.ReplayPreset["EARLIEST"]:
                return objects, store.first_retained_seq() - 1
            return objects, store.last_seq

    def _stream(self, first: Any, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        m = messages()
        topic = first.topic_name
        objects, position = self._start(first)
        owed: dict[str, Any] = {"n": int(first.num_requested), "error": None}
        more = threading.Condition()

        def read_requests() -> None:
            try:
                for request in requests:
                    with more:
                        if request.topic_name and request.topic_name != topic:
                            owed["error"] = _Refused(
                                "INVALID_ARGUMENT",
                                f"The topic name {request.topic_name} doesn't match the topic of the "
                                f"subscription ({topic}).",
                            )
                        owed["n"] += max(0, int(request.num_requested))
                        more.notify_all()
            except Exception:  # the client went away: the stream ends with it
                log.debug("Subscribe request stream of %s ended", topic, exc_info=True)

        threading.Thread(target=read_requests, name=f"pubsub-requests-{topic}", daemon=True).start()
        self._count("Subscribe")
        with self._lock:
            self.active_subscriptions += 1
        last_sent = time.monotonic()
        try:
            while context.is_active() and not self._stopping.is_set():
                with more:
                    if owed["error"] is not None:
                        raise owed["error"]
                    credit = owed["n"]
                store = self.store  # read anew: a reset replaces it
                if credit > 0:
                    with store.lock:
                        seen = store.last_seq
                    batch = store.changes_after(position, objects, limit=min(credit, self.config.max_batch))
                    if batch:
                        events = [self._consumer_event(change) for change in batch]
                        position = batch[-1].seq
                        with more:
                            owed["n"] -= len(events)
                            pending = owed["n"]
                        self._count("events", len(events))
                        yield m.FetchResponse(
                            events=events,
                            latest_replay_id=encode_replay_id(position),
                            rpc_id=self._rpc_id(),
                            pending_num_requested=pending,
                        )
                        last_sent = time.monotonic()
                        continue
                wait = last_sent + self.config.keepalive_seconds - time.monotonic()
                if wait <= 0:
                    yield self._keepalive(position, objects, owed["n"])
                    last_sent = time.monotonic()
                    continue
                wait = min(wait, 0.25)
                if credit > 0:
                    store.wait_for_change(seen, wait)
                else:
                    with more:
                        more.wait_for(lambda: owed["n"] > 0 or owed["error"] is not None, timeout=wait)
        finally:
            with self._lock:
                self.active_subscriptions -= 1

    def _keepalive(self, position: int, objects: list[str], owed: int) -> Any:
        m = messages()
        store = self.store
        with store.lock:
            undelivered = store.changes_after(position, objects, limit=1)
            latest = position if undelivered else max(position, store.last_seq)
        self._count("keepalives")
        return m.FetchResponse(
            events=[],
            latest_replay_id=encode_replay_id(latest),
            rpc_id=self._rpc_id(),
            pending_num_requested=owed,
        )

    def _consumer_event(self, change: Any) -> Any:
        m = messages()
        es = self.event_schema(change.object)
        event = m.ProducerEvent(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.org_id}/{change.seq}")),
            schema_id=es.schema_id,
            payload=encode_event(es, change),
        )
        return m.ConsumerEvent(event=event, replay_id=encode_replay_id(change.seq))

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.stats[key] = self.stats.get(key, 0) + n

    def generic_handler(self) -> Any:
        """The gRPC handler registering this service's methods under ``eventbus.v1.PubSub``."""
        grpc = _grpc()
        m = messages()
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetTopic": grpc.unary_unary_rpc_method_handler(
                    self.GetTopic, m.TopicRequest.FromString, m.TopicInfo.SerializeToString
                ),
                "GetSchema": grpc.unary_unary_rpc_method_handler(
                    self.GetSchema, m.SchemaRequest.FromString, m.SchemaInfo.SerializeToString
                ),
                "Subscribe": grpc.stream_stream_rpc_method_handler(
                    self.Subscribe, m.FetchRequest.FromString, m.FetchResponse.SerializeToString
                ),
            },
        )


# -- serving ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class ServedPubSub:
    """A running Pub/Sub sandbox.

    :param endpoint: ``127.0.0.1:PORT``, the gRPC target.
    :param port: the port.
    :param ca_path: PEM file to trust (TLS only); ``None`` when plaintext.
    :param cert_sha256: hex SHA-256 of the certificate (TLS only).
    :param sandbox: the service, for :meth:`PubSubSandbox.configure` and its ``stats``.
    """

    endpoint: str
    port: int
    ca_path: str | None
    cert_sha256: str | None
    sandbox: PubSubSandbox
    _server: Any = None

    @property
    def tls(self) -> bool:
        return self.ca_path is not None

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving (idempotent); open streams end."""
        if self._server is not None:
            server, self._server = self._server, None
            self.sandbox._stopping.set()
            server.stop(grace).wait(grace + 5)


def _org_of(source: Any) -> Any:
    """The REST sandbox's live state from its app, its state, or itself."""
    state = getattr(source, "state", None)
    org = getattr(state, "sandbox", None) if state is not None else source
    if org is None or not hasattr(org, "store") or not hasattr(org, "org_id"):
        raise TypeError("serve_pubsub needs the Salesforce sandbox's app or its state (app.state.sandbox)")
    return org


def serve_pubsub(
    sandbox: Any,
    *,
    config: PubSubSandboxConfig | None = None,
    authenticate: Callable[[str], bool] | None = None,
    instance_url: str | None = None,
    tls: bool = True,
    certificate: tuple[str, str] | None = None,
    port: int = 0,
    state_dir: str | None = None,
    max_workers: int = 32,
) -> ServedPubSub:
    """Serve the Pub/Sub API on loopback from a thread pool; returns once it listens.

    :param sandbox: the REST sandbox's app (from ``create_app``) or its state; its store, sessions
        and org id are the service's.
    :param config: behaviour; :meth:`PubSubSandbox.configure` changes it while serving.
    :param authenticate: / :param instance_url: see :class:`PubSubSandbox`.
    :param tls: TLS, else plaintext.
    :param certificate: ``(cert_path, key_path)`` to serve (the REST sandbox's, so one CA bundle
        trusts both); by default a new self-signed one (CN and SAN ``127.0.0.1``).
    :param port: 0 picks a free port.
    :param state_dir: where a new certificate goes (a temporary folder by default).
    :param max_workers: concurrent calls (each open subscription holds one).
    """
    grpc = _grpc()
    from concurrent import futures

    service = PubSubSandbox(
        _org_of(sandbox), authenticate=authenticate, instance_url=instance_url, config=config
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="b1-pubsub"),
        handlers=(service.generic_handler(),),
        options=[("grpc.so_reuseport", 0)],
    )
    address = f"{LOOPBACK}:{port}"
    cert_path = fingerprint = None
    if tls:
        if certificate is None:
            cert_path, key_path, fingerprint = generate_certificate(state_dir)
        else:
            cert_path, key_path = certificate
            fingerprint = _fingerprint(Path(cert_path).read_bytes())
        credentials = grpc.ssl_server_credentials(
            [(Path(key_path).read_bytes(), Path(cert_path).read_bytes())]
        )
        bound = server.add_secure_port(address, credentials)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise RuntimeError(f"The Pub/Sub sandbox could not listen on {address}")
    server.start()
    return ServedPubSub(
        endpoint=f"{LOOPBACK}:{bound}",
        port=bound,
        ca_path=cert_path,
        cert_sha256=fingerprint,
        sandbox=service,
        _server=server,
    )


def _fingerprint(pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def connection_extra(served: ServedPubSub) -> Mapping[str, Any]:
    """The Salesforce connection extras that point the CDC client at this server."""
    extra: dict[str, Any] = {"pubsub_endpoint": served.endpoint}
    if served.ca_path:
        extra["pubsub_ca_bundle"] = served.ca_path
    else:
        extra["pubsub_tls"] = False
    return extra


def serve_next_to(app: Any, rest_ca_path: str | None, **kwargs: Any) -> ServedPubSub | None:
    """The Pub/Sub service for a REST sandbox served over HTTPS, with the same certificate (so
    the connection's ``ca_bundle`` trusts both); ``None`` when grpcio or fastavro is missing.

    :param app: the REST sandbox's app.
    :param rest_ca_path: its certificate (the key, ``sandbox-key.pem``, lies next to it); ``None``:
        plaintext.
    :param kwargs: passed to :func:`serve_pubsub`.
    """
    try:
        _grpc()
        _fastavro()
    except ImportError:
        log.warning("The Pub/Sub sandbox needs the cdc extra (grpcio, protobuf, fastavro); not started.")
        return None
    if rest_ca_path is None:
        return serve_pubsub(app, tls=False, **kwargs)
    cert = Path(rest_ca_path)
    return serve_pubsub(app, certificate=(str(cert), str(cert.with_name("sandbox-key.pem"))), **kwargs)
