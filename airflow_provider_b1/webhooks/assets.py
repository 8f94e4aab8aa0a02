"""The Airflow Assets the webhook receiver records events of, for DAGs to be scheduled on.

Declared like :data:`airflow_provider_b1.assets.WAREHOUSE_ASSETS`; the URIs are the receiver's
defaults (:mod:`.settings`), so a DAG with ``schedule=[servicetitan_asset("invoices")]`` runs as
soon as ServiceTitan announces an invoice. A deployment that maps events to other URIs
(``B1_WEBHOOKS_ASSET_URIS``) declares its own ``Asset(uri=...)`` with the same URI.
"""

from __future__ import annotations

from airflow.sdk import Asset

from airflow_provider_b1.webhooks.settings import (
    DEFAULT_SAP_URI_TEMPLATE,
    DEFAULT_SERVICETITAN_URIS,
    SERVICETITAN_TOPICS,
)

WEBHOOK_ASSET_GROUP = "b1_webhooks"

SAP_B1_WEBHOOK_OBJECTS = (
    "Orders",
    "Invoices",
    "IncomingPayments",
    "PurchaseOrders",
    "PurchaseInvoices",
    "VendorPayments",
    "BusinessPartners",
)
"""The business objects the flows care about; any other has an Asset too (:func:`sap_b1_asset`)."""


def servicetitan_asset(topic: str) -> Asset:
    """The Asset of a ServiceTitan topic announced by webhook (``invoices``, ``payments``, ``customers``)."""
    if topic not in DEFAULT_SERVICETITAN_URIS:
        raise ValueError(f"Unknown ServiceTitan topic {topic!r}; known: {', '.join(SERVICETITAN_TOPICS)}")
    return Asset(
        name=f"servicetitan_{topic}_webhook", uri=DEFAULT_SERVICETITAN_URIS[topic], group=WEBHOOK_ASSET_GROUP
    )


def sap_b1_asset(business_object: str) -> Asset:
    """The Asset of a SAP Business One business object announced by webhook (``Orders``)."""
    if not business_object.isidentifier():
        raise ValueError(f"{business_object!r} is not a business object name.")
    return Asset(
        name=f"sap_b1_{business_object}_webhook",
        uri=DEFAULT_SAP_URI_TEMPLATE.replace("{business_object}", business_object),
        group=WEBHOOK_ASSET_GROUP,
    )


WEBHOOK_ASSETS: dict[str, Asset] = {
    **{f"servicetitan:{topic}": servicetitan_asset(topic) for topic in SERVICETITAN_TOPICS},
    **{f"sap_b1:{name}": sap_b1_asset(name) for name in SAP_B1_WEBHOOK_OBJECTS},
}
"""Every Asset above by ``"<source>:<name>"``, the keys of ``B1_WEBHOOKS_ASSET_URIS``."""
