"""Change events as delivered by the Pub/Sub API: Avro payloads and the header's bitmap fields.

An event's payload is schemaless Avro binary; its schema (JSON) comes from ``GetSchema`` by the
event's schema id and never changes for that id, so :class:`EventDecoder` keeps each parsed schema
once. A change event is a record whose first field is ``ChangeEventHeader`` (``entityName``,
``recordIds``, ``changeType``, ``changeOrigin``, ``transactionKey``, ``sequenceNumber``,
``commitTimestamp``, ``commitNumber``, ``commitUser``, ``nulledFields``, ``diffFields``,
``changedFields``), followed by the object's fields as nullable unions. An update carries values
only for the fields it changed; the others are null.

The header's ``changedFields``, ``nulledFields`` and ``diffFields`` are *bitmaps*, as Salesforce's
"Event Deserialization Considerations" describes: a list of strings whose first element is a hex
bitmap of the record's top-level fields (``"0x0A"``: bits 1 and 3 set, so the 2nd and 4th fields
of the schema, counting ``ChangeEventHeader`` as field 0), and whose other elements
``"<pos>-<hex>"`` name fields inside the compound field at position ``pos`` (an address):
``"5-0x02"`` is the second field of the record-typed field 5, reported as ``BillingAddress.City``.
:func:`decode_bitmap` turns them into field names; it needs only the schema's JSON, not fastavro.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_provider_b1.hooks.salesforce.pubsub.errors import INSTALL_HINT, CdcDependencyError

HEADER = "ChangeEventHeader"
BITMAP_FIELDS = ("changedFields", "nulledFields", "diffFields")


def _fastavro() -> Any:
    try:
        import fastavro
    except ImportError as exc:
        raise CdcDependencyError(
            f"Decoding Salesforce change events needs fastavro, which is not installed: {INSTALL_HINT}."
        ) from exc
    return fastavro


def _record_of(avro_type: Any, named: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The record schema inside a (nullable) field type, following names of defined records."""
    if isinstance(avro_type, list):
        for member in avro_type:
            found = _record_of(member, named)
            if found is not None:
                return found
        return None
    if isinstance(avro_type, str):
        return named.get(avro_type) or named.get(avro_type.rsplit(".", 1)[-1])
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "record":
        return avro_type
    return None


def _named_records(schema: Any, found: dict[str, Any] | None = None, namespace: str = "") -> dict[str, Any]:
    """Every named record of a schema, by short and full name (a second use refers to it by name)."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for member in schema:
            _named_records(member, found, namespace)
    elif isinstance(schema, Mapping):
        if schema.get("type") == "record":
            ns = schema.get("namespace", namespace)
            name = schema.get("name", "")
            found[name] = schema
            found[f"{ns}.{name}" if ns and "." not in name else name] = schema
            for field in schema.get("fields", []):
                _named_records(field.get("type"), found, ns)
        elif schema.get("type") in ("array", "map"):
            _named_records(schema.get("items") or schema.get("values"), found, namespace)
    return found


def _bits(bitmap: str) -> list[int]:
    """Positions of the set bits of a hex bitmap (``"0x0A"`` -> ``[1, 3]``), lowest first."""
    text = bitmap.strip()
    value = int(text[2:] if text[:2].lower() == "0x" else text, 16)
    return [i for i in range(value.bit_length()) if value >> i & 1]


def decode_bitmap(schema: Mapping[str, Any], bitmap: Sequence[str] | None) -> list[str]:
    """The field names a header bitmap field stands for, in schema order.

    :param schema: the event's Avro schema (parsed JSON).
    :param bitmap: the header's list (``["0x0A", "5-0x02"]``); an element that is already a field
        name (as Streaming API delivers it) is kept as it is.
    :raises ValueError: when a bit points past the schema's fields (wrong schema for the event).
    """
    names: list[str] = []
    if not bitmap:
        return names
    fields = list(schema.get("fields", []))
    named = _named_records(schema)
    for element in bitmap:
        text = str(element)
        head, dash, tail = text.partition("-")
        if text[:2].lower() == "0x":
            for pos in _bits(text):
                if pos >= len(fields):
                    raise ValueError(f"Bitmap {text} names field {pos}; the schema has {len(fields)}")
                names.append(fields[pos]["name"])
        elif dash and head.isdigit() and tail[:2].lower() == "0x":
            parent = fields[int(head)]
            record = _record_of(parent.get("type"), named)
            if record is None:
                raise ValueError(f"Bitmap {text} names parts of {parent['name']}, which is not compound")
            children = record.get("fields", [])
            for pos in _bits(tail):
                if pos >= len(children):
                    raise ValueError(
                        f"Bitmap {text} names part {pos} of {parent['name']}; it has {len(children)}"
                    )
                names.append(f"{parent['name']}.{children[pos]['name']}")
        else:
            names.append(text)
    return names


def encode_bitmap(schema: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    """The header bitmap of these field names (the inverse of :func:`decode_bitmap`); for tests and
    tools, Salesforce writes them itself."""
    fields = list(schema.get("fields", []))
    named = _named_records(schema)
    index = {f["name"]: i for i, f in enumerate(fields)}
    top = 0
    nested: dict[int, int] = {}
    for name in names:
        parent, dot, child = name.partition(".")
        if parent not in index:
            raise ValueError(f"{name}: no such field in {schema.get('name')}")
        if not dot:
            top |= 1 << index[parent]
            continue
        record = _record_of(fields[index[parent]].get("type"), named) or {}
        children = [f["name"] for f in record.get("fields", [])]
        if child not in children:
            raise ValueError(f"{name}: no such part of {parent}")
        nested[index[parent]] = nested.get(index[parent], 0) | 1 << children.index(child)
    out = [_hex(top)] if top or nested else []
    out += [f"{pos}-{_hex(bits)}" for pos, bits in sorted(nested.items())]
    return out


def _hex(value: int) -> str:
    digits = max(1, (value.bit_length() + 7) // 8) * 2
    return f"0x{value:0{digits}X}"


@dataclasses.dataclass(frozen=True)
class ChangeEvent:
    """One decoded change event.

    :param topic: the topic it came from (``/data/AccountChangeEvent``).
    :param replay_id: its position in the stream (opaque bytes); subscribe after it to go on.
    :param schema_id: the schema it was written with.
    :param event_id: the event's own id.
    :param entity: ``ChangeEventHeader.entityName`` (``Account``).
    :param record_ids: the changed records' ids (several when one transaction changed many the same way).
    :param change_type: ``CREATE``, ``UPDATE``, ``DELETE``, ``UNDELETE`` or a ``GAP_*`` type.
    :param changed_fields: field names decoded from ``changedFields`` (compound parts as
        ``BillingAddress.City``); empty for creates, deletes and undeletes.
    :param nulled_fields: field names set to null (decoded ``nulledFields``).
    :param diff_fields: fields sent as a diff (decoded ``diffFields``).
    :param header: the whole ``ChangeEventHeader`` as decoded (bitmaps left as they came).
    :param values: the record's fields that carry a value in this event.
    """

    topic: str
    replay_id: bytes
    schema_id: str
    event_id: str
    entity: str
    record_ids: tuple[str, ...]
    change_type: str
    changed_fields: tuple[str, ...]
    nulled_fields: tuple[str, ...]
    diff_fields: tuple[str, ...]
    header: Mapping[str, Any]
    values: Mapping[str, Any]

    @property
    def commit_timestamp(self) -> int | None:
        """Milliseconds since the epoch when the transaction committed."""
        return self.header.get("commitTimestamp")

    @property
    def transaction_key(self) -> str | None:
        return self.header.get("transactionKey")

    @property
    def commit_user(self) -> str | None:
        return self.header.get("commitUser")


class EventDecoder:
    """Decodes event payloads, fetching each schema once by its id.

    :param fetch_schema: returns the schema JSON of a schema id (``GetSchema``).
    """

    def __init__(self, fetch_schema: Callable[[str], str] | None = None) -> None:
        self._fetch = fetch_schema
        self._schemas: dict[str, tuple[dict[str, Any], Any]] = {}
        self._lock = threading.Lock()

    def known(self, schema_id: str) -> bool:
        return schema_id in self._schemas

    def add_schema(self, schema_id: str, schema_json: str) -> None:
        """Keep a schema (as ``GetSchema`` answered) for its id."""
        raw = json.loads(schema_json)
        parsed = _fastavro().parse_schema(raw)
        with self._lock:
            self._schemas[schema_id] = (raw, parsed)

    def schema(self, schema_id: str) -> dict[str, Any]:
        """The schema's JSON (parsed) for an id, fetched on first use."""
        if schema_id not in self._schemas:
            if self._fetch is None:
                raise KeyError(f"No schema {schema_id!r} and no way to fetch it")
            self.add_schema(schema_id, self._fetch(schema_id))
        return self._schemas[schema_id][0]

    def decode_payload(self, schema_id: str, payload: bytes) -> dict[str, Any]:
        """The Avro record of a payload, as a dict."""
        self.schema(schema_id)
        parsed = self._schemas[schema_id][1]
        return _fastavro().schemaless_reader(io.BytesIO(payload), parsed)

    def decode(self, topic: str, consumer_event: Any) -> ChangeEvent:
        """A ``ConsumerEvent`` (protobuf) as a :class:`ChangeEvent`."""
        event = consumer_event.event
        record = self.decode_payload(event.schema_id, event.payload)
        return change_event(
            topic,
            bytes(consumer_event.replay_id),
            event.schema_id,
            event.id,
            record,
            self.schema(event.schema_id),
        )


def change_event(
    topic: str,
    replay_id: bytes,
    schema_id: str,
    event_id: str,
    record: Mapping[str, Any],
    schema: Mapping[str, Any],
) -> ChangeEvent:
    """A decoded record (and its schema) as a :class:`ChangeEvent`."""
    header = dict(record.get(HEADER) or {})
    decoded = {name: tuple(decode_bitmap(schema, header.get(name))) for name in BITMAP_FIELDS}
    values = {k: v for k, v in record.items() if k != HEADER and v is not None}
    return ChangeEvent(
        topic=topic,
        replay_id=replay_id,
        schema_id=schema_id,
        event_id=event_id,
        entity=str(header.get("entityName", "")),
        record_ids=tuple(header.get("recordIds") or ()),
        change_type=str(header.get("changeType", "")),
        changed_fields=decoded["changedFields"],
        nulled_fields=decoded["nulledFields"],
        diff_fields=decoded["diffFields"],
        header=header,
        values=values,
    )
