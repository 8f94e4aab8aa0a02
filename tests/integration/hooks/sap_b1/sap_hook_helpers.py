"""Helpers shared by the SAP hook's sandbox tests."""

from __future__ import annotations

import hashlib

from airflow_provider_b1.hooks.sap_b1 import SapB1Hook
from airflow_provider_b1.utils.retry import RetryPolicy

# The sandbox's seeded company and user (set in tests/conftest.py).
COMPANY, USER, PASSWORD = "SBODEMOUS", "manager", "manager-secret-1"
FAST_RETRIES = RetryPolicy(max_attempts=12, max_elapsed=60, initial_wait=0.02, max_wait=0.3)


def keys_digest(keys) -> str:
    return hashlib.sha256("\n".join(str(k) for k in sorted(keys)).encode()).hexdigest()


def read_all(hook: SapB1Hook, **kwargs) -> list[int]:
    return [
        r["DocEntry"]
        for page in hook.iter_pages("Invoices", select="DocEntry,DocTotal", **kwargs)
        for r in page
    ]


def order_payloads(hook: SapB1Hook, count: int, prefix: str) -> list[dict]:
    customer = hook.find_by("BusinessPartners", "CardType", "cCustomer", select="CardCode")
    item = next(hook.iter_records("Items", select="ItemCode", top=1))
    return [
        {
            "CardCode": customer["CardCode"],
            "DocDate": "2024-05-01",
            "DocDueDate": "2024-05-31",
            "NumAtCard": f"{prefix}-{i:03d}",
            "DocumentLines": [{"ItemCode": item["ItemCode"], "Quantity": 1 + i % 3, "UnitPrice": 10.5}],
        }
        for i in range(count)
    ]
