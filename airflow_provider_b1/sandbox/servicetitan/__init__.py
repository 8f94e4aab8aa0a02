"""A faithful imitation of ServiceTitan's API v2 (token endpoint, CRM, accounting, settings,
export feeds, rate limits, webhooks), for tests and first tries.

Independent of :mod:`airflow_provider_b1.hooks`: it shares no protocol code with them, so the
two implementations check each other. Production code never imports it.
"""

from __future__ import annotations

from airflow_provider_b1.sandbox.servicetitan.app import (
    ServiceTitanSandbox,
    ServiceTitanSandboxConfig,
    create_app,
)

__all__ = ["ServiceTitanSandbox", "ServiceTitanSandboxConfig", "create_app"]
