"""Webhooks into Airflow: a small receiver service turning signed deliveries into Asset events.

ServiceTitan (v2 webhooks: invoices, payments, customers) and SAP Business One (10.0 FP 2602+
event subscriptions) announce changes; the receiver checks each delivery's HMAC signature, time
and event id, and records an event of the matching Airflow Asset through Airflow's REST API, so
DAGs scheduled on that Asset run at once instead of at their next poll.

* :mod:`.settings`: every setting (``B1_WEBHOOKS_*``) and the Asset URI of each event.
* :mod:`.signatures`: HMAC-SHA256 of the raw body, hex or base64, compared in constant time.
* :mod:`.replay`: event ids already taken, in memory or in Redis.
* :mod:`.events`: what a verified delivery says (ids, types, times, keys).
* :mod:`.assets_client`: Airflow's ``/auth/token`` and ``/api/v2/assets/events``.
* :mod:`.receiver`: the FastAPI app, :func:`create_app`.
* :mod:`.assets`: the Airflow Assets for DAGs (imports Airflow; the receiver does not).

Run it with ``b1-webhooks`` (see :mod:`.__main__`). Subscriptions in SAP are made with
:meth:`SapB1Hook.register_webhook <airflow_provider_b1.hooks.sap_b1.webhooks.SapB1Webhooks.register_webhook>`.
"""

from __future__ import annotations

from airflow_provider_b1.webhooks.receiver import create_app
from airflow_provider_b1.webhooks.settings import SourceSettings, WebhookSettings, WebhookSettingsError

__all__ = ["SourceSettings", "WebhookSettings", "WebhookSettingsError", "create_app"]
