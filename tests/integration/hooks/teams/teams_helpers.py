"""What the Teams hook tests share: a small Adaptive Card and a fast retry policy."""

from __future__ import annotations

from airflow_provider_b1.utils.retry import RetryPolicy

CARD = {
    "type": "AdaptiveCard",
    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
    "version": "1.4",
    "body": [{"type": "TextBlock", "text": "Invoice 1042 needs approval", "wrap": True}],
}

FAST_RETRIES = RetryPolicy(max_attempts=8, max_elapsed=30, initial_wait=0.02, max_wait=2.0)
