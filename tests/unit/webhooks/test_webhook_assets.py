"""The webhook Assets DAGs schedule on: their URIs are the receiver's, exactly as Airflow stores them."""

from __future__ import annotations

from airflow.sdk import Asset

from airflow_provider_b1.webhooks.assets import WEBHOOK_ASSETS, sap_b1_asset, servicetitan_asset
from airflow_provider_b1.webhooks.settings import WebhookSettings


def test_the_default_uris_survive_airflows_normalisation_unchanged():
    settings = WebhookSettings(airflow_url="http://airflow:8080")
    for topic in ("invoices", "payments", "customers"):
        uri = settings.servicetitan_uri(topic)
        assert Asset(name=topic, uri=uri).uri == uri
        assert servicetitan_asset(topic).uri == uri
    assert Asset(name="o", uri=settings.sap_uri("Orders")).uri == settings.sap_uri("Orders")
    assert sap_b1_asset("PurchaseInvoices").uri == settings.sap_uri("PurchaseInvoices")


def test_every_asset_is_keyed_as_in_b1_webhooks_asset_uris():
    assert WEBHOOK_ASSETS["servicetitan:invoices"].uri == "b1-webhook://servicetitan/invoices"
    assert WEBHOOK_ASSETS["sap_b1:Orders"].uri == "b1-webhook://sap_b1/Orders"
    assert {asset.group for asset in WEBHOOK_ASSETS.values()} == {"b1_webhooks"}
    assert len({asset.name for asset in WEBHOOK_ASSETS.values()}) == len(WEBHOOK_ASSETS)
