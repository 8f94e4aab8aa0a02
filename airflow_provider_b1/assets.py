"""Airflow Assets this provider's flows produce, in one place so producers and consumers agree.

The warehouse flow marks one Asset per loaded table group as updated; the Looker refresh DAG is
scheduled on them.
"""

from __future__ import annotations

from airflow.sdk import Asset

#: Table groups of the warehouse, each loaded by one task of ``sap_b1_to_warehouse``.
WAREHOUSE_GROUPS: dict[str, tuple[str, ...]] = {
    "master": ("BusinessPartners", "Items", "ChartOfAccounts", "ProfitCenters", "Dimensions"),
    "sales": ("Invoices", "IncomingPayments"),
    "purchasing": ("PurchaseInvoices", "PurchaseOrders", "VendorPayments"),
    "finance": ("JournalEntries",),
}


def warehouse_asset(group: str) -> Asset:
    """Return the Asset of one warehouse table group (``master``, ``sales``, ...)."""
    if group not in WAREHOUSE_GROUPS:
        raise ValueError(f"Unknown warehouse table group {group!r}; known: {', '.join(WAREHOUSE_GROUPS)}")
    return Asset(name=f"b1_warehouse_{group}", uri=f"b1-warehouse://sap_b1/{group}", group="b1_warehouse")


WAREHOUSE_ASSETS: dict[str, Asset] = {group: warehouse_asset(group) for group in WAREHOUSE_GROUPS}
