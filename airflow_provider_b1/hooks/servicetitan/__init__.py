"""ServiceTitan API v2: the hook, its token auth, errors, record kinds and money.

Each concern has its own module: :mod:`.auth` (tokens shared by a worker's processes),
:mod:`.errors` (typed failures), :mod:`.reads` (kinds, paging, money) and :mod:`.hook`
(settings, rate limit, retries, reads).
"""

from __future__ import annotations

from airflow_provider_b1.hooks.servicetitan.auth import AccessToken, ServiceTitanTokenAuth, TokenCache
from airflow_provider_b1.hooks.servicetitan.errors import (
    ServiceTitanAppKeyError,
    ServiceTitanAuthError,
    ServiceTitanBadRequestError,
    ServiceTitanError,
    ServiceTitanNotFoundError,
    ServiceTitanPagingError,
    ServiceTitanPermissionError,
    ServiceTitanRateLimitedError,
    ServiceTitanServerError,
    ServiceTitanTenantError,
    ServiceTitanTLSError,
    ServiceTitanUnreachableError,
)
from airflow_provider_b1.hooks.servicetitan.hook import ENVIRONMENTS, ServiceTitanHook
from airflow_provider_b1.hooks.servicetitan.reads import (
    KINDS,
    ExportPage,
    Kind,
    kind_spec,
    money,
    with_decimals,
)

__all__ = [
    "ENVIRONMENTS",
    "KINDS",
    "AccessToken",
    "ExportPage",
    "Kind",
    "ServiceTitanAppKeyError",
    "ServiceTitanAuthError",
    "ServiceTitanBadRequestError",
    "ServiceTitanError",
    "ServiceTitanHook",
    "ServiceTitanNotFoundError",
    "ServiceTitanPagingError",
    "ServiceTitanPermissionError",
    "ServiceTitanRateLimitedError",
    "ServiceTitanServerError",
    "ServiceTitanTLSError",
    "ServiceTitanTenantError",
    "ServiceTitanTokenAuth",
    "ServiceTitanUnreachableError",
    "TokenCache",
    "kind_spec",
    "money",
    "with_decimals",
]
