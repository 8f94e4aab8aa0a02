"""A purchase order card posted through the Workflows webhook hook to the Teams sandbox: accepted
(202) and recorded as built."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from airflow_provider_b1.hooks.teams import TeamsWebhookHook
from airflow_provider_b1.teams.cards import purchase_order_card

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "adaptive-card-1.4.json"


def test_a_purchase_order_card_posted_to_the_webhook_is_accepted_and_recorded(teams_sandbox, monkeypatch):
    teams_sandbox.restore()
    connection = teams_sandbox.webhook_connection()
    monkeypatch.setenv("AIRFLOW_CONN_B1_TEAMS_WEBHOOK_DEFAULT", json.dumps(connection))
    order = {
        "DocEntry": 311,
        "DocNum": 1042,
        "CardCode": "V10000",
        "CardName": "Acme *Supplies* Ltd",
        "DocTotal": 1234.5,
        "DocCurrency": "EUR",
        "DocDate": "2024-03-01T00:00:00Z",
        "DocDueDate": "2024-03-31T00:00:00Z",
        "DocumentStatus": "bost_Open",
        "Cancelled": "tNO",
        "DocumentLines": [
            {"ItemCode": f"A{n}", "ItemDescription": "Copper wire", "Quantity": 3, "LineTotal": 30.1}
            for n in range(120)
        ],
    }
    card = purchase_order_card(order, max_lines=120)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(card)

    TeamsWebhookHook().post_card(card)

    (post,) = teams_sandbox.posts()
    assert post["via"] == "webhook"
    assert post["attachments"] == [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
    ]
    assert teams_sandbox.stats()["responses"] == {"202": 1}
