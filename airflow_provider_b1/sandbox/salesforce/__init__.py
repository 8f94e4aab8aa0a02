"""A faithful imitation of a Salesforce org (OAuth client credentials, REST API with SOQL,
sObject Collections, Bulk API 2.0, API limits, a change log for CDC), for tests and first tries.

Independent of :mod:`airflow_provider_b1.hooks`: it shares no protocol code with them, so the
two implementations check each other; third-party clients such as simple-salesforce work
against it unchanged. Production code never imports it.
"""

from __future__ import annotations

from airflow_provider_b1.sandbox.salesforce.app import (
    SalesforceSandbox,
    SalesforceSandboxConfig,
    create_app,
)
from airflow_provider_b1.sandbox.salesforce.store import Change, RecordError, Store, ValidationRule

__all__ = [
    "Change",
    "RecordError",
    "SalesforceSandbox",
    "SalesforceSandboxConfig",
    "Store",
    "ValidationRule",
    "create_app",
]
