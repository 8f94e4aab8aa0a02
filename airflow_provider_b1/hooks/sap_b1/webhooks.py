"""SAP Business One webhook subscriptions (``EventSubscriptions``, Service Layer v2, 10.0 FP 2602+).

``POST EventSubscriptions`` with ``WebhookURL``, ``AuthenticationType`` (HMAC by default) and
``EventCollection[{BusinessObject, TransactionType}]``. SAP keeps one subscription per URL (table
OEVC: key ``WebhookID``, ``WebhookURL`` unique), so the URL is the natural key:
:meth:`SapB1Webhooks.register_webhook` looks the URL up first and creates only when absent (and a
create whose outcome is unknown is looked up again before it is ever sent twice).

*Unconfirmed*, hence parameters: the property holding the HMAC secret (OEVC's ``AuthCred``,
``AuthenticationCredentials`` here), the key property (``WebhookID``) and the values of
``TransactionType``, which are passed through as given.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_b1.hooks.sap_b1.errors import SapB1NotFoundError
from airflow_provider_b1.hooks.sap_b1.literals import entity_path

log = logging.getLogger(__name__)

EVENT_SUBSCRIPTIONS = "EventSubscriptions"
DEFAULT_KEY_FIELD = "WebhookID"
DEFAULT_SECRET_FIELD = "AuthenticationCredentials"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")


@dataclass(frozen=True)
class WebhookSubscription:
    """One subscription as SAP holds it.

    :param webhook_id: its key (``WebhookID``).
    :param url: ``WebhookURL``.
    :param events: ``(BusinessObject, TransactionType)`` pairs, sorted.
    :param authentication_type: ``AuthenticationType`` as SAP reports it.
    :param outcome: what :meth:`~SapB1Webhooks.register_webhook` did: ``"created"``, ``"updated"``
        (its events were replaced) or ``"unchanged"``; ``"listed"`` from :meth:`~SapB1Webhooks.list_webhooks`.
    :param record: the record as SAP returned it, any secret property removed.
    """

    webhook_id: Any
    url: str
    events: tuple[tuple[str, str], ...]
    authentication_type: str | None = None
    outcome: str = "listed"
    record: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _events(events: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in events:
        try:
            business_object, transaction = item
        except (TypeError, ValueError):
            raise ValueError(
                f"Each event is a (BusinessObject, TransactionType) pair, not {item!r}."
            ) from None
        for value in (business_object, transaction):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise ValueError(f"{value!r} is not a business object or transaction type name.")
        pairs.append((business_object, transaction))
    if not pairs:
        raise ValueError("A webhook needs at least one (BusinessObject, TransactionType) event.")
    return tuple(sorted(set(pairs)))


def _collection(events: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"BusinessObject": bo, "TransactionType": tx} for bo, tx in events]


class SapB1Webhooks:
    """The webhook half of :class:`~airflow_provider_b1.hooks.sap_b1.SapB1Hook`.

    Relies on the hook's transport (``_call``), ``api_version`` and writes (``find_by``, ``create``).
    """

    api_version: str
    _call: Callable[..., requests.Response]
    _json: Callable[[requests.Response], Any]
    iter_pages: Callable[..., Iterator[list[Any]]]
    find_by: Callable[..., dict[str, Any] | None]
    create: Callable[..., dict[str, Any]]

    def _require_webhooks(self) -> None:
        if self.api_version != "v2":
            raise ValueError(
                "SAP Business One webhooks exist only in Service Layer v2 (10.0 FP 2602 and later); this "
                "connection uses v1. Point it at /b1s/v2/ (or set the api_version extra to v2)."
            )

    @staticmethod
    def _subscription(
        record: dict[str, Any], outcome: str, key_field: str, secret_field: str
    ) -> WebhookSubscription:
        clean = {k: v for k, v in record.items() if k != secret_field}
        pairs = []
        for item in record.get("EventCollection") or []:
            if isinstance(item, dict) and item.get("BusinessObject") and item.get("TransactionType"):
                pairs.append((str(item["BusinessObject"]), str(item["TransactionType"])))
        return WebhookSubscription(
            webhook_id=record.get(key_field),
            url=str(record.get("WebhookURL") or ""),
            events=tuple(sorted(set(pairs))),
            authentication_type=record.get("AuthenticationType"),
            outcome=outcome,
            record=clean,
        )

    def register_webhook(
        self,
        url: str,
        events: Iterable[tuple[str, str]],
        *,
        secret: str | None = None,
        authentication_type: str = "HMAC",
        secret_field: str = DEFAULT_SECRET_FIELD,
        key_field: str = DEFAULT_KEY_FIELD,
    ) -> WebhookSubscription:
        """Subscribe ``url`` to ``events``, once: an existing subscription of the URL is reused.

        When SAP already holds a subscription for ``url`` with the same events, nothing is sent.
        With other events, its ``EventCollection`` is replaced (``PATCH`` with
        ``B1S-ReplaceCollectionsOnPatch``), and the secret with it when given. Otherwise it is
        created. The secret is never logged and never returned.

        :param url: the receiver's URL, e.g. ``https://hooks.example.com/webhooks/sap-b1``.
        :param events: ``(BusinessObject, TransactionType)`` pairs, e.g. ``[("Orders", "Created")]``.
        :param secret: the HMAC secret the receiver verifies with (``B1_WEBHOOKS_SAP_SECRET``).
        :param authentication_type: ``AuthenticationType`` (default ``HMAC``).
        :param secret_field: the property holding the secret (*unconfirmed*; OEVC ``AuthCred``).
        :param key_field: the key property (OEVC ``WebhookID``).
        :raises ValueError: on Service Layer v1, or for malformed events.
        :raises SapB1Error: when SAP refuses (e.g. webhooks not enabled on the server).
        """
        self._require_webhooks()
        wanted = _events(events)
        if not url or "://" not in url:
            raise ValueError(f"{url!r} is not a webhook URL.")
        existing = self.find_by(EVENT_SUBSCRIPTIONS, "WebhookURL", url)
        if existing is not None:
            current = self._subscription(existing, "unchanged", key_field, secret_field)
            if current.events == wanted:
                log.info("SAP already sends %d event type(s) to this webhook; nothing changed.", len(wanted))
                return current
            patch: dict[str, Any] = {"EventCollection": _collection(wanted)}
            if secret is not None:
                patch[secret_field] = secret
            path = entity_path(EVENT_SUBSCRIPTIONS, current.webhook_id)
            # Replacing the whole collection may be sent again: it cannot add rows twice.
            self._call(
                "PATCH",
                path,
                json_body=patch,
                headers={"B1S-ReplaceCollectionsOnPatch": "true"},
                what=path,
                repeatable=True,
            )
            log.info("SAP webhook %s now sends %d event type(s).", current.webhook_id, len(wanted))
            record = {**existing, "EventCollection": _collection(wanted)}
            return self._subscription(record, "updated", key_field, secret_field)
        payload: dict[str, Any] = {
            "WebhookURL": url,
            "AuthenticationType": authentication_type,
            "EventCollection": _collection(wanted),
        }
        if secret is not None:
            payload[secret_field] = secret
        created = self.create(EVENT_SUBSCRIPTIONS, payload, dedupe_field="WebhookURL")
        subscription = self._subscription(created or payload, "created", key_field, secret_field)
        log.info("SAP webhook %s created for %d event type(s).", subscription.webhook_id, len(wanted))
        return subscription

    def list_webhooks(
        self, *, secret_field: str = DEFAULT_SECRET_FIELD, key_field: str = DEFAULT_KEY_FIELD
    ) -> list[WebhookSubscription]:
        """Every subscription SAP holds (their secrets left out)."""
        self._require_webhooks()
        return [
            self._subscription(record, "listed", key_field, secret_field)
            for page in self.iter_pages(EVENT_SUBSCRIPTIONS)
            for record in page
        ]

    def delete_webhook(
        self,
        url: str | None = None,
        *,
        webhook_id: Any = None,
        key_field: str = DEFAULT_KEY_FIELD,
    ) -> bool:
        """Remove a subscription, named by its URL or its id.

        :return: ``True`` when one was deleted, ``False`` when there was none (deleting twice is harmless).
        """
        self._require_webhooks()
        if (url is None) == (webhook_id is None):
            raise ValueError("Name the webhook by url or by webhook_id (one of them).")
        if url is not None:
            existing = self.find_by(EVENT_SUBSCRIPTIONS, "WebhookURL", url, select=[key_field, "WebhookURL"])
            if existing is None:
                return False
            webhook_id = existing.get(key_field)
        path = entity_path(EVENT_SUBSCRIPTIONS, webhook_id)
        try:
            self._call("DELETE", path, what=path, repeatable=True)
        except SapB1NotFoundError:
            return False
        log.info("SAP webhook %s deleted.", webhook_id)
        return True
