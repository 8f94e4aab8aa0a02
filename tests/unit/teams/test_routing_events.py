"""What a routed document announces: its events, read from its status fields, and the short
follow-up card a webhook posts for a later event (a valid Adaptive Card, SAP's values as text)."""

from __future__ import annotations

import pytest

from airflow_provider_b1.teams.sink import events_of, followup_card, marker_of


@pytest.mark.parametrize(
    ("kind", "document", "events"),
    [
        ("PurchaseOrders", {"DocumentStatus": "bost_Open", "Cancelled": "tNO"}, ["created"]),
        ("PurchaseOrders", {"DocumentStatus": "bost_Close", "Cancelled": "tNO"}, ["created", "closed"]),
        ("PurchaseOrders", {"DocumentStatus": "bost_Close", "Cancelled": "tYES"}, ["created", "cancelled"]),
        ("PurchaseInvoices", {"DocumentStatus": "bost_Paid"}, ["created", "paid"]),
        (
            "PurchaseOrders",
            {"DocumentStatus": "bost_Open", "AuthorizationStatus": "dasGenerated"},
            ["created", "approved"],
        ),
        (
            "VendorPayments",
            {"Cancelled": "tYES", "AuthorizationStatus": "pasWithout"},
            ["created", "cancelled"],
        ),
        ("IncomingPayments", {"Cancelled": "tNO"}, ["created"]),
    ],
)
def test_a_documents_events_come_from_its_status_fields(kind, document, events):
    assert events_of(kind, document) == events


def test_a_follow_up_card_is_valid_and_shows_sap_values_as_text(valid):
    card = valid(followup_card("PurchaseOrders", {"DocNum": 60012, "CardName": "*Acme* [x](y)"}, "cancelled"))
    assert card["body"][0]["text"] == "Purchase order 60012 is now cancelled"
    assert card["body"][0]["color"] == "Attention"
    assert card["body"][1]["text"] == r"\*Acme\* \[x\]\(y\)"


def test_a_cards_marker_is_stable_and_differs_per_destination_document_and_event():
    first = marker_of("webhook:w", "PurchaseOrders", "7", "created")
    assert first == marker_of("webhook:w", "PurchaseOrders", "7", "created")
    assert first.startswith("b1-")
    assert (
        len(
            {
                first,
                marker_of("webhook:v", "PurchaseOrders", "7", "created"),
                marker_of("webhook:w", "PurchaseOrders", "7", "closed"),
            }
        )
        == 3
    )
