"""Salesforce REST and Bulk API 2.0: the hook, its token auth, API limit guard, errors and results.

Each concern has its own module: :mod:`.auth` (client-credentials tokens shared by a worker's
processes), :mod:`.errors` (typed failures), :mod:`.limits` (``Sforce-Limit-Info`` and the
guard), :mod:`.results` (records and per-record write results), :mod:`.bulk` (Bulk API 2.0
jobs and their CSV) and :mod:`.hook` (settings, transport, reads, writes). Change Data Capture
through the Pub/Sub API is in :mod:`.pubsub`.
"""

from __future__ import annotations

from airflow_provider_b1.hooks.salesforce.auth import SalesforceToken, SalesforceTokenAuth, TokenCache
from airflow_provider_b1.hooks.salesforce.errors import (
    RecordError,
    SalesforceAmbiguousWriteError,
    SalesforceApiLimitReached,
    SalesforceAuthError,
    SalesforceBadRequestError,
    SalesforceBulkJobError,
    SalesforceError,
    SalesforceLimitError,
    SalesforceNotFoundError,
    SalesforcePagingError,
    SalesforcePermanentError,
    SalesforcePermissionError,
    SalesforceQueryError,
    SalesforceRequestLimitExceeded,
    SalesforceSchemaError,
    SalesforceServerError,
    SalesforceSessionError,
    SalesforceTLSError,
    SalesforceTransientError,
    SalesforceUnreachableError,
)
from airflow_provider_b1.hooks.salesforce.hook import COLLECTION_SIZE, SalesforceHook
from airflow_provider_b1.hooks.salesforce.limits import ApiLimitGuard, ApiUsage
from airflow_provider_b1.hooks.salesforce.results import UpsertResult

__all__ = [
    "COLLECTION_SIZE",
    "ApiLimitGuard",
    "ApiUsage",
    "RecordError",
    "SalesforceAmbiguousWriteError",
    "SalesforceApiLimitReached",
    "SalesforceAuthError",
    "SalesforceBadRequestError",
    "SalesforceBulkJobError",
    "SalesforceError",
    "SalesforceHook",
    "SalesforceLimitError",
    "SalesforceNotFoundError",
    "SalesforcePagingError",
    "SalesforcePermanentError",
    "SalesforcePermissionError",
    "SalesforceQueryError",
    "SalesforceRequestLimitExceeded",
    "SalesforceSchemaError",
    "SalesforceServerError",
    "SalesforceSessionError",
    "SalesforceTLSError",
    "SalesforceToken",
    "SalesforceTokenAuth",
    "SalesforceTransientError",
    "SalesforceUnreachableError",
    "TokenCache",
    "UpsertResult",
]
