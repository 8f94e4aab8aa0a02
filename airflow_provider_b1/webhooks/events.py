"""What a delivery announces, read from its (already verified) JSON: ids, types, times, keys.

ServiceTitan's v2 payload is not described field by field anywhere we trust, so every field the
receiver reads is looked for under configurable names (:class:`~.settings.SourceSettings`), and
the event's topic preferably comes from the callback URL (ServiceTitan takes one URL per event).
SAP Business One sends an array of CloudEvents-like objects (``id``, ``type:
"sap.b1.Orders.Created.v1"``, ``time``, ``data: {"DocEntry": ...}``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_b1.webhooks.settings import SourceSettings

_SAP_TYPE = re.compile(
    r"sap\.b1\.(?P<object>[A-Za-z][A-Za-z0-9_]*)\.(?P<transaction>[A-Za-z][A-Za-z0-9_]*)(?:\..*)?"
)
_ID_LIMIT = 200
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?")


class DeliveryError(ValueError):
    """A signed delivery whose content cannot be read (400: the sender's bug, not an attack)."""


def parse_timestamp(value: Any) -> float | None:
    """A delivery time as Unix seconds: ISO 8601 (no zone means UTC), or Unix seconds or milliseconds.

    :return: ``None`` when ``value`` is missing or not a time.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if _ISO.fullmatch(text):
            text = text.replace("z", "Z").replace("Z", "+00:00")
            if re.search(r"[+-]\d{4}$", text):
                text = f"{text[:-2]}:{text[-2:]}"
            try:
                moment = dt.datetime.fromisoformat(text.replace("t", "T"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.timezone.utc)
            return moment.timestamp()
        try:
            number = float(text)
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    # Milliseconds since 1970 pass 1e11 in 1973; seconds will not reach it for 3,000 years.
    return number / 1000.0 if number > 1e11 else number


def body_digest(body: bytes) -> str:
    """An id for a delivery that names none: the SHA-256 of its bytes (a replay repeats them)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _first(document: Mapping[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        value = document.get(name)
        if value not in (None, ""):
            return value
    return None


def _event_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    text = str(value).strip()
    return text[:_ID_LIMIT] or None


@dataclass(frozen=True)
class ServiceTitanEvent:
    """One ServiceTitan delivery.

    :param event_id: the event's id, or the body's digest when it names none.
    :param event_type: what the body calls the event, if it says.
    :param timestamp: Unix seconds, when the body or a header says.
    :param entity_id: the id of the invoice, payment or customer, when the body names it.
    """

    event_id: str
    event_type: str | None
    timestamp: float | None
    entity_id: str | None


def read_servicetitan(body: bytes, headers: Mapping[str, str], source: SourceSettings) -> ServiceTitanEvent:
    """Read a ServiceTitan delivery (a JSON object).

    :raises DeliveryError: when the body is not a JSON object.
    """
    document = _json(body)
    if not isinstance(document, dict):
        raise DeliveryError("A ServiceTitan delivery must be a JSON object.")
    event_id = _event_id(_first(document, source.event_id_fields)) or body_digest(body)
    event_type = _first(document, source.event_type_fields)
    timestamp = None
    if source.timestamp_header:
        timestamp = parse_timestamp(headers.get(source.timestamp_header))
    if timestamp is None:
        timestamp = parse_timestamp(_first(document, source.timestamp_fields))
    data = document.get("data")
    entity = None
    if isinstance(data, dict):
        entity = _event_id(_first(data, ("id", "invoiceId", "paymentId", "customerId")))
    entity = entity or _event_id(_first(document, ("entityId", "invoiceId", "paymentId", "customerId")))
    return ServiceTitanEvent(
        event_id=event_id,
        event_type=str(event_type)[:_ID_LIMIT] if isinstance(event_type, (str, int)) else None,
        timestamp=timestamp,
        entity_id=entity,
    )


def servicetitan_topic(name: str | None, topics: Iterable[str]) -> str | None:
    """The topic a URL segment or an event type names: ``invoices``, ``invoice``,
    ``Invoice.Created``, ``invoice_created`` all name ``invoices``; ``None`` when none matches."""
    if not name:
        return None
    word = re.sub(r"[^a-z0-9]", "", name.lower())
    best = None
    for topic in topics:
        singular = topic[:-1] if topic.endswith("s") else topic
        for form in (topic, singular):
            if word.startswith(form) and (best is None or len(form) > best[1]):
                best = (topic, len(form))
    return best[0] if best else None


@dataclass(frozen=True)
class SapEvent:
    """One event of a SAP Business One delivery.

    :param event_id: the event's ``id``, or the digest of the event when it has none.
    :param event_type: its ``type`` (``sap.b1.Orders.Created.v1``).
    :param business_object: ``Orders``; ``None`` when the type does not say.
    :param transaction: ``Created``; ``None`` likewise.
    :param timestamp: its ``time`` as Unix seconds.
    :param key: the record's key (``DocEntry`` or the first ``data`` value), if given.
    """

    event_id: str
    event_type: str | None
    business_object: str | None
    transaction: str | None
    timestamp: float | None
    key: str | int | None


def read_sap(body: bytes, source: SourceSettings) -> list[SapEvent]:
    """Read a SAP Business One delivery: an array of events (a single object is taken as one).

    :raises DeliveryError: when the body is not an array of objects.
    """
    document = _json(body)
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
        raise DeliveryError("A SAP Business One delivery must be a JSON array of event objects.")
    events = []
    for item in document:
        event_type = item.get("type") if isinstance(item.get("type"), str) else None
        match = _SAP_TYPE.fullmatch(event_type) if event_type else None
        data = item.get("data") if isinstance(item.get("data"), dict) else {}
        key = data.get("DocEntry")
        if key is None and data:
            key = next(iter(data.values()))
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            key = None
        own_id = _event_id(item.get("id"))
        if own_id is None:
            canonical = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str).encode()
            own_id = body_digest(canonical)
        events.append(
            SapEvent(
                event_id=own_id,
                event_type=event_type[:_ID_LIMIT] if event_type else None,
                business_object=match["object"] if match else None,
                transaction=match["transaction"] if match else None,
                timestamp=parse_timestamp(_first(item, source.timestamp_fields)),
                key=key[:_ID_LIMIT] if isinstance(key, str) else key,
            )
        )
    return events


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise DeliveryError("The delivery is not JSON.") from None
