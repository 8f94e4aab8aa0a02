"""Microsoft Teams messages built by the provider: Adaptive Cards for SAP documents, digests and
failure alerts (:mod:`.cards`), posted with the hooks of :mod:`airflow_provider_b1.hooks.teams`."""

from __future__ import annotations

from airflow_provider_b1.teams.cards import (
    CARD_VERSION,
    MAX_CARD_BYTES,
    digest_card,
    document_card,
    escape,
    failure_card,
    failure_card_from_context,
    format_amount,
    incoming_payment_card,
    message_bytes,
    purchase_invoice_card,
    purchase_order_card,
    vendor_payment_card,
)

__all__ = [
    "CARD_VERSION",
    "MAX_CARD_BYTES",
    "digest_card",
    "document_card",
    "escape",
    "failure_card",
    "failure_card_from_context",
    "format_amount",
    "incoming_payment_card",
    "message_bytes",
    "purchase_invoice_card",
    "purchase_order_card",
    "vendor_payment_card",
]
