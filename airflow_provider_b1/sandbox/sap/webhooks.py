"""Webhooks of the Service Layer imitation (SAP Business One 10.0 FP 2602+, v2 only).

**Subscriptions.** ``EventSubscriptions`` is an entity set of ``/b1s/v2`` only: v1 answers as for
any entity set it does not have (404 / -1000 ``Invalid resource path``), and so does v2 with
``webhooks_enabled`` off (how a real server with webhooks switched off answers is unconfirmed).
A subscription is ``{"WebhookID": 1, "WebhookURL": "https://...", "AuthenticationType": "HMAC",
"EventCollection": [{"BusinessObject": "Orders", "TransactionType": "Created"}]}``; ``WebhookID``
is given by the server (1, 2, ...) and ``WebhookURL`` is unique (a second subscription of a URL
answers 400 / -2035, as SAP's table OEVC keeps one per URL). ``POST``, ``GET`` (list, one,
``$filter``, ``$select``, ``$count``, paging), ``PATCH`` (``B1S-ReplaceCollectionsOnPatch:
true`` replaces ``EventCollection``; without it the rows sent are added, and a row that is
already there answers 400 / -2035) and ``DELETE`` behave as for the other entity sets.

``BusinessObject`` is an entity set name (``Orders``, ``Invoices``, ``IncomingPayments``,
``BusinessPartners``, ``PurchaseOrders``, ``PurchaseInvoices``, ``VendorPayments``,
``CreditNotes``, ``Drafts``...). ``TransactionType`` is ``Created``, ``Updated``, ``Deleted``,
``Cancelled`` or ``Closed``; SAP's transaction-notification letters ``A``, ``U``, ``D``, ``C``,
``L`` are taken for the same (SAP's own values are unconfirmed), in any case. Only ``HMAC``
authentication is served.

**The handshake.** Before a subscription is stored (and when a ``PATCH`` changes its URL), the
server sends ``GET <WebhookURL>`` with ``X-B1-Webhook-Token: <random token>`` and expects a 2xx
JSON answer ``{"Challenge": "<the token>"}``. Any other answer, or none within
``webhook_timeout_seconds``, refuses the write with 400 / -10 ``Webhook URL validation failed:
...`` (wording ours) and nothing is stored. HTTPS URLs are checked against ``webhook_ca_bundle``
(a PEM path; unset: the system's trust store).

**The HMAC secret.** Where SAP takes it from is unconfirmed, so both readings are served: the
subscription may carry it (``AuthenticationCredentials``, the hook's default, or ``AuthCred``,
OEVC's column; write-only, never served back), and otherwise the server-wide ``webhook_secret``
setting (``POST /_sandbox/config``, as an administrator would configure it) signs its
deliveries. A subscription with neither is refused with 400 / -10. Either way the receiver's
``B1_WEBHOOKS_SAP_SECRET`` must hold the same string.

**Deliveries.** Every write through the Service Layer that a subscription names (a POST that
creates, a PATCH, ``Close`` and ``Cancel`` actions, a DELETE, a draft added as its document;
inside ``$batch`` too, once its changeset commits, and never for a changeset rolled back) and
every record ``POST /_sandbox/mutate`` changes (``Updated``: another SAP user's edit) becomes an
event. A document held for approval announces no document: with ``post_reply: "draft"`` it is a
``Drafts`` ``Created`` event, and the document's ``Created`` comes when
``DraftsService_SaveDraftToDocument`` adds it. A payment that closes an invoice announces the
payment only. ``/_sandbox/seed``, ``/corrupt`` and ``/repair`` announce nothing. The events of one request go to each
subscription naming them as one JSON array of CloudEvents-like objects::

    [{"specversion": "1.0", "id": "<uuid>", "source": "/b1s/v2/<CompanyDB>",
      "type": "sap.b1.Orders.Created.v1", "time": "2026-03-01T12:00:00.123Z",
      "subject": "Orders(42)", "datacontenttype": "application/json", "data": {"DocEntry": 42}}]

``data`` holds the record's key under its own name (``CardCode`` for business partners). The
POST carries ``X-B1-Webhook-Signature``: HMAC-SHA256 of the raw body under the secret, in
``webhook_signature_encoding`` (``hex``, default, or ``base64``: SAP's is unconfirmed, and the
provider's receiver takes both). Deliveries are sent from a background thread and retried at
``webhook_retry_seconds`` (10, 30, 60, 120 s: all within the receiver's default 300 s replay
window, since every attempt repeats the same bytes and times) times ``webhook_time_scale``; see
:mod:`airflow_provider_b1.sandbox.webhook_sender`.

**Control plane.** ``GET /_sandbox/webhooks``: the counts of :meth:`SapWebhooks.stats`, the
subscriptions (without secrets; ``secret`` says ``subscription`` or ``server``) and the latest
deliveries (``id``, ``WebhookID``, ``url``, ``types``, ``event_ids``, ``state`` of ``pending``,
``delivered`` or ``failed``, ``attempts``: an HTTP status or an exception's name each).
``DELETE /_sandbox/webhooks`` drops every subscription and delivery. ``GET /_sandbox/stats``
carries the counts as ``webhooks``.

Like the rest of the sandbox this module shares no code with the hook or the receiver.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import uuid
from typing import Any

import requests

from airflow_provider_b1.sandbox.sap import schema
from airflow_provider_b1.sandbox.sap.data import Entity
from airflow_provider_b1.sandbox.sap.odata import key_literal
from airflow_provider_b1.sandbox.sap.store import ALREADY_EXISTS, ETAG_MISMATCH, SapError
from airflow_provider_b1.sandbox.webhook_sender import SIGNATURE_ENCODINGS, WebhookSender, sign

EVENT_SUBSCRIPTIONS = "EventSubscriptions"
TOKEN_HEADER = "X-B1-Webhook-Token"
SIGNATURE_HEADER = "X-B1-Webhook-Signature"
SECRET_FIELDS = ("AuthenticationCredentials", "AuthCred")
AUTHENTICATION_TYPES = ("HMAC",)
MAX_EVENTS = 100
"""Events a subscription may name."""

TRANSACTIONS = {
    **{word.upper(): word for word in ("Created", "Updated", "Deleted", "Cancelled", "Closed")},
    "A": "Created",
    "U": "Updated",
    "D": "Deleted",
    "C": "Cancelled",
    "L": "Closed",
    "CANCELED": "Cancelled",
}
"""``TransactionType`` (upper case) -> the word of the event type."""

ACTIONS = {"Close": "Closed", "Cancel": "Cancelled"}
"""Entity actions -> the transaction they announce."""

SETTINGS = frozenset(
    {
        "webhooks_enabled",
        "webhook_secret",
        "webhook_signature_encoding",
        "webhook_retry_seconds",
        "webhook_time_scale",
        "webhook_timeout_seconds",
        "webhook_ca_bundle",
    }
)
"""The settings of :class:`~.app.SapSandboxConfig` this module reads (all settable at run time)."""

EVENT = schema.parse("EventSubscriptionEvent", "BusinessObject TransactionType")
SUBSCRIPTION = schema.parse(
    "EventSubscription", "WebhookID:i WebhookURL AuthenticationType EventCollection:L"
)
_WRITABLE = schema.parse(
    "EventSubscription",
    "WebhookID:i WebhookURL AuthenticationType EventCollection:L " + " ".join(SECRET_FIELDS),
)
_CHILDREN = {"EventCollection": EVENT}


def check_settings(payload: dict[str, Any]) -> dict[str, Any]:
    """The webhook settings of a ``POST /_sandbox/config`` body, checked and normalized.

    :raises ValueError: naming the setting that cannot be used.
    """
    out: dict[str, Any] = {}
    for name, value in payload.items():
        if name not in SETTINGS:
            continue
        if name == "webhooks_enabled" and not isinstance(value, bool):
            raise ValueError("webhooks_enabled: true or false")
        if name in ("webhook_secret", "webhook_ca_bundle") and not (
            value is None or (isinstance(value, str) and value)
        ):
            raise ValueError(f"{name}: a non-empty string or null")
        if name == "webhook_signature_encoding" and value not in SIGNATURE_ENCODINGS:
            raise ValueError(f"webhook_signature_encoding: one of {list(SIGNATURE_ENCODINGS)}")
        if name == "webhook_retry_seconds":
            if not isinstance(value, list) or not all(_seconds(v) for v in value) or len(value) > 20:
                raise ValueError("webhook_retry_seconds: a list of at most 20 delays in seconds")
            value = tuple(float(v) for v in value)
        if name in ("webhook_time_scale", "webhook_timeout_seconds") and not (
            _seconds(value) and (value > 0 or name == "webhook_time_scale")
        ):
            raise ValueError(f"{name}: a number of seconds")
        out[name] = value
    return out


def _seconds(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < 86_400


def subscription_entity() -> Entity:
    """The ``EventSubscriptions`` entity set, empty."""
    ent = Entity(
        EVENT_SUBSCRIPTIONS,
        key="WebhookID",
        object_name="EventSubscription",
        template=SUBSCRIPTION,
        columns=list(SUBSCRIPTION),
    )
    index = ent.col["EventCollection"]

    def collection(row: list, _v2: bool) -> list[dict[str, Any]]:
        return [{**EVENT, **child} for child in row[index] or []]

    ent.setup({}, {"EventCollection": collection})
    return ent


def _transaction(value: Any) -> str | None:
    return TRANSACTIONS.get(value.strip().upper()) if isinstance(value, str) else None


class SapWebhooks:
    """``EventSubscriptions``, the handshake, and the deliveries of one sandbox.

    The subscriptions are an entity set of the store (so ``$batch`` rolls them back and a reset
    empties them); their secrets are kept here, never in a record.
    """

    def __init__(self, sandbox: Any) -> None:
        self.sb = sandbox
        store = sandbox.store
        self.entity = subscription_entity()
        store.entities[EVENT_SUBSCRIPTIONS] = self.entity
        store.deleted[EVENT_SUBSCRIPTIONS] = set()
        self.secrets: dict[int, str | None] = {}
        self.sender = WebhookSender(lambda: sandbox.config, name="sap-sandbox-webhooks")
        self._lock = threading.Lock()
        self.handshakes = 0
        self.handshakes_refused = 0
        self.events = 0

    # -- the entity set --------------------------------------------------------------------

    def handle(
        self,
        handler: Any,
        method: str,
        key: Any,
        rest: str | None,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> Any:
        """Serve one request of ``EventSubscriptions`` (``handler`` is the app's request handler)."""
        from airflow_provider_b1.sandbox.sap.app import Reply, url_path  # the app imports this module

        cfg = self.sb.config
        if not handler.v2 or not cfg.webhooks_enabled:
            raise SapError(404, -1000, f"Invalid resource path: '{EVENT_SUBSCRIPTIONS}'")
        store, ent = self.sb.store, self.entity
        if rest and not (method == "GET" and key is None and rest == "$count"):
            raise SapError(400, -5006, f"Action '{rest}' is not supported")
        if method == "GET":
            with store.lock:
                if rest == "$count":
                    return Reply(200, str(len(ent.rows)).encode(), [], "text/plain;charset=utf-8")
                if key is None:
                    return handler.collection(ent, query, headers)
                return handler.single(ent, key, query)
        if method == "POST":
            if key is not None:
                raise SapError(405, -5006, "POST to an entity is not supported; use PATCH")
            payload = self._clean(handler.payload(body))
            record, secret = self._new(payload)
            self._handshake(record["WebhookURL"])
            with store.lock:
                self._unique(record["WebhookURL"], None)
                new_key = ent.next_entry
                store._remember(ent, new_key)
                ent.next_entry += 1
                row = [new_key, record["WebhookURL"], record["AuthenticationType"], record["EventCollection"]]
                ent.rows[new_key] = [*row, 1, None]
                store.deleted[ent.name].discard(new_key)
                ent.touch()
                self.secrets[new_key] = secret
                row = ent.rows[new_key]
                location = handler.root + url_path(f"{ent.name}({key_literal(new_key)})")
                extra = [("ETag", ent.etag(row)), ("Location", location)]
                if "return-no-content" in headers.get("prefer", ""):
                    return Reply(204, b"", [*extra, ("Preference-Applied", "return-no-content")])
                return handler.json(201, handler.entity_body(ent, row, None), extra)
        if method in ("PATCH", "MERGE", "PUT"):
            if key is None:
                raise SapError(405, -5006, f"{method} needs an entity key")
            payload = self._clean(handler.payload(body))
            replace = headers.get("b1s-replacecollectionsonpatch", "").lower() == "true" or method == "PUT"
            with store.lock:
                row = store.get(ent, key)
                old_url = row[1]
            url = payload.get("WebhookURL")
            if url is not None and url != old_url:
                self._check_url(url)
                with store.lock:
                    self._unique(url, key)
                self._handshake(url)
            with store.lock:
                row = store.get(ent, key)
                if_match = headers.get("if-match")
                if if_match and if_match.strip() not in ("*", ent.etag(row)):
                    raise SapError(412, -2039, ETAG_MISMATCH)
                self._update(ent, row, key, payload, replace)
                return Reply(204, b"", [("ETag", ent.etag(row))])
        if method == "DELETE":
            if key is None:
                raise SapError(405, -5006, "DELETE needs an entity key")
            with store.lock:
                store.get(ent, key)
                store._remember(ent, key)
                del ent.rows[key]
                store.deleted[ent.name].add(key)
                ent.touch()
            return Reply(204)
        raise SapError(405, -5006, f"Method {method} is not supported")

    @staticmethod
    def _clean(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            return schema.clean(_WRITABLE, payload, _CHILDREN)
        except schema.TypeMismatch as exc:
            raise SapError(400, -1000, str(exc)) from None

    def _new(self, payload: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        url = payload.get("WebhookURL")
        self._check_url(url)
        kind = payload.get("AuthenticationType") or "HMAC"
        self._check_kind(kind)
        events = self._events(payload.get("EventCollection"), [])
        secret = self._secret(payload)
        if secret is None and not self.sb.config.webhook_secret:
            raise SapError(
                400,
                -10,
                "HMAC authentication needs a secret: send AuthenticationCredentials, or set the "
                "server's webhook secret",
            )
        with self.sb.store.lock:
            self._unique(url, None)
        return {"WebhookURL": url, "AuthenticationType": kind, "EventCollection": events}, secret

    def _update(self, ent: Entity, row: list, key: Any, payload: dict[str, Any], replace: bool) -> None:
        if "WebhookID" in payload and payload["WebhookID"] != key:
            raise SapError(400, -10, "Cannot change the key 'WebhookID'")
        url = payload.get("WebhookURL", row[1])
        self._check_url(url)
        self._unique(url, key)
        kind = payload.get("AuthenticationType") or row[2]
        self._check_kind(kind)
        events = row[3]
        if "EventCollection" in payload:
            events = self._events(payload["EventCollection"], [] if replace else row[3])
        self.sb.store._remember(ent, key)
        row[1], row[2], row[3] = url, kind, events
        secret = self._secret(payload)
        if secret is not None:
            self.secrets[key] = secret
        row[ent.ver] += 1
        ent.touch()

    @staticmethod
    def _secret(payload: dict[str, Any]) -> str | None:
        for name in SECRET_FIELDS:
            value = payload.get(name)
            if value not in (None, ""):
                return str(value)
        return None

    @staticmethod
    def _check_url(url: Any) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000:
            raise SapError(400, -10, "Enter the webhook's http(s) URL (WebhookURL)")

    @staticmethod
    def _check_kind(kind: Any) -> None:
        if kind not in AUTHENTICATION_TYPES:
            raise SapError(
                400,
                -10,
                f"AuthenticationType '{kind}' is not supported; use {', '.join(AUTHENTICATION_TYPES)}",
            )

    def _unique(self, url: str, key: Any) -> None:
        if any(row[1] == url and k != key for k, row in self.entity.rows.items()):
            raise SapError(400, -2035, ALREADY_EXISTS, close=True)

    def _events(self, incoming: Any, current: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = [dict(child) for child in current]
        known = self.sb.store.entities
        for item in incoming or []:
            business_object = item.get("BusinessObject")
            transaction = item.get("TransactionType")
            if business_object not in known or business_object == EVENT_SUBSCRIPTIONS:
                raise SapError(400, -10, f"Invalid business object '{business_object}' (BusinessObject)")
            if _transaction(transaction) is None:
                raise SapError(
                    400,
                    -10,
                    f"Invalid transaction type '{transaction}' (TransactionType): Created, Updated, "
                    "Deleted, Cancelled or Closed",
                )
            pair = (business_object, _transaction(transaction))
            if any((c["BusinessObject"], _transaction(c["TransactionType"])) == pair for c in out):
                raise SapError(400, -2035, ALREADY_EXISTS, close=True)
            out.append({"BusinessObject": business_object, "TransactionType": transaction})
        if not out:
            raise SapError(400, -10, "Add at least one event to the subscription (EventCollection)")
        if len(out) > MAX_EVENTS:
            raise SapError(400, -10, f"A subscription names at most {MAX_EVENTS} events")
        return out

    # -- the handshake ---------------------------------------------------------------------

    def _handshake(self, url: str) -> None:
        """GET the URL with a fresh token; refuse unless the answer echoes it as ``Challenge``."""
        cfg = self.sb.config
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.handshakes += 1
        problem = None
        try:
            reply = requests.get(
                url,
                headers={TOKEN_HEADER: token, "Accept": "application/json", "User-Agent": _USER_AGENT},
                timeout=cfg.webhook_timeout_seconds,
                verify=cfg.webhook_ca_bundle or True,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            problem = f"the URL could not be reached ({type(exc).__name__})"
        else:
            try:
                answer = reply.json() if 200 <= reply.status_code < 300 else None
            except ValueError:
                answer = None
            if not 200 <= reply.status_code < 300:
                problem = f"the URL answered HTTP {reply.status_code}"
            elif not isinstance(answer, dict) or answer.get("Challenge") != token:
                problem = "the answer did not return the challenge token"
            reply.close()
        if problem is not None:
            with self._lock:
                self.handshakes_refused += 1
            raise SapError(400, -10, f"Webhook URL validation failed: {problem}")

    # -- deliveries ------------------------------------------------------------------------

    def publish(self, events: list[tuple[str, str, Any]]) -> None:
        """Deliver ``(BusinessObject, transaction, key)`` events to the subscriptions naming them."""
        if not events or not self.entity.rows:
            return
        cfg = self.sb.config
        store = self.sb.store
        with store.lock:
            targets = [
                (
                    key,
                    row[1],
                    {(c["BusinessObject"], _transaction(c["TransactionType"])) for c in row[3] or []},
                    self.secrets.get(key),
                )
                for key, row in self.entity.rows.items()
            ]
            key_names = {name: store.entities[name].key for name, _, _ in events if name in store.entities}
        moment = dt.datetime.now(dt.timezone.utc)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        source = f"/b1s/v2/{cfg.company_db}"
        built = [
            (
                (name, transaction),
                {
                    "specversion": "1.0",
                    "id": str(uuid.uuid4()),
                    "source": source,
                    "type": f"sap.b1.{name}.{transaction}.v1",
                    "time": stamp,
                    "subject": f"{name}({key_literal(key)})",
                    "datacontenttype": "application/json",
                    "data": {key_names.get(name, "Key"): key},
                },
            )
            for name, transaction, key in events
        ]
        verify: bool | str = cfg.webhook_ca_bundle or True
        for webhook_id, url, wanted, own_secret in targets:
            chosen = [event for pair, event in built if pair in wanted]
            if not chosen:
                continue
            with self._lock:
                self.events += len(chosen)
            meta = {
                "WebhookID": webhook_id,
                "types": sorted({event["type"] for event in chosen}),
                "event_ids": [event["id"] for event in chosen],
            }
            secret = own_secret or cfg.webhook_secret
            if not secret:
                self.sender.refuse(url, "NoSecret", **meta)
                continue
            body = json.dumps(chosen, separators=(",", ":"), ensure_ascii=False).encode()
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": _USER_AGENT,
                SIGNATURE_HEADER: sign(secret, body, cfg.webhook_signature_encoding),
            }
            self.sender.send(url, body, headers, verify=verify, **meta)

    def stop(self) -> None:
        self.sender.stop()

    def clear(self) -> None:
        """Drop every subscription and delivery (``DELETE /_sandbox/webhooks``)."""
        store = self.sb.store
        with store.lock:
            store.deleted[EVENT_SUBSCRIPTIONS].update(self.entity.rows)
            self.entity.rows.clear()
            self.entity.touch()
            self.secrets.clear()
        self.sender.stop()
        self.sender = WebhookSender(lambda: self.sb.config, name="sap-sandbox-webhooks")
        with self._lock:
            self.handshakes = self.handshakes_refused = self.events = 0

    # -- control plane ---------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """``subscriptions``, ``handshakes``, ``handshakes_refused``, ``events`` (sent, counted per
        subscription), ``deliveries`` (ever queued), ``delivered``, ``pending``, ``failed``,
        ``attempts``, ``failed_attempts``."""
        with self._lock:
            counts = {
                "subscriptions": len(self.entity.rows),
                "handshakes": self.handshakes,
                "handshakes_refused": self.handshakes_refused,
                "events": self.events,
            }
        return {**counts, **self.sender.counts()}

    def describe(self) -> dict[str, Any]:
        """The counts, then ``subscriptions`` and ``deliveries`` as lists (the latest 200)."""
        cfg = self.sb.config
        with self.sb.store.lock:
            subscriptions = [
                {
                    "WebhookID": key,
                    "WebhookURL": row[1],
                    "AuthenticationType": row[2],
                    "EventCollection": [dict(c) for c in row[3] or []],
                    "secret": "subscription"
                    if self.secrets.get(key)
                    else "server"
                    if cfg.webhook_secret
                    else None,
                }
                for key, row in sorted(self.entity.rows.items())
            ]
        return {**self.stats(), "subscriptions": subscriptions, "deliveries": self.sender.recent(200)}


_USER_AGENT = "SAP Business One Service Layer (b1 sandbox)"

__all__ = [
    "EVENT_SUBSCRIPTIONS",
    "SETTINGS",
    "SIGNATURE_HEADER",
    "TOKEN_HEADER",
    "SapWebhooks",
    "check_settings",
]
